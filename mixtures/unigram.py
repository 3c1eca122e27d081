"""BloombergGPT-style Unigram training at corpus scale: split the sample, train the chunks in
parallel, merge their vocabularies, prune the union to the target size on the whole sample.

    sample (documents) --split by bytes--> n chunks of <= chunk_bytes
      chunk k --(worker process, one thread: HF UnigramTrainer to 2 x the target size)--> pieces_k
    union of the pieces_k, p(piece) = sum_k bytes_k / bytes * p_k(piece)       (BloombergGPT's merge)
      --round: Viterbi-encode the whole sample with the union (Rust, every core) -> count per piece;
               loss(piece) = count x (tokens of its best spelling without it - 1) = the tokens its
               removal adds; keep the shrinking_factor share with the highest loss (single characters
               always); score = log(count / total) -- until vocab_size pieces, then rescore once more
    -> tokenizer.json: the same pre-tokenizer, decoder, specials and byte fallback as a one-chunk run

A sample of at most ``chunk_bytes`` is one chunk: Hugging Face's trainer in this process, as
before. Why the split (Wu et al. 2023, Sec. 2.3 met the same wall): the trainer's cost is the EM
passes over the sample's unique pre-tokenized chunks (multi-word runs of letters and spaces: ~2/3
of the sample's bytes are unique chunks, so counting them once saves little), plus a seed of
``seed_size`` pieces whose first passes are the slowest; the passes grow a bit faster than the
sample and its suffix array and seed hold ~1 GB per 10-30 MB trained in one piece. Chunks of fixed
size cost the same each, run on as many cores as there are, and bound a worker's memory; the
merge costs a few encoding passes over the sample, which HF's encoder does at MB/s per core.
Measurements: benchmarks/RESULTS.md (``make bench-tokenizer-scale``), the choice: docs/mixing.md.
"""

from __future__ import annotations

import heapq
import json
import math
import multiprocessing
import os
import re
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

# BloombergGPT (Wu et al. 2023), Sec. 2.3: the pre-tokenization regular expression. Letters *and
# spaces* form one chunk (multi-word pieces), every digit is its own chunk (PaLM), nothing mixes
# letters with punctuation.
BLOOMBERG_CHUNKS = r"[ A-Za-z]+|[0-9]|[^A-Za-z0-9]+"
N_BYTES = 256  # byte-fallback pieces <0x00> .. <0xFF>
# Score of the byte and special pieces inside the Unigram model: far below any learned piece
# (and below the unknown-character penalty, min score - 10), so that the Viterbi search never
# spells literal text such as "<0x41>" or "<|endoftext|>" with them.
RESERVED_PIECE_SCORE = -1.0e6
# HF's UnigramTrainer (tokenizers/src/models/unigram/trainer.rs) stops its EM rounds at 1.1 x the
# target size and shrinks by shrinking_factor per round; its debug log (TOKENIZERS_LOG) prints one
# "Em iter=I size=N" line per EM step: what the progress of a worker is read from.
HF_DESIRED_FACTOR = 1.1
HF_LOG_FILTER = "tokenizers::models::unigram::trainer=debug"
_EM_LINE = re.compile(r"Em iter=(\d+) size=(\d+)")
ENCODE_BATCH = 1024  # documents per encode_batch call while counting
CHUNK_SLACK = 0.05   # of chunk_bytes a chunk may exceed rather than add a chunk
# Each chunk keeps this many times the target pieces: a piece that only the whole sample makes
# worth keeping (rare per chunk, e.g. domain phrases when domain text is a few % of the sample)
# must survive some chunk to reach the merge, which prunes on the whole sample.
CHUNK_VOCAB_FACTOR = 2
# Decimals a piece's log-probability is rounded to before pieces are ordered. HF's trainer sums its
# EM expectations over the pre-tokenized chunks in the order of a Rust HashMap, which is seeded at
# random in every process: two trainings on the same sample give scores that differ in the last
# bits (measured on the demo sample: mean 2.6e-13, max 4e-11 over 8,192 pieces), and so pieces
# of (nearly) equal score in another order. Rounding to 1e-4 absorbs that noise (a boundary is
# crossed with probability ~ 8,192 x 2 x 2.6e-13 / 1e-4 = 4e-5 per training) and changes a
# piece's probability by at most 0.01%, far below what moves a Viterbi segmentation.
SCORE_DECIMALS = 4
# HF's UnigramTrainer.finalize (tokenizers/src/models/unigram/trainer.rs) puts back every character of
# the sample that EM dropped at min_score + k x 0.0001, k = 0, 1, ... in the order of a HashSet, that
# is at random: which character gets which k changes from run to run.
HF_MIN_SCORE_PENALTY_DELTA = 1e-4


