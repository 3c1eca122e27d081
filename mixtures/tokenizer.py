"""Train the tokenizer on a sample of curated domain + general documents (HF ``tokenizers``).

    python -m mixtures.tokenizer --config configs/tokenizer/unigram.yaml \
        --input work/dedup/finance --input work/dedup/general --output work/tokenizer [--vocab-size N]

Three recipes (``type`` in the config):

- ``unigram``: BloombergGPT (Wu et al. 2023, Sec. 2.3). A Unigram LM (Kudo 2018), trained like
  BloombergGPT's by split-and-merge when the sample is larger than ``chunk_bytes``
  (``mixtures/unigram.py``: chunks in parallel processes, union pruned on the whole sample), over
  pre-tokenized chunks ``[ A-Za-z]+|[0-9]|[^A-Za-z0-9]+``: letters *with spaces* form one
  chunk, so multi-word pieces can be learned ("information density"), every digit is its
  own chunk (PaLM, Chowdhery et al. 2022), and nothing mixes letters with punctuation.
  Byte fallback (256 ``<0xNN>`` pieces) makes every string representable without a
  byte-level alphabet; no normalizer, so decode(encode(text)) == text.
- ``bpe``: byte-level BPE (GPT-2 pre-tokenizer regex) with digits split one by one
  (the Llama / PaLM choice): the usual modern alternative.
- ``gpt2``: GPT-2's byte-level BPE (Radford et al. 2019) as is, trained the same way:
  the baseline every tokenizer is compared with.

Every tokenizer has the specials ``<|endoftext|>`` (end of document, id 0) and ``<|pad|>``
(id 1); Unigram also has ``<unk>`` (id 2, never produced thanks to byte fallback). The
output directory holds ``tokenizer.json`` (``tokenizers.Tokenizer.from_file``),
``tokenizer_config.json`` + ``special_tokens_map.json`` (so
``transformers.PreTrainedTokenizerFast.from_pretrained(DIR)`` works) and ``training.json``
(the config and the sample that was drawn).

The sample is drawn per domain by a seeded hash of ``(source, id)``: the same documents
whatever the file order, and a fixed share of domain text (default 0.5) so that neither
side's vocabulary dominates; a side with too little text is filled from the other, or the run
stops, or trains short (``sample_short_side``), and says which. The trainers are multi-threaded
(Rayon); Unigram's split-and-merge runs ``workers`` processes, and its chunks, hence its pieces,
do not depend on their number.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from core.cli import fail, refuse_unknown_options
from core.config import from_dict, read_yaml
from core.workdir import DOCS_GLOB, is_remote, upload, work_path
from core.workdir import sha256_file as file_sha256  # the mixer, trainer and export compare tokenizers by it
from mixtures.unigram import (  # noqa: F401 (re-exported)
    BLOOMBERG_CHUNKS,
    N_BYTES,
    RESERVED_PIECE_SCORE,
    Progress,
    UnigramSettings,
    add_byte_fallback,
    byte_piece,
    new_trainer,
    train_unigram,
)

EOS = "<|endoftext|>"
PAD = "<|pad|>"
UNK = "<unk>"
TYPES = ("unigram", "bpe", "gpt2")
SHORT_SIDE = ("fill", "fail", "accept")  # what the draw does when a side has too little text


@dataclass
class TokenizerConfig:
    """What to train. Sizes: ``vocab_size`` in tokens (specials and byte pieces included),
    ``sample_bytes`` in UTF-8 bytes of document text drawn from the inputs."""

    type: str = "unigram"
    vocab_size: int = 131072          # BloombergGPT: 2**17
    sample_bytes: int = 1_000_000_000
    sample_domain_share: float = 0.5  # fraction of the sample's bytes drawn from domain documents
    seed: int = 1234
    max_piece_length: int = 16        # Unigram: longest piece in characters (sentencepiece default)
    shrinking_factor: float = 0.75    # Unigram: pieces kept per EM round (sentencepiece default)
    n_sub_iterations: int = 2         # Unigram: EM steps per round (sentencepiece default)
    seed_size: int = 1_000_000        # Unigram: seed pieces from the suffix array (sentencepiece default)
    chunk_bytes: int = 8_000_000      # Unigram: a larger sample is split, trained in parallel, merged
    workers: int = 0                  # Unigram: processes training chunks (0 = one per CPU)
    min_frequency: int = 2            # BPE: merges seen fewer times are not learned
    sample_short_side: str = "fill"   # a side short of its share: fill | fail | accept (draw_sample)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"tokenizer type must be one of {TYPES}, got {self.type!r}")
        minimum = N_BYTES + 8 if self.type == "unigram" else 300
        if self.vocab_size < minimum:
            raise ValueError(f"vocab_size {self.vocab_size} is too small for {self.type} (>= {minimum})")
        if not 0.0 <= self.sample_domain_share <= 1.0:
            raise ValueError(f"sample_domain_share must be in [0, 1], got {self.sample_domain_share}")
        if self.sample_short_side not in SHORT_SIDE:
            raise ValueError(f"sample_short_side must be one of {SHORT_SIDE}, got {self.sample_short_side!r}")
        if not 0.0 < self.shrinking_factor < 1.0:
            raise ValueError(f"shrinking_factor must be in (0, 1), got {self.shrinking_factor}")
        if self.n_sub_iterations < 1 or self.chunk_bytes < 1 or self.workers < 0 or self.seed_size < 1:
            raise ValueError("n_sub_iterations, chunk_bytes and seed_size must be >= 1, workers >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerConfig:
        return from_dict(cls, d, "tokenizer config")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TokenizerConfig:
        """Read a YAML file: its ``tokenizer:`` section, or its top level when there is none."""
        doc = read_yaml(path)
        return cls.from_dict(doc.get("tokenizer", doc))


def special_tokens(kind: str) -> list[str]:
    return [EOS, PAD, UNK] if kind == "unigram" else [EOS, PAD]


def unigram_settings(cfg: TokenizerConfig) -> UnigramSettings:
    return UnigramSettings(vocab_size=cfg.vocab_size, specials=tuple(special_tokens("unigram")), unk=UNK,
                           max_piece_length=cfg.max_piece_length, shrinking_factor=cfg.shrinking_factor,
                           n_sub_iterations=cfg.n_sub_iterations, seed_size=cfg.seed_size,
                           chunk_bytes=cfg.chunk_bytes, workers=cfg.workers)


def new_tokenizer(cfg: TokenizerConfig) -> tuple[Tokenizer, Any]:
    """An untrained tokenizer and its trainer for ``cfg`` (Unigram: for one chunk)."""
    specials = special_tokens(cfg.type)
    if cfg.type == "unigram":
        return new_trainer(unigram_settings(cfg))
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if cfg.type == "bpe":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=specials,
                                  min_frequency=cfg.min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok, trainer


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, progress: Progress | None = None,
                    report: dict[str, Any] | None = None) -> Tokenizer:
    """Train on ``texts`` (any iterable of documents) following ``cfg``. A Unigram sample larger
    than ``cfg.chunk_bytes`` is trained split-and-merge (``mixtures/unigram.py``), reporting its
    progress to ``progress`` (one line at a time) and its timings into ``report``."""
    if cfg.type == "unigram":
        return train_unigram(list(texts), unigram_settings(cfg), progress, report)
    tok, trainer = new_tokenizer(cfg)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


# End-of-document tokens of pretrained tokenizers, tried in this order when ``<|endoftext|>`` (ours,
# GPT-2, Qwen2, SmolLM) is absent: Llama 3 ``<|end_of_text|>``, Llama 2 / Mistral ``</s>`` (their
# tokenizer_config.json ``eos_token``).
PRETRAINED_EOS = (EOS, "<|end_of_text|>", "</s>")


def eos_id(tok: Tokenizer) -> int:
    """Id of the end-of-document token: ``<|endoftext|>``, else a pretrained base's (``PRETRAINED_EOS``)."""
    for name in PRETRAINED_EOS:
        i = tok.token_to_id(name)
        if i is not None:
            return int(i)
    raise ValueError(f"tokenizer has no end-of-document token (one of {', '.join(PRETRAINED_EOS)})")


