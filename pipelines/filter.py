"""The filter stage: cleaned documents -> the ones good enough to pretrain on.

    python -m pipelines.filter --input work/clean/general --output work/filter/general \
        [--config configs/filter/default.yaml] [--annotate-only] [Beam options]

Per document (``filters/rules.py``, Beam-free): language ID with fastText lid.176 (keep list
per source), Gopher repetition, Gopher quality, C4 (line modifier + document rules), FineWeb,
then fastText classifiers (a ``threshold``, or a ``top_fraction`` of the corpus: the cut-off
score is a corpus-wide quantile computed in the pipeline from a global score histogram).
Outputs: ``OUTPUT/part-*.parquet`` (the input columns + ``lang``, ``lang_score`` and one
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
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from filters.rules import DocumentFilter, FilterConfig
from pipelines.documents import schema_with
from pipelines.io import (
    InputError,
    Rejected,
    expand_inputs,
    prepare_output_dir,
    read_parquet_schema,
    write_json,
)
from pipelines.options import parse, run_stage, stage_parser
from pipelines.stats import WriteStats, removed_reason, tally
from pipelines.transforms import REJECTED, ReadFiles, write_documents, write_side_records

STAGE = "filter"
REMOVED = "removed"
SNIPPET_CHARS = 300  # characters of a removed document kept in removed/ for the report
HISTOGRAM_BINS = 10_000  # resolution of the top-fraction quantile (scores are in [0, 1])
REASONS_COLUMN = "filter_reasons"
log = logging.getLogger(__name__)


def as_document(record: dict[str, Any], path: str, line: int) -> dict[str, Any] | Rejected:
    """A row of a previous stage's Parquet; rows without text cannot be judged."""
    if not isinstance(record.get("text"), str):
        return Rejected("missing_text", path, line, json.dumps(record, default=str)[:1024])
    return record


class JudgeDocuments(beam.DoFn):
    """Applies a :class:`DocumentFilter` (models loaded once per worker in ``setup``).

    Main output: documents still in the running (annotated with lang, scores and, in annotate
    mode, their failures); ``removed``: removal records.
    """

    def __init__(self, config: dict[str, Any], annotate: bool, snippet_chars: int = SNIPPET_CHARS):
        self.config, self.annotate, self.snippet_chars = config, annotate, snippet_chars
        self.filter: DocumentFilter | None = None

    def setup(self):
        self.filter = DocumentFilter(FilterConfig.from_dict(self.config))

    def process(self, doc: dict[str, Any]):
        verdict = self.filter.judge(doc["text"], doc.get("source") or "", self.annotate)
        out = {
            **doc,
            "lang": verdict.lang or None,
            "lang_score": None if math.isnan(verdict.lang_score) else round(verdict.lang_score, 4),
        }
        for c in self.filter.config.classifiers:
            out[c.column] = verdict.scores.get(c.column)
        if self.annotate:
            out[REASONS_COLUMN] = list(verdict.failed)
            yield out
        elif verdict.reason is None:
            out["text"] = verdict.text
            yield out
        else:
            yield beam.pvalue.TaggedOutput(REMOVED, removal_record(out, verdict.reason, self.snippet_chars))


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


def apply_top_fractions(pcoll, classifiers, annotate: bool):
    """Cut each top-fraction classifier at its corpus-wide quantile (pipeline-computed)."""
    cuts = {}
    for c in classifiers:
        if c.top_fraction is None:
            continue

        def candidate_scores(doc, c=c):
            if annotate and doc[REASONS_COLUMN]:
                return []
            score = doc.get(c.column)
            return [] if score is None else [score]

        cuts[c.name] = (
            pcoll
            | f"Scores {c.name}" >> beam.FlatMap(candidate_scores)
            | f"Histogram {c.name}" >> beam.CombineGlobally(ScoreHistogram())
            | f"Threshold {c.name}" >> beam.Map(top_fraction_threshold, c.top_fraction)
        )
    if not cuts:
        return pcoll, {}

    def cut(doc, **thresholds):
        for c in classifiers:
            score = doc.get(c.column)
            if c.name in thresholds and score is not None and score < thresholds[c.name]:
                if not annotate:
                    yield beam.pvalue.TaggedOutput(REMOVED, removal_record(doc, c.reason))
                    return
                doc = {**doc, REASONS_COLUMN: doc[REASONS_COLUMN] + [c.reason]}
        yield doc

    side = {name: beam.pvalue.AsSingleton(pc) for name, pc in cuts.items()}
    out = pcoll | "Top fractions" >> beam.FlatMap(cut, **side).with_outputs(REMOVED, main="kept")
    return out, cuts


