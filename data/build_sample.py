"""Rebuild the embedded sample corpus in data/ from ../shared/corpora (seeded, deterministic).

    python data/build_sample.py [--corpora ../shared/corpora]

Each output file is a seeded random subset of one shared corpus file (documents kept
unchanged); see data/README.md for provenance and licenses.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261127
# (corpus file, documents to keep; None = all, or for html only pages with expected text under 300 KB)
PLAN = {
    "finance/reuters_finance.jsonl.gz": None,
    "finance/sec_10q_aapl.jsonl.gz": None,
    "finance/bbc_business.jsonl.gz": 300,
    "general/austen.jsonl.gz": 50,
    "general/wikipedia_en.jsonl.gz": 25,
    "general/bbc_nonbusiness.jsonl.gz": 300,
    "general/speeches.jsonl.gz": 40,
    "general/python_docs.jsonl.gz": 50,
    "general/lee_news.jsonl.gz": 120,
    "multilingual/fortunes.jsonl.gz": 360,
    "html/news_pages.jsonl.gz": "small-with-expected",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(HERE.parent.parent / "shared/corpora"))
    args = parser.parse_args()
    corpora = Path(args.corpora)
    if not corpora.is_dir():
        sys.exit(f"{corpora} not found: the shared corpora are needed to rebuild the sample")
    for rel, keep in PLAN.items():
        docs = [json.loads(line) for line in gzip.open(corpora / rel, "rt", encoding="utf-8")]
        rng = random.Random(f"{SEED}:{rel}")
        if keep == "small-with-expected":
            docs = [d for d in docs if d["meta"].get("expected_text") and len(d["text"]) < 300_000]
        elif keep is not None:
            if rel.startswith("multilingual/fortunes"):
                per_lang = keep // 6
                by_lang: dict[str, list] = {}
                for d in docs:
                    by_lang.setdefault(d["meta"]["lang"], []).append(d)
                docs = [d for lang in sorted(by_lang) for d in rng.sample(by_lang[lang], per_lang)]
            else:
                docs = rng.sample(docs, keep)
        out = HERE / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with gzip.GzipFile(out, "wb", mtime=0) as f:
            for d in docs:
                f.write((json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8"))
        print(f"{out.relative_to(HERE.parent)}: {len(docs)} documents, {out.stat().st_size / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
