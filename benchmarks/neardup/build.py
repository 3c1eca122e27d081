"""Build the labelled near-duplicate benchmark from real text.

    python benchmarks/neardup/build.py --output work/neardup [--bases 800] [--seed 0]

Base documents: news articles and speeches from ../shared/corpora (BBC business and
non-business, Reuters, Lee, convention speeches cut to 800 words), 120+ words, with every
pair that shares >= 30% of its word 5-grams dropped first (the BBC set has verbatim
duplicates), so bases are mutually distinct.

Variants: for each base and each target Jaccard in TARGETS, a copy with random word-level
edits (substitutions with words from other documents, insertions, deletions) applied one by
one until the exact word-5-gram Jaccard with the base reaches the target (+-0.01); the
measured value is the label. Target 1.0 is a formatting-only copy (case, punctuation,
whitespace changed): an exact duplicate after normalization.

Hard negatives: groups of 3 unrelated documents (not bases, not variants) that share one
long block of real boilerplate text (a span of the Python or Linux documentation), sized
so that their pairwise 5-gram Jaccard is 0.35-0.6: similar-looking pages that are *not*
near duplicates at any of the benchmark thresholds (0.7, 0.8, 0.9).

The Jaccard here is a reference implementation independent of filters/minhash.py: regex
words (``[^\\W_]+`` on lowercased text), Python sets of 5-word tuples.

Outputs in OUTPUT/: ``docs.jsonl.gz`` (id, text, source, meta; for datatrove),
``stage/train-00000-of-00001.parquet`` (the document schema; for pipelines.dedup) and
``labels.jsonl`` (one line per document: id, group, role, jaccard to its base).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from core.documents import DOC_SCHEMA, meta_json  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"
BASE_FILES = ["finance/bbc_business", "finance/reuters_finance", "general/bbc_nonbusiness",
              "general/lee_news", "general/speeches"]
BOILERPLATE_FILES = ["general/python_docs", "general/linux_docs"]
TARGETS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
NGRAM = 5
MIN_WORDS, MAX_WORDS = 120, 800
POOL_MAX_JACCARD = 0.3  # bases and negatives share less than this with any other pool document
NEG_GROUP = 3
NEG_JACCARD = (0.35, 0.6)
TOLERANCE = 0.01
_WORDS = re.compile(r"[^\W_]+")
_TOKENS = re.compile(r"\S+|\s+")


def ref_shingles(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def ref_jaccard(a: str | set, b: str | set) -> float:
    sa = a if isinstance(a, set) else ref_shingles(a)
    sb = b if isinstance(b, set) else ref_shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def load(name: str) -> list[dict]:
    with gzip.open(CORPORA / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def truncate_words(text: str, max_words: int) -> str:
    tokens = _TOKENS.findall(text)
    out, words = [], 0
    for tok in tokens:
        if not tok.isspace():
            words += 1
            if words > max_words:
                break
        out.append(tok)
    return "".join(out).strip()


def distinct_pool(docs: list[dict]) -> list[dict]:
    """Drop every document sharing >= POOL_MAX_JACCARD of 5-grams with an earlier one."""
    index: dict[tuple, list[int]] = defaultdict(list)
    kept, sets = [], []
    for doc in docs:
        s = ref_shingles(doc["text"])
        overlap: dict[int, int] = defaultdict(int)
        for sh in s:
            for j in index.get(sh, ()):
                overlap[j] += 1
        if any(c / (len(s) + len(sets[j]) - c) >= POOL_MAX_JACCARD for j, c in overlap.items()):
            continue
        k = len(kept)
        kept.append(doc)
        sets.append(s)
        for sh in s:
            index[sh].append(k)
    return kept


def edit_plan(tokens: list[str], vocab: list[str], rng: random.Random, count: int) -> list[tuple]:
    word_pos = [i for i, t in enumerate(tokens) if not t.isspace()]
    plan = []
    for _ in range(count):
        kind = rng.choices(("sub", "ins", "del"), weights=(0.6, 0.2, 0.2))[0]
        plan.append((kind, rng.choice(word_pos), rng.choice(vocab)))
    return plan


def apply_edits(tokens: list[str], plan: list[tuple]) -> str:
    out = list(tokens)
    for kind, pos, word in plan:
        if kind == "sub":
            out[pos] = word
        elif kind == "ins":
            out[pos] = out[pos] + " " + word
        else:
            out[pos] = ""
    return re.sub(r"[ ]{2,}", " ", "".join(out)).strip()


def make_variant(text: str, target: float, vocab: list[str], rng: random.Random) -> tuple[str, float] | None:
    """A copy of ``text`` edited until its 5-gram Jaccard with ``text`` is target +- TOLERANCE."""
    base = ref_shingles(text)
    tokens = _TOKENS.findall(text)
    plan = edit_plan(tokens, vocab, rng, len(tokens))
    lo, hi = 0, len(plan)
    while lo < hi:  # smallest number of edits with J <= target + TOLERANCE (J falls with edits)
        mid = (lo + hi) // 2
        if ref_jaccard(base, ref_shingles(apply_edits(tokens, plan[:mid]))) <= target + TOLERANCE:
            hi = mid
        else:
            lo = mid + 1
    variant = apply_edits(tokens, plan[:lo])
    j = ref_jaccard(base, ref_shingles(variant))
    return (variant, j) if abs(j - target) <= TOLERANCE else None


def reformat(text: str, rng: random.Random) -> str:
    """Formatting-only changes: case, punctuation and whitespace (same normalized text)."""
    out = []
    for tok in _TOKENS.findall(text):
        if tok.isspace():
            out.append(rng.choice([tok, " ", "  ", "\n"]) if rng.random() < 0.1 else tok)
        elif rng.random() < 0.15:
            if rng.random() < 0.5:
                out.append(tok.upper())
            else:
                out.append(tok.strip(".,;:!?\"'") + rng.choice([",", ";", " -", "!"]))
        else:
            out.append(tok)
    return "".join(out)


def boilerplate_spans(rng: random.Random) -> list[str]:
    """Long contiguous spans of documentation prose, the shared block of hard negatives."""
    spans = []
    for name in BOILERPLATE_FILES:
        for doc in load(name):
            tokens = _TOKENS.findall(doc["text"])
            if sum(1 for t in tokens if not t.isspace()) >= 700:
                spans.append("".join(tokens))
    rng.shuffle(spans)
    return spans


def hard_negative_group(bodies: list[str], boiler: str, rng: random.Random) -> tuple[list[str], float] | None:
    """Bodies + the same boilerplate block, sized so that pairwise Jaccard is in NEG_JACCARD."""
    btoks = _TOKENS.findall(boiler)
    for size in range(100, 700, 20):
        block = truncate_words(boiler, size)
        docs = [f"{body}\n\n{block}" if rng.random() < 0.5 else f"{block}\n\n{body}" for body in bodies]
        sets = [ref_shingles(d) for d in docs]
        js = [ref_jaccard(sets[i], sets[j]) for i in range(len(sets)) for j in range(i + 1, len(sets))]
        if min(js) >= NEG_JACCARD[0]:
            return (docs, max(js)) if max(js) <= NEG_JACCARD[1] else None
    del btoks
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--bases", type=int, default=800)
    parser.add_argument("--negative-groups", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not CORPORA.exists():
        sys.exit(f"{CORPORA} not found: this benchmark needs ../shared/corpora")
    rng = random.Random(args.seed)

    pool = []
    for name in BASE_FILES:
        for doc in load(name):
            text = truncate_words(doc["text"], MAX_WORDS)
            if len(_WORDS.findall(text)) >= MIN_WORDS:
                pool.append({"id": doc["id"], "text": text, "source": doc["source"]})
    rng.shuffle(pool)
    pool = distinct_pool(pool)
    need = args.bases + args.negative_groups * NEG_GROUP
    if len(pool) < need:
        sys.exit(f"only {len(pool)} distinct documents, need {need}")
    bases, negative_bodies = pool[:args.bases], pool[args.bases:need]
    vocab = sorted({w for d in pool[need:] or pool for w in d["text"].split() if w.isalpha()})

    out_docs, labels = [], []
    for g, base in enumerate(bases):
        group = f"g{g:05d}"
        out_docs.append({"id": f"{group}-base", "text": base["text"], "source": "neardup",
                         "meta": {"group": group, "role": "base", "origin": base["id"]}})
        labels.append({"id": f"{group}-base", "group": group, "role": "base", "jaccard": 1.0})
        for target in TARGETS:
            if target == 1.0:
                made = (reformat(base["text"], rng), 1.0)
            else:
                made = make_variant(base["text"], target, vocab, rng)
            if made is None:
                continue
            text, j = made
            vid = f"{group}-v{int(round(target * 100)):03d}"
            out_docs.append({"id": vid, "text": text, "source": "neardup",
                             "meta": {"group": group, "role": "variant", "target": target, "jaccard": round(j, 4)}})
            labels.append({"id": vid, "group": group, "role": "variant", "jaccard": round(j, 4)})

    spans = boilerplate_spans(rng)
    made_groups = 0
    for k in range(args.negative_groups):
        bodies = [truncate_words(d["text"], rng.randint(120, 220))
                  for d in negative_bodies[k * NEG_GROUP:(k + 1) * NEG_GROUP]]
        made = hard_negative_group(bodies, spans[k % len(spans)], rng)
        if made is None:
            continue
        docs, max_j = made
        made_groups += 1
        for i, text in enumerate(docs):
            nid = f"n{k:04d}-{i}"
            out_docs.append({"id": nid, "text": text, "source": "neardup",
                             "meta": {"group": nid, "role": "hard_negative", "negative_group": f"n{k:04d}",
                                      "max_jaccard": round(max_j, 4)}})
            labels.append({"id": nid, "group": nid, "role": "hard_negative", "jaccard": round(max_j, 4),
                           "negative_group": f"n{k:04d}"})

    rng.shuffle(out_docs)
    out = Path(args.output)
    (out / "stage").mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "docs.jsonl.gz", "wt", encoding="utf-8") as f:
        for d in out_docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with open(out / "labels.jsonl", "w") as f:
        for row in sorted(labels, key=lambda r: r["id"]):
            f.write(json.dumps(row) + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": d["id"], "text": d["text"], "source": d["source"], "domain": "general",
             "meta": meta_json(d["meta"])} for d in out_docs]
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), out / "stage" / "train-00000-of-00001.parquet",
                   compression="zstd")
    roles = defaultdict(int)
    for row in labels:
        roles[row["role"]] += 1
    print(json.dumps({"documents": len(out_docs), **roles, "negative_groups": made_groups,
                      "pool": len(pool), "output": str(out)}))


if __name__ == "__main__":
    main()
