"""One report for a whole run: what every stage did to the documents, the mixture and the training.

    python -m run.report --work work/demo [--output work/demo/report.html]

Reads whatever exists under the work directory and writes one self-contained HTML page (inline CSS
and SVG figures: it works offline, as an e-mail attachment) and a short ``report.md`` beside it:

    */stats.json          clean, filter, dedup, tokenize -> funnel per source, stage table, removals
                          per rule, languages (filter), duplicate-cluster sizes (dedup)
    mix/manifest.json     the mixer                      -> domain share target vs realized, tokens
                                                            and epochs per source
    train/metrics.jsonl   the trainer                    -> loss, validation loss and perplexity,
                                                            tokens/s and MFU over steps
    experiment.json       general_only vs blend          -> validation loss per arm and seed, final
                                                            perplexity and bits per byte

A section whose input is missing says "not run" in one line. The run's records (stats.json files at
``WORK/<stage>/`` or ``WORK/<stage>/<source>/``, the manifest of ``mix/`` or of the run config's ``mixture:``,
the metrics) are read by ``core.workdir.read_run``, the one reader of a work directory, which the dataset
card shares; deeper stats.json (benchmarks that write under the work directory) are named at the end of the
funnel section but not counted. The figures are drawn by ``run/report_figures.py`` (matplotlib); this file
reads the inputs and writes the page.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import re
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from core.cli import fail
from core.workdir import Manifest, StageStats, read_run, stage_totals
from filters.edgar import NOT_TEXT_REASON
from run.report_figures import (
    DOMAIN_COLOR,
    FUNNEL_STEPS,
    STAGE_ORDER,
    UNKNOWN_SOURCE,
    arm_color,
    continue_figure,
    continue_rel,
    dedup_figure,
    experiment_figure,
    funnel_figure,
    human,
    languages_figure,
    mixture_figure,
    number,
    pct,
    removals_figure,
    svg,
    throughput_figure,
    totals_funnel_figure,
    training_figure,
)

# ------------------------------------------------------------------------------------------ inputs

Stage = StageStats  # one stage directory's stats.json (core/workdir.py)


@dataclass
class Run:
    """The run's records (:func:`core.workdir.read_run`, the one reader of a work directory) and the results
    that sit beside a run: the experiment's, the continued-pretraining comparison's."""

    work: Path
    stages: list[Stage] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # stats.json deeper in the tree: not the run's
    manifest: Manifest | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    experiment: dict[str, Any] | None = None
    experiment_path: Path | None = None                  # where experiment.json was found
    continued: dict[str, Any] | None = None              # benchmarks/experiment_continue.py's results.json
    continued_path: Path | None = None
    sweep: dict[str, Any] | None = None                  # python -m mixtures.sweep's WORK/sweep/sweep.json
    problems: list[str] = field(default_factory=list)   # unreadable inputs, shown at the top


def _read_json(path: Path, run: Run) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        where = path.relative_to(run.work) if path.is_relative_to(run.work) else path
        run.problems.append(f"{where} could not be read ({exc.__class__.__name__})")
        return None


def load_run(work: Path) -> Run:
    """Everything the report draws from, read once: the run's records, then the results beside it."""
    rec = read_run(work)
    run = Run(work, rec.stages, rec.elsewhere, rec.manifest, rec.metrics, sweep=rec.sweep, problems=rec.problems)
    for path in experiment_candidates(work):
        if path.is_file():
            run.experiment, run.experiment_path = _read_json(path, run), path
            break
    for path in continued_candidates(work):
        if path.is_file():
            run.continued, run.continued_path = _read_json(path, run), path
            break
    if run.sweep is None:  # the run's own mixture search first, else the experiment's beside it (make sweep)
        for path in experiment_candidates(work):
            if (path.parent / "sweep" / "sweep.json").is_file():
                run.sweep = _read_json(path.parent / "sweep" / "sweep.json", run)
                break
    return run


def continued_candidates(work: Path) -> list[Path]:
    """Where the continued-pretraining results may be (``make experiment-continue`` writes
    work/experiment_continue/results.json): the work directory itself, then ``experiment_continue/`` beside it
    or in it."""
    paths = [*([work / "results.json"] if work.name == "experiment_continue" else []),
             work.parent / "experiment_continue" / "results.json", work / "experiment_continue" / "results.json"]
    return [Path(p) for p in dict.fromkeys(os.path.normpath(p) for p in paths)]


def experiment_candidates(work: Path) -> list[Path]:
    """Where the experiment's results may be, first found wins: the work directory itself, then
    ``experiment/`` beside it, which is where ``make experiment`` writes them (benchmarks/experiment.py:
    work/experiment/experiment.json, so the report of work/demo finds work/experiment)."""
    paths = [work / "experiment.json", work.parent / "experiment" / "experiment.json",
             work / "experiment" / "experiment.json"]
    return [Path(p) for p in dict.fromkeys(os.path.normpath(p) for p in paths)]


# ------------------------------------------------------------------------------ derived numbers

