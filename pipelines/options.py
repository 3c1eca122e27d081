"""Command-line handling shared by every stage: stage flags + standard Beam options.

Stage flags are parsed here; everything else (``--runner``, ``--project``, ``--region``,
``--temp_location``, ``--setup_file``, ``--direct_num_workers`` ...) is passed to Beam
untouched. The runner defaults to ``DirectRunner`` explicitly: Beam's own default (Prism)
downloads a binary at start-up and fails offline.

Parsing is strict: a flag that is neither the stage's nor one of Beam's own pipeline options
(every ``_add_argparse_args`` of the ``PipelineOptions`` subclasses) is refused before any work,
with exit 2 and one line, ``error: unknown option --treshold (did you mean --threshold?)``. Beam
itself only logs ``Discarding unparseable args`` and runs with the defaults, which is how a typo
used to go unnoticed.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options import pipeline_options
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from pipelines import EXIT_UNBALANCED, fail, refuse_unknown_options  # noqa: F401  (fail: re-exported to the stages)
from pipelines.documents import DOC_SCHEMA
from pipelines.io import InputError, expand_inputs, read_parquet_schema
from pipelines.splits import DEFAULT_PART_MB, DEFAULT_SPLIT_MB
from pipelines.stats import format_stats, load_stats, write_dataset_card

DEFAULT_RUNNER = "DirectRunner"
# Runners that honour --dry_run (Beam 2.77: only DataflowRunner.run_pipeline reads TestOptions.dry_run).
DRY_RUN_RUNNERS = ("dataflowrunner", "testdataflowrunner")


class StageParser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (``error: ...``, exit 2) instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        fail(message)


@functools.lru_cache(maxsize=1)
def beam_option_parser() -> argparse.ArgumentParser:
    """One parser holding every Beam pipeline option: each ``PipelineOptions`` subclass (and theirs)
    adds its own flags, as ``PipelineOptions.get_all_options`` does. Used only to recognise a flag and
    whether it takes a value; Beam parses the options itself."""
    parser = pipeline_options._BeamArgumentParser(allow_abbrev=False, add_help=False)
    classes: dict[str, type] = {}
    todo = list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if str(cls) not in classes:
            classes[str(cls)] = cls
            todo.extend(cls.__subclasses__())
    for cls in classes.values():
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001 (Beam's documented extension point)
        except argparse.ArgumentError:  # a flag defined twice (a subclass re-declaring its parent's)
            pass
    return parser


def closest(name: str, known: Sequence[str]) -> str | None:
    """The known name closest to a misspelled one (``difflib``, ratio >= 0.6), or None."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def beam_args_problem(parser: argparse.ArgumentParser, beam_args: Sequence[str]) -> str | None:
    """Why the tokens left over by a stage parser are not all Beam options (with or without ``=value``)
    and their values, or None. ``pipelines.run`` can check a run config's ``beam:`` list with it."""
    beam_flags = beam_option_parser()._option_string_actions
    stage_flags = [f for f in parser._option_string_actions if f.startswith("--")]
    i = 0
    while i < len(beam_args):
        token = beam_args[i]
        i += 1
        if not token.startswith("-") or token == "--":
            return f"unexpected argument {token!r} (to give several inputs, repeat --input)"
        name, eq, _ = token.partition("=")
        action = beam_flags.get(name)
        if action is None:
            guess = closest(name, stage_flags) or closest(name, [f for f in beam_flags if f.startswith("--")])
            return f"unknown option {name}" + (f" (did you mean {guess}?)" if guess else "")
        if action.nargs != 0 and not eq:
            if i < len(beam_args) and not beam_args[i].startswith("--"):  # its value
                i += 1
            elif action.nargs != "?":
                return f"option {name} needs a value"
        elif action.nargs == 0 and eq:
            return f"option {name} takes no value"
    return None


def check_beam_args(parser: argparse.ArgumentParser, beam_args: Sequence[str]) -> None:
    """Exit 2 (one line) unless :func:`beam_args_problem` finds nothing. Runs before anything is read
    or created."""
    problem = beam_args_problem(parser, beam_args)
    if problem:
        fail(problem)


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = StageParser(description=description, allow_abbrev=False,
                         epilog="Any other --flag must be a Beam pipeline option (e.g. --runner "
                                "DataflowRunner --project P --region R --temp_location gs://... "
                                "--setup_file ./setup.py, or --direct_num_workers 2 "
                                "--direct_running_mode multi_processing); an unknown one is refused (exit 2).")
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
    """Stage flags (strict) and Beam's pipeline options (every other flag must be one of Beam's own).
    Exits 2 with one ``error:`` line on anything else, before any work or output directory."""
    refuse_unknown_options([*parser._option_string_actions, *beam_option_parser()._option_string_actions], argv)
    args, beam_args = parser.parse_known_args(argv)
    check_beam_args(parser, beam_args)
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