# ------------------------------------------------------------------------------ the stage


def output_schema(base: pa.Schema, config: FilterConfig, annotate: bool) -> pa.Schema:
    extra = [("lang", pa.string()), ("lang_score", pa.float64())]
    extra += [(c.column, pa.float64()) for c in config.classifiers]
    if annotate:
        extra.append((REASONS_COLUMN, pa.string()))
    return schema_with(*extra, base=base)


def build_parser():
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--input",
        action="append",
        required=True,
        help="a previous stage's directory (its part-*.parquet) or Parquet glob; repeatable",
    )
    parser.add_argument(
        "--config",
        help="filter config YAML (default: the literature defaults, as in configs/filter/default.yaml)",
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
    return parser


def failure_keys(doc: dict[str, Any]) -> list[str]:
    """Annotate mode counters: ``would_remove/<first reason>`` and ``fails/<reason>`` for each."""
    reasons = json.loads(doc[REASONS_COLUMN])
    return ([f"would_remove/{reasons[0]}"] if reasons else []) + [f"fails/{r}" for r in reasons]


def build(pipeline: beam.Pipeline, args, files: list[str], config: FilterConfig, schema: pa.Schema) -> None:
    annotate = args.annotate_only
    read = pipeline | "Read" >> ReadFiles(files, as_document)
    docs, rejected = read.records, read[REJECTED]
    judged = docs | "Judge" >> beam.ParDo(
        JudgeDocuments(config.to_dict(), annotate, args.snippet_chars)
    ).with_outputs(REMOVED, main="kept")
    kept, removed = judged.kept, judged[REMOVED]
    cut, thresholds = apply_top_fractions(kept, config.classifiers, annotate)
    if thresholds:
        kept = cut.kept
        removed = (removed, cut[REMOVED]) | "All removed" >> beam.Flatten()
    if annotate:
        kept = kept | "Reasons as JSON" >> beam.Map(
            lambda d: {**d, REASONS_COLUMN: json.dumps(d[REASONS_COLUMN])}
        )
    written = write_documents(kept, args.output, args.num_shards, schema=schema)
    write_side_records(removed, args.output, REMOVED, args.num_shards, key=removed_key)
    write_side_records(rejected, args.output, "rejected")
    pairs = [
        tally(docs, STAGE, "input", label="Count read docs"),
        tally(rejected, STAGE, "input", label="Count read rejects"),
        tally(written, STAGE, "output", weight=lambda n: n, label="Count written"),
        tally(removed, STAGE, removed_reason, label="Count removed"),
        tally(rejected, STAGE, removed_reason, label="Count rejected"),
    ]
    if annotate:
        reasons = kept | "Failures" >> beam.FlatMap(failure_keys)
        pairs.append(tally(reasons, STAGE, lambda key: key, label="Count failures"))
    extra = {f"threshold/{name}": pc for name, pc in thresholds.items()}
    pairs | "Merge counts" >> beam.Flatten() | "Stats" >> WriteStats(STAGE, args.output, extra=extra)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, options = parse(build_parser(), argv)
    try:
        config = FilterConfig.from_yaml(args.config) if args.config else FilterConfig()
        files = expand_inputs(args.input)
        schema = output_schema(read_parquet_schema(files), config, args.annotate_only)
        DocumentFilter(config)  # fail fast on a missing model, before the pipeline starts
        prepare_output_dir(args.output, [REMOVED, "rejected"])
        write_json(
            f"{args.output.rstrip('/')}/filter_config.json",
            {"annotate_only": args.annotate_only, "config": config.to_dict()},
        )
    except (InputError, ValueError, FileNotFoundError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return run_stage(STAGE, lambda p: build(p, args, files, config, schema), options, args.output)


if __name__ == "__main__":
    main()