def source_funnel(stages: list[Stage]) -> dict[str, dict[str, int]]:
    """Documents of each source after each step (FUNNEL_STEPS), from the stages' ``by_source``.

    The tokenize stage's ``sources`` (docs per domain/source) stand in for its ``by_source``; what a
    stage counted but did not attribute goes to UNKNOWN_SOURCE, so the sources add up to the totals.
    Empty when no stage counted by source (runs from before ``by_source``)."""
    funnel: dict[str, Counter] = {}
    for s in stages:
        by_source = s.stats.get("by_source") or {}
        if not by_source and s.name == "tokenize":
            for entry in (s.stats.get("sources") or {}).values():
                funnel.setdefault(entry["source"], Counter())["tokenize"] += entry.get("docs", 0)
        for source, c in by_source.items():
            steps = funnel.setdefault(source, Counter())
            if s.name == "clean":
                steps["read"] += c.get("input", 0)
            steps[s.name] += c.get("output", 0)
        if by_source:  # e.g. a document the clean stage could not parse has no source yet
            unknown_in = s.stats["input"] - sum(c.get("input", 0) for c in by_source.values())
            unknown_out = s.stats.get("output", 0) - sum(c.get("output", 0) for c in by_source.values())
            if unknown_in or unknown_out:
                steps = funnel.setdefault(UNKNOWN_SOURCE, Counter())
                if s.name == "clean":
                    steps["read"] += unknown_in
                steps[s.name] += unknown_out
    if not any("read" in f or "filter" in f or "dedup" in f for f in funnel.values()):
        return {}
    return {k: dict(v) for k, v in funnel.items()}


def source_domains(run: Run) -> dict[str, str]:
    """source name -> domain | general, where the tokenize stats or the manifest say."""
    domains: dict[str, str] = {}
    for s in run.stages:
        for entry in (s.stats.get("sources") or {}).values():
            domains[entry["source"]] = entry.get("domain", "")
    for name, src in ((run.manifest.sources if run.manifest else None) or {}).items():
        domains.setdefault(name, src.get("domain", ""))
    return domains


EDGAR_NOT_TEXT = NOT_TEXT_REASON + ":"  # the clean stage's reason for a filing's graphics, archives, XBRL


def document_types(stages: list[Stage]) -> dict[str, dict[str, int]]:
    """Per document type (``core.documents.document_type``): documents the clean stage output, the
    filter judged and the filter kept, summed over the stage directories' ``by_type``."""
    types: dict[str, Counter] = {}
    for s in stages:
        for doc_type, c in (s.stats.get("by_type") or {}).items():
            t = types.setdefault(doc_type, Counter())
            if s.name == "clean":
                t["cleaned"] += c.get("output", 0)
            elif s.name == "filter":
                t["judged"] += c.get("input", 0)
                t["kept"] += c.get("input", 0) - c.get("removed", 0)
    return {k: dict(v) for k, v in types.items()}


def filing_documents(stages: list[Stage]) -> dict[str, dict[str, Any]]:
    """Per clean directory that read EDGAR filings: its text documents by type and what it set aside as not
    text (``edgar_not_text:<kind>``): the filing's path into the data."""
    out = {}
    for s in stages:
        if s.name != "clean":
            continue
        edgar = {t: c.get("output", 0) for t, c in (s.stats.get("by_type") or {}).items() if t.startswith("EDGAR ")}
        not_text = {r[len(EDGAR_NOT_TEXT):]: n for r, n in (s.stats.get("removed") or {}).items()
                    if r.startswith(EDGAR_NOT_TEXT)}
        if edgar or not_text:
            out[s.where] = {"text": edgar, "not_text": not_text,
                            "parts": (s.stats.get("counts") or {}).get("edgar_extra_parts", 0)}
    return out


ROUTED_TO = "routed_to_"  # the filter stage's per-source count of documents a route moved to another domain


def harvested(stages: list[Stage]) -> list[dict[str, Any]]:
    """Documents the filter stage routed to another domain, per (source, domain), and the tokens they
    hold after dedup and tokenization (the tokenize stage's shard of that domain and source)."""
    routed: Counter = Counter()
    for s in stages:
        if s.name == "filter":
            for source, c in (s.stats.get("by_source") or {}).items():
                for key, n in c.items():
                    if key.startswith(ROUTED_TO):
                        routed[(source, key[len(ROUTED_TO):])] += n
    tokens: Counter = Counter()
    docs: Counter = Counter()
    for s in stages:
        if s.name == "tokenize":
            for entry in (s.stats.get("sources") or {}).values():
                key = (entry.get("source"), entry.get("domain"))
                tokens[key] += entry.get("tokens", 0)
                docs[key] += entry.get("docs", 0)
    return [{"source": source, "to": to, "routed": n, "tokenized_docs": docs.get((source, to)),
             "tokens": tokens.get((source, to))} for (source, to), n in sorted(routed.items())]


def removals_by_stage(stages: list[Stage]) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for s in stages:
        if s.stats.get("removed"):
            out.setdefault(s.name, Counter()).update(s.stats["removed"])
    return out


def languages(stages: list[Stage]) -> Counter:
    """Documents per language code, as judged by the filter stage's language ID."""
    langs: Counter = Counter()
    for s in stages:
        if s.name == "filter":
            langs.update(s.stats.get("languages") or {})
    return langs


def _bin_start(label: str) -> int:
    """ "3-4" -> 3: the order of the histogram's bins."""
    start = re.match(r"\d+", label)
    return int(start.group()) if start else 10**9


