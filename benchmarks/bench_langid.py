"""Language-ID accuracy per language on the multilingual corpus (lid.176.ftz, our sampling).

    python benchmarks/build_langid_set.py && python benchmarks/bench_langid.py [--eval work/langid_eval.jsonl]
        [--results benchmarks/RESULTS.md]

Prints a markdown table: documents, accuracy (predicted == label) and accuracy at the stage's
default confidence (predicted == label and score >= 0.65), per language.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402
from filters.langid import LanguageIdentifier  # noqa: E402

TITLE = "## Language ID accuracy (`make bench-langid`)"  # this script's section of benchmarks/RESULTS.md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--eval", default=os.path.join(repo, "work", "langid_eval.jsonl"))
    ap.add_argument("--model", help="lid.176.ftz (default) or lid.176.bin")
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the table is only printed")
    args = ap.parse_args()
    provenance.check_results(args.results)
    docs = [json.loads(line) for line in open(args.eval, encoding="utf-8")]
    lid = LanguageIdentifier(args.model)
    t0 = time.perf_counter()
    preds = lid.identify_batch([d["text"] for d in docs])
    dt = time.perf_counter() - t0
    stats = defaultdict(lambda: [0, 0, 0])
    for d, (lang, score) in zip(docs, preds):
        s = stats[d["lang"]]
        s[0] += 1
        s[1] += lang == d["lang"]
        s[2] += lang == d["lang"] and score >= 0.65
    out = ["| language | documents | accuracy | accurate with score >= 0.65 |", "|---|---:|---:|---:|"]
    for lang, (n, ok, conf) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
        out.append(f"| {lang} | {n} | {ok / n:.1%} | {conf / n:.1%} |")
    n = len(docs)
    ok = sum(s[1] for s in stats.values())
    out += [f"| all | {n} | {ok / n:.1%} | {sum(s[2] for s in stats.values()) / n:.1%} |", "",
            f"{n / dt:.0f} documents/s ({os.path.basename(lid.model_path)}, {n} documents of "
            f"{os.path.relpath(args.eval, repo)})"]
    print("\n".join(out))
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-langid", provenance.method(__doc__),
                                                             "\n".join(out)), header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
