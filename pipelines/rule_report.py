"""Per-rule report of a filtered directory: what each rule removed, with examples.

    python -m pipelines.rule_report DIR [--examples 3] [--chars 160]

For a normal run: each removal reason with its count and share of the input, per source, and
a few snippets from ``DIR/removed/``. For an ``--annotate-only`` run: how many documents fail
each rule (alone or with others) and how many each would remove as their first failure, with
examples from the kept Parquet's ``filter_reasons``. Reads local or gs:// directories.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from apache_beam.io.filesystems import FileSystems

from core.workdir import DOCS_GLOB
from pipelines.io import iter_file_records
from pipelines.stats import load_stats


def _files(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _snippet(text: str, chars: int) -> str:
    text = " ".join((text or "").split())
    return text[:chars] + ("…" if len(text) > chars else "")


def collect(directory: str, examples: int) -> tuple[dict[str, Any], dict[str, Counter], dict[str, list]]:
    """(stats, reason -> Counter(source), reason -> example records)."""
    stats = load_stats(directory)
    by_source: dict[str, Counter] = defaultdict(Counter)
    samples: dict[str, list] = defaultdict(list)
    counts = stats.get("counts", {})
    annotated = any(k.startswith("fails/") for k in counts)
    pattern = DOCS_GLOB if annotated else "removed/part-*.jsonl"
    for path in _files(FileSystems.join(directory.rstrip("/"), pattern)):
        for _, rec in iter_file_records(path):
            if not isinstance(rec, dict):
                continue
            if annotated:
                reasons = json.loads(rec.get("filter_reasons") or "[]")
                text = rec.get("text", "")
            else:
                reasons = [rec["reason"]]
                text = rec.get("snippet", "")
            for reason in reasons:
                by_source[reason][rec.get("source")] += 1
                if len(samples[reason]) < examples:
                    samples[reason].append({"id": rec.get("id"), "source": rec.get("source"), "text": text})
    return stats, by_source, samples


def format_report(directory: str, examples: int = 3, chars: int = 160) -> str:
    stats, by_source, samples = collect(directory, examples)
    total = stats["input"] or 1
    counts = stats.get("counts", {})
    annotated = any(k.startswith("fails/") for k in counts)
    if annotated:
        rows = {k[len("fails/") :]: v for k, v in counts.items() if k.startswith("fails/")}
        first = {k[len("would_remove/") :]: v for k, v in counts.items() if k.startswith("would_remove/")}
        would = sum(first.values())
        lines = [
            f"{directory}: annotate-only, {stats['input']:,} documents; all rules would remove "
            f"{would:,} ({would / total:.1%})",
            f"{'rule':32s} {'fails':>8s} {'rate':>7s} {'first':>8s}",
        ]
    else:
        rows = stats["removed"]
        first = rows
        lines = [
            f"{directory}: input {stats['input']:,} -> kept {stats['output']:,} "
            f"({stats['output'] / total:.1%}), removed {sum(rows.values()):,}",
            f"{'rule':32s} {'removed':>8s} {'rate':>7s}",
        ]
    for reason, n in sorted(rows.items(), key=lambda kv: -kv[1]):
        extra = f" {first.get(reason, 0):8,d}" if annotated else ""
        lines.append(f"{reason:32s} {n:8,d} {n / total:7.2%}{extra}")
    for key, value in stats.items():
        if key.startswith("threshold/"):
            lines.append(f"top-fraction cut-off {key[len('threshold/') :]}: score >= {value}")
    for reason, n in sorted(rows.items(), key=lambda kv: -kv[1]):
        sources = ", ".join(f"{s} {c}" for s, c in by_source[reason].most_common(5))
        lines.append(f"\n== {reason}: {n:,} ({sources})")
        for ex in samples[reason]:
            lines.append(f"  [{ex['source']}/{ex['id']}] {_snippet(ex['text'], chars)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog="python -m pipelines.rule_report", description=__doc__.splitlines()[0])
    ap.add_argument("directory", help="output directory of pipelines.filter")
    ap.add_argument("--examples", type=int, default=3, help="example snippets per rule")
    ap.add_argument("--chars", type=int, default=160, help="characters per snippet")
    args = ap.parse_args(argv)
    try:
        report = format_report(args.directory, args.examples, args.chars)
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"error: cannot read {args.directory}: {exc}") from None
    print(report)
    return report


if __name__ == "__main__":
    main()
