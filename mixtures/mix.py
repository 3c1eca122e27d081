"""The mixer: tokenized sources + a recipe -> the training stream, two held-out sets and a manifest.

    python -m mixtures.mix --recipe mixtures/recipes/demo.yaml --output work/demo/mix [--allow-shortfall]

Steps (all on one machine: only document lengths and ids are held in memory; tokens are
memory-mapped in and written out in bounded shards):

1. Open every source's shards (``mixtures/shards.py``) and its tokenize ``stats.json``
   (tokenizer, vocabulary; all sources must share one tokenizer, and a recipe's ``tokenizer:`` must be
   that one, byte for byte: sha256).
2. Hold out validation documents per side: a seeded permutation of the side's documents,
   taken until ``val_fraction`` of the side's tokens. They never enter the training stream.
3. Size the run: ``target = tokens`` or ``params x tokens_per_param`` (Chinchilla), split
   ``domain_share`` / ``1 - domain_share`` between the sides, then across a side's sources
   by weight, capped at ``max_epochs x available`` per source (what a capped source cannot
   take goes to the other sources of its side). If a side still cannot reach its target,
   fail with what is missing, unless ``--allow-shortfall``: then the total is lowered until
   the short side fits, the domain share is kept, and the manifest says so.
4. Sample per source: ``floor(epochs)`` whole passes, then a random subset of documents that
   fills the remainder to within half a document.
5. Interleave at document granularity: each sampled document of a source seen ``e``
   epochs gets a random position in ``[k/e, (k+1)/e)`` for its pass ``k``; the stream is
   sorted by position. Every source is thus spread evenly over the whole stream (every
   window sees the blend) and the repeats of a document are ~``1/e`` of the stream apart.

Output::

    DIR/train/part-00000.tokens.npy|.docs.npy|.index.parquet   the training stream
    DIR/train_phase1_NAME/ ... DIR/train_phaseK_NAME/          instead of train/: one stream per phase
    DIR/val_domain/...  DIR/val_general/...                    held-out documents, one pass
    DIR/tokenizer.json                                         copy of the tokenizer
    DIR/manifest.json                                          sizes, shares, epochs, bytes per token

With ``phases:`` (mixtures/recipe.py) steps 3-5 run once per phase, in order, on the same held-out
split: each phase has its own target, domain share and weights, is sampled with generators seeded by
``(seed, "sample", phase name, source)``, and spends what is left of each source's ``max_epochs``.

The same recipe and inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import fail, refuse_unknown_options
from core.workdir import (
    CHECKSUMS,
    MANIFEST,
    Manifest,
    RemotePath,
    download,
    is_remote,
    rmtree,
    upload,
    work_path,
    write_checksums,
)
from mixtures.recipe import SIDES, Recipe, RecipeError, SourceSpec, load_recipe, target_tokens
from mixtures.shards import (
    DOCS_SUFFIX,
    INDEX_SUFFIX,
    TOKENS_SUFFIX,
    Shard,
    list_shards,
    token_dtype,
    write_doc_index,
    write_shard,
)
from mixtures.tokenizer import EOS, PAD, bos_ids, eos_id, file_sha256

SPLITS = ("train", "val_domain", "val_general")
TOKENIZER_FILE = "tokenizer.json"


class ShortfallError(RuntimeError):
    """The sources cannot supply the target within their max_epochs."""


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator for one purpose (e.g. ``("sample", "news")``): independent of every other purpose,
    so adding a source does not reshuffle the others."""
    return np.random.default_rng([seed] + [zlib.crc32(n.encode("utf-8")) for n in names])


# ----------------------------------------------------------------------------- inputs

