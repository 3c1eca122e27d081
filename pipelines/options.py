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
import contextlib
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

from core.cli import EXIT_UNBALANCED, fail, refuse_unknown_options  # noqa: F401  (fail: re-exported to the stages)
from core.documents import DOC_SCHEMA
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
    and their values, or None. ``run.orchestrator`` can check a run config's ``beam:`` list with it."""
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


# Planned inputs of a whole-run dry run (``run.orchestrator --dry-run``): the outputs of earlier stages that do not
# exist yet, path -> the Parquet schema their documents will have. Under a dry run a stage translates with these
# paths and schemas instead of listing or reading them (outside a dry run they are ignored).
_PLANNED: dict[str, Any] = {}
_SAID = "\x00said"  # (a key no path has: the planned-inputs line was printed in this block)


@contextlib.contextmanager
def planned_inputs(paths: dict[str, Any]):
    """Within the block, dry-run stages take ``paths`` (directories an earlier stage will write, mapped to
    the schema of their documents) as their inputs without listing or reading them."""
    saved = dict(_PLANNED)
    _PLANNED.update({p.rstrip("/"): schema for p, schema in paths.items()})
    try:
        yield
    finally:
        _PLANNED.clear()
        _PLANNED.update(saved)


def _planned(pattern: str) -> bool:
    return pattern.rstrip("/") in _PLANNED


def stage_inputs(patterns: Sequence[str], options: PipelineOptions) -> list[str]:
    """The input files of a stage (``expand_inputs``). Under a dry run, remote patterns (``gs://``)
    are not listed (that needs credentials and the network), nor are planned inputs (``planned_inputs``):
    the job is translated with the patterns themselves as its file list."""
    if is_dry_run(options) and any(_remote(p) or _planned(p) for p in patterns):
        if any(_remote(p) for p in patterns):
            print("dry run: remote inputs are not listed; translating with the patterns as given", flush=True)
        elif not _PLANNED.get(_SAID):  # (once per planned job, not once per source)
            _PLANNED[_SAID] = True
            print("dry run: planned inputs (earlier stages' outputs) are not read; translating with the paths as "
                  "given", flush=True)
        return sorted(set(patterns))
    return expand_inputs(patterns)


def stage_schema(files: Sequence[str], options: PipelineOptions):
    """The Parquet schema of a stage's input (``read_parquet_schema``); under a dry run with remote
    inputs, the document schema (the inputs are not read), with planned inputs their planned schema."""
    if is_dry_run(options):
        planned = [_PLANNED[f.rstrip("/")] for f in files if _planned(f)]
        if planned:
            return planned[0] if planned[0] is not None else DOC_SCHEMA
        if any(_remote(f) for f in files):
            return DOC_SCHEMA
    return read_parquet_schema(list(files))


def writes_output(options: PipelineOptions) -> bool:
    """Whether a stage's ``main`` should create/clear its output directory (and write side files
    such as configs) before the pipeline: False under a dry run, which must leave no trace."""
    return not is_dry_run(options)


def stage_counters(result: Any, namespace: str) -> dict[str, int] | None:
    """The Beam Metrics counters of one namespace (committed values: ``clean``, or ``clean/<source>`` in a
    job of several sources), or None where the runner has none."""
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]
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


def source_namespace(stage: str, name: str) -> str:
    """The Beam counter namespace of one source in a job of several (``clean/<name>``)."""
    return f"{stage}/{name}"


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam", "absl", "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for ours in ("pipelines", "filters", "mixtures"):  # progress lines, whatever a library does to the root level
        logging.getLogger(ours).setLevel(logging.INFO)


def _run_pipeline(stage: str, build: Callable[[beam.Pipeline], None], options: PipelineOptions) -> Any:
    """Build, run and wait: the result, or None under a dry run (translated and packaged, nothing ran)."""
    _quiet_logs()
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
        return None
    if options.view_as(TestOptions).dry_run:
        print(f"warning: --dry_run is honoured only by DataflowRunner; {stage} ran on "
              f"{_runner_name(options)}", file=sys.stderr)
    return result


def _report(stage: str, result: Any, output_dir: str, namespace: str, t0: float) -> dict[str, Any]:
    """One output directory after the job: its ``stats.json`` read, printed and checked against the
    counters of ``namespace``; its dataset card written."""
    stats = load_stats(output_dir)
    write_dataset_card(output_dir, stats)
    print(format_stats(stats))
    counters = stage_counters(result, namespace)
    if counters is not None and not counters_match(stats, counters):
        print(f"warning: {namespace} Beam counters differ from stats.json: {counters}", file=sys.stderr)
    stats["metrics"] = counters
    print(f"{stage}: wrote {output_dir} in {time.perf_counter() - t0:.1f} s")
    return stats


