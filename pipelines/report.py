"""One report for a whole run: the document funnel of every stage, the mixture and training.

    python -m pipelines.report --work work/demo [--output work/demo/report.md]

Reads every ``stats.json`` under the work directory (one per stage run), the mixer's
``manifest.json`` and the trainer's ``metrics.jsonl`` where present, and writes a Markdown
report (plus the same content as ``report.html``) that accounts for every document.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

STAGE_ORDER = ["clean", "filter", "dedup", "tokenize"]


def _stage_rows(work: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for path in sorted(work.rglob("stats.json")):
        stats = json.loads(path.read_text())
        if "stage" in stats and "input" in stats:
            rows.append((str(path.parent.relative_to(work)), stats))
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(rows, key=lambda r: (order.get(r[1]["stage"], 99), r[0]))


def _funnel(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = ["## Document funnel", "",
           "| stage | directory | input | output | removed | balanced | top removal reasons |",
           "|---|---|---:|---:|---:|---|---|"]
    for where, s in rows:
        removed = sum(s["removed"].values())
        top = ", ".join(f"{k} {v:,}" for k, v in sorted(s["removed"].items(), key=lambda kv: -kv[1])[:4])
        out.append(f"| {s['stage']} | `{where}` | {s['input']:,} | {s['output']:,} | {removed:,} | "
                   f"{'yes' if s.get('balanced') else '**NO**'} | {top or '-'} |")
    return out + [""]


def _mixture(work: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(work.rglob("manifest.json")):
        m = json.loads(path.read_text())
        if "train_tokens" not in m:
            continue
        out += [f"## Mixture (`{path.parent.relative_to(work)}`)", "",
                f"- target tokens: {m.get('target_tokens', 0):,}" + (
                    f" ({m['params']:,} params x {m.get('tokens_per_param')} tokens/param)" if m.get("params") else
                    " (given in tokens)"),
                f"- train tokens: {m['train_tokens']:,}; domain share {m.get('domain_share_actual', 0):.4f} "
                f"(target {m.get('domain_share_target', 0):.2f})", "",
                "| source | domain | available tokens | sampled tokens | epochs |", "|---|---|---:|---:|---:|"]
        for name, src in sorted(m.get("sources", {}).items()):
            out.append(f"| {name} | {src.get('domain')} | {src.get('available_tokens', 0):,} | "
                       f"{src.get('sampled_tokens', 0):,} | {src.get('epochs', 0):.2f} |")
        if m.get("shortfall"):
            out += ["", f"**Shortfall**: {json.dumps(m['shortfall'])}"]
        out.append("")
    return out


def _training(work: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(work.rglob("metrics.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        steps = [r for r in records if r.get("kind") == "train"]
        last_eval: dict[str, dict[str, Any]] = {}
        for r in records:
            if r.get("kind") == "eval":
                last_eval[r["split"]] = r
        if not steps and not last_eval:
            continue
        out += [f"## Training (`{path.parent.relative_to(work)}`)", ""]
        if steps:
            out.append(f"- {len(steps)} train records up to step {steps[-1].get('step', '?')}; "
                       f"loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}")
        if last_eval:
            out += ["", "| split | step | loss | perplexity | bits per byte |", "|---|---:|---:|---:|---:|"]
            for split, r in sorted(last_eval.items()):
                bpb = f"{r['bpb']:.3f}" if isinstance(r.get("bpb"), float) else "-"
                out.append(f"| {split} | {r.get('step', '?')} | {r['loss']:.3f} | {r.get('ppl', 0):.1f} | {bpb} |")
        out.append("")
    return out


def build_report(work: Path) -> str:
    rows = _stage_rows(work)
    lines = [f"# Run report: `{work}`", ""]
    if not rows:
        lines.append("No stage outputs (stats.json) found.")
    lines += _funnel(rows) if rows else []
    lines += _mixture(work) + _training(work)
    return "\n".join(lines) + "\n"


def to_html(markdown: str) -> str:
    """A minimal, dependency-free HTML rendering (tables and headings) of the Markdown report."""
    body, in_table = [], False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:70em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}")
    head = f"<head><meta charset='utf-8'><style>{style}</style></head>"
    return f"<!doctype html><html>{head}<body>{''.join(body)}</body></html>\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="work directory holding the stage outputs")
    parser.add_argument("--output", help="report path (default WORK/report.md; report.html beside it)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    if not work.is_dir():
        print(f"error: work directory {work} does not exist", file=sys.stderr)
        sys.exit(2)
    report = build_report(work)
    out = Path(args.output) if args.output else work / "report.md"
    out.write_text(report, encoding="utf-8")
    out.with_suffix(".html").write_text(to_html(report), encoding="utf-8")
    print(report)
    print(f"report: {out} (and {out.with_suffix('.html')})")
    return out


if __name__ == "__main__":
    main()