def find_tokenize_stats(path: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """The tokenize stage's ``stats.json`` above a source directory (its ``<domain>/<source>``)."""
    p = Path(path).resolve()
    for parent in [p, *p.parents][:4]:
        stats = parent / "stats.json"
        if stats.is_file():
            doc = json.loads(stats.read_text(encoding="utf-8"))
            if "tokenizer" in doc:
                return parent, doc
    return None


@dataclass
class Corpus:
    """Every document of every source, as flat arrays (one entry per document).

    ``shard`` indexes ``shards``; ``doc`` is the document's index inside its shard.
    """

    specs: list[SourceSpec]           # the recipe's sources that have shards
    warnings: list[str]
    shards: list[Shard]
    shard_offsets: list[np.ndarray]   # per shard: docs.npy in memory (int64, n_docs + 1)
    shard_ids: list[Any]              # per shard: pyarrow StringArray of document ids
    source: np.ndarray                # int32: index into specs
    shard: np.ndarray                 # int32
    doc: np.ndarray                   # int64
    length: np.ndarray                # int64 tokens (EOS included)
    n_bytes: np.ndarray               # int64 UTF-8 bytes of the text
    tokenizer: Path
    vocab_size: int
    dtype: str
    eos_id: int
    pad_id: int | None
    eos_token: str = EOS              # a pretrained base's may differ (mixtures/tokenizer.py: PRETRAINED_EOS)
    bos_id: int | None = None         # a pretrained base's BOS, put before every document by the tokenize stage


def open_corpus(recipe: Recipe) -> Corpus:
    import pyarrow.parquet as pq

    shards, offsets, ids = [], [], []
    source, shard_col, doc_col, length, n_bytes = [], [], [], [], []
    tokenizers: dict[str, tuple[Path, int]] = {}
    specs, warnings = [], []
    for spec in recipe.sources:
        prefixes = list_shards(spec.path) if Path(spec.path).is_dir() else []
        if not prefixes:
            if spec.optional:
                warnings.append(f"optional source {spec.name} skipped: no shards in {spec.path}")
                continue
            raise RecipeError(f"source {spec.name}: no *{TOKENS_SUFFIX} shards in {spec.path} (run the tokenize "
                              "stage, fix its dir/path in the recipe, or mark it optional: true)")
        si = len(specs)
        specs.append(spec)
        found = find_tokenize_stats(spec.path)
        if found is not None:
            root, stats = found
            info = stats["tokenizer"]
            tokenizers[info["sha256"]] = (root / info["file"], int(info["vocab_size"]))
        for prefix in prefixes:
            s = Shard.open(prefix)
            off = np.asarray(s.offsets, dtype=np.int64)
            if os.path.exists(prefix + INDEX_SUFFIX):
                table = pq.read_table(prefix + INDEX_SUFFIX, columns=["id", "bytes"])
                doc_ids = table.column("id").combine_chunks()
                doc_bytes = table.column("bytes").to_numpy().astype(np.int64)
            else:  # a shard without index: ids are positions, bytes unknown (0)
                import pyarrow as pa

                doc_ids = pa.array([f"{s.name}:{i}" for i in range(s.n_docs)], pa.string())
                doc_bytes = np.zeros(s.n_docs, dtype=np.int64)
            if len(doc_ids) != s.n_docs:
                raise RecipeError(f"{prefix}{INDEX_SUFFIX} has {len(doc_ids)} rows for {s.n_docs} documents")
            g = len(shards)
            shards.append(s)
            offsets.append(off)
            ids.append(doc_ids)
            source.append(np.full(s.n_docs, si, dtype=np.int32))
            shard_col.append(np.full(s.n_docs, g, dtype=np.int32))
            doc_col.append(np.arange(s.n_docs, dtype=np.int64))
            length.append(np.diff(off))
            n_bytes.append(doc_bytes)
    if recipe.tokenizer is not None:
        path = Path(recipe.tokenizer)
        path = path / TOKENIZER_FILE if path.is_dir() else path
        from tokenizers import Tokenizer

        if not path.is_file():
            raise RecipeError(f"tokenizer {path} does not exist")
        sha = file_sha256(path)
        if tokenizers and sha not in tokenizers:  # the ids in the shards mean the tokens of the sources' tokenizer
            (used, _), = list(tokenizers.values())[:1]
            raise RecipeError(f"tokenizer {path} (sha256 {sha[:12]}) is not the tokenizer the sources were "
                              f"tokenized with ({used}, sha256 {next(iter(tokenizers))[:12]}): remove `tokenizer:` "
                              "from the recipe or re-tokenize the sources with it")
        if not tokenizers:  # sources without tokenize stats: the recipe names their tokenizer
            tokenizers = {sha: (path, Tokenizer.from_file(str(path)).get_vocab_size())}
    if len(tokenizers) != 1:
        raise RecipeError("the sources were tokenized with different tokenizers (re-tokenize them with one)"
                          if tokenizers else "no tokenizer: the sources have no tokenize stats.json; "
                          "set `tokenizer:` in the recipe")
    (tok_path, vocab), = tokenizers.values()
    dtypes = {s.tokens.dtype.name for s in shards}
    if len(dtypes) != 1:
        raise RecipeError(f"source shards have different token dtypes {sorted(dtypes)}")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    if tok.get_vocab_size() != vocab:
        raise RecipeError(f"{tok_path} has {tok.get_vocab_size()} tokens but the shards were written for {vocab}")
    if (dtype := next(iter(dtypes), None)) is not None and dtype != token_dtype(vocab).name:
        raise RecipeError(f"the shards hold {dtype} ids but a vocabulary of {vocab:,} needs {token_dtype(vocab).name} "
                          "(re-tokenize them)")
    for side in SIDES:
        share = recipe.domain_share if side == "domain" else 1.0 - recipe.domain_share
        if share > 0 and not any(s.domain == side for s in specs):
            raise RecipeError(f"the {side} side must supply {share:.0%} of the tokens but none of its sources "
                              "has any shard")
    known = {str(Path(s.path).resolve()) for s in specs}
    for root in sorted({str(r) for r, _ in filter(None, map(find_tokenize_stats, [s.path for s in specs]))}):
        stats = json.loads((Path(root) / "stats.json").read_text(encoding="utf-8"))
        unused = sorted(rel for rel in stats.get("sources", {}) if str((Path(root) / rel).resolve()) not in known)
        if unused:
            warnings.append(f"tokenized sources of {root} not in the recipe (not mixed): {unused}")
    return Corpus(specs, warnings, shards, offsets, ids, np.concatenate(source), np.concatenate(shard_col),
                  np.concatenate(doc_col), np.concatenate(length), np.concatenate(n_bytes), tok_path, vocab,
                  dtypes.pop(), eos_id(tok), tok.token_to_id(PAD), tok.id_to_token(eos_id(tok)),
                  bos[0] if (bos := bos_ids(tok)) else None)


# ----------------------------------------------------------------------------- planning

def split_validation(lengths: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Positions of the held-out documents (in held-out order): a random prefix of the side's
    documents holding at least ``fraction`` of its tokens (never every document)."""
    n = lengths.size
    if fraction <= 0 or n < 2:
        return np.zeros(0, dtype=np.int64)
    perm = rng.permutation(n)
    cum = np.cumsum(lengths[perm])
    k = int(np.searchsorted(cum, fraction * cum[-1], side="left")) + 1
    return perm[:min(k, n - 1)]


def allocate(target: float, available: np.ndarray, weights: np.ndarray, max_epochs: np.ndarray
             ) -> tuple[np.ndarray, float]:
    """Tokens per source for one side: ``target`` split by ``weights``, each source capped at
    ``max_epochs x available``; a capped source's excess goes to the others by weight
    (water filling). Returns the allocation and the tokens still missing (0 when the side fits)."""
    caps = max_epochs * available
    alloc = np.zeros(available.size, dtype=np.float64)
    free = (caps > 0) & (weights > 0)
    remaining = float(target)
    while remaining > 1e-9 and free.any():
        share = np.where(free, remaining * weights / weights[free].sum(), 0.0)
        over = free & (alloc + share >= caps)
        if not over.any():
            alloc += share
            remaining = 0.0
            break
        remaining -= float((caps[over] - alloc[over]).sum())
        alloc[over] = caps[over]
        free &= ~over
    return alloc, max(remaining, 0.0)


def fill_to(lengths: np.ndarray, goal: float) -> np.ndarray:
    """Mask of documents, taken in order, whose total is as close to ``goal`` as whole documents allow.

    Every document that still fits, in order (the caller shuffles), then the one remaining document
    that brings the total closest, if any does: the total ends within half the best-fitting
    remaining document of ``goal``, usually a few tokens.
    """
    take = np.zeros(lengths.size, dtype=bool)
    if goal <= 0 or lengths.size == 0:
        return take
    cum = np.cumsum(lengths)
    k = int(np.searchsorted(cum, goal, side="right"))
    take[:k] = True
    gap = goal - (float(cum[k - 1]) if k else 0.0)
    smallest = float(lengths.min())
    for j in range(k, lengths.size):
        if gap < smallest:
            break
        if lengths[j] <= gap:
            take[j] = True
            gap -= float(lengths[j])
    rest = np.flatnonzero(~take)
    if gap > 0 and rest.size:
        best = rest[np.argmin(np.abs(lengths[rest] - gap))]
        if abs(float(lengths[best]) - gap) < gap:
            take[best] = True
    return take


def sample_source(lengths: np.ndarray, target: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(document positions, stream keys in [0, 1))`` that sample ``target`` tokens from documents
    of ``lengths``: whole passes, then a random subset. Pass ``k`` of ``e`` epochs gets keys in
    ``[k/e, (k+1)/e)`` so each pass is reshuffled and spread over the whole stream."""
    available = float(lengths.sum())
    if target <= 0 or available <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    epochs = target / available
    full = int(math.floor(epochs + 1e-9))
    n = lengths.size
    positions, keys = [], []
    for k in range(full):
        positions.append(np.arange(n, dtype=np.int64))
        keys.append((k + rng.random(n)) / epochs)
    remainder = target - full * available
    if remainder > 0.5:
        perm = rng.permutation(n)
        chosen = perm[fill_to(lengths[perm], remainder)]
        positions.append(chosen)
        keys.append((full + rng.random(chosen.size) * (remainder / available)) / epochs)
    if not positions:  # a target under half a token: nothing to sample
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(positions), np.concatenate(keys)


# ----------------------------------------------------------------------------- writing

def write_split(directory: Path, corpus: Corpus, rows: np.ndarray, shard_tokens: int) -> dict[str, int]:
    """Write the documents ``rows`` (indices into the corpus arrays, in stream order) as shards of
    about ``shard_tokens`` tokens each. Streams: one output shard in memory at a time."""
    import pyarrow as pa

    directory.mkdir(parents=True, exist_ok=True)
    lengths = corpus.length[rows]
    starts = np.cumsum(lengths) - lengths
    which = starts // shard_tokens
    bounds = np.flatnonzero(np.diff(which)) + 1
    pieces = np.split(np.arange(rows.size), bounds) if rows.size else []
    names = [s.name for s in corpus.specs]
    if not pieces:  # nothing held out (val_fraction 0): one empty shard keeps the directory readable
        write_shard(directory / "part-00000", [], corpus.vocab_size)
        write_doc_index(directory / "part-00000", [], [], [])
    for j, piece in enumerate(pieces):
        sel = rows[piece]
        g, d = corpus.shard[sel], corpus.doc[sel]
        docs = [corpus.shards[gi].tokens[corpus.shard_offsets[gi][di]:corpus.shard_offsets[gi][di + 1]]
                for gi, di in zip(g.tolist(), d.tolist())]
        prefix = directory / f"part-{j:05d}"
        write_shard(prefix, docs, corpus.vocab_size)
        order = np.argsort(g, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(g[order])) + 1)
        gathered = pa.concat_arrays([corpus.shard_ids[int(g[grp[0]])].take(pa.array(d[grp])) for grp in groups])
        ids = gathered.take(pa.array(np.argsort(order, kind="stable")))
        write_doc_index(prefix, [names[i] for i in corpus.source[sel].tolist()], ids.to_pylist(),
                        corpus.n_bytes[sel])
    return {"tokens": int(lengths.sum()), "docs": int(rows.size), "shards": max(len(pieces), 1),
            "bytes": int(corpus.n_bytes[rows].sum())}


def clear_output(output: Path) -> None:
    """Remove a previous mix's shards and manifest (only files this module writes), phases' streams included."""
    phase_dirs = sorted(p.name for p in output.glob("train_phase*") if p.is_dir())
    for split in (*SPLITS, *phase_dirs):
        d = output / split
        if d.is_dir():
            for suffix in (TOKENS_SUFFIX, DOCS_SUFFIX, INDEX_SUFFIX):
                for f in d.glob("part-*" + suffix):
                    f.unlink()
            if split in phase_dirs and not any(d.iterdir()):
                d.rmdir()
    for name in (MANIFEST, TOKENIZER_FILE, CHECKSUMS):
        if (output / name).exists():
            (output / name).unlink()


# ----------------------------------------------------------------------------- the mix

def shortfall_message(missing: dict[str, float], need: dict[str, float], cap: dict[str, float],
                      recipe: Recipe) -> str:
    lines = ["the sources cannot supply the target within max_epochs:"]
    for side in SIDES:
        if missing[side] > 0.5:
            lines.append(f"  {side} side: missing {missing[side]:,.0f} tokens (needs {need[side]:,.0f}, "
                         f"its sources can give at most {cap[side]:,.0f} within their max_epochs)")
        else:
            lines.append(f"  {side} side: ok ({need[side]:,.0f} tokens)")
    lines.append(f"Do one of: lower the target (target.params/tokens, now {sum(need.values()):,.0f} tokens), "
                 f"raise max_epochs (now {recipe.max_epochs:g}, or per source), or add data to the short side. "
                 "Or pass --allow-shortfall to write what the sources can supply (recorded in the manifest).")
    return "\n".join(lines)


def phase_dir(index: int, name: str) -> str:
    """The training stream of phase ``index`` (0-based) of a phased mixture: ``train_phase<index + 1>_<name>``."""
    return f"train_phase{index + 1}_{name}"


@dataclass
class Stream:
    """One training stream planned and sampled: rows in stream order, allocation, weights, shortfall."""

    rows: np.ndarray
    alloc: np.ndarray
    weights: np.ndarray
    max_epochs: np.ndarray  # the epochs each source could still take when this stream was planned
    shortfall: dict[str, Any] | None


def plan_stream(recipe: Recipe, corpus: Corpus, is_val: np.ndarray, avail: np.ndarray, target: int,
                domain_share: float, weights: np.ndarray, max_ep: np.ndarray, allow_shortfall: bool,
                rng_names: tuple[str, ...] = ()) -> Stream:
    """Steps 3-5 for one training stream of ``target`` tokens (the whole mixture, or one phase)."""
    specs = corpus.specs
    n_src = len(specs)
    side_of = np.array([SIDES.index(s.domain) for s in specs], dtype=np.int32)
    share = {"domain": domain_share, "general": 1.0 - domain_share}

    def plan(total: float) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
        alloc = np.zeros(n_src)
        missing, need = {}, {}
        for si, side in enumerate(SIDES):
            members = side_of == si
            need[side] = total * share[side]
            alloc[members], missing[side] = allocate(need[side], avail[members], weights[members], max_ep[members])
        return alloc, missing, need

    alloc, missing, need = plan(float(target))
    cap = {side: float((max_ep * avail)[side_of == si].sum()) for si, side in enumerate(SIDES)}
    shortfall = None
    if any(m > 0.5 for m in missing.values()):
        message = shortfall_message(missing, need, cap, recipe)
        if rng_names:
            message = f"phase {rng_names[0]}: {message}"
        if not allow_shortfall:
            raise ShortfallError(message)
        feasible = min(cap[side] / share[side] for side in SIDES if share[side] > 0)
        alloc, _, _ = plan(feasible * (1 - 1e-12))
        shortfall = {"missing_tokens": {k: round(v) for k, v in missing.items()},
                     "target_tokens": target, "reduced_target_tokens": int(feasible),
                     "policy": "kept domain_share; lowered the total until the short side fits (--allow-shortfall)",
                     "message": message}

    # 4. sampling, 5. interleaving
    rows_all, keys_all = [], []
    for si, spec in enumerate(specs):
        rows = np.flatnonzero((corpus.source == si) & ~is_val)
        pos, keys = sample_source(corpus.length[rows], float(alloc[si]),
                                  rng_for(recipe.seed, "sample", *rng_names, spec.name))
        rows_all.append(rows[pos])
        keys_all.append(keys)
    rows = np.concatenate(rows_all)
    keys = np.concatenate(keys_all)
    return Stream(rows[np.lexsort((rows, keys))], alloc, weights, max_ep, shortfall)


def stream_sources(corpus: Corpus, stream: Stream, avail: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per source accounting of one training stream: planned and sampled tokens, epochs, documents."""
    specs, rows, n_src = corpus.specs, stream.rows, len(corpus.specs)
    train_tok = np.bincount(corpus.source[rows], weights=corpus.length[rows], minlength=n_src)
    train_docs = np.bincount(corpus.source[rows], minlength=n_src)
    unique_docs = np.bincount(corpus.source[np.unique(rows)], minlength=n_src)
    side_weight = {side: stream.weights[[s.domain == side for s in specs]].sum() for side in SIDES}
    return {spec.name: {
        "weight": float(stream.weights[si] / side_weight[spec.domain]) if side_weight[spec.domain] else 0.0,
        "planned_tokens": int(round(stream.alloc[si])), "sampled_tokens": int(train_tok[si]),
        "epochs": float(train_tok[si] / avail[si]) if avail[si] else 0.0,
        "train_docs": int(train_docs[si]), "train_unique_docs": int(unique_docs[si]),
    } for si, spec in enumerate(specs)}


def phase_weights(recipe: Recipe, corpus: Corpus, own: np.ndarray, given: dict[str, float] | None) -> np.ndarray:
    """A phase's source weights: a side the phase names any recipe source of takes the named weights (0 for
    the others), a side it names none of keeps ``own`` (the recipe's)."""
    if not given:
        return own
    side_of = {s.name: s.domain for s in recipe.sources}
    named_sides = {side_of[name] for name in given}
    return np.array([given.get(s.name, 0.0) if s.domain in named_sides else w
                     for s, w in zip(corpus.specs, own)], dtype=np.float64)


def mix(recipe: Recipe, output: str | os.PathLike, allow_shortfall: bool = False) -> dict[str, Any]:
    """Build the mixture described by ``recipe`` into ``output``; returns the manifest."""
    out = Path(output)
    corpus = open_corpus(recipe)
    sizing = target_tokens(recipe, corpus.vocab_size)
    specs = corpus.specs
    n_src = len(specs)
    side_of = np.array([SIDES.index(s.domain) for s in specs], dtype=np.int32)
    doc_side = side_of[corpus.source]

    # 2. validation documents per side (once: every phase trains on what is left)
    is_val = np.zeros(corpus.length.size, dtype=bool)
    val_rows = {}
    for si, side in enumerate(SIDES):
        rows = np.flatnonzero(doc_side == si)
        held = rows[split_validation(corpus.length[rows], recipe.val_fraction[side], rng_for(recipe.seed, "val", side))]
        is_val[held] = True
        val_rows[side] = held
    total_tok = np.bincount(corpus.source, weights=corpus.length, minlength=n_src)
    avail = np.bincount(corpus.source, weights=np.where(is_val, 0, corpus.length), minlength=n_src)

    # 3.-5. one training stream, or one per phase
    target = sizing["target_tokens"]
    max_ep = np.array([recipe.max_epochs_of(s) for s in specs])
    weights = np.array([s.weight if s.weight is not None else a for s, a in zip(specs, avail)], dtype=np.float64)
    if not recipe.phases:
        streams = [plan_stream(recipe, corpus, is_val, avail, target, recipe.domain_share, weights, max_ep,
                               allow_shortfall)]
        dirs = ["train"]
    else:
        streams, left = [], max_ep.copy()
        for phase in recipe.phases:  # max_epochs is the run's budget, spent phase by phase
            st = plan_stream(recipe, corpus, is_val, avail, phase.tokens, phase.domain_share,
                             phase_weights(recipe, corpus, weights, phase.weights), left, allow_shortfall,
                             (phase.name,))
            used = np.bincount(corpus.source[st.rows], weights=corpus.length[st.rows], minlength=n_src)
            left = np.maximum(0.0, left - np.divide(used, avail, out=np.zeros(n_src), where=avail > 0))
            streams.append(st)
        dirs = [phase_dir(i, p.name) for i, p in enumerate(recipe.phases)]

    # write
    out.mkdir(parents=True, exist_ok=True)
    clear_output(out)
    shutil.copyfile(corpus.tokenizer, out / TOKENIZER_FILE)
    written = [write_split(out / d, corpus, st.rows, recipe.shard_tokens) for d, st in zip(dirs, streams)]
    splits = {"train": written[0] if len(written) == 1 else
              {k: sum(w[k] for w in written) for k in ("tokens", "docs", "shards", "bytes")}}
    for side in SIDES:
        splits[f"val_{side}"] = write_split(out / f"val_{side}", corpus, val_rows[side], recipe.shard_tokens)

    train_rows = np.concatenate([st.rows for st in streams])
    train_tok = np.bincount(corpus.source[train_rows], weights=corpus.length[train_rows], minlength=n_src)
    val_all = np.concatenate([val_rows[s] for s in SIDES])
    val_tok = np.bincount(corpus.source[val_all], weights=corpus.length[val_all], minlength=n_src)
    val_docs = np.bincount(corpus.source[val_all], minlength=n_src)
    whole = Stream(train_rows, np.sum([st.alloc for st in streams], axis=0), weights, max_ep, None)
    sources = {}
    for si, (spec, acc) in enumerate(zip(specs, stream_sources(corpus, whole, avail).values())):
        sources[spec.name] = {
            "domain": spec.domain, "path": spec.path,
            "total_tokens": int(total_tok[si]), "val_tokens": int(val_tok[si]), "val_docs": int(val_docs[si]),
            "available_tokens": int(avail[si]), "weight": acc["weight"],
            "max_epochs": float(max_ep[si]), "planned_tokens": acc["planned_tokens"],
            "sampled_tokens": acc["sampled_tokens"], "epochs": acc["epochs"],
            "train_docs": acc["train_docs"], "train_unique_docs": acc["train_unique_docs"],
        }
    train_tokens = splits["train"]["tokens"]
    domain_tokens = int(sum(train_tok[si] for si in range(n_src) if side_of[si] == 0))
    warnings = list(corpus.warnings)
    if sizing["model_vocab_size"] is not None and sizing["model_vocab_size"] != corpus.vocab_size:
        warnings.append(f"model config vocab_size {sizing['model_vocab_size']} != tokenizer vocab_size "
                        f"{corpus.vocab_size}: params were counted with the model config's")
    shortfall = streams[0].shortfall
    domain_share_target = recipe.domain_share
    phases = None
    if recipe.phases:
        phases = [phase_manifest(i, p, dirs[i], written[i], st, corpus, avail)
                  for i, (p, st) in enumerate(zip(recipe.phases, streams))]
        domain_share_target = sum(p.tokens * p.domain_share for p in recipe.phases) / target
        short = {p["name"]: p["shortfall"] for p in phases if p["shortfall"]}
        shortfall = None if not short else {
            "missing_tokens": {side: sum(s["missing_tokens"][side] for s in short.values()) for side in SIDES},
            "target_tokens": target,
            "reduced_target_tokens": sum(p["shortfall"]["reduced_target_tokens"] if p["shortfall"] else
                                         p["target_tokens"] for p in phases),
            "policy": next(iter(short.values()))["policy"], "phases": sorted(short),
            "message": "\n".join(s["message"] for s in short.values())}
    manifest = Manifest(  # (typed: core/workdir.py; its JSON is the manifest it always was)
        params=sizing["params"], tokens_per_param=sizing["tokens_per_param"],
        model_config=recipe.model_config, target_tokens=target, train_tokens=train_tokens,
        domain_share_target=domain_share_target,
        domain_share_actual=domain_tokens / train_tokens if train_tokens else 0.0,
        domain_tokens=domain_tokens, general_tokens=train_tokens - domain_tokens,
        seed=recipe.seed, tokenizer=str(out / TOKENIZER_FILE), tokenizer_sha256=file_sha256(corpus.tokenizer),
        vocab_size=corpus.vocab_size, eos_id=corpus.eos_id, eos_token=corpus.eos_token, pad_id=corpus.pad_id,
        bos_id=corpus.bos_id,  # (None, so absent, for the project's tokenizers)
        dtype=corpus.dtype,  # shard token dtype (shards.token_dtype)
        splits=splits,
        val_bytes_per_token={k: (splits[k]["bytes"] / splits[k]["tokens"] if splits[k]["tokens"] else None)
                             for k in ("val_domain", "val_general")},
        shortfall=shortfall, warnings=warnings, sources=sources,
        phases=phases or None,  # (a mixture without phases: exactly the manifest it always had)
        recipe=recipe.to_dict(),
    )
    (out / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    write_checksums(out, skip=(MANIFEST,))  # SHA256SUMS: what a staged copy is checked against (core/workdir.py)
    return manifest.to_dict()


def mix_remote(recipe_path: str, output: str, tokens_dir: str | None = None,
               allow_shortfall: bool = False) -> dict[str, Any]:
    """:func:`mix` where the recipe, its ``tokens_dir`` or ``output`` is on a remote Beam filesystem: the recipe
    and the token shards are copied to a temporary directory (numpy maps local files), the mixture is written
    there and copied to ``output``; the manifest names the remote paths, as a local mix names its own."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="domainlm-mix-") as tmp:
        local_recipe = recipe_path
        if is_remote(recipe_path):
            local_recipe = os.path.join(tmp, "recipe.yaml")
            Path(local_recipe).write_bytes(work_path(recipe_path).read_bytes())
        recipe = load_recipe(local_recipe, tokens_dir=tokens_dir)
        swaps = []  # (local temporary path, the remote path it stands for)
        if is_remote(recipe.tokens_dir):
            local_tokens = os.path.join(tmp, "tokens")
            download(recipe.tokens_dir, local_tokens)
            swaps.append((local_tokens, recipe.tokens_dir))
            recipe = load_recipe(local_recipe, tokens_dir=local_tokens)
        if not is_remote(output):
            manifest = mix(recipe, output, allow_shortfall)
        else:
            local_out = os.path.join(tmp, "mix")
            mix(recipe, local_out, allow_shortfall)
            swaps.append((local_out, output.rstrip("/")))
            text = (Path(local_out) / MANIFEST).read_text(encoding="utf-8")
            for local, remote in swaps:
                text = text.replace(json.dumps(local)[1:-1], json.dumps(remote)[1:-1])
            (Path(local_out) / MANIFEST).write_text(text, encoding="utf-8")
            remote_out = work_path(output)
            assert isinstance(remote_out, RemotePath)
            for name in (*SPLITS, MANIFEST, TOKENIZER_FILE, CHECKSUMS):  # the previous mix's files, as clear_output
                rmtree(remote_out / name)
            for d in remote_out.glob("train_phase*"):
                rmtree(d)
            upload(local_out, output)
        manifest = json.loads(text) if is_remote(output) else manifest
    return manifest


def phase_manifest(index: int, phase: Any, directory: str, split: dict[str, int], stream: Stream,
                   corpus: Corpus, avail: np.ndarray) -> dict[str, Any]:
    """A phase's entry in ``manifest.json``: its stream directory, sizes, shares and per-source accounting."""
    sources = stream_sources(corpus, stream, avail)
    domain = sum(s["sampled_tokens"] for name, s in sources.items()
                 if corpus.specs[list(sources).index(name)].domain == "domain")
    for spec, epochs_left in zip(corpus.specs, stream.max_epochs):
        sources[spec.name]["epochs_left_before"] = float(epochs_left)  # of the run's max_epochs, at the phase start
        sources[spec.name]["upsampled"] = sources[spec.name]["epochs"] > 1.0
    return {"index": index, "name": phase.name, "dir": directory, "target_tokens": phase.tokens,
            "train_tokens": split["tokens"], "domain_share_target": phase.domain_share,
            "domain_share_actual": domain / split["tokens"] if split["tokens"] else 0.0,
            "domain_tokens": domain, "general_tokens": split["tokens"] - domain,
            "weights": phase.weights, "split": split, "shortfall": stream.shortfall, "sources": sources}


def summary(manifest: dict[str, Any]) -> str:
    lines = [f"mix: {manifest['train_tokens']:,} training tokens (target {manifest['target_tokens']:,}), "
             f"domain share {manifest['domain_share_actual']:.4f} (target {manifest['domain_share_target']})"]
    for name, s in manifest["sources"].items():
        lines.append(f"  {s['domain']:7s} {name:24s} available {s['available_tokens']:>12,}  "
                     f"sampled {s['sampled_tokens']:>12,}  epochs {s['epochs']:.2f}")
    for split in ("val_domain", "val_general"):
        sp = manifest["splits"][split]
        lines.append(f"  {split}: {sp['tokens']:,} tokens in {sp['docs']:,} documents "
                     f"({manifest['val_bytes_per_token'][split] or 0:.2f} bytes/token)")
    if manifest["shortfall"]:
        lines.append("  SHORTFALL (--allow-shortfall): " + json.dumps(manifest["shortfall"]["missing_tokens"]))
    lines += [f"  warning: {w}" for w in manifest["warnings"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--recipe", required=True, help="mixture recipe YAML (mixtures/recipes/*.yaml)")
    parser.add_argument("--output", required=True, help="mix directory (train/, val_domain/, val_general/, "
                                                        "manifest.json)")
    parser.add_argument("--tokens-dir", help="override the recipe's tokens_dir (the tokenize stage's output)")
    parser.add_argument("--allow-shortfall", action="store_true",
                        help="when the sources cannot meet the target within max_epochs, write what they can "
                             "(domain share kept) instead of failing")
    refuse_unknown_options(parser._option_string_actions, argv)
    args = parser.parse_args(argv)
    try:
        if any(is_remote(p) for p in (args.recipe, args.output, args.tokens_dir or "")) or is_remote(
                load_recipe(args.recipe, tokens_dir=args.tokens_dir).tokens_dir if not is_remote(args.recipe)
                else ""):
            manifest = mix_remote(args.recipe, args.output, args.tokens_dir, args.allow_shortfall)
        else:
            manifest = mix(load_recipe(args.recipe, tokens_dir=args.tokens_dir), args.output, args.allow_shortfall)
    except (RecipeError, ShortfallError, OSError) as exc:
        fail(f"mix: {exc}")
    print(summary(manifest))
    print(f"mix: wrote {args.output}")
    return manifest


if __name__ == "__main__":
    main()