def bos_ids(tok: Tokenizer) -> list[int]:
    """The ids the tokenizer's own post-processor puts before a text (a pretrained base's BOS
    convention: Llama 2/3 and Mistral ``[<s>]`` / ``[<|begin_of_text|>]``, Qwen2 none). Read from
    ``tokenizer.json`` itself, so the tokenize stage and the mixer agree; the project's own
    tokenizers have no post-processor, hence no BOS."""
    if tok.post_processor is None:
        return []
    plain = tok.encode("a", add_special_tokens=False).ids
    full = tok.encode("a", add_special_tokens=True).ids
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return [int(x) for x in full[:i]]
    return []


def encode_documents(tok: Tokenizer, texts: list[str], eos: int, dtype: np.dtype | None = None,
                     bos: list[int] | None = None) -> list[np.ndarray]:
    """Token ids of each text followed by the end-of-document id, one array per text; ``bos``
    (a pretrained base's convention, ``bos_ids``) goes before each text.

    Uses ``encode_batch_fast`` (no character offsets) when the installed ``tokenizers`` has
    it. Literal special-token text inside a document (``"<|endoftext|>"``) is encoded as
    plain text, so the EOS id only ever marks a document boundary.
    """
    tok.encode_special_tokens = True
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    dtype = dtype or np.dtype(np.int64)
    head = list(bos or [])
    out = []
    for enc in encode(texts, add_special_tokens=False):
        ids = enc.ids
        arr = np.empty(len(head) + len(ids) + 1, dtype=dtype)
        arr[:len(head)] = head
        arr[len(head):-1] = ids
        arr[-1] = eos
        out.append(arr)
    return out