def run_stage(stage: str, build: Callable[[beam.Pipeline], None], options: PipelineOptions,
              output_dir: str) -> dict[str, Any]:
    """Build and run a stage's pipeline, wait, then print and return its ``stats.json``.

    The returned dict also holds ``"metrics"``: the Beam counters, checked against the file.
    Under a dry run (``is_dry_run``) nothing runs: returns ``{"stage": stage, "dry_run": True}``.
    Exits with status 2 on user errors (bad paths, options) and 3 when the stats do not balance.
    """
    t0 = time.perf_counter()
    result = _run_pipeline(stage, build, options)
    if result is None:
        return {"stage": stage, "dry_run": True}
    stats = _report(stage, result, output_dir, stage, t0)
    if not stats["balanced"]:
        print(f"error: {stage} stats do not balance", file=sys.stderr)
        sys.exit(EXIT_UNBALANCED)
    return stats


def run_sources_stage(stage: str, build: Callable[[beam.Pipeline], None], options: PipelineOptions,
                      outputs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """:func:`run_stage` for one job over several sources (``outputs``: source name -> its directory): one
    pipeline; then each source's ``stats.json`` is printed, checked against the counters of its own
    namespace (``<stage>/<name>``) and returned by name. Sources whose stats do not balance are named in one
    ``error:`` line (exit 3), after every source was reported. Dry run: ``{name: {"stage", "dry_run"}}``."""
    t0 = time.perf_counter()
    result = _run_pipeline(stage, build, options)
    if result is None:
        return {name: {"stage": stage, "dry_run": True} for name in outputs}
    out = {name: _report(stage, result, output, source_namespace(stage, name), t0)
           for name, output in outputs.items()}
    unbalanced = [name for name, stats in out.items() if not stats["balanced"]]
    if unbalanced:
        print(f"error: {stage} stats do not balance for {', '.join(unbalanced)}", file=sys.stderr)
        sys.exit(EXIT_UNBALANCED)
    return out


# ------------------------------------------------------------------ several sources in one job

SOURCES_FLAG = "--sources"
NAME_KEY = "name"  # an entry's label: its transforms' prefix and counter namespace (default: source, else output)


class SourceBranch(beam.PTransform):
    """One source of a job of several: the stage's single-source transforms (``build_branch(pbegin)``) under
    the branch's label (``clean[<name>]``), so every transform label is unique and stable."""

    def __init__(self, build_branch: Callable[[Any], Any]):
        super().__init__()
        self.build_branch = build_branch

    def expand(self, pbegin):
        return self.build_branch(pbegin)


class EntryError(Exception):
    """A ``--sources`` entry that its single-source command line would refuse (the message names the entry)."""


def add_sources_flag(parser: argparse.ArgumentParser) -> None:
    """``--sources FILE`` in a stage's ``--help`` (the command line is then ``--sources FILE`` + Beam options)."""
    parser.add_argument(SOURCES_FLAG, metavar="FILE",
                        help="several sources in one Beam job: a YAML/JSON list of mappings whose keys are this "
                             "command's options (input, output, ...; optional name: the source's label and counter "
                             "namespace); each entry is checked as its own command line would be; only Beam "
                             "options go beside it (docs/runs.md)")


def sources_argv(argv: Sequence[str] | None) -> bool:
    """Whether a stage command line uses ``--sources FILE`` (several sources in one job)."""
    return any(a == SOURCES_FLAG or a.startswith(SOURCES_FLAG + "=") for a in (sys.argv[1:] if argv is None
                                                                               else argv))


def read_sources(path: str) -> list[dict[str, Any]]:
    """A ``--sources`` file: a YAML (or JSON) list of mappings, one per source. Exit 2 otherwise."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        fail(f"--sources: cannot read {path}: {exc.strerror or exc}")
    except yaml.YAMLError as exc:
        fail(f"--sources: {path}: not valid YAML: {exc}".replace("\n", " "))
    if not isinstance(doc, list) or not doc or not all(isinstance(e, dict) for e in doc):
        fail(f"--sources: {path} must be a non-empty list of mappings (one per source), got {type(doc).__name__}")
    return doc


def parse_sources(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> tuple[str, PipelineOptions]:
    """``--sources FILE`` and Beam options, nothing else: a stage's own flags go in each entry."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = StageParser(description=parser.description, allow_abbrev=False)
    top.add_argument(SOURCES_FLAG, required=True)
    stage_flags = [f for f in parser._option_string_actions if f.startswith("--") and f not in ("--help",
                                                                                               SOURCES_FLAG)]
    given = sorted({a.split("=", 1)[0] for a in argv} & set(stage_flags))
    if given:
        fail(f"{SOURCES_FLAG}: give {', '.join(given)} in each entry of the file (key "
             f"{given[0][2:].replace('-', '_')}), not on the command line; only Beam options go beside it")
    args, options = parse(top, argv)
    return args.sources, options


def beam_options(beam_args: Sequence[str]) -> PipelineOptions:
    """Beam's options from a list of Beam flags alone (``run.orchestrator``'s ``beam:``), as strictly as a stage
    parses them."""
    return parse(StageParser(allow_abbrev=False), list(beam_args))[1]


def argv_entry(argv: Sequence[str]) -> dict[str, Any]:
    """A single-source command line (stage flags only) as a ``--sources`` entry, the inverse of
    :func:`entry_argv`: ``--key value`` -> ``key: value`` (repeated flags: a list), a flag alone -> true."""
    entry: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        key = argv[i][2:].replace("-", "_")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value: Any = argv[i + 1]
            i += 2
        else:
            value, i = True, i + 1
        if key in entry:
            entry[key] = [*(entry[key] if isinstance(entry[key], list) else [entry[key]]), value]
        else:
            entry[key] = value
    return entry


def entry_argv(entry: dict[str, Any]) -> list[str]:
    """A ``--sources`` entry as its single-source command line: ``key: value`` -> ``--key value`` (``_`` or
    ``-``), a list -> the flag once per item, true -> the flag alone, false or null -> nothing."""
    out: list[str] = []
    for key, value in entry.items():
        if key == NAME_KEY:
            continue
        flag = "--" + str(key).replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def parse_entry(parser: argparse.ArgumentParser, entry: dict[str, Any], where: str,
                keep: Sequence[str] = ()) -> argparse.Namespace:
    """One entry through the stage's own parser, exactly as its command line would be; a mistake raises
    :class:`EntryError` naming the entry. ``keep``: keys whose value is passed through untouched (not as a
    flag; e.g. the filter's ``config`` given as a mapping), set on the namespace afterwards."""

    def error(message: str) -> NoReturn:
        raise EntryError(f"{where}: {message}")

    parser.error = error  # type: ignore[method-assign]
    known = {f[2:].replace("-", "_") for f in parser._option_string_actions if f.startswith("--")} - {
        "help", SOURCES_FLAG[2:]}
    for key in entry:
        if key != NAME_KEY and str(key).replace("-", "_") not in known:
            error(f"unknown key {key!r}" + (f" (did you mean {guess!r}?)"
                                            if (guess := closest(str(key), sorted(known))) else ""))
    args = parser.parse_args(entry_argv({k: v for k, v in entry.items() if k not in keep}))
    if (getattr(args, "split_mb", 1) or 1) <= 0 or getattr(args, "part_mb", 1) <= 0:
        error("split_mb and part_mb must be > 0")
    for key in keep:
        if key in entry:
            setattr(args, key, entry[key])
    return args


def entry_name(entry: dict[str, Any], args: argparse.Namespace) -> str:
    """An entry's name: its ``name``, else its ``source``, else its output directory's last component."""
    name = entry.get(NAME_KEY) or getattr(args, "source", None) or args.output.rstrip("/").rsplit("/", 1)[-1]
    return str(name)


def check_entries(names: list[str], outputs: list[str]) -> None:
    """Exit 2 unless every entry has its own name and its own output directory."""
    for kind, values in (("name", names), ("output", [o.rstrip("/") for o in outputs])):
        seen = set()
        for i, v in enumerate(values):
            if v in seen:
                fail(f"--sources: sources[{i}] ({names[i]}): {kind} {v!r} is used by another entry")
            seen.add(v)


def run_sources(stage: str, entries: list[dict[str, Any]], options: PipelineOptions, where: str, *,
                parser: Callable[[], argparse.ArgumentParser], check: Callable[..., Any],
                prepare: Callable[..., None], build: Callable[..., None],
                keep: Callable[[dict[str, Any]], tuple[str, ...]] = lambda entry: ()) -> tuple[dict[str, Any], list]:
    """One Beam job over several sources of ``stage``: each entry (a mapping of the stage's options) is parsed by
    the stage's ``parser()`` and ``check``ed exactly as its own command line would be, all of them before any work
    (``error:`` naming ``sources[i] (name)``, exit 2); then each is ``prepare``d and one pipeline gets a branch per
    source (labels ``<stage>[<name>]``, counters ``<stage>/<name>``) that ``build(p, args, checked, namespace)``
    wires as the stage's own command would. Returns ``(stats per source, [(name, args, checked)])``."""
    checked = []
    for i, entry in enumerate(entries):
        label = f"{where}: sources[{i}]" + (f" ({entry.get('name') or entry.get('source')})"
                                            if entry.get("name") or entry.get("source") else "")
        try:
            args = parse_entry(parser(), entry, label, keep=keep(entry))
        except EntryError as exc:
            fail(str(exc))
        name = entry_name(entry, args)
        label = f"{where}: sources[{i}] ({name})"
        checked.append((name, args, check(args, options, lambda m, label=label: fail(f"{label}: {m}"))))
    check_entries([name for name, _, _ in checked], [args.output for _, args, _ in checked])
    for _, args, c in checked:
        prepare(args, options, c)

    def build_all(pipeline: beam.Pipeline) -> None:
        for name, args, c in checked:
            pipeline | f"{stage}[{name}]" >> SourceBranch(
                lambda p, args=args, c=c, name=name: build(p, args, c, source_namespace(stage, name)))

    return run_sources_stage(stage, build_all, options, {name: args.output for name, args, _ in checked}), checked
