"""The filter stage: cleaned documents -> the ones good enough to pretrain on.

    python -m pipelines.filter --input work/clean/general --output work/filter/general \
        [--config configs/filter/default.yaml] [--annotate-only] [Beam options]
    python -m pipelines.filter --sources sources.yaml [Beam options]   # several sources, one Beam job

A filter config describes one source's rules (per source: one ``--config`` each, in a ``--sources`` entry).

Per document (``filters/rules.py``, Beam-free): language ID with fastText lid.176 (a keep list),
Gopher repetition, Gopher quality, C4 (line modifier + document rules), FineWeb,
then fastText classifiers (a ``threshold``, or a ``top_fraction`` of the corpus: the cut-off
score is a corpus-wide quantile computed in the pipeline from a global score histogram).
With ``decontaminate:`` in the config, a document sharing a word 13-gram with an evaluation set is
removed as ``contaminated`` (``filters/decontaminate.py``; the index is built once here and reaches
the workers as a side input). With ``route:``, a kept document of another domain that a fastText
domain classifier scores above its threshold moves to that domain (``domain`` column changed,
``meta.routed_by`` recorded, counted as ``routed``: still output, so the balance is unchanged).
Outputs: ``OUTPUT/train-*.parquet`` (the input columns + ``lang``, ``lang_score`` and one
``<name>_score`` float column per classifier), ``OUTPUT/removed/`` (id, source, reason =
the first failing rule, a text snippet, lang, scores), ``OUTPUT/rejected/`` (unreadable
input) and ``OUTPUT/stats.json`` (one counter per reason; input == output + removed).

``--annotate-only`` keeps every document and adds a ``filter_reasons`` column (JSON list of
every failing rule, all rules evaluated), with the counts in stats.json under ``counts``
(``would_remove/<first reason>`` and ``fails/<reason>``): what a user needs to tune thresholds.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from core.documents import document_type, meta_json, schema_with, stage_row_problem
from core.workdir import DOCS_GLOB
from filters.rules import CONTAMINATED, DocumentFilter, FilterConfig, build_contamination_index
from pipelines.io import (
    InputError,
    Rejected,
    iter_file_records,
    prepare_output_dir,
    snippet,
    write_json,
)
from pipelines.options import (
    add_sources_flag,
    fail,
    parse,
    parse_sources,
    read_sources,
    run_stage,
    sources_argv,
    stage_inputs,
    stage_parser,
    stage_schema,
    writes_output,
)
from pipelines.options import run_sources as options_run_sources
from pipelines.splits import (
    JsonlPart,
    ParquetParts,
    Progress,
    ReadSplits,
    SplitCounts,
    accepted,
    auto_split_mb,
    describe_inputs,
    read_split,
    reject_bad_rows,
)
from pipelines.stats import LANG_KEY, WriteStats

STAGE = "filter"
REMOVED = "removed"
SNIPPET_CHARS = 300  # characters of a removed document kept in removed/ for the report
HISTOGRAM_BINS = 10_000  # resolution of the top-fraction quantile (scores are in [0, 1])
REASONS_COLUMN = "filter_reasons"
SCORED = "_scored"  # kept documents waiting for the top-fraction cut (removed after the run)
log = logging.getLogger(__name__)


def as_document(record: dict[str, Any], path: str, line: int) -> dict[str, Any] | Rejected:
    """A row of a previous stage's Parquet; rows without string text cannot be judged."""
    problem = stage_row_problem(record)
    if problem:
        return Rejected(problem, path, line, snippet(json.dumps(record, default=str)[:2048]))
    return record