def cluster_histogram(stages: list[Stage]) -> dict[str, int]:
    """Duplicate clusters per size bin ("2", "3-4", ...), bins in size order."""
    hist: Counter = Counter()
    for s in stages:
        if s.name == "dedup":
            hist.update(s.stats.get("cluster_size_histogram") or {})
    return dict(sorted(hist.items(), key=lambda kv: _bin_start(kv[0])))


def training_series(metrics: list[dict[str, Any]]) -> tuple[list[dict], dict[str, list[dict]]]:
    """Train records and eval records per split, one per step (the last one: a resumed run repeats)."""
    train: dict[int, dict] = {}
    evals: dict[str, dict[int, dict]] = {}
    for r in metrics:
        if r.get("kind") == "train" and "step" in r:
            train[r["step"]] = r
        elif r.get("kind") == "eval" and "step" in r and "split" in r:
            evals.setdefault(r["split"], {})[r["step"]] = r
    return ([train[k] for k in sorted(train)],
            {split: [e[k] for k in sorted(e)] for split, e in sorted(evals.items())})


# ---------------------------------------------------------------------------------------- HTML

CSS = """
:root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bad:#b91c1c;--ok:#15803d}
*{box-sizing:border-box}
body{margin:0;background:#f1f5f9;color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
  "Helvetica Neue",Arial,sans-serif}
header{background:#0f172a;color:#f8fafc}
.wrap{max-width:1120px;margin:0 auto;padding:0 28px}
header .wrap{padding-top:26px;padding-bottom:18px}
h1{margin:0;font-size:25px;font-weight:650}
.sub{color:#94a3b8;font-size:13px;margin-top:2px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px;margin:18px 0 14px}
.card{background:#1e293b;border-radius:8px;padding:10px 14px}
.card .k{font-size:11.5px;color:#94a3b8;text-transform:uppercase;letter-spacing:.05em}
.card .v{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .d{font-size:12px;color:#cbd5e1}
.card.bad .v{color:#fca5a5}
nav{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:13px}
nav a{color:#bfdbfe;text-decoration:none}
nav a:hover{text-decoration:underline}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 26px;margin:18px 0}
h2{margin:0 0 6px;font-size:19px}
h3{margin:18px 0 4px;font-size:14px;color:#334155}
p{margin:6px 0}
.lead{color:#475569;font-size:14px}
.missing{color:var(--muted);font-style:italic}
.problems{background:#fef2f2;border-color:#fecaca;color:var(--bad)}
figure{margin:10px 0 8px}
figure svg{display:block;width:100%;height:auto}
figcaption{color:var(--muted);font-size:13px;margin-top:2px}
table{border-collapse:collapse;width:100%;font-size:13.5px;margin:6px 0 4px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em;
  border-bottom:2px solid var(--line)}
tbody tr:hover{background:#f8fafc}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.yes{color:var(--ok);font-weight:600}
.no{color:var(--bad);font-weight:700}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:8px 0 28px}
"""

SECTIONS = (("funnel", "Document funnel"), ("removals", "Removals per rule"), ("languages", "Languages"),
            ("dedup", "Duplicates"), ("mixture", "Mixture"), ("training", "Training"),
            ("throughput", "Throughput"), ("experiment", "Experiment"), ("sweep", "Mixture search"))

esc = html.escape


def _not_run(what: str) -> str:
    return f'<p class="missing">Not run: {esc(what)}</p>'


def _figure_html(fig: Figure, sid: str, caption: str) -> str:
    return (f'<figure id="{sid}-figure">{svg(fig, sid)}'
            f'<figcaption id="{sid}-caption">{esc(caption)}</figcaption></figure>')