@dataclass(frozen=True)
class UnigramSettings:
    """What to train: ``vocab_size`` tokens in all (specials and the 256 byte pieces included);
    the HF trainer's knobs; ``chunk_bytes`` (UTF-8 bytes of sample per chunk) and ``workers``
    (processes, one trainer thread each; 0 = one per CPU) of the split-and-merge."""

    vocab_size: int
    specials: tuple[str, ...]
    unk: str
    max_piece_length: int = 16
    shrinking_factor: float = 0.75
    n_sub_iterations: int = 2
    seed_size: int = 1_000_000
    chunk_bytes: int = 8_000_000
    workers: int = 0

    @property
    def n_pieces(self) -> int:
        """Learned pieces (single characters included), specials and byte pieces excluded."""
        return self.vocab_size - N_BYTES - len(self.specials)


Progress = Callable[[str], None]


def chunk_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(BLOOMBERG_CHUNKS), behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),  # already isolated by the regex; explicit
    ])


def byte_piece(b: int) -> str:
    return f"<0x{b:02X}>"


def new_trainer(s: UnigramSettings, vocab_size: int | None = None) -> tuple[Tokenizer, trainers.UnigramTrainer]:
    """An untrained tokenizer with our pre-tokenizer and decoder, and HF's trainer for it.
    ``vocab_size`` counts the specials, not the byte pieces (added after training)."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = chunk_pre_tokenizer()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size or s.vocab_size - N_BYTES, special_tokens=list(s.specials), unk_token=s.unk,
        max_piece_length=s.max_piece_length, shrinking_factor=s.shrinking_factor,
        n_sub_iterations=s.n_sub_iterations, seed_size=s.seed_size, show_progress=False)
    return tok, trainer


def add_byte_fallback(tok: Tokenizer) -> Tokenizer:
    """Unigram -> Unigram with the 256 ``<0xNN>`` pieces and ``byte_fallback`` on.

    HF's Unigram trainer does not create byte pieces (sentencepiece's ``--byte_fallback``
    does); we append them after training, and move them and the specials to
    :data:`RESERVED_PIECE_SCORE` (the trainer gives specials score 0, the best of all).
    """
    doc = json.loads(tok.to_str())
    model = doc["model"]
    specials = {t["content"] for t in doc["added_tokens"]}
    vocab = [[piece, RESERVED_PIECE_SCORE if piece in specials else score] for piece, score in model["vocab"]]
    have = {piece for piece, _ in vocab}
    vocab += [[byte_piece(b), RESERVED_PIECE_SCORE] for b in range(N_BYTES) if byte_piece(b) not in have]
    model["vocab"], model["byte_fallback"] = vocab, True
    return Tokenizer.from_str(json.dumps(doc, ensure_ascii=False))


def canonical_score(score: float) -> float:
    """A log-probability rounded to :data:`SCORE_DECIMALS`: the same on every run (see there)."""
    return round(float(score), SCORE_DECIMALS) + 0.0  # + 0.0: no -0.0


def canonical_pieces(pieces: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """HF's trained pieces without what differs between two trainings on the same text: scores
    rounded (:data:`SCORE_DECIMALS`), and the characters HF put back below the learned pieces
    (:data:`HF_MIN_SCORE_PENALTY_DELTA`, in random order) all at the lowest of their scores."""
    if not pieces:
        return []
    low = min(sc for _, sc in pieces)
    n_chars = sum(1 for p, _ in pieces if len(p) == 1)

    def put_back(piece: str, score: float) -> bool:
        k = (score - low) / HF_MIN_SCORE_PENALTY_DELTA
        return len(piece) == 1 and round(k) < n_chars and abs(k - round(k)) < 1e-6

    return [(p, canonical_score(low if put_back(p, sc) else sc)) for p, sc in pieces]


def assemble(pieces: Sequence[str], scores: Sequence[float], s: UnigramSettings) -> Tokenizer:
    """The final tokenizer from learned pieces and their log-probabilities: specials first (fixed
    ids), pieces by decreasing score (as HF's trainer orders them), equal scores by piece, then
    the byte pieces. Scores are rounded (:func:`canonical_score`), so the same pieces give the
    same bytes whatever order they come in and whatever noise their scores carry."""
    rounded = [canonical_score(sc) for sc in scores]
    order = sorted(range(len(pieces)), key=lambda i: (-rounded[i], pieces[i]))
    vocab = [(t, 0.0) for t in s.specials] + [(pieces[i], rounded[i]) for i in order]
    tok = Tokenizer(models.Unigram(vocab, unk_id=s.specials.index(s.unk), byte_fallback=False))
    tok.pre_tokenizer = chunk_pre_tokenizer()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens(list(s.specials))
    return add_byte_fallback(tok)


def learned_pieces(tok: Tokenizer, specials: Sequence[str]) -> list[tuple[str, float]]:
    """The pieces and scores of a trained Unigram model, without the specials and byte pieces."""
    reserved = set(specials) | {byte_piece(b) for b in range(N_BYTES)}
    return [(p, float(sc)) for p, sc in json.loads(tok.to_str())["model"]["vocab"] if p not in reserved]


# ----------------------------------------------------------------------------- split

def split_chunks(texts: Sequence[str], chunk_bytes: int) -> list[list[int]]:
    """Indices of ``texts`` per chunk: ``ceil(bytes / chunk_bytes)`` chunks (a sample up to
    :data:`CHUNK_SLACK` over a multiple of ``chunk_bytes`` makes no extra chunk: a draw stops
    one document past its budget) of near-equal bytes (each document to the lightest chunk so
    far, in the given order). Not a function of the workers: the same config and sample give the
    same chunks, and so the same pieces, on any machine."""
    sizes = [len(t.encode("utf-8", "surrogatepass")) for t in texts]
    n = max(1, math.ceil(sum(sizes) / max(chunk_bytes, 1) - CHUNK_SLACK))
    heap = [(0, k) for k in range(n)]
    chunks: list[list[int]] = [[] for _ in range(n)]
    for i, size in enumerate(sizes):
        load, k = heapq.heappop(heap)
        chunks[k].append(i)
        heapq.heappush(heap, (load + size, k))
    return [c for c in chunks if c]


# ----------------------------------------------------------------------------- train chunks

@dataclass
class _ChunkJob:
    index: int
    texts: list[str]
    settings: UnigramSettings
    log_path: str


def _train_chunk(job: _ChunkJob) -> tuple[int, list[tuple[str, float]], float, float, int]:
    """Worker: HF's trainer on one chunk -> (index, pieces with log-probs, wall s, CPU s, peak RSS bytes).
    Its stderr (the trainer's EM log) goes to ``job.log_path``, which the parent reads for progress."""
    fd = os.open(job.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    t0, c0 = time.perf_counter(), time.process_time()
    tok, trainer = new_trainer(job.settings, vocab_size=_chunk_vocab(job.settings))
    tok.train_from_iterator(job.texts, trainer=trainer)
    pieces = canonical_pieces(learned_pieces(tok, job.settings.specials))  # the same on every run
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return job.index, pieces, time.perf_counter() - t0, time.process_time() - c0, peak


def _chunk_vocab(s: UnigramSettings) -> int:
    """The vocabulary a chunk's trainer is asked for (specials included, byte pieces not)."""
    return CHUNK_VOCAB_FACTOR * (s.vocab_size - N_BYTES)


def _em_progress(log_path: str, s: UnigramSettings) -> tuple[int, int, int]:
    """(EM rounds done, rounds expected, pieces now) of a running chunk, from its trainer log."""
    try:
        lines = _EM_LINE.findall(Path(log_path).read_text(errors="replace"))
    except OSError:
        return 0, 0, 0
    if not lines:
        return 0, 0, 0
    rounds = sum(1 for it, _ in lines if int(it) == s.n_sub_iterations - 1)
    first, now = int(lines[0][1]), int(lines[-1][1])
    desired = HF_DESIRED_FACTOR * _chunk_vocab(s)
    expected = 1 + max(0, math.ceil(math.log(desired / max(first, 1)) / math.log(s.shrinking_factor)))
    return rounds, max(expected, rounds + 1), now


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _finish_at(remaining: float) -> str:
    return f"in ~{_clock(remaining)} (at {time.strftime('%H:%M', time.localtime(time.time() + remaining))})"


def train_chunks(texts: Sequence[str], chunks: list[list[int]], s: UnigramSettings, progress: Progress,
                 report_every: float = 30.0) -> tuple[list[list[tuple[str, float]]], list[dict[str, float]]]:
    """Train every chunk in a pool of ``s.workers`` processes (spawned: no forked Rayon pool),
    one trainer thread each. Reports chunk k of n, each running chunk's EM round, and a projected
    finish every ``report_every`` seconds. Returns the pieces and the timings of every chunk."""
    workers = min(s.workers or os.cpu_count() or 1, len(chunks))
    n = len(chunks)
    t0 = time.perf_counter()
    results: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    stats: list[dict[str, float]] = [{} for _ in range(n)]
    with tempfile.TemporaryDirectory(prefix="unigram_chunks_") as logs:
        jobs = [_ChunkJob(k, [texts[i] for i in idx], s, os.path.join(logs, f"chunk-{k}.log"))
                for k, idx in enumerate(chunks)]
        # The children read these at start: one Rayon thread each (a worker = a core), and the
        # trainer's debug log on (env_logger reads TOKENIZERS_LOG when tokenizers is imported).
        # The executor starts its processes as jobs are submitted: the variables stay set until then.
        saved = {k: os.environ.get(k) for k in ("RAYON_NUM_THREADS", "TOKENIZERS_LOG")}
        os.environ.update(RAYON_NUM_THREADS="1", TOKENIZERS_LOG=HF_LOG_FILTER)
        # A process pool that fails loudly (BrokenProcessPool) if a worker dies, e.g. out of memory.
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            pending = {pool.submit(_train_chunk, job): job for job in jobs}
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        del jobs
        with pool:
            last_report = time.perf_counter()
            mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / n / 1e6
            progress(f"{n} chunks of ~{mb:.1f} MB (chunk_bytes {s.chunk_bytes / 1e6:g} MB) on {workers} worker(s)")
            while pending:
                done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    k, pieces, wall, cpu, peak = future.result()
                    results[k] = pieces
                    stats[k] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": round(peak / 2**20)}
                    n_done = sum(1 for st in stats if st)
                    progress(f"chunk {k + 1} of {n} done: {len(pieces):,} pieces, {wall:.0f} s ({cpu:.0f} s CPU) "
                             f"({n_done} of {n} done, {_clock(time.perf_counter() - t0)} elapsed)")
                now = time.perf_counter()
                if pending and now - last_report >= report_every:
                    last_report = now
                    running, fraction = [], float(sum(1 for st in stats if st))
                    for job in pending.values():
                        rounds, expected, size = _em_progress(job.log_path, s)
                        if expected:  # the log has EM lines: the chunk is past its seed
                            fraction += rounds / expected
                            running.append(f"chunk {job.index + 1}: EM round {rounds + 1} of ~{expected}"
                                           f" ({size:,} pieces)")
                    line = f"{_clock(now - t0)} elapsed; " + ("; ".join(running) or "seeding")
                    if fraction > 0:
                        line += f"; chunks projected to finish {_finish_at((now - t0) * (n - fraction) / fraction)}"
                    progress(line)
    return results, stats


# ----------------------------------------------------------------------------- merge

def merge_vocabularies(chunk_pieces: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]
                       ) -> tuple[list[str], np.ndarray]:
    """BloombergGPT's merge: the union of the chunks' pieces, each with the weighted mean of its
    probabilities (0 in a chunk that lacks it), weights = the chunks' shares of the sample's bytes.
    Returns the pieces and their log-probabilities."""
    total = float(sum(weights))
    prob: dict[str, float] = {}
    for pieces, w in zip(chunk_pieces, weights, strict=True):
        for piece, score in pieces:
            prob[piece] = prob.get(piece, 0.0) + w / total * math.exp(score)
    names = sorted(prob)
    return names, np.log(np.array([prob[p] for p in names], dtype=np.float64))


def _model(pieces: Sequence[str], scores: np.ndarray) -> models.Unigram:
    vocab = [("<merge-unk>", 0.0)] + [(p, float(sc)) for p, sc in zip(pieces, scores, strict=True)]
    return models.Unigram(vocab, unk_id=0, byte_fallback=False)


def viterbi_counts(pieces: Sequence[str], scores: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """How many times each piece is in the best segmentation of ``texts`` (every document once;
    HF's encoder in Rust on every core)."""
    tok = Tokenizer(_model(pieces, scores))
    tok.pre_tokenizer = chunk_pre_tokenizer()
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    counts = np.zeros(len(pieces) + 1, dtype=np.int64)
    for i in range(0, len(texts), ENCODE_BATCH):
        batch = encode(list(texts[i:i + ENCODE_BATCH]), add_special_tokens=False)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in batch]
        if ids:
            counts += np.bincount(np.concatenate(ids), minlength=len(counts))
    return counts[1:]


def alternative_lengths(pieces: Sequence[str], scores: np.ndarray) -> np.ndarray:
    """Tokens of the best spelling of each piece without the piece itself: 1 for a single
    character. Any other spelling of a piece uses strictly shorter pieces, so the pieces of
    length L are encoded with a model of the pieces shorter than L (one model per length)."""
    lengths = np.array([len(p) for p in pieces])
    out = np.ones(len(pieces), dtype=np.int64)
    for length in sorted(set(lengths.tolist()) - {1}):
        shorter = np.flatnonzero(lengths < length)
        tok = Tokenizer(_model([pieces[i] for i in shorter], scores[shorter]))
        encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
        targets = np.flatnonzero(lengths == length)
        out[targets] = [len(e.ids) for e in encode([pieces[i] for i in targets], add_special_tokens=False)]
    return out


def _log_probs(counts: np.ndarray) -> np.ndarray:
    # A piece no segmentation uses keeps a count of 0.5 (HF's M-step drops expected counts below 0.5).
    c = np.maximum(counts.astype(np.float64), 0.5)
    return np.log(c / c.sum())


def prune_to_size(pieces: list[str], scores: np.ndarray, texts: Sequence[str], s: UnigramSettings,
                  progress: Progress) -> tuple[list[str], np.ndarray]:
    """Cut the merged union down to ``s.n_pieces`` on the whole sample (see the module docstring):
    each round counts the Viterbi use of every piece, rescores, and keeps the ``shrinking_factor``
    share whose removal would cost the most tokens; a last count rescores the final pieces."""
    target = s.n_pieces
    single = np.array([len(p) == 1 for p in pieces])
    if int(single.sum()) > target:
        raise ValueError(f"the sample has {int(single.sum())} distinct characters, more than the "
                         f"{target} pieces of vocab_size {s.vocab_size}")
    rounds = 0 if len(pieces) <= target else \
        max(1, math.ceil(math.log(target / len(pieces)) / math.log(s.shrinking_factor)))
    t0 = time.perf_counter()
    r = 0
    while True:
        counts = viterbi_counts(pieces, scores, texts)
        scores = _log_probs(counts)
        if len(pieces) <= target:
            break
        r += 1
        loss = counts * (alternative_lengths(pieces, scores) - 1)
        loss = np.where(single, np.iinfo(np.int64).max, loss)
        keep_n = max(target, int(len(pieces) * s.shrinking_factor))
        keep = np.sort(np.lexsort((-scores, -loss))[:keep_n])  # by loss, then by score
        elapsed = time.perf_counter() - t0
        progress(f"merge round {r} of {rounds}: {len(pieces):,} -> {keep_n:,} pieces ({elapsed:.0f} s; "
                 f"merge projected to finish {_finish_at(elapsed / r * max(rounds + 1 - r, 1))})")
        pieces = [pieces[i] for i in keep]
        scores, single = scores[keep], single[keep]
    return pieces, scores


# ----------------------------------------------------------------------------- the whole

def train_unigram(texts: Sequence[str], s: UnigramSettings, progress: Progress | None = None,
                  report: dict | None = None) -> Tokenizer:
    """Train on ``texts`` (documents): one chunk in this process, or split-and-merge (above).
    ``report``, if given, receives what was measured: chunks (wall and CPU seconds, peak RSS of
    each), the union's size, the merge's seconds."""
    say: Progress = progress or (lambda line: None)
    info: dict = report if report is not None else {}
    chunks = split_chunks(texts, s.chunk_bytes)
    info["n_chunks"] = len(chunks)
    if len(chunks) == 1:
        say(f"one chunk ({sum(len(t.encode('utf-8', 'surrogatepass')) for t in texts) / 1e6:.2f} MB <= chunk_bytes): "
            "HF's trainer in this process, on every core")
        tok, trainer = new_trainer(s)
        tok.train_from_iterator(texts, trainer=trainer)
        pieces = canonical_pieces(learned_pieces(tok, s.specials))  # HF's order and scores vary by run:
        return assemble([p for p, _ in pieces], [sc for _, sc in pieces], s)  # rounded and sorted by piece
    t0 = time.perf_counter()
    chunk_pieces, info["chunks"] = train_chunks(texts, chunks, s, say)
    weights = [sum(len(texts[i].encode("utf-8", "surrogatepass")) for i in idx) for idx in chunks]
    pieces, scores = merge_vocabularies(chunk_pieces, weights)
    info.update(chunk_phase_s=round(time.perf_counter() - t0, 1), union_pieces=len(pieces))
    say(f"merged {len(chunks)} chunks: {len(pieces):,} distinct pieces -> {s.n_pieces:,} "
        f"({_clock(time.perf_counter() - t0)} elapsed)")
    t1, c1 = time.perf_counter(), time.process_time()
    pieces, scores = prune_to_size(pieces, scores, texts, s, say)
    info.update(merge_s=round(time.perf_counter() - t1, 1), merge_cpu_s=round(time.process_time() - c1, 1))
    return assemble(pieces, scores, s)