class FilterSplit(beam.DoFn):
    """One input split through a :class:`DocumentFilter` (models loaded once per worker in ``setup``).

    Writes the kept documents (annotated with lang, scores and, in annotate mode, their
    failures) to ``train-<split>-*.parquet``, removal records to ``removed/``, unreadable rows
    to ``rejected/``. With top-fraction classifiers the kept documents go to ``_scored/``
    instead and the split also yields, on the ``scores`` output, one histogram of their
    scores per classifier and, on ``parts``, ``(split, files it wrote)``: the cut is applied by
    :class:`CutSplit` once the corpus-wide threshold is known.
    """

    def __init__(self, config: dict[str, Any], annotate: bool, output: str, schema: pa.Schema, part_mb: float,
                 snippet_chars: int = SNIPPET_CHARS, namespace: str = STAGE):
        self.config, self.annotate, self.output, self.schema = config, annotate, output, schema
        self.part_mb, self.snippet_chars = part_mb, snippet_chars
        self.namespace = namespace  # of the Beam counters: the stage, or filter/<source> in a job of several
        self.filter: DocumentFilter | None = None

    def setup(self):
        self.filter = DocumentFilter(FilterConfig.from_dict(self.config))
        self.top = [c for c in self.filter.config.classifiers if c.top_fraction is not None]
        self.progress = Progress(STAGE)

    def judge(self, doc: dict[str, Any]) -> tuple[dict[str, Any], str | None, list[str]]:
        verdict = self.filter.judge(doc["text"], doc.get("source") or "", self.annotate, doc.get("domain") or "")
        out = {
            **doc,
            "lang": verdict.lang or None,
            "lang_score": None if math.isnan(verdict.lang_score) else round(verdict.lang_score, 4),
        }
        for c in (*self.filter.config.classifiers, *self.filter.config.route):
            out[c.column] = verdict.scores.get(c.column)
        if not self.annotate and verdict.reason is None:
            out["text"] = verdict.text
        if verdict.contaminated_by is not None:
            out[CONTAMINATED] = verdict.contaminated_by
        if verdict.routed_by is not None:
            out = routed(out, verdict.routed_by.name, verdict.routed_by.to, verdict.scores[verdict.routed_by.column])
        return out, verdict.reason, list(verdict.failed)

    def process(self, split, contamination=None):
        if contamination is not None and self.filter.contamination is None:
            self.filter.contamination = contamination  # the side input: the same index for every split
        counts = SplitCounts(self.namespace)
        removed = JsonlPart(self.output, split, REMOVED)
        rejected = JsonlPart(self.output, split, "rejected")
        kept = ParquetParts(self.output, split, self.schema, self.part_mb, folder=SCORED if self.top else "",
                            on_bad_row=reject_bad_rows(split, counts, rejected))
        histograms = {c.name: np.zeros(HISTOGRAM_BINS, dtype=np.int64) for c in self.top}

        def remove(doc: dict[str, Any], reason: str) -> None:
            removed.write(removal_record(doc, reason, self.snippet_chars))
            counts.add("removed/" + reason)
            counts.add_source(doc.get("source"), "removed/" + reason)
            counts.add_type(document_type(doc.get("meta")), "removed")
            if reason == CONTAMINATED:
                counts.add(f"{CONTAMINATED}/{doc[CONTAMINATED].eval_set}")

        for line, doc in accepted(read_split(split, as_document, STAGE), counts, rejected):
            counts.add_type(document_type(doc.get("meta")), "input")
            try:
                out, reason, failed = self.judge(doc)
            except Exception as exc:  # one document the rules cannot judge is removed alone
                remove(doc, f"record_error:{type(exc).__name__}")
                continue
            counts.add(LANG_KEY + (out.get("lang") or "unknown"))
            match = out.pop(CONTAMINATED, None)
            if self.annotate:
                out[REASONS_COLUMN] = json.dumps(failed)
                for key in failure_keys(failed):
                    counts.add(key)
            elif reason is not None:
                remove({**out, CONTAMINATED: match} if match else out, reason)
                continue
            for c in self.top:
                score = out.get(c.column)
                if score is not None and not (self.annotate and failed):
                    histograms[c.name][min(int(score * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
            kept.write(out, line)
            if not self.top:
                count_routed(counts, out)
        written = kept.close()
        removed.close()
        rejected.close()
        self.progress.done(split, counts.counts["input"])
        if self.top:
            for name, hist in histograms.items():
                yield beam.pvalue.TaggedOutput("scores", (name, hist))
            if kept.files:
                yield beam.pvalue.TaggedOutput("parts", (split, kept.files))
        else:
            counts.add("output", written)
            for source, n in kept.by_source.items():
                counts.add_source(source, "output", n)
        yield from counts.pairs()


class CutSplit(beam.DoFn):
    """One split's ``_scored/`` parts -> its final parts, without the documents under a top-fraction
    classifier's corpus-wide threshold (in annotate mode: with that failure added). Written through
    the same ``ParquetParts`` / ``JsonlPart`` as every stage (removals: ``removed/part-<split>-000-cut.jsonl``)."""

    def __init__(self, classifiers: list[dict[str, Any]], annotate: bool, output: str, schema: pa.Schema,
                 part_mb: float, snippet_chars: int = SNIPPET_CHARS, namespace: str = STAGE):
        self.classifiers, self.annotate, self.output, self.schema = classifiers, annotate, output, schema
        self.part_mb, self.snippet_chars, self.namespace = part_mb, snippet_chars, namespace

    def process(self, item, thresholds: dict[str, float]):
        split, scored = item
        counts = SplitCounts(self.namespace)
        kept = ParquetParts(self.output, split, self.schema, self.part_mb)
        removed = JsonlPart(self.output, split, REMOVED, suffix="-cut")
        for path in scored:
            for _, doc in iter_file_records(path):
                if isinstance(doc, Rejected):  # our own file of this run: retry the bundle, never drop it
                    raise RuntimeError(f"cannot read {path}: {doc.raw}")
                failed = [c["reason"] for c in self.classifiers
                          if doc.get(c["column"]) is not None and doc[c["column"]] < thresholds[c["name"]]]
                if failed and not self.annotate:
                    removed.write(removal_record(doc, failed[0], self.snippet_chars))
                    counts.add("removed/" + failed[0])
                    counts.add_source(doc.get("source"), "removed/" + failed[0])
                    counts.add_type(document_type(doc.get("meta")), "removed")
                    continue
                if failed:
                    before = json.loads(doc[REASONS_COLUMN])
                    doc = {**doc, REASONS_COLUMN: json.dumps(before + failed)}
                    for key in failure_keys(before + failed):
                        counts.add(key)
                    for key in failure_keys(before):
                        counts.add(key, -1)
                kept.write(doc)
                count_routed(counts, doc)
        counts.add("output", kept.close())
        for source, n in kept.by_source.items():
            counts.add_source(source, "output", n)
        removed.close()
        yield from counts.pairs()


ROUTED = "routed"  # a count, not a removal: the document is output, with another domain


def routed(doc: dict[str, Any], route: str, to: str, score: float) -> dict[str, Any]:
    """The document moved to domain ``to`` by a route: its source stays, ``meta.routed_by`` says
    which classifier moved it, from which domain and with what score."""
    meta = json.loads(meta_json(doc.get("meta")))
    meta["routed_by"] = {"route": route, "from": doc.get("domain"), "score": round(score, 4)}
    return {**doc, "domain": to, "meta": meta_json(meta)}


def count_routed(counts: SplitCounts, doc: dict[str, Any]) -> None:
    """Count an output document that a route moved: ``routed``, ``routed/<route>`` and, per source,
    ``routed_to_<domain>`` (what the report and the dataset card show as harvested)."""
    meta = doc.get("meta")
    if not meta or '"routed_by"' not in meta:
        return
    by = json.loads(meta).get("routed_by")
    if isinstance(by, dict):
        counts.add(ROUTED)
        counts.add(f"{ROUTED}/{by.get('route')}")
        counts.add_source(doc.get("source"), f"{ROUTED}_to_{doc.get('domain')}")


def removal_record(doc: dict[str, Any], reason: str, snippet_chars: int = SNIPPET_CHARS) -> dict[str, Any]:
    record = {
        "id": doc["id"],
        "source": doc.get("source"),
        "domain": doc.get("domain"),
        "reason": reason,
        "snippet": doc["text"][:snippet_chars],
        "chars": len(doc["text"]),
        "lang": doc.get("lang"),
        "lang_score": doc.get("lang_score"),
    }
    record.update({k: v for k, v in doc.items() if k.endswith("_score") and k != "lang_score"})
    if doc.get(CONTAMINATED) is not None:  # which evaluation set, and the shared words
        record["eval_set"], record["matched"] = doc[CONTAMINATED].eval_set, doc[CONTAMINATED].words
    return record


def removed_key(rec: dict[str, Any]) -> str:
    return f"{rec['source']}\x00{rec['id']}"


# ------------------------------------------------------------------ top-fraction classifiers


class ScoreHistogram(beam.CombineFn):
    """Global histogram of scores in [0, 1] (HISTOGRAM_BINS bins): mergeable, small, exact
    counts, so the quantile is the same on any runner and worker count."""

    def create_accumulator(self):
        return np.zeros(HISTOGRAM_BINS, dtype=np.int64)

    def add_input(self, acc, score):
        acc[min(int(score * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
        return acc

    def merge_accumulators(self, accs):
        return sum(accs, np.zeros(HISTOGRAM_BINS, dtype=np.int64))

    def extract_output(self, acc):
        return acc


def top_fraction_threshold(histogram: np.ndarray, fraction: float) -> float:
    """Lowest score to keep so that about ``fraction`` of the documents (at least one) are kept:
    the lower edge of the bin where the count from the top reaches ``fraction * total``."""
    total = int(histogram.sum())
    if total == 0:
        return 0.0
    want = max(1, math.ceil(fraction * total))
    from_top = np.cumsum(histogram[::-1])
    top_bins = int(np.searchsorted(from_top, want)) + 1
    return (HISTOGRAM_BINS - top_bins) / HISTOGRAM_BINS


# ------------------------------------------------------------------------------ the stage


def output_schema(base: pa.Schema, config: FilterConfig, annotate: bool) -> pa.Schema:
    extra = [("lang", pa.string()), ("lang_score", pa.float64())]
    extra += [(c.column, pa.float64()) for c in (*config.classifiers, *config.route)]
    if annotate:
        extra.append((REASONS_COLUMN, pa.string()))
    return schema_with(*extra, base=base)


def build_parser():
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--input",
        action="append",
        required=True,
        help="a previous stage's directory (its train-*.parquet) or Parquet glob; repeatable",
    )
    parser.add_argument(
        "--config",
        help="filter config YAML (default: the literature defaults, as in configs/filter/default.yaml)",
    )
    from filters.quality import BUNDLED

    parser.add_argument(
        "--route",
        action="append",
        default=[],
        choices=sorted(BUNDLED),
        help="route documents of other domains that the bundled classifier scores at or above its shipped "
        "threshold to the domain side (same as `route: finance` in the config; repeatable)",
    )
    parser.add_argument(
        "--annotate-only",
        action="store_true",
        help="keep every document; record every rule's verdict in `filter_reasons`",
    )
    parser.add_argument(
        "--snippet-chars",
        type=int,
        default=SNIPPET_CHARS,
        help="characters of each removed document kept in removed/",
    )
    add_sources_flag(parser)
    return parser


def failure_keys(reasons: list[str]) -> list[str]:
    """Annotate mode counters: ``would_remove/<first reason>`` and ``fails/<reason>`` for each."""
    return ([f"would_remove/{reasons[0]}"] if reasons else []) + [f"fails/{r}" for r in reasons]


def build(pipeline: beam.Pipeline | beam.pvalue.PBegin, args, files: list[str], config: FilterConfig,
          schema: pa.Schema, contamination=None, namespace: str = STAGE) -> beam.PCollection:
    """The stage's transforms from ``pipeline`` (or a branch's ``PBegin``); returns the written stats."""
    annotate = args.annotate_only
    side = {}
    if contamination is not None:  # built once by the launcher; every worker gets the same arrays
        side["contamination"] = beam.pvalue.AsSingleton(pipeline | "Evaluation n-grams" >> beam.Create([contamination]))
    judged = (pipeline
              | "Splits" >> ReadSplits(files, args.split_mb)
              | "Filter splits" >> beam.ParDo(FilterSplit(config.to_dict(), annotate, args.output, schema,
                                                          args.part_mb, args.snippet_chars, namespace), **side)
              .with_outputs("scores", "parts", main="counts"))
    pairs = [judged.counts]
    extra = {}
    top = [c for c in config.classifiers if c.top_fraction is not None]
    if top:
        fractions = {c.name: c.top_fraction for c in top}
        thresholds = (
            judged.scores
            | "Sum histograms" >> beam.CombinePerKey(lambda hs: sum(hs, np.zeros(HISTOGRAM_BINS, np.int64)))
            | "Thresholds" >> beam.MapTuple(lambda name, h: (name, top_fraction_threshold(h, fractions[name])))
            | "As dict" >> beam.combiners.ToDict())
        for c in top:  # a classifier no document reached still gets a (zero) threshold
            extra[f"threshold/{c.name}"] = thresholds | f"Threshold {c.name}" >> beam.Map(
                lambda t, name=c.name: t.get(name, 0.0))
        cut = [{"name": c.name, "column": c.column, "reason": c.reason} for c in top]
        pairs.append(judged.parts
                     | "Spread parts" >> beam.Reshuffle()
                     | "Cut top fractions" >> beam.ParDo(
                         CutSplit(cut, annotate, args.output, schema, args.part_mb, args.snippet_chars, namespace),
                         beam.pvalue.AsSingleton(thresholds)))
    return pairs | "Merge counts" >> beam.Flatten() | "Stats" >> WriteStats(STAGE, args.output, extra=extra)


class Checked(NamedTuple):
    """What the stage knows about its run after every check, before any work."""

    files: list[str]
    config: FilterConfig
    schema: pa.Schema
    contamination: Any
    about: dict[str, Any]


def check_args(args, options, error) -> Checked:
    """Everything the single-source command checks before any work (``error(message)`` exits): the filter
    config (a file, or in a ``--sources`` entry also a mapping) and its models, the inputs and their schema,
    the decontamination index. Writes nothing."""
    try:
        if isinstance(args.config, dict):
            config = FilterConfig.from_dict(args.config)
        else:
            config = FilterConfig.from_yaml(args.config) if args.config else FilterConfig()
        if args.route:  # --route NAME: the config's routes plus the bundled ones
            raw = config.to_dict()
            have = {r["name"] for r in raw.get("route") or []}  # the config's own route of that name wins
            extra = [n for n in dict.fromkeys(args.route) if n not in have]
            config = FilterConfig.from_dict({**raw, "route": [*(raw.get("route") or []), *extra]})
        files = stage_inputs(args.input, options)
        schema = output_schema(stage_schema(files, options), config, args.annotate_only)
        DocumentFilter(config)  # fail fast on a missing model, before the pipeline starts
        contamination = build_contamination_index(config.decontaminate)
    except (InputError, ValueError, TypeError, OSError) as exc:
        error(str(exc))
    about = {"annotate_only": args.annotate_only, "config": config.to_dict()}
    if contamination is not None:
        about["decontamination"] = {"ngrams": contamination.n_ngrams, "index_bytes": contamination.nbytes,
                                    "sets": contamination.summary}
        print(f"{STAGE}: decontamination against {len(contamination.names)} evaluation set(s): "
              f"{contamination.n_ngrams:,} n-grams, {contamination.nbytes / 1e6:.1f} MB per worker", flush=True)
    return Checked(files, config, schema, contamination, about)


def prepare(args, options, checked: Checked) -> None:
    """After every check: the input size (and from it the split size), a cleared output directory and
    its ``filter_config.json``."""
    if not writes_output(options):
        return
    try:
        total = describe_inputs(STAGE, checked.files)
        args.split_mb = auto_split_mb(args.split_mb, total)
        prepare_output_dir(args.output, [REMOVED, "rejected", SCORED])
        write_json(f"{args.output.rstrip('/')}/filter_config.json", checked.about)
    except (InputError, OSError) as exc:
        fail(str(exc))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    if sources_argv(argv):
        return main_sources(argv)
    parser = build_parser()
    args, options = parse(parser, argv)
    checked = check_args(args, options, fail)
    prepare(args, options, checked)
    stats = run_stage(STAGE, lambda p: build(p, args, checked.files, checked.config, checked.schema,
                                             checked.contamination), options, args.output)
    if writes_output(options):
        remove_scored(args.output)
    return stats


def main_sources(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``--sources FILE`` [Beam options]: one job for every source of the file (docs/runs.md)."""
    path, options = parse_sources(build_parser(), argv)
    return run_sources(read_sources(path), options, where=path)


def run_sources(entries: list[dict[str, Any]], options, where: str = "--sources") -> dict[str, Any]:
    """One Beam job over several sources (``pipelines.options.run_sources``): each entry is a mapping of this
    stage's options (input, output, config (a file or the config itself, as a mapping), annotate_only, route,
    ...; ``name``: default the output's last component), checked as its own command line would be; each
    directory is written as its own command would. Returns ``{"stage", "sources": {name: stats}}``; exit 3
    names the sources whose stats do not balance."""
    stats, checked = options_run_sources(
        STAGE, entries, options, where, parser=build_parser, check=check_args, prepare=prepare,
        build=lambda p, args, c, namespace: build(p, args, c.files, c.config, c.schema, c.contamination, namespace),
        keep=lambda entry: ("config",) if isinstance(entry.get("config"), dict) else ())
    if writes_output(options):
        for _, args, _ in checked:
            remove_scored(args.output)
    return {"stage": STAGE, "sources": stats, **({"dry_run": True} if not writes_output(options) else {})}


def remove_scored(output: str) -> None:
    """Delete the ``_scored/`` parts once the top-fraction cut has written the final ones."""
    scored = [m.path for m in FileSystems.match([f"{output.rstrip('/')}/{SCORED}/{DOCS_GLOB}"])[0].metadata_list]
    if scored:
        FileSystems.delete(scored)


if __name__ == "__main__":
    main()