def _table(header: list[str], rows: list[list[str]], numeric: set[int], raw: set[int] = frozenset()) -> str:
    """Cells are plain text (escaped) unless their column is in ``raw``; ``numeric`` columns align right."""
    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c if i in raw else esc(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _source_label(name: str, domains: dict[str, str]) -> str:
    color = DOMAIN_COLOR.get(domains.get(name, ""), "#94a3b8")
    return f'<span class="dot" style="background:{color}"></span>{esc(name)}'


def _funnel_section(run: Run) -> str:
    if not run.stages:
        return _not_run("no stage stats.json (clean, filter, dedup, tokenize) under the work directory.")
    totals, funnel, domains = stage_totals(run.stages), source_funnel(run.stages), source_domains(run)
    parts = []
    if funnel:
        parts.append(_figure_html(funnel_figure(funnel, domains), "funnel",
                                  "Documents of each source left after each stage; the label gives what reached "
                                  "the last stage out of what was read. Source names are colored by domain "
                                  "(blue: domain, orange: general)."))
        steps = [(k, label) for k, label in FUNNEL_STEPS if any(k in f for f in funnel.values())]
        first, last = steps[0][0], steps[-1][0]
        rows = [[_source_label(s, domains), domains.get(s, ""), *[f"{funnel[s].get(k, 0):,}" for k, _ in steps],
                 pct(funnel[s].get(last, 0), funnel[s].get(first, 0))]
                for s in sorted(funnel, key=lambda s: (domains.get(s) != "domain", s))]
        parts += ["<h3>Per source</h3>",
                  _table(["source", "domain", *[label for _, label in steps], "kept"], rows,
                         numeric=set(range(2, len(steps) + 3)), raw={0})]
    else:
        parts.append(_figure_html(totals_funnel_figure(totals), "funnel",
                                  "Documents left after each stage, all sources together."))
        parts.append('<p class="missing">No per-source counts: these stats.json files predate by_source.</p>')
    rows = []
    for s in run.stages:
        top = sorted(s.stats.get("removed", {}).items(), key=lambda kv: -kv[1])[:3]
        reasons = ", ".join(f"{k} ({v:,})" for k, v in top) or "none"
        balanced = '<span class="yes">yes</span>' if s.stats.get("balanced") else '<span class="no">NO</span>'
        output = s.stats.get("output", 0)
        rows.append([esc(s.name), f'<span class="path">{esc(s.where)}</span>', f"{s.stats['input']:,}",
                     f"{output:,}", f"{s.removed:,}", pct(output, s.stats["input"]), balanced, esc(reasons)])
    parts.append(_types_html(run))
    parts += ["<h3>Stages</h3>",
              _table(["stage", "directory", "input", "output", "removed", "kept", "balanced", "top removal reasons"],
                     rows, numeric={2, 3, 4, 5}, raw=set(range(8))),
              '<p class="lead">Balanced: input = output + removed, every document accounted for.</p>']
    if run.elsewhere:
        parts.append(f'<p class="lead">Not counted (outside the run\'s stage directories): '
                     f'{len(run.elsewhere)} more stats.json under {esc(", ".join(sorted(run.elsewhere)[:4]))}'
                     f'{" and more" if len(run.elsewhere) > 4 else ""}.</p>')
    return "".join(parts)


def _types_html(run: Run) -> str:
    """Kept rates by document type and the EDGAR filings' path: what each filing gave, what the filter kept."""
    types, filings = document_types(run.stages), filing_documents(run.stages)
    if not types:
        return ""
    parts = ["<h3>Kept by document type</h3>"]
    for where, f in filings.items():
        text = ", ".join(f"{t[len('EDGAR '):]} ({n:,})" for t, n in sorted(f["text"].items()))
        not_text = ", ".join(f"{k} ({n:,})" for k, n in sorted(f["not_text"].items()))
        parts.append(f'<p class="lead">EDGAR filings in <span class="path">{esc(where)}</span>: '
                     f'{sum(f["text"].values()):,} text documents out of the clean stage ({esc(text) or "none"})'
                     + (f', {f["parts"]:,} of them extra parts of long filings' if f["parts"] else "")
                     + (f'; set aside as not text: {esc(not_text)}' if not_text else "") + ".</p>")
    rows = [[t, f"{c.get('cleaned', 0):,}", f"{c.get('judged', 0):,}", f"{c.get('kept', 0):,}",
             pct(c.get("kept", 0), c.get("judged", 0)) if c.get("judged") else "-"]
            for t, c in sorted(types.items(), key=lambda kv: (not kv[0].startswith("EDGAR"), kv[0]))]
    parts.append(_table(["document type", "cleaned", "judged by the filter", "kept", "kept rate"], rows,
                        numeric={1, 2, 3, 4}))
    parts.append('<p class="lead">Types: an EDGAR document is its filing document type (the 8-K itself, an '
                 'exhibit EX-99.1, ...); a web page is HTML the clean stage extracted; text is everything else.</p>')
    return "".join(parts)


def _removals_section(run: Run) -> str:
    if not run.stages:
        return _not_run("no stage stats.json under the work directory.")
    removals = removals_by_stage(run.stages)
    if not removals:
        return '<p class="lead">No stage removed any document.</p>'
    return _figure_html(removals_figure(removals, stage_totals(run.stages)), "removals",
                        "Documents removed by each rule (the reason code in stats.json), per stage. A document is "
                        "removed by the first rule it fails.")


def _languages_section(run: Run) -> str:
    langs = languages(run.stages)
    if not langs:
        return _not_run("no filter stats.json with per-language counts (languages).")
    return _figure_html(languages_figure(langs), "languages",
                        "Documents per detected language, counted by the filter stage before its rules "
                        "(removed documents included).")


def _line_dedup_html(stats: dict[str, Any]) -> str:
    """What ``--line-dedup`` removed and the most repeated lines; nothing when it was off."""
    if "line_dedup" not in stats:
        return ""
    counts, emptied = stats.get("counts") or {}, (stats.get("removed") or {}).get("empty_after_line_dedup", 0)
    lead = (f"<p>Line dedup removed {counts.get('lines_removed', 0):,} repeated lines "
            f"({counts.get('repeated_lines', 0):,} distinct, each kept in one document) from "
            f"{counts.get('documents_with_lines_removed', 0) + emptied:,} documents; {emptied:,} of them, left "
            "empty, were removed.</p>")
    rows = [[t["text"], f"{t['documents']:,}", t["source"]] for t in (stats.get("top_repeated_lines") or [])[:5]]
    return lead + (_table(["most repeated lines", "documents", "kept in"], rows, {1}) if rows else "")


def _dedup_section(run: Run) -> str:
    dedup = [s for s in run.stages if s.name == "dedup"]
    hist = cluster_histogram(run.stages)
    if not dedup:
        return _not_run("no dedup stats.json.")
    lines = "".join(_line_dedup_html(s.stats) for s in dedup)
    if not hist:
        return '<p class="lead">No duplicate clusters found.</p>' + lines
    removed = removals_by_stage(dedup).get("dedup", Counter())
    return _figure_html(dedup_figure(hist, removed), "dedup",
                        "Groups of exact or near-duplicate documents (MinHash LSH, verified) by size; one document "
                        "of each group is kept.") + lines


def _mixture_section(run: Run) -> str:
    m = run.manifest
    if m is None:
        return _not_run("no mixer manifest.json (mix/, or the run config's mixture:).")
    sources = m.sources or {}
    domains = {k: v.get("domain", "") for k, v in sources.items()}
    target = f"{m.target_tokens or 0:,} tokens" + (
        f" ({m.params:,} parameters x {m.tokens_per_param} tokens per parameter)" if m.params else "")
    parts = [f'<p class="lead">Target {esc(target)}; realized {m.train_tokens or 0:,} training tokens, '
             f'{m.domain_tokens or 0:,} domain and {m.general_tokens or 0:,} general.</p>',
             _figure_html(mixture_figure(m), "mixture",
                          "Top: the recipe's domain share against the realized share of training tokens. Bottom: "
                          "tokens sampled from each source (solid) against its unique tokens (hatched), and how many "
                          "times the training stream passes over each source, with its cap (max_epochs).")]
    rows = [[_source_label(name, domains), esc(s.get("domain", "")), f"{s.get('available_tokens', 0):,}",
             f"{s.get('sampled_tokens', 0):,}", number(s.get("weight"), ".3f"), number(s.get("epochs"), ".2f"),
             number(s.get("max_epochs"), ".1f")]
            for name, s in sorted(sources.items(), key=lambda kv: (kv[1].get("domain") != "domain", kv[0]))]
    parts.append(_table(["source", "domain", "available tokens", "sampled tokens", "weight in domain", "epochs",
                         "max epochs"], rows, numeric={2, 3, 4, 5, 6}, raw=set(range(7))))
    moved = harvested(run.stages)
    if moved:
        rows = [[esc(h["source"]), esc(h["to"]), f"{h['routed']:,}", number(h["tokenized_docs"], ","),
                 number(h["tokens"], ",")] for h in moved]
        total = sum(h["tokens"] or 0 for h in moved)
        parts += ["<h3>Harvested</h3>",
                  f'<p class="lead">Documents of a source that the filter stage\'s domain classifier moved to the '
                  f'other side (<code>route:</code> in the filter config; <code>meta.routed_by</code> on each): '
                  f'{total:,} tokens moved in all. The mixer counts them with the side they moved to (their rows '
                  f'above are the sources named &ldquo;(routed)&rdquo;).</p>',
                  _table(["source", "moved to", "documents routed", "after dedup", "tokens"], rows,
                         numeric={2, 3, 4}, raw={0, 1})]
    splits = m.splits or {}
    if splits:
        bpt = m.val_bytes_per_token or {}
        rows = [[name, f"{sp.get('tokens', 0):,}", f"{sp.get('docs', 0):,}", f"{sp.get('bytes', 0):,}",
                 number(bpt.get(name), ".2f")] for name, sp in splits.items()]
        parts += ["<h3>Splits</h3>",
                  _table(["split", "tokens", "documents", "bytes", "bytes per token"], rows, numeric={1, 2, 3, 4})]
    if m.shortfall:
        short = m.shortfall
        parts.append(f'<p class="no">Shortfall: {esc(str(short.get("message") or short))}</p>')
    parts += [f'<p class="lead">Warning: {esc(w)}</p>' for w in m.warnings or []]
    return "".join(parts)


def _training_section(run: Run) -> str:
    train, evals = training_series(run.metrics)
    if not train and not evals:
        return _not_run("no trainer metrics.jsonl with train or eval records.")
    start = next((r for r in run.metrics if r.get("kind") == "start"), {})
    parts = []
    if start:
        params = (start.get("params") or {}).get("total")
        setup = (f"{start.get('strategy', '')} on {start.get('rank_count', '?')} x "
                 f"{start.get('device_name') or start.get('device', '')}, {start.get('dtype', '')}"
                 + (f", {params:,} parameters" if params else "")
                 + (f", {start['total_steps']:,} steps" if start.get("total_steps") else ""))
        parts.append(f'<p class="lead">{esc(setup)}.</p>')
    parts.append(_figure_html(training_figure(train, evals), "training",
                              "Left: training loss (mean over the logging window) and validation loss on each held-out "
                              "set. Right: validation perplexity" + _evals_note(evals) + "."))
    if evals:
        rows = [[split, f"{r['step']:,}", number(r.get("loss"), ".3f"), number(r.get("ppl"), ",.1f"),
                 number(r.get("bpb"), ".3f")] for split, recs in evals.items() for r in recs[-1:]]
        parts += ["<h3>Last evaluation</h3>",
                  _table(["split", "step", "loss (nats/token)", "perplexity", "bits per byte"], rows,
                         numeric={1, 2, 3, 4})]
    return "".join(parts)


def _evals_note(evals: dict[str, list[dict]]) -> str:
    """``" at its 2 evaluations (steps 50 and 100)"``: how many points the validation curves have, and where."""
    steps = sorted({r["step"] for recs in evals.values() for r in recs if isinstance(r.get("step"), int)})
    if not steps:
        return ""
    where = ", ".join(f"{s:,}" for s in steps[:-1]) + (" and " if len(steps) > 1 else "") + f"{steps[-1]:,}"
    if len(steps) > 6:
        where = f"{steps[0]:,} to {steps[-1]:,}"
    s = "" if len(steps) == 1 else "s"
    return f" at the {len(steps)} evaluation{s} (step{s} {where})"


def _throughput_section(run: Run) -> str:
    train, _ = training_series(run.metrics)
    if not any(isinstance(r.get("tokens_per_s"), (int, float)) for r in train):
        return _not_run("no train records with tokens_per_s in metrics.jsonl.")
    tps = [r["tokens_per_s"] for r in train if isinstance(r.get("tokens_per_s"), (int, float))]
    mfu = [r["mfu"] for r in train if isinstance(r.get("mfu"), (int, float))]
    lead = f"Median {statistics.median(tps):,.0f} tokens/s over {len(tps)} logging windows"
    lead += f", median MFU {100 * statistics.median(mfu):.1f}%." if mfu else "; MFU not measured (no known GPU peak)."
    return (f'<p class="lead">{esc(lead)}</p>'
            + _figure_html(throughput_figure(train), "throughput",
                           "Training tokens per second over all ranks in each logging window (evaluation and "
                           "checkpoint time excluded)" + ("; dashed: model FLOPs utilization." if mfu else ".")))


def experiment_summary(results: dict[str, Any]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """arm -> split -> metric (ppl, bpb, loss) -> final value of each seed."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in results.get("runs") or []:
        for split, values in (r.get("final") or {}).items():
            for metric, v in (values or {}).items():
                if isinstance(v, (int, float)):
                    out.setdefault(r["arm"], {}).setdefault(split, {}).setdefault(metric, []).append(v)
    return out


def _spread(values: list[float] | None, fmt: str) -> str:
    if not values:
        return "\u2013"  # not recorded
    mean = format(statistics.fmean(values), fmt)
    return mean if len(values) == 1 else f"{mean} ({format(min(values), fmt)}\u2013{format(max(values), fmt)})"


def _experiment_section(run: Run) -> str:
    results = run.experiment
    if not isinstance(results, dict) or not results.get("runs"):
        return _not_run("no experiment.json in the work directory or in experiment/ beside it "
                        "(make experiment writes work/experiment/experiment.json).") + _continued_part(run)
    summary = experiment_summary(results)
    arms = list(dict.fromkeys(r["arm"] for r in results["runs"]))
    seeds = results.get("seeds") or sorted({r.get("seed") for r in results["runs"]})
    lead = (f"{len(arms)} arms x {len(seeds)} seeds ({', '.join(str(s) for s in seeds)}), "
            f"{results['budget_tokens']:,} training tokens per run." if results.get("budget_tokens") else
            f"{len(arms)} arms x {len(seeds)} seeds.")
    rows = []
    for i, arm in enumerate(arms):
        s = summary.get(arm, {})
        n = sum(1 for r in results["runs"] if r["arm"] == arm)
        rows.append([f'<span class="dot" style="background:{arm_color(arm, i)}"></span>{esc(arm)}', str(n),
                     *[_spread(s.get(split, {}).get(metric), fmt) for split in ("val_domain", "val_general")
                       for metric, fmt in (("ppl", ",.1f"), ("bpb", ".3f"))]])
    if run.experiment_path is not None and run.experiment_path.parent != Path(os.path.normpath(run.work)):
        lead += f" From {os.path.relpath(run.experiment_path)}."
    return (f'<p class="lead">{esc(lead)}</p>'
            + _figure_html(experiment_figure(results), "experiment",
                           "Validation loss over training steps for each arm on the domain and general held-out "
                           "sets: thick lines are the mean over seeds, thin lines single seeds.")
            + "<h3>Final validation: mean over seeds (min\u2013max)</h3>"
            + _table(["arm", "seeds", "val_domain perplexity", "val_domain bits/byte", "val_general perplexity",
                      "val_general bits/byte"], rows, numeric={1, 2, 3, 4, 5}, raw={0})
            + _continued_part(run))


def _continued_part(run: Run) -> str:
    """"Continued pretraining" (make experiment-continue): the base continued with each general-replay share
    and a from-scratch model at the same tokens; finance gain and general forgetting against each seed's base."""
    results = run.continued
    if not isinstance(results, dict) or not results.get("runs"):
        return ""
    rel, arms = continue_rel(results), results.get("arms") or {}
    summary = experiment_summary(results)
    rows = [["base (general only)", "\u2013", str(results.get("base_steps", "\u2013")),
             _spread(summary.get("base", {}).get("val_domain", {}).get("ppl"), ",.1f"),
             _spread(summary.get("base", {}).get("val_general", {}).get("ppl"), ",.1f"), "\u2013", "\u2013"]]
    for arm, values in rel.items():
        info = arms.get(arm) or {}
        what = "continued" if info.get("kind") == "continue" else "from scratch"
        rows.append([f"{arm} ({what})", f"{100 * info.get('replay', 0):.0f}%", str(results.get("steps", "\u2013")),
                     _spread(summary.get(arm, {}).get("val_domain", {}).get("ppl"), ",.1f"),
                     _spread(summary.get(arm, {}).get("val_general", {}).get("ppl"), ",.1f"),
                     _spread([100 * v for v in values["gain"]], "+.1f") + "%",
                     _spread([100 * v for v in values["forgetting"]], "+.1f") + "%"])
    lead = (f"The experiment's general-only model ({results.get('base_steps')} steps) exported and continued for "
            f"{results.get('steps')} steps ({(results.get('budget_tokens') or 0):,} tokens; schedule "
            f"{(results.get('schedule') or {}).get('schedule', '?')}, re-warmed) with 0-49% general replay, and a "
            f"model trained from scratch on the 51/49 blend for the same steps; {len(results.get('seeds') or [])} "
            "seeds. Gain and forgetting are relative to the base of the same seed.")
    if run.continued_path is not None:
        lead += f" From {os.path.relpath(run.continued_path)}."
    return ("<h3>Continued pretraining</h3>" + f'<p class="lead">{esc(lead)}</p>'
            + _figure_html(continue_figure(results), "continued",
                           "Finance perplexity below the base (gain) against general perplexity above it "
                           "(forgetting), per arm: means with the range over seeds, and single seeds.")
            + _table(["arm", "general replay", "steps", "val_domain perplexity", "val_general perplexity",
                      "domain gain vs base", "general forgetting vs base"], rows, numeric={1, 2, 3, 4, 5, 6}))


def _sweep_section(run: Run) -> str:
    """The mixture search (python -m mixtures.sweep): proxies, the fitted front, the recommendation and its
    confirmation against 51/49, from WORK/sweep/sweep.json."""
    r = run.sweep
    if not isinstance(r, dict) or not r.get("proxies"):
        return _not_run("no sweep/sweep.json in the work directory (python -m mixtures.sweep --config RUN_CONFIG, "
                        "make sweep, writes it).")
    from mixtures.sweep import SPLITS, sweep_figure

    fit, rec, conf = r["fit"], r.get("recommendation"), r.get("confirmation")
    ho = fit["held_out"]
    lead = (f"{len(r['proxies'])} proxies ({r['proxy']['params']:,} parameters, {r['proxy']['steps']} steps), domain "
            f"shares {r['sweep']['domain_shares']}; law {fit['chosen']} (chosen by leave-one-out error); on "
            f"{len(ho['val_domain']['measured'])} proxies it did not see, val_domain error "
            f"{ho['val_domain']['mae']:.4f} nats (Spearman {number(ho['val_domain']['spearman'], '.2f')}), val_general "
            f"{ho['val_general']['mae']:.4f} (Spearman {number(ho['val_general']['spearman'], '.2f')}). Cost "
            f"{100 * r['cost']['fraction']:.0f}% of one target run's 6ND; wall {r['wall_s'] / 60:.1f} min.")
    if rec:
        lead += (f" Recommended: domain share {rec['domain_share']:.3f} (predicted val_domain "
                 f"{rec['pred']['val_domain']:.3f}, val_general {rec['pred']['val_general']:.3f}; general-only "
                 f"proxies {r['reference_general']:.3f}, tolerance {100 * r['general_tolerance']:.0f}%): "
                 f"{r.get('recipe_path', '')}.")
    body = (f'<p class="lead">{esc(lead)}</p>'
            + _figure_html(sweep_figure(r), "sweep", "Final held-out losses of the proxies (colour: domain share; "
                           "diamonds: not fitted), the fitted law's Pareto front, the general-loss tolerance and "
                           "the recommendation."))
    if conf:
        v = conf["verdict"]
        rows = [[esc(run_["arm"]), str(run_["seed"]), f"{run_['domain_share']:.3f}",
                 *[f"{run_['final'][s]:.4f}" for s in SPLITS]] for run_ in conf["runs"]]
        rows += [[f"mean ({esc(s)})", "", "", f"recommended {v[s]['recommended']:.4f}",
                  f"51/49 {v[s]['51_49']:.4f}, spread {v[s]['spread']:.4f}"] for s in SPLITS]
        body += ("<h3>Confirmation at the target's size</h3>"
                 + _table(["arm", "seed", "domain share", "val_domain loss", "val_general loss"], rows,
                          numeric={1, 2, 3, 4}, raw={0})
                 + f'<p class="{"yes" if v["beats"] else "no"}">'
                 + esc("The recommendation beats 51/49." if v["beats"] else "The recommendation does not beat 51/49.")
                 + "</p>")
    return body


def _cards(run: Run) -> list[tuple[str, str, str, bool]]:
    """The run's key numbers: (label, value, detail, is_bad)."""
    cards = []
    totals = stage_totals(run.stages)
    if totals:
        present = [s for s in STAGE_ORDER if s in totals] or list(totals)
        first, last = totals[present[0]]["input"], totals[present[-1]]["output"]
        cards.append(("documents kept", f"{last:,}", f"of {first:,} read ({pct(last, first)})", False))
        unbalanced = [s.where for s in run.stages if not s.stats.get("balanced")]
        cards.append(("accounting", "unbalanced" if unbalanced else "balanced",
                      ", ".join(unbalanced) if unbalanced else f"{len(run.stages)} stage outputs", bool(unbalanced)))
    for s in run.stages:
        if s.name == "tokenize" and (s.stats.get("counts") or {}).get("tokens"):
            cards.append(("tokens", human(s.stats["counts"]["tokens"]), "after tokenization", False))
            break
    moved = harvested(run.stages)
    if moved:
        cards.append(("harvested", human(sum(h["tokens"] or 0 for h in moved)) + " tokens",
                      f"{sum(h['routed'] for h in moved):,} documents routed to "
                      + "/".join(sorted({h['to'] for h in moved})), False))
    if run.manifest is not None:
        m = run.manifest
        cards.append(("training tokens", human(m.train_tokens or 0), f"target {human(m.target_tokens or 0)}",
                      bool(m.shortfall)))
        cards.append(("domain share", f"{100 * (m.domain_share_actual or 0):.1f}%",
                      f"target {100 * (m.domain_share_target or 0):.1f}%", False))
    train, evals = training_series(run.metrics)
    start = next((r for r in run.metrics if r.get("kind") == "start"), {})
    if train:
        params = (start.get("params") or {}).get("total")
        cards.append(("steps", f"{train[-1]['step']:,}", f"{human(params)} parameters" if params else
                      f"loss {train[-1]['loss']:.3f}", False))
    for split, recs in evals.items():
        r = recs[-1]
        cards.append((f"{split} ppl", number(r.get("ppl"), ",.1f"), f"bpb {number(r.get('bpb'), '.3f')} at step "
                      f"{r['step']:,}", False))
    return cards


def _section_body(build: Callable[[Run], str], run: Run) -> str:
    try:
        return build(run)
    except Exception as exc:  # a malformed input costs its own section, not the whole report
        return f'<p class="no">Could not draw this section: {esc(type(exc).__name__)}: {esc(str(exc))}</p>'


def build_html(run: Run) -> str:
    builders = {"funnel": _funnel_section, "removals": _removals_section, "languages": _languages_section,
                "dedup": _dedup_section, "mixture": _mixture_section, "training": _training_section,
                "throughput": _throughput_section, "experiment": _experiment_section, "sweep": _sweep_section}
    bodies = {sid: _section_body(build, run) for sid, build in builders.items()}
    cards = "".join(f'<div class="card{" bad" if bad else ""}"><div class="k">{esc(k)}</div>'
                    f'<div class="v">{esc(v)}</div><div class="d">{esc(d)}</div></div>'
                    for k, v, d, bad in _cards(run))
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title in SECTIONS)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    problems = (f'<section class="problems">{"".join(f"<p>{esc(p)}</p>" for p in run.problems)}</section>'
                if run.problems else "")
    sections = "".join(f'<section id="{sid}"><h2>{esc(title)}</h2>{bodies[sid]}</section>' for sid, title in SECTIONS)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>Run report: {esc(str(run.work))}</title><style>{CSS}</style></head><body>"
            f'<header id="summary"><div class="wrap"><h1>Run report</h1>'
            f'<div class="sub">{esc(str(run.work.resolve()))} &middot; generated {when}</div>'
            f'<div class="cards">{cards}</div><nav>{nav}</nav></div></header>'
            f'<main class="wrap">{problems}{sections}</main>'
            "<footer>domainlm &middot; python -m run.report</footer></body></html>\n")