def bytes_per_token(tok: Tokenizer, texts: list[str], batch: int = 256) -> float:
    """UTF-8 bytes of ``texts`` per token (no EOS): higher means denser, shorter sequences."""
    tok.encode_special_tokens = True
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = sum(len(e.ids) for i in range(0, len(texts), batch)
                   for e in tok.encode_batch(texts[i:i + batch], add_special_tokens=False))
    return n_bytes / max(n_tokens, 1)


# ----------------------------------------------------------------------------- the sample

def _doc_hash(seed: int, source: str, doc_id: str) -> int:
    h = hashlib.blake2b(f"{seed}\x00{source}\x00{doc_id}".encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def stage_files(inputs: Iterable[str]) -> list[str]:
    """``train-*.parquet`` of stage directories (or explicit Parquet files), sorted."""
    files: set[str] = set()
    for item in inputs:
        if is_remote(item):  # a remote stage directory (or glob): listed through Beam's FileSystems
            from apache_beam.io.filesystems import FileSystems

            pattern = item if any(c in item for c in "*?[") else FileSystems.join(item.rstrip("/"), DOCS_GLOB)
            found = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        else:
            found = sorted(glob.glob(os.path.join(item, DOCS_GLOB))) if os.path.isdir(item) else glob.glob(item)
        if not found:
            raise FileNotFoundError(f"input {item!r} has no {DOCS_GLOB} files")
        files.update(found)
    return sorted(files)


def _iter_docs(files: list[str], columns: list[str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for path in files:
        if is_remote(path):  # read through Beam's FileSystems (a seekable file object)
            from apache_beam.io.filesystem import CompressionTypes
            from apache_beam.io.filesystems import FileSystems

            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=1024, columns=columns):
                    yield from batch.to_pylist()
            continue
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=columns):
            yield from batch.to_pylist()


def draw_sample(files: list[str], sample_bytes: int, domain_share: float, seed: int, short_side: str = "fill"
                ) -> tuple[set[tuple[str, str]], dict[str, Any]]:
    """Choose ``(source, id)`` of the documents to train on: per domain, lowest seeded hash
    first, until that domain's share of ``sample_bytes`` is reached (the document that crosses
    the budget is taken). A side that runs out first is *short*; with ``short_side="fill"`` the
    other side makes up the missing bytes, with ``"fail"`` or ``"accept"`` nothing is filled
    (:func:`sample_problems` says what to stop on). Returns the keys and a summary per side:
    bytes and documents available and drawn, ``requested_bytes`` (its share), ``short_bytes``
    (what it lacked) and ``filled_bytes`` (what it gave beyond its share to fill the other)."""
    if short_side not in SHORT_SIDE:
        raise ValueError(f"short_side must be one of {SHORT_SIDE}, got {short_side!r}")
    candidates: dict[str, list[tuple[int, int, str, str]]] = {"domain": [], "general": []}
    for doc in _iter_docs(files, ["id", "source", "domain", "text"]):
        side = "domain" if doc["domain"] == "domain" else "general"
        n = len(doc["text"].encode("utf-8", "surrogatepass"))
        candidates[side].append((_doc_hash(seed, doc["source"], doc["id"]), n, doc["source"], doc["id"]))
    budget = {"domain": sample_bytes * domain_share, "general": sample_bytes * (1.0 - domain_share)}
    taken = {"domain": 0, "general": 0}
    n_docs = {"domain": 0, "general": 0}
    chosen: set[tuple[str, str]] = set()

    def take(side: str, until: float) -> None:
        docs = candidates[side]
        while n_docs[side] < len(docs) and taken[side] < until:
            _, n, source, doc_id = docs[n_docs[side]]
            chosen.add((source, doc_id))
            taken[side] += n
            n_docs[side] += 1

    for side, docs in candidates.items():
        docs.sort()
        take(side, budget[side])
    short = {side: max(0.0, budget[side] - taken[side]) for side in candidates}
    own = dict(taken)
    if short_side == "fill":
        for side, other in (("domain", "general"), ("general", "domain")):
            if short[other] > 0:
                take(side, budget[side] + short[other])
    summary = {side: {"available_bytes": sum(d[1] for d in docs), "available_docs": len(docs),
                      "requested_bytes": round(budget[side]), "sample_bytes": taken[side],
                      "sample_docs": n_docs[side], "short_bytes": round(short[side]),
                      "filled_bytes": taken[side] - own[side]}
               for side, docs in candidates.items()}
    return chosen, summary


def sample_problems(summary: dict[str, Any], sample_bytes: int, short_side: str) -> tuple[list[str], str | None]:
    """What to tell about a drawn sample: (notes to print, an error to stop on or None).
    ``fill`` stops only when the inputs together hold less than ``sample_bytes``; ``fail`` stops
    when a side is short; ``accept`` never stops."""
    notes = []
    for side, other in (("domain", "general"), ("general", "domain")):
        s = summary[side]
        if s["short_bytes"] > 0:
            fill = summary[other]["filled_bytes"]
            notes.append(f"the {side} side holds {s['available_bytes'] / 1e6:.2f} MB, short of the "
                         f"{s['requested_bytes'] / 1e6:.2f} MB of its share by {s['short_bytes'] / 1e6:.2f} MB"
                         + (f"; filled {fill / 1e6:.2f} MB from the {other} side" if fill else ""))
    drawn = sum(s["sample_bytes"] for s in summary.values())
    available = sum(s["available_bytes"] for s in summary.values())
    total_short = drawn < sample_bytes and drawn >= available
    if total_short:
        notes.append(f"the inputs hold {available / 1e6:.2f} MB in all, less than sample_bytes "
                     f"{sample_bytes / 1e6:.2f} MB")
    error = None
    if short_side == "fail" and any(s["short_bytes"] > 0 for s in summary.values()):
        error = ("; ".join(notes) + ". sample_short_side is fail: set it to fill (take the missing bytes "
                 "from the other side) or accept (train on the short sample), or lower sample_bytes or "
                 "sample_domain_share")
    elif short_side == "fill" and total_short:
        error = ("; ".join(notes) + ". Lower sample_bytes (--sample-bytes), add inputs, or set "
                 "sample_short_side: accept to train on all of it")
    return notes, error


def sample_texts(files: list[str], chosen: set[tuple[str, str]]) -> Iterator[str]:
    for doc in _iter_docs(files, ["id", "source", "text"]):
        if (doc["source"], doc["id"]) in chosen:
            yield doc["text"]


# ----------------------------------------------------------------------------- saving

def save_tokenizer(tok: Tokenizer, out_dir: str | os.PathLike, cfg: TokenizerConfig,
                   info: dict[str, Any] | None = None) -> Path:
    """Write ``tokenizer.json`` + the transformers side files + ``training.json``; returns the json path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tokenizer.json"
    tok.save(str(path), pretty=False)
    specials = {"eos_token": EOS, "bos_token": EOS, "pad_token": PAD}
    if cfg.type == "unigram":
        specials["unk_token"] = UNK
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
              "model_max_length": 1_000_000_000, **specials}
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", specials),
                      ("training.json", {"config": asdict(cfg), "vocab_size": tok.get_vocab_size(),
                                         "sha256": file_sha256(path), **(info or {})})):
        (out / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return path




def resolve_tokenizer_file(path: str | os.PathLike) -> Path:
    """A tokenizer directory (from this module) or a ``tokenizer.json`` file -> the json file."""
    p = Path(path)
    return p / "tokenizer.json" if p.is_dir() else p


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="tokenizer YAML (configs/tokenizer/*.yaml)")
    parser.add_argument("--input", action="append", required=True,
                        help="curated stage directory (train-*.parquet) or Parquet glob; repeatable")
    parser.add_argument("--output", required=True, help="output directory (tokenizer.json and side files)")
    parser.add_argument("--type", choices=TYPES, help="override the config's type")
    parser.add_argument("--vocab-size", type=int, help="override the config's vocab_size")
    parser.add_argument("--sample-bytes", type=int, help="override the config's sample_bytes")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--workers", type=int, help="override the config's workers (Unigram split-and-merge)")
    refuse_unknown_options(parser._option_string_actions, argv)
    args = parser.parse_args(argv)
    try:
        raw = asdict(TokenizerConfig.from_yaml(args.config))
        for key in ("type", "vocab_size", "sample_bytes", "seed", "workers"):
            if getattr(args, key) is not None:
                raw[key] = getattr(args, key)
        cfg = TokenizerConfig.from_dict(raw)
        files = stage_files(args.input)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    t0 = time.perf_counter()
    chosen, summary = draw_sample(files, cfg.sample_bytes, cfg.sample_domain_share, cfg.seed,
                                  cfg.sample_short_side)
    if not chosen:
        fail("the inputs hold no documents to train a tokenizer on")
    notes, error = sample_problems(summary, cfg.sample_bytes, cfg.sample_short_side)
    if error:
        fail(f"tokenizer sample: {error}")
    for note in notes:
        print(f"tokenizer: sample: {note}", file=sys.stderr, flush=True)
    report: dict[str, Any] = {}
    tok = train_tokenizer(sample_texts(files, chosen), cfg, progress=_progress_line, report=report)
    seconds = time.perf_counter() - t0
    info = {"sample": summary, "inputs": list(args.input), "train_seconds": round(seconds, 1), "training": report}
    if is_remote(args.output):  # saved here, then copied to the remote output through Beam's FileSystems
        with tempfile.TemporaryDirectory(prefix="domainlm-tokenizer-") as tmp:
            save_tokenizer(tok, tmp, cfg, info)
            upload(tmp, args.output)
        path = work_path(args.output) / "tokenizer.json"
    else:
        path = save_tokenizer(tok, args.output, cfg, info)
    drawn = sum(s["sample_bytes"] for s in summary.values())
    print(f"tokenizer: {cfg.type}, vocab {tok.get_vocab_size():,}, trained on {drawn / 1e6:.2f} MB of the "
          f"{cfg.sample_bytes / 1e6:.2f} MB asked ({summary['domain']['sample_bytes'] / max(drawn, 1):.0%} domain, "
          f"{cfg.sample_domain_share:.0%} asked) in {seconds:.1f} s -> {path}")
    return path


def _progress_line(line: str) -> None:
    print(f"tokenizer: {time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
