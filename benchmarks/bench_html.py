"""Compare HTML main-content extractors on hand-checked news pages.

Quality: bag-of-tokens precision/recall/F1 of each extractor's text against
``meta.expected_text`` (words for spaced scripts, single characters for CJK/Thai/Burmese,
which write without spaces). Speed: pages/s and MB/s of HTML over all 30 pages.

    python benchmarks/bench_html.py [--input ../shared/corpora/html/news_pages.jsonl.gz]
        [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402
from filters.html import EXTRACTORS, extract_text  # noqa: E402

TITLE = "## HTML extraction (clean stage)"  # this script's section of benchmarks/RESULTS.md

DEFAULT_INPUT = Path(__file__).resolve().parents[2] / "shared/corpora/html/news_pages.jsonl.gz"
_UNSPACED = "\u0e00-\u0e7f\u1000-\u109f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_TOKENS = re.compile(rf"[{_UNSPACED}]|[^\W_]+")


def tokens(text: str) -> Counter:
    return Counter(t.lower() for t in _TOKENS.findall(text))


def prf(predicted: str, expected: str) -> tuple[float, float, float]:
    p, e = tokens(predicted), tokens(expected)
    overlap = sum((p & e).values())
    precision = overlap / max(1, sum(p.values()))
    recall = overlap / max(1, sum(e.values()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                        "without it the table is only printed")
    args = parser.parse_args()
    provenance.check_results(args.results)
    if not Path(args.input).exists():
        sys.exit(f"{args.input} not found: this benchmark needs ../shared/corpora (absent here)")
    pages = [json.loads(line) for line in gzip.open(args.input, "rt", encoding="utf-8")]
    total_mb = sum(len(p["text"].encode()) for p in pages) / 1e6
    rows = []
    for name in EXTRACTORS:
        extract_text(pages[0]["text"], name)  # warm-up: imports, lazy tables
        scores, t0 = [], time.perf_counter()
        outputs = [extract_text(p["text"], name) for p in pages]
        seconds = time.perf_counter() - t0
        for page, out in zip(pages, outputs):
            if page["meta"].get("expected_text"):
                scores.append(prf(out, page["meta"]["expected_text"]))
        n = len(scores)
        mean = [sum(s[i] for s in scores) / n for i in range(3)]
        rows.append((name, n, *mean, len(pages) / seconds, total_mb / seconds))
    out = [f"{len(pages)} pages, {total_mb:.1f} MB of HTML; quality on the {rows[0][1]} with expected text", "",
           "| extractor | precision | recall | F1 | pages/s | MB/s |", "|---|---:|---:|---:|---:|---:|"]
    out += [f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {pps:.1f} | {mbs:.2f} |" for name, _, p, r, f, pps, mbs in rows]
    print("\n".join(out))
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-html", provenance.method(__doc__), "\n".join(out)),
                        header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