# ------------------------------------------------------------------------------------ Markdown

def build_markdown(run: Run, html_path: Path | None = None) -> str:
    """A short text summary: the key numbers and the stage table."""
    lines = [f"# Run report: {run.work}", ""]
    lines += [f"{k}: {v}, {d}" for k, v, d, _ in _cards(run)] or ["No stage, mixer or trainer output found."]
    if run.stages:
        lines += ["", "| stage | directory | input | output | removed | balanced |", "|---|---|---:|---:|---:|---|"]
        lines += [f"| {s.name} | {s.where} | {s.stats['input']:,} | {s.stats.get('output', 0):,} | {s.removed:,} | "
                  f"{'yes' if s.stats.get('balanced') else 'NO'} |" for s in run.stages]
    summary = experiment_summary(run.experiment) if isinstance(run.experiment, dict) else {}
    if summary:
        lines += ["", "Experiment, final val_domain perplexity (mean over seeds): "
                  + "; ".join(f"{arm} {_spread(s.get('val_domain', {}).get('ppl'), ',.1f')}"
                              for arm, s in summary.items())]
    if html_path is not None:
        lines += ["", f"Figures and every table: {html_path}"]
    return "\n".join(lines) + "\n"


def write_report(work: Path, output: Path | None = None) -> Path:
    """Write ``report.html`` (default WORK/report.html) and ``report.md`` beside it; return the HTML path."""
    run = load_run(work)
    out = output or work / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_html(run), encoding="utf-8")
    out.with_suffix(".md").write_text(build_markdown(run, out), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m run.report", description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="work directory holding the stage outputs")
    parser.add_argument("--output", help="HTML report path (default WORK/report.html; report.md beside it)")
    parser.add_argument("--quiet", action="store_true", help="print only where the report is, not its summary")
    args = parser.parse_args(argv)
    work = Path(args.work)
    if not work.is_dir():
        fail(f"work directory {work} does not exist")
    out = write_report(work, Path(args.output).with_suffix(".html") if args.output else None)
    if not args.quiet:
        print(out.with_suffix(".md").read_text(encoding="utf-8"))
    print(f"report: {out} (summary: {out.with_suffix('.md')})")
    return out


if __name__ == "__main__":
    main()
