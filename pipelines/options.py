"""Command-line handling shared by every stage: stage flags + standard Beam options.

Stage flags are parsed here; everything else (``--runner``, ``--project``, ``--region``,
``--temp_location``, ``--setup_file``, ``--direct_num_workers`` ...) is passed to Beam
untouched. The runner defaults to ``DirectRunner`` explicitly: Beam's own default (Prism)
downloads a binary at start-up and fails offline.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from pipelines import EXIT_UNBALANCED, fail  # noqa: F401  (fail: re-exported to the stages)
from pipelines.documents import DOC_SCHEMA
from pipelines.io import InputError, expand_inputs, read_parquet_schema
from pipelines.splits import DEFAULT_PART_MB, DEFAULT_SPLIT_MB
from pipelines.stats import format_stats, load_stats, write_dataset_card

DEFAULT_RUNNER = "DirectRunner"
# Runners that honour --dry_run (Beam 2.77: only DataflowRunner.run_pipeline reads TestOptions.dry_run).
DRY_RUN_RUNNERS = ("dataflowrunner", "testdataflowrunner")


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                     epilog="Any other --flag is a Beam pipeline option (e.g. --runner "
                                            "DataflowRunner --project P --region R --temp_location gs://... "
                                            "--setup_file ./setup.py, or --direct_num_workers 2 "
                                            "--direct_running_mode multi_processing).")
    parser.add_argument("--output", required=True, help="stage directory (local path or gs://...)")
    parser.add_argument("--split-mb", type=float, default=None,
                        help="input per unit of work: Parquet row groups and byte ranges of uncompressed "
                             "JSON Lines are cut into splits of about this many MB (default: input / 64, "
                             f"between 4 and {DEFAULT_SPLIT_MB})")
    parser.add_argument("--part-mb", type=float, default=DEFAULT_PART_MB,
                        help="an output Parquet part rolls over past this many MB of text "
                             f"(default {DEFAULT_PART_MB})")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> tuple[argparse.Namespace, PipelineOptions]:
    args, beam_args = parser.parse_known_args(argv)
    for prev, token in zip([""] + beam_args, beam_args):
        if not token.startswith("-") and (not prev.startswith("-") or "=" in prev):
            parser.error(f"unexpected argument {token!r} (to give several inputs, repeat --input)")
    if (getattr(args, "split_mb", 1) or 1) <= 0 or getattr(args, "part_mb", 1) <= 0:
        parser.error("--split-mb and --part-mb must be > 0")
    options = PipelineOptions(beam_args)
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = DEFAULT_RUNNER
    return args, options


def _runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner or DEFAULT_RUNNER
    name = runner if isinstance(runner, str) else type(runner).__name__
    name = name.rsplit(".", 1)[-1].lower()
    return name if name.endswith("runner") else name + "runner"  # Beam also accepts "dataflow"


def is_dry_run(options: PipelineOptions) -> bool:
    """``--dry_run True`` on a runner that honours it (DataflowRunner): the pipeline is translated
    and the ``--setup_file`` package built locally, then ``run()`` returns before any credentials,
    staging upload or job submission. Nothing runs, so nothing is written and no stats.json appears.
    On other runners Beam ignores ``--dry_run`` and the pipeline runs for real: this returns False."""
    return bool(options.view_as(TestOptions).dry_run) and _runner_name(options) in DRY_RUN_RUNNERS


def _remote(pattern: str) -> bool:
    return FileSystems.get_scheme(pattern) not in (None, "file")


def stage_inputs(patterns: Sequence[str], options: PipelineOptions) -> list[str]:
    """The input files of a stage (``expand_inputs``). Under a dry run, remote patterns (``gs://``)
    are not listed (that needs credentials and the network): the job is translated with the
    patterns themselves as its file list."""
    if is_dry_run(options) and any(_remote(p) for p in patterns):
        print("dry run: remote inputs are not listed; translating with the patterns as given", flush=True)
        return sorted(set(patterns))
    return expand_inputs(patterns)


def stage_schema(files: Sequence[str], options: PipelineOptions):
    """The Parquet schema of a stage's input (``read_parquet_schema``); under a dry run with remote
    inputs, the document schema (the inputs are not read)."""
    if is_dry_run(options) and any(_remote(f) for f in files):
        return DOC_SCHEMA
    return read_parquet_schema(list(files))


def writes_output(options: PipelineOptions) -> bool:
    """Whether a stage's ``main`` should create/clear its output directory (and write side files
    such as configs) before the pipeline: False under a dry run, which must leave no trace."""
    return not is_dry_run(options)


def stage_counters(result: Any, stage: str) -> dict[str, int] | None:
    """The stage's Beam Metrics counters (committed values), or None where the runner has none."""
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(stage))["counters"]
    except Exception:  # some runners do not support querying metrics
        return None
    totals: dict[str, int] = {}
    for c in counters:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + (c.committed or 0)
    return totals


def counters_match(stats: dict[str, Any], counters: dict[str, int]) -> bool:
    """Whether Metrics counters carry the same numbers as stats.json (input, output, each reason)."""
    expected = {"input": stats["input"], "output": stats["output"],
                **{f"removed/{k}": v for k, v in stats["removed"].items()}}
    return all(counters.get(k, 0) == v for k, v in expected.items())


def run_stage(stage: str, build: Callable[[beam.Pipeline], None], options: PipelineOptions,
              output_dir: str) -> dict[str, Any]:
    """Build and run a stage's pipeline, wait, then print and return its ``stats.json``.

    The returned dict also holds ``"metrics"``: the Beam counters, checked against the file.
    Under a dry run (``is_dry_run``) nothing runs: returns ``{"stage": stage, "dry_run": True}``.
    Exits with status 2 on user errors (bad paths, options) and 3 when the stats do not balance.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam", "absl", "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for ours in ("pipelines", "filters", "mixtures"):  # progress lines, whatever a library does to the root level
        logging.getLogger(ours).setLevel(logging.INFO)
    t0 = time.perf_counter()
    try:
        pipeline = beam.Pipeline(options=options)
        build(pipeline)
        result = pipeline.run()
        result.wait_until_finish()
    except InputError as exc:
        fail(str(exc))
    if is_dry_run(options):
        print(f"{stage}: dry run: the pipeline was translated and packaged, nothing ran "
              f"({time.perf_counter() - t0:.1f} s)")
        return {"stage": stage, "dry_run": True}
    if options.view_as(TestOptions).dry_run:
        print(f"warning: --dry_run is honoured only by DataflowRunner; {stage} ran on "
              f"{_runner_name(options)}", file=sys.stderr)
    stats = load_stats(output_dir)
    write_dataset_card(output_dir, stats)
    print(format_stats(stats))
    counters = stage_counters(result, stage)
    if counters is not None and not counters_match(stats, counters):
        print(f"warning: {stage} Beam counters differ from stats.json: {counters}", file=sys.stderr)
    stats["metrics"] = counters
    print(f"{stage}: wrote {output_dir} in {time.perf_counter() - t0:.1f} s")
    if not stats["balanced"]:
        print(f"error: {stage} stats do not balance", file=sys.stderr)
        sys.exit(EXIT_UNBALANCED)
    return stats
