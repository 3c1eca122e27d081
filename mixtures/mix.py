"""The mixer: tokenized sources + a recipe -> the training stream, two held-out sets and a manifest.

    python -m mixtures.mix --recipe mixtures/recipes/demo.yaml --output work/demo/mix [--allow-shortfall]

Steps (all on one machine: only document lengths and ids are held in memory; tokens are
memory-mapped in and written out in bounded shards):

1. Open every source's shards (``mixtures/shards.py``) and its tokenize ``stats.json``
   (tokenizer, vocabulary; all sources must share one tokenizer).
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
    DIR/val_domain/...  DIR/val_general/...                    held-out documents, one pass
    DIR/tokenizer.json                                         copy of the tokenizer
    DIR/manifest.json                                          sizes, shares, epochs, bytes per token

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

from mixtures.recipe import SIDES, Recipe, RecipeError, SourceSpec, load_recipe, target_tokens
from mixtures.shards import (DOCS_SUFFIX, INDEX_SUFFIX, TOKENS_SUFFIX, Shard, list_shards, write_doc_index,
                             token_dtype, write_shard)
from mixtures.tokenizer import EOS, PAD, bos_ids, eos_id, file_sha256
from pipelines import fail, refuse_unknown_options

SPLITS = ("train", "val_domain", "val_general")
MANIFEST = "manifest.json"
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
        tokenizers = {file_sha256(path): (path, Tokenizer.from_file(str(path)).get_vocab_size())}
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
    """Remove a previous mix's shards and manifest (only files this module writes)."""
    for split in SPLITS:
        d = output / split
        if d.is_dir():
            for suffix in (TOKENS_SUFFIX, DOCS_SUFFIX, INDEX_SUFFIX):
                for f in d.glob("part-*" + suffix):
                    f.unlink()
    for name in (MANIFEST, TOKENIZER_FILE):
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


def mix(recipe: Recipe, output: str | os.PathLike, allow_shortfall: bool = False) -> dict[str, Any]:
    """Build the mixture described by ``recipe`` into ``output``; returns the manifest."""
    out = Path(output)
    corpus = open_corpus(recipe)
    sizing = target_tokens(recipe, corpus.vocab_size)
    specs = corpus.specs
    n_src = len(specs)
    side_of = np.array([SIDES.index(s.domain) for s in specs], dtype=np.int32)
    doc_side = side_of[corpus.source]

    # 2. validation documents per side
    is_val = np.zeros(corpus.length.size, dtype=bool)
    val_rows = {}
    for si, side in enumerate(SIDES):
        rows = np.flatnonzero(doc_side == si)
        held = rows[split_validation(corpus.length[rows], recipe.val_fraction[side], rng_for(recipe.seed, "val", side))]
        is_val[held] = True
        val_rows[side] = held
    total_tok = np.bincount(corpus.source, weights=corpus.length, minlength=n_src)
    avail = np.bincount(corpus.source, weights=np.where(is_val, 0, corpus.length), minlength=n_src)

    # 3. allocation
    target = sizing["target_tokens"]
    share = {"domain": recipe.domain_share, "general": 1.0 - recipe.domain_share}
    max_ep = np.array([recipe.max_epochs_of(s) for s in specs])
    weights = np.array([s.weight if s.weight is not None else a for s, a in zip(specs, avail)], dtype=np.float64)

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
        pos, keys = sample_source(corpus.length[rows], float(alloc[si]), rng_for(recipe.seed, "sample", spec.name))
        rows_all.append(rows[pos])
        keys_all.append(keys)
    rows = np.concatenate(rows_all)
    keys = np.concatenate(keys_all)
    train_rows = rows[np.lexsort((rows, keys))]

    # write
    out.mkdir(parents=True, exist_ok=True)
    clear_output(out)
    shutil.copyfile(corpus.tokenizer, out / TOKENIZER_FILE)
    splits = {"train": write_split(out / "train", corpus, train_rows, recipe.shard_tokens)}
    for side in SIDES:
        splits[f"val_{side}"] = write_split(out / f"val_{side}", corpus, val_rows[side], recipe.shard_tokens)

    train_tok = np.bincount(corpus.source[train_rows], weights=corpus.length[train_rows], minlength=n_src)
    train_docs = np.bincount(corpus.source[train_rows], minlength=n_src)
    unique_docs = np.bincount(corpus.source[np.unique(train_rows)], minlength=n_src)
    val_all = np.concatenate([val_rows[s] for s in SIDES])
    val_tok = np.bincount(corpus.source[val_all], weights=corpus.length[val_all], minlength=n_src)
    val_docs = np.bincount(corpus.source[val_all], minlength=n_src)
    side_weight = {side: weights[side_of == si].sum() for si, side in enumerate(SIDES)}
    sources = {}
    for si, spec in enumerate(specs):
        sources[spec.name] = {
            "domain": spec.domain, "path": spec.path,
            "total_tokens": int(total_tok[si]), "val_tokens": int(val_tok[si]), "val_docs": int(val_docs[si]),
            "available_tokens": int(avail[si]),
            "weight": float(weights[si] / side_weight[spec.domain]) if side_weight[spec.domain] else 0.0,
            "max_epochs": float(max_ep[si]), "planned_tokens": int(round(alloc[si])),
            "sampled_tokens": int(train_tok[si]), "epochs": float(train_tok[si] / avail[si]) if avail[si] else 0.0,
            "train_docs": int(train_docs[si]), "train_unique_docs": int(unique_docs[si]),
        }
    train_tokens = splits["train"]["tokens"]
    domain_tokens = int(sum(train_tok[si] for si in range(n_src) if side_of[si] == 0))
    warnings = list(corpus.warnings)
    if sizing["model_vocab_size"] is not None and sizing["model_vocab_size"] != corpus.vocab_size:
        warnings.append(f"model config vocab_size {sizing['model_vocab_size']} != tokenizer vocab_size "
                        f"{corpus.vocab_size}: params were counted with the model config's")
    manifest = {
        "params": sizing["params"], "tokens_per_param": sizing["tokens_per_param"],
        "model_config": recipe.model_config, "target_tokens": target, "train_tokens": train_tokens,
        "domain_share_target": recipe.domain_share,
        "domain_share_actual": domain_tokens / train_tokens if train_tokens else 0.0,
        "domain_tokens": domain_tokens, "general_tokens": train_tokens - domain_tokens,
        "seed": recipe.seed, "tokenizer": str(out / TOKENIZER_FILE), "tokenizer_sha256": file_sha256(corpus.tokenizer),
        "vocab_size": corpus.vocab_size, "eos_id": corpus.eos_id, "eos_token": corpus.eos_token,
        "pad_id": corpus.pad_id,
        **({"bos_id": corpus.bos_id} if corpus.bos_id is not None else {}),  # (absent for the project's tokenizers)
        "dtype": corpus.dtype,  # shard token dtype (shards.token_dtype); a manifest without it is uint16
        "splits": splits,
        "val_bytes_per_token": {k: (splits[k]["bytes"] / splits[k]["tokens"] if splits[k]["tokens"] else None)
                                for k in ("val_domain", "val_general")},
        "shortfall": shortfall, "warnings": warnings,
        "sources": sources,
        "recipe": recipe.to_dict(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


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
        manifest = mix(load_recipe(args.recipe, tokens_dir=args.tokens_dir), args.output, args.allow_shortfall)
    except (RecipeError, ShortfallError, OSError) as exc:
        fail(f"mix: {exc}")
    print(summary(manifest))
    print(f"mix: wrote {args.output}")
    return manifest


if __name__ == "__main__":
    main()
