"""Build the labelled language-ID sets from ../shared/corpora/multilingual (seeded, reproducible).

    python benchmarks/build_langid_set.py

- tests/data/langid_samples.jsonl: 8 documents for each of 13 languages (the test set of
  tests/test_langid.py), text cut to at most 600 characters;
- work/langid_eval.jsonl (``--eval``): the larger evaluation set of benchmarks/bench_langid.py,
  every fortune of >= 80 characters not in the test set and every web page, up to 300 per language.

Labels are the corpus's ``meta.lang``: the Debian package language for fortunes
(de/en/es/it/pl/ru), the chardet folder language for web pages (ja/zh/ko/hu/he/bg/el/...).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpora", "multilingual")
TEST_PER_LANG = 8
MIN_CHARS = 80
MAX_TEST_CHARS = 600
WEB_LANGS_MIN_DOCS = 10  # web-page languages with at least this many documents


def load() -> dict[str, list[dict]]:
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for name in ("fortunes", "web_pages"):
        with gzip.open(os.path.join(CORPUS, f"{name}.jsonl.gz"), "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                lang = (rec.get("meta") or {}).get("lang")
                if lang and len(rec["text"]) >= MIN_CHARS:
                    by_lang[lang].append({"id": rec["id"], "lang": lang, "text": rec["text"], "corpus": name})
    return {k: v for k, v in by_lang.items() if len(v) >= WEB_LANGS_MIN_DOCS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--eval", default=os.path.join(repo, "work", "langid_eval.jsonl"))
    ap.add_argument("--eval-per-lang", type=int, default=300)
    args = ap.parse_args()
    rng = random.Random(0)
    test, evals = [], []
    for _, docs in sorted(load().items()):
        docs = sorted(docs, key=lambda d: d["id"])
        rng.shuffle(docs)
        for d in docs[:TEST_PER_LANG]:
            test.append({**d, "text": d["text"][:MAX_TEST_CHARS]})
        evals += docs[TEST_PER_LANG : TEST_PER_LANG + args.eval_per_lang]
    with open(os.path.join(ROOT, "tests", "data", "langid_samples.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in test)
    with open(args.eval, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in evals)
    print(f"{len(test)} test documents, {len(evals)} evaluation documents -> {args.eval}")


if __name__ == "__main__":
    main()
