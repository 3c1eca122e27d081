"""One run config from raw corpora to a trained domain model.

    python -m run --config configs/runs/demo.yaml [--until STAGE] [--force STAGE]
    python -m run --config configs/runs/finance_1b.yaml --check     # validate only
    python -m run --config configs/runs/dataflow.yaml --dry-run     # Beam jobs translated, costs
    make all CONFIG=configs/runs/demo.yaml

The whole config is validated before step 1 and before the work directory exists (``load_run_config``):
every problem is one ``error:`` line, all of them at once, exit 2 (docs/runs.md, "Validation before any work").

Runs the stages in order (docs/runs.md documents every key of the config):

    clean (one Beam job, all sources) -> filter (one job) -> dedup -> tokenizer -> tokenize -> mix (+ card)
    -> [the planner's estimate] -> train -> export -> report

Every step records a fingerprint in ``WORK/.run/<step>.json``: its settings, the fingerprints of its
inputs (raw files by path, size and modification time; config files by content; earlier steps by
their own fingerprints) and the version of the code it runs (a hash of the package sources). A step
whose record says done with the same fingerprint is skipped, so an interrupted run restarts at the
step that did not finish, and a changed setting reruns that step and every step after it (their
inputs' fingerprints change). ``--force STAGE`` reruns STAGE and everything after it. Training keeps
its checkpoints when only the code changed: the trainer resumes from its last one.

Work directory: ``clean/<source>/``, ``filter/<source>/``, ``dedup/``, ``tokenizer/``, ``tokens/``,
``recipe.yaml`` (the mixer recipe made from the config), ``mix/``, ``train/``, ``hf/``,
``report.html``, ``run.yaml`` (the config as run) and ``.run/`` (the step records). The work directory may be
remote (``gs://...``, any Beam filesystem): every read and write of it then goes through Beam's ``FileSystems``
(``core/workdir.py``), and the trainer and export work on a local copy (``local_cache``; docs/runs.md).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.cli import EXIT_INTERRUPTED, EXIT_USAGE, refuse_unknown_options
from core.config import ConfigError, check_keys, read_yaml
from core.documents import DOMAINS
from core.workdir import (
    RECORD_FILES,
    STAGES,
    Manifest,
    RemotePath,
    download,
    read_manifest,
    rmtree,
    stage_mixture,
    upload,
    work_path,
)

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "filters", "mixtures", "pipelines", "train", "run")
ROUTED = " (routed)"  # the mixer source of a source's documents that the filter's routes moved to the other side


class RunConfigError(ConfigError):
    """A run config that cannot be carried out as written: ``problems`` holds every mistake found, printed
    as one ``error:`` line each (exit 2)."""


# ----------------------------------------------------------------------------- the config

# Each stage's settings: config key -> command-line flag. A True boolean passes the flag, False omits
# it; ``verify`` is the one two-way switch (``--no-verify``).
FLAGS = {
    "clean": {"max_text_bytes": "--max-text-bytes", "html_extractor": "--html-extractor", "split_mb": "--split-mb",
              "part_mb": "--part-mb", "pii_kinds": "--pii-kinds"},
    "filter": {"annotate_only": "--annotate-only", "split_mb": "--split-mb", "part_mb": "--part-mb"},
    "dedup": {"threshold": "--threshold", "ngram": "--ngram", "num_perm": "--num-perm", "bands": "--bands",
              "rows": "--rows", "verify": "--verify", "cross_source": "--cross-source", "cc_rounds": "--cc-rounds",
              "cluster_alarm": "--cluster-alarm", "split_mb": "--split-mb", "part_mb": "--part-mb",
              "line_dedup": "--line-dedup", "line_min_docs": "--line-min-docs", "line_min_words": "--line-min-words"},
    "tokenizer": {"type": "--type", "vocab_size": "--vocab-size", "sample_bytes": "--sample-bytes", "seed": "--seed"},
    "tokenize": {"batch_size": "--batch-size", "split_mb": "--split-mb", "part_mb": "--part-mb"},
    "export": {"dtype": "--dtype"},
    "plan": {"gpu": "--gpu", "gpus": "--gpus", "nodes": "--nodes", "gpus_per_node": "--gpus-per-node",
             "precision": "--precision", "mfu": "--mfu", "usd_per_gpu_hour": "--usd-per-gpu-hour"},
}
FILE_KEYS = {"filter": "config", "tokenizer": "config", "train": "config"}  # a config file the stage reads
OTHER_KEYS = {"tokenizer": {"pretrained"},  # a base model's tokenizer directory instead of training one
              "train": {"nproc_per_node", "overrides", "local_cache"},  # local_cache: a remote work_dir's copies
              "mix": {"domain_share", "target", "max_epochs", "val_fraction", "seed", "shard_tokens",
                      "allow_shortfall", "phases"}}  # phases: mixtures/recipe.py
SOURCE_KEYS = {"name", "domain", "inputs", "hf_dataset", "hf_config", "hf_split", "hf_text_field", "hf_id_field",
               "text_field", "id_field", "format", "priority", "filter", "mix", "license", "url", "description"}
MIX_SOURCE_KEYS = {"weight", "max_epochs", "optional"}  # a source's `mix:` (mixtures/recipe.py SOURCE_KEYS)
# Each stage's command-line parser checks the types and choices of its settings before any work; these are
# the other arguments a parse needs (placeholders: paths are checked on their own).
STAGE_PARSERS = {"clean": ("pipelines.clean", ["--input", "x", "--output", "x", "--domain", "domain"]),
                 "filter": ("pipelines.filter", ["--input", "x", "--output", "x"]),
                 "dedup": ("pipelines.dedup", ["--input", "x", "--output", "x"]),
                 "tokenize": ("pipelines.tokenize", ["--input", "x", "--output", "x", "--tokenizer", "x"])}
TOP_KEYS = {"work_dir", "beam", "sources", *FLAGS, *OTHER_KEYS, "filter", "tokenizer", "train",
            "sweep", "mixture"}  # sweep: read by python -m mixtures.sweep only (validated here too)


@dataclass
class RunConfig:
    """A parsed run config: ``sources`` and each stage's settings, as plain dicts (validated)."""

    path: Path
    work_dir: Path | RemotePath  # a local directory, or any Beam filesystem's (gs://...): core/workdir.py
    beam: list[str]
    sources: list[dict[str, Any]]
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    mixture: Path | None = None  # `mixture: DIR`: start from a built mixture (train -> export -> report only)

    def stage(self, name: str) -> dict[str, Any]:
        return self.stages.get(name) or {}


def load_run_config(path: str | os.PathLike, check_inputs: bool = True, remote_inputs: bool = True,
                    local_runner: bool = False) -> RunConfig:
    """Read and validate the whole run config before any work; paths in it are relative to the current
    directory (the repo). Every problem found is collected into one :class:`RunConfigError`: the shape of
    the config and its keys at every depth, every stage's values (through the stage's own parser or config
    reader), the files the stages read, the tokenizer's vocabulary against the model's, and (``check_inputs``)
    that every source's input globs match files; ``remote_inputs=False`` leaves ``gs://``-style globs
    unmatched (``--check`` on a machine without the bucket's credentials). ``local_runner``: the config is to be
    run here, so its Beam runner must be one that writes to the local work directory (not Dataflow)."""
    doc = read_yaml(path, RunConfigError)
    problems: list[str] = []
    try:
        check_keys(doc, TOP_KEYS, "run config", RunConfigError)
    except RunConfigError as exc:
        problems.append(str(exc))
    work_dir = doc.get("work_dir")
    if not work_dir or not isinstance(work_dir, str):
        problems.append("work_dir is required (a local directory for every output)")
    elif "://" in work_dir:  # a remote work directory: its scheme must be one of Beam's filesystems
        from apache_beam.io.filesystems import FileSystems

        try:
            FileSystems.get_filesystem(work_dir)
        except ValueError as exc:
            problems.append(f"work_dir {work_dir!r}: no Beam filesystem for it ({exc}; gs:// needs apache-beam[gcp])")
    elif Path(work_dir).exists() and not Path(work_dir).is_dir():
        problems.append(f"work_dir {work_dir!r} is a file, not a directory")
    sources = doc.get("sources")
    mixture = doc.get("mixture")
    if mixture is not None:  # a built mixture: nothing to curate, tokenize or mix
        problems += _mixture_start_problems(doc)
        sources = []
    elif not isinstance(sources, list) or not sources:
        problems.append("sources must be a non-empty list")
        sources = []
    for i, s in enumerate(sources):
        problems += _source_problems(i, s)
    names = [s.get("name") for s in sources if isinstance(s, dict)]
    if len(set(map(str, names))) != len(names):
        problems.append(f"source names must be unique: {names}")
    if "sweep" in doc:  # the mixture search's settings (mixtures/sweep.py, docs/runs.md): refused here too
        from mixtures.sweep import parse_sweep

        try:
            parse_sweep(doc["sweep"])
        except ConfigError as exc:
            problems.append(str(exc))
    stages = {}
    for name in sorted(set(FLAGS) | set(OTHER_KEYS) | set(FILE_KEYS)):
        section = doc.get(name) or {}
        if not isinstance(section, dict):
            problems.append(f"{name} must be a mapping, got {section!r}")
            section = {}
        known = set(FLAGS.get(name, {})) | OTHER_KEYS.get(name, set()) | ({FILE_KEYS[name]} if name in FILE_KEYS
                                                                          else set())
        try:
            check_keys(section, known, name, RunConfigError)
        except RunConfigError as exc:
            problems.append(str(exc))
        stages[name] = section
    beam = doc.get("beam") or ["--runner", "DirectRunner"]
    if isinstance(beam, str):
        beam = beam.split()
    if not isinstance(beam, list):
        problems.append(f"beam must be a list of Beam options (or one string), got {beam!r}")
        beam = []
    local_cache = stages.get("train", {}).get("local_cache")
    if local_cache is not None and (not isinstance(local_cache, str) or not local_cache or "://" in local_cache):
        problems.append(f"train.local_cache must be a local directory, got {local_cache!r}")
    remote_work = isinstance(work_dir, str) and "://" in work_dir
    cfg = RunConfig(Path(path), work_path(str(work_dir or ".")) if not problems or not remote_work else
                    RemotePath(work_dir), [str(b) for b in beam], sources, stages,
                    Path(mixture) if isinstance(mixture, str) and mixture else None)
    runner = beam_runner(cfg.beam)
    if local_runner and runner.lower().removesuffix("runner") not in ("direct", "prism") and not remote_work:
        problems.append(f"beam: --runner {runner}: remote workers cannot write the local work directory "
                        f"{work_dir}: give a work_dir they can write (gs://bucket/run), and validate this config "
                        "with --check (docs/runs.md)")
        check_inputs = False  # (listing gs:// globs is for a run that goes ahead)
    if all(isinstance(s, dict) and isinstance(s.get("name"), str) and s["name"] for s in sources):
        problems += _value_problems(cfg, recipe=not problems)  # (the recipe, once its sources are right)
        if check_inputs:
            problems += _input_problems(cfg, remote_inputs)
    if problems:
        raise RunConfigError(*[f"{path}: {p}" for p in problems])
    return cfg


def beam_runner(beam: list[str]) -> str:
    """The ``--runner`` of a list of Beam options (``--runner X`` or ``--runner=X``; default DirectRunner)."""
    for i, option in enumerate(beam):
        if option.startswith("--runner="):
            return option.split("=", 1)[1]
        if option == "--runner" and i + 1 < len(beam):
            return beam[i + 1]
    return "DirectRunner"


def _source_problems(i: int, s: Any) -> list[str]:
    """The shape of one ``sources`` entry: its keys and their kinds (values that need a file come later)."""
    where = f"sources[{i}]"
    if not isinstance(s, dict):
        return [f"{where} must be a mapping with name, domain and inputs (or hf_dataset), got {s!r}"]
    where += f" ({s['name']})" if s.get("name") else ""
    problems = []
    try:
        check_keys(s, SOURCE_KEYS, where, RunConfigError)
    except RunConfigError as exc:
        problems.append(str(exc))
    if not s.get("name") or not isinstance(s["name"], str):
        problems.append(f"{where}: needs a name (a non-empty string)")
    if "domain" not in s:
        problems.append(f"{where}: needs a domain, one of {' or '.join(DOMAINS)}")
    elif s["domain"] not in DOMAINS:
        problems.append(f"{where}: domain must be one of {' or '.join(DOMAINS)} (the side of the mixture), "
                        f"got {s['domain']!r}")
    if bool(s.get("inputs")) == bool(s.get("hf_dataset")):
        problems.append(f"{where}: give inputs (file globs) or hf_dataset, "
                        + ("not both" if s.get("inputs") else "one of them"))
    inputs = s.get("inputs")
    if inputs is not None and not (isinstance(inputs, list) and all(isinstance(x, str) and x for x in inputs)):
        problems.append(f"{where}: inputs must be a list of file globs, got {inputs!r}")
    for key in ("text_field", "id_field", "hf_dataset", "hf_config", "hf_split", "hf_text_field", "hf_id_field"):
        if key in s and not (isinstance(s[key], str) and s[key]):
            problems.append(f"{where}: {key} must be a non-empty string, got {s[key]!r}")
    if s.get("hf_dataset") and (s.get("text_field") and s.get("hf_text_field")
                                or s.get("id_field") and s.get("hf_id_field")):
        problems.append(f"{where}: give text_field/id_field or hf_text_field/hf_id_field, not both")
    if s.get("priority") is not None and (isinstance(s["priority"], bool) or not isinstance(s["priority"],
                                                                                           (int, float))):
        problems.append(f"{where}: priority must be a number (lowest wins in dedup), got {s['priority']!r}")
    for key in ("filter", "mix"):
        if s.get(key) is not None and not isinstance(s[key], dict):
            problems.append(f"{where}: {key} must be a mapping, got {s[key]!r}")
    if isinstance(s.get("mix"), dict):
        try:
            check_keys(s["mix"], MIX_SOURCE_KEYS, f"{where} mix", RunConfigError)
        except RunConfigError as exc:
            problems.append(str(exc))
    return problems


def _parse_problem(module: str, argv: list[str]) -> str | None:
    """What a stage's own argument parser says about ``argv`` (None: it parses). Beam's options pass."""
    parser = importlib.import_module(module).build_parser()

    def error(message: str) -> None:
        raise RunConfigError(message)

    parser.error = error  # type: ignore[method-assign]  (argparse would print usage and exit)
    try:
        args, rest = parser.parse_known_args(argv)
    except RunConfigError as exc:
        return str(exc)
    if (getattr(args, "split_mb", 1) or 1) <= 0 or (getattr(args, "part_mb", 1) or 1) <= 0:
        return "--split-mb and --part-mb must be > 0"  # (as pipelines/options.py parse says)
    if getattr(args, "batch_size", 1) < 1:
        return "--batch-size must be >= 1"
    if module == "pipelines.dedup":  # its own range checks (threshold in (0, 1), ...)
        try:
            importlib.import_module(module).config_from_args(args)
        except ValueError as exc:
            return str(exc)
    if module.startswith("pipelines."):  # what the stage does not know must be a Beam option (pipelines/options.py)
        from pipelines.options import beam_args_problem

        return beam_args_problem(parser, rest)
    return None


def _checked(problems: list[str], where: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with ``where: why`` added to ``problems`` (a config reader's ValueError/TypeError;
    a :class:`ConfigError` adds each of its problems)."""
    try:
        return fn()
    except (ValueError, TypeError, OSError) as exc:
        for message in getattr(exc, "problems", None) or [str(exc)]:
            message = message.replace("\n", " ")
            problems.append(message if message.startswith(where) else f"{where}: {message}")
        return None


def _value_problems(cfg: RunConfig, recipe: bool = True) -> list[str]:
    """Every stage's values, the files the stages read, and tokenizer vs model vocabulary."""
    from core.model_config import ModelConfig
    from filters.rules import FilterConfig, with_override
    from mixtures.recipe import recipe_from_dict
    from mixtures.tokenizer import TokenizerConfig
    from train.config import load_config
    from train.precision import names as format_names

    problems: list[str] = []

    def need_file(where: str, value: Any, what: str) -> bool:
        if not value:
            problems.append(f"{where} ({what}) is required")
        elif not isinstance(value, str) or not Path(value).is_file():
            problems.append(f"{where}: {value!r} is not a file ({what})")
        else:
            return True
        return False

    # command-line stages: each stage's parser (types, choices), one parse per distinct argv
    for stage, (module, required) in STAGE_PARSERS.items():
        argvs = {tuple(_flags(stage, cfg.stage(stage)))}
        if stage == "clean":
            argvs = {tuple(["--format", str(s.get("format", "auto")), *_field_flags(s), *_flags(stage, cfg.stage(
                stage))]) for s in cfg.sources}
        whys = {why: None for argv in sorted(argvs) if (why := _parse_problem(module, [*required, *argv]))}
        problems += [f"{stage}: {why}" for why in whys]  # (once, not once per source)
    if (why := _parse_problem("pipelines.clean", [*STAGE_PARSERS["clean"][1], *cfg.beam])) is not None:
        problems.append(f"beam: {why}")  # the options every Beam stage gets: Beam's own, once
    # filter: the base config, and each source's override on top (as _filter_config), read as the filter stage reads it
    base = cfg.stage("filter").get("config")
    if base is None or need_file("filter.config", base, "a filter YAML"):
        base_doc = _checked(problems, f"filter.config {base}", lambda: read_yaml(base) if base else {})
        if base_doc is not None and _checked(problems, f"filter.config {base}",
                                             lambda: FilterConfig.from_dict(base_doc)) is not None:
            for i, s in enumerate(cfg.sources):
                if s.get("filter"):
                    _checked(problems, f"sources[{i}] ({s['name']}) filter",
                             lambda s=s: FilterConfig.from_dict(with_override(base_doc, s["filter"])))
    # tokenizer: trained (tokenizer.config) or a base model's (tokenizer.pretrained: DIR, nothing trained)
    settings = cfg.stage("tokenizer")
    tokenizer = None
    if cfg.mixture is not None:  # a built mixture: its tokenizer is checked against the model below
        pass
    elif settings.get("pretrained") is not None:
        tokenizer = _pretrained_tokenizer(problems, settings)
    elif need_file("tokenizer.config", settings.get("config"), "a tokenizer YAML, e.g. configs/tokenizer/demo.yaml"):
        def read_tokenizer() -> TokenizerConfig:
            raw = asdict(TokenizerConfig.from_yaml(settings["config"]))
            return TokenizerConfig.from_dict({**raw, **{k: v for k, v in settings.items() if k != "config"}})
        tokenizer = _checked(problems, f"tokenizer ({settings['config']})", read_tokenizer)
    # train: the trainer's own config reader, with the overrides the run passes
    settings = cfg.stage("train")
    model = None
    nproc = settings.get("nproc_per_node", 1)
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        problems.append(f"train.nproc_per_node must be a whole number >= 1, got {nproc!r}")
    if not isinstance(settings.get("overrides") or {}, dict):
        problems.append(f"train.overrides must be a mapping of section.key: value, got {settings['overrides']!r}")
    elif need_file("train.config", settings.get("config"), "the model and trainer YAML"):
        config, overrides = settings["config"], _train_overrides(cfg)
        first = len(problems)
        _checked(problems, config, lambda: load_config(config, overrides))
        problems[first:] = [f"train: {p}" for p in problems[first:]]
        model = _checked([], config, lambda: _run_model(cfg))
    # mix: the recipe the run writes, read by the mixer's reader
    settings = cfg.stage("mix")
    if not isinstance(settings.get("allow_shortfall", False), bool):
        problems.append(f"mix.allow_shortfall must be true or false, got {settings['allow_shortfall']!r}")
    target_config = (settings.get("target") or {}).get("model_config") if isinstance(settings.get("target"),
                                                                                       dict) else None
    target_model = None
    if target_config is not None and need_file("mix.target.model_config", target_config, "a trainer YAML"):
        target_model = _checked(problems, f"mix.target.model_config {target_config}",
                                lambda: ModelConfig.from_yaml(target_config))
    if recipe and not problems and cfg.mixture is None:  # (the recipe reads the filter config for its routes)
        _checked(problems, "mix", lambda: recipe_from_dict(make_recipe(cfg)))
    # plan and export
    plan_flags = _flags("plan", cfg.stage("plan"))
    if plan_flags and (why := _parse_problem("train.plan", ["--params", "1e9", *plan_flags])) is not None:
        problems.append(f"plan: {why}")
    dtype = cfg.stage("export").get("dtype")
    if dtype is not None and dtype not in format_names("export"):  # train.export --dtype's choices
        problems.append(f"export.dtype must be one of {format_names('export')}, got {dtype!r}")
    problems += _base_tokenizer_problems(cfg, model) if cfg.mixture is None else _mixture_model_problems(cfg, model)
    # the tokenizer's vocabulary must fit the model's embedding (the mixture will have the tokenizer's)
    if tokenizer is not None:
        mixture = Manifest(vocab_size=tokenizer.vocab_size)
        for where, m in (("train.config", model), ("mix.target.model_config", target_model)):
            if m is not None and mixture.model_vocab_size(m.vocab_size) < tokenizer.vocab_size:
                given = cfg.stage("tokenizer")
                if given.get("pretrained") is not None:
                    problems.append(f"the pretrained tokenizer's vocabulary of {tokenizer.vocab_size:,} "
                                    f"({given['pretrained']}) > model.vocab_size {m.vocab_size:,} of {where}: set the "
                                    f"model's to {tokenizer.vocab_size} or more (or 0: the mixture's)")
                    continue
                problems.append(f"the tokenizer's vocab_size {tokenizer.vocab_size:,} ({given['config']}"
                                f"{' + tokenizer.vocab_size' if 'vocab_size' in given else ''}) "
                                f"> model.vocab_size {m.vocab_size:,} of {where}: set tokenizer.vocab_size to "
                                f"{m.vocab_size}, or the model's to {tokenizer.vocab_size} (or 0: the mixture's)")
    return problems


def _run_model(cfg: RunConfig) -> Any:
    """The ``ModelConfig`` the trainer will build: ``train.config``'s model section with the run's ``model.*``
    overrides (``model.init_from``: the base's shape). Raises what the readers raise."""
    from core.model_config import ModelConfig
    from train.config import apply_overrides
    from train.hf_import import resolve_model_section

    config = cfg.stage("train")["config"]
    model_overrides = [o for o in _train_overrides(cfg) if o.startswith("model.")]  # the model alone
    return ModelConfig.from_dict(resolve_model_section(
        apply_overrides(read_yaml(config), model_overrides).get("model") or {}))


def _base_tokenizer_problems(cfg: RunConfig, model: Any) -> list[str]:
    """Continued pretraining: a train config whose ``model.init_from`` base has a ``tokenizer.json`` needs the
    run to tokenize with that tokenizer (``tokenizer: {pretrained: DIR}`` naming the same file, by sha256);
    the trainer refuses the mixture otherwise, after every step before it has run."""
    from mixtures.tokenizer import file_sha256

    base = getattr(model, "init_from", None) if model is not None else None
    if not base or not (Path(base) / "tokenizer.json").is_file():
        return []
    pretrained = cfg.stage("tokenizer").get("pretrained")
    if pretrained is None:
        return [f"train: model.init_from={base} is a base with its own tokenizer, but the run trains a tokenizer "
                f"(tokenizer.config): set tokenizer: {{pretrained: {base}}}"]
    mine = Path(str(pretrained)) / "tokenizer.json"
    if not mine.is_file():
        return []  # (reported with tokenizer.pretrained)
    have, want = file_sha256(mine), file_sha256(Path(base) / "tokenizer.json")
    if have != want:
        return [f"tokenizer.pretrained {pretrained} (tokenizer.json sha256 {have[:12]}) is not the tokenizer of "
                f"train's model.init_from {base} (sha256 {want[:12]}): the base's embeddings would read other "
                f"tokens; set tokenizer: {{pretrained: {base}}}"]
    return []


# A run config that starts from a built mixture (`mixture: DIR`) has no curation: these sections have nothing to do.
BEFORE_TRAINING = ("clean", "filter", "dedup", "tokenizer", "tokenize", "mix")


def _mixture_start_problems(doc: dict[str, Any]) -> list[str]:
    """``mixture: DIR`` (train -> export -> report from a mixture that mixtures.mix or a run's mix step wrote):
    DIR must hold its manifest.json, and the config must not also ask for the steps that build one."""
    mixture, problems = doc["mixture"], []
    if not isinstance(mixture, str) or not mixture:
        return [f"mixture must be a directory (a built mixture: manifest.json, train/, val_*/), got {mixture!r}"]
    if not (Path(mixture) / "manifest.json").is_file():
        what = "does not exist" if not Path(mixture).exists() else "has no manifest.json"
        problems.append(f"mixture: {mixture} {what}: build that mixture first (the run config that writes it, "
                        "e.g. make demo for work/demo/mix, or python -m mixtures.mix)")
    given = [name for name in ("sources", *BEFORE_TRAINING) if doc.get(name)]
    if given:
        problems.append(f"mixture: {mixture} starts the run at training: remove {given} (nothing is curated, "
                        "tokenized or mixed)")
    return problems


def _mixture_model_problems(cfg: RunConfig, model: Any) -> list[str]:
    """A run from a built mixture: the model's vocabulary must cover the mixture's, and a base
    (``model.init_from``) with a ``tokenizer.json`` must have the mixture's tokenizer (by sha256)."""
    from mixtures.tokenizer import file_sha256

    if cfg.mixture is None or not (cfg.mixture / "manifest.json").is_file() or model is None:
        return []
    try:
        manifest = read_manifest(cfg.mixture)
        if manifest is None or "vocab_size" not in manifest.as_read():
            raise ValueError("no vocab_size")
        vocab = manifest.vocab_size
    except (OSError, ValueError) as exc:
        return [f"mixture: {cfg.mixture}/manifest.json is not a mixer manifest ({exc})"]
    problems = []
    if manifest.model_vocab_size(model.vocab_size) < vocab:
        problems.append(f"mixture: {cfg.mixture} has a vocabulary of {vocab:,} > model.vocab_size "
                        f"{model.vocab_size:,} of train.config")
    base, mine = getattr(model, "init_from", None), cfg.mixture / "tokenizer.json"
    if base and (Path(base) / "tokenizer.json").is_file() and mine.is_file():
        have, want = file_sha256(mine), file_sha256(Path(base) / "tokenizer.json")
        if have != want:
            problems.append(f"mixture: {cfg.mixture} was tokenized with another tokenizer (sha256 {have[:12]}) than "
                            f"the base of model.init_from {base} (sha256 {want[:12]})")
    return problems


# What a pretrained tokenizer directory may hold besides tokenizer.json: copied with it, so that the export
# can hand the base's tokenizer files back (Hugging Face's names).
PRETRAINED_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _pretrained_tokenizer(problems: list[str], settings: dict[str, Any]) -> Any:
    """``tokenizer.pretrained: DIR``: a directory with ``tokenizer.json`` and an end-of-document token, and
    nothing to train beside it. Returns an object with its ``vocab_size``, or None (``problems`` says why)."""
    from types import SimpleNamespace

    from mixtures.tokenizer import eos_id

    directory = settings["pretrained"]
    others = sorted(k for k in settings if k != "pretrained")
    if others:
        problems.append(f"tokenizer.pretrained replaces tokenizer training: remove tokenizer {others}")
    if not isinstance(directory, str) or not (Path(directory) / "tokenizer.json").is_file():
        problems.append(f"tokenizer.pretrained: {directory!r} has no tokenizer.json (a Hugging Face model or "
                        "tokenizer directory)")
        return None

    def read():
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
        except Exception as exc:  # (tokenizers raises a bare Exception on a bad file)
            raise ValueError(f"tokenizer.json does not load: {exc}") from exc
        eos_id(tok)
        return SimpleNamespace(vocab_size=tok.get_vocab_size())
    return _checked(problems, f"tokenizer.pretrained {directory}", read)


def _input_problems(cfg: RunConfig, remote: bool) -> list[str]:
    """Every source's input globs match files (local: glob; ``gs://`` etc.: Beam's filesystems, if ``remote``)."""
    problems = []
    for i, s in enumerate(cfg.sources):
        for pattern in s.get("inputs") if isinstance(s.get("inputs"), list) else []:
            if "://" in pattern:
                if not remote:
                    continue
                try:
                    from apache_beam.io.filesystems import FileSystems

                    found = bool(FileSystems.match([pattern])[0].metadata_list)
                except Exception as exc:  # noqa: BLE001  (no credentials, no filesystem: say so, one line)
                    problems.append(f"sources[{i}] ({s['name']}): cannot list {pattern}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                    continue
            else:
                found = any(os.path.isfile(p) for p in glob.glob(pattern))
            if not found:
                problems.append(f"sources[{i}] ({s['name']}): input {pattern} matches no files")
        hf = s.get("hf_dataset")
        if hf and hf.startswith(("./", "../", "/")) and not Path(hf).exists():  # a local path, not a hub name
            problems.append(f"sources[{i}] ({s['name']}): hf_dataset {hf} does not exist")
    return problems


def _flags(stage: str, settings: dict[str, Any]) -> list[str]:
    out = []
    for key, value in settings.items():
        flag = FLAGS[stage].get(key)
        if flag is None or value is None:
            continue
        if isinstance(value, bool):
            out += [flag] if value else (["--no-" + flag[2:]] if key == "verify" else [])
        else:
            out += [flag, str(value)]
    return out


def _field_flags(s: dict[str, Any]) -> list[str]:
    """A source's ``text_field``/``id_field`` as the clean stage's flags (dotted paths into nested JSON).
    Only given ones are passed, so a config without them keeps its fingerprints."""
    return [x for key, flag in (("text_field", "--text-field"), ("id_field", "--id-field")) if s.get(key)
            for x in (flag, str(s[key]))]


def _train_overrides(cfg: RunConfig) -> list[str]:
    """The trainer's ``key=value`` overrides: the config's, after the mixture and output the run sets."""
    given = cfg.stage("train").get("overrides") or {}
    over = [f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in given.items()]
    local = local_cache(cfg)  # a remote work directory: the trainer reads and writes a local copy
    mix_dir = cfg.mixture or (local / "mix" if local else cfg.work_dir / "mix")
    return [f"data.dir={mix_dir}", f"train.out_dir={local / 'train' if local else cfg.work_dir / 'train'}",
            "train.progress=false", *over]


def local_cache(cfg: RunConfig) -> Path | None:
    """Where a run with a remote work directory keeps the local copies the trainer and export need: the
    mixture (``mix/``, staged and checked against its ``SHA256SUMS``), the training output (``train/``, copied up
    to the work directory after training) and the export (``hf/``). ``train.local_cache`` or, by default,
    ``<system temp>/domainlm-cache/<sha256 of work_dir, 16 hex>``. None for a local work directory."""
    if not isinstance(cfg.work_dir, RemotePath):
        return None
    given = cfg.stage("train").get("local_cache")
    if given:
        return Path(given)
    import tempfile

    key = hashlib.sha256(str(cfg.work_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "domainlm-cache" / key


def _filter_config(cfg: RunConfig, s: dict[str, Any]) -> dict[str, Any]:
    """The filter config of one source: the stage's config file with the source's ``filter:`` on top, the one
    per-source override (``filters.rules.with_override``: also on top of each domain profile, so a domain
    source's documents keep their profile under its override)."""
    from filters.rules import with_override

    base = cfg.stage("filter").get("config")
    return with_override(read_yaml(base, RunConfigError) if base else {}, s.get("filter") or {})


def make_recipe(cfg: RunConfig) -> dict[str, Any]:
    """The mixer recipe: the config's ``mix`` settings and one mixer source per run source."""
    settings = {k: v for k, v in cfg.stage("mix").items() if k != "allow_shortfall"}
    sources = []
    for s in cfg.sources:
        src = {"name": s["name"], "domain": s["domain"], "dir": f"{s['domain']}/{s['name']}"}
        src.update(s.get("mix") or {})
        sources.append(src)
    for s in cfg.sources:  # what the filter's routes move to another side is mixed with that side
        routes = _filter_config(cfg, s).get("route") or []
        routes = [routes] if isinstance(routes, (str, dict)) else routes  # `route: finance`: a bundled route
        targets = {r.get("to", "domain") if isinstance(r, dict) else "domain" for r in routes} - {s["domain"]}
        for to in sorted(targets):
            src = {"name": f"{s['name']}{ROUTED}", "domain": to, "dir": f"{to}/{s['name']}", "optional": True}
            src.update({k: v for k, v in (s.get("mix") or {}).items() if k == "max_epochs"})
            sources.append(src)
    return {**settings, "tokens_dir": str(cfg.work_dir / "tokens"), "sources": sources}


# ----------------------------------------------------------------------------- fingerprints

def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


NOT_STAGE_CODE = {"run/orchestrator.py", "run/report.py", "pipelines/rule_report.py"}  # change no output


def code_version(packages: tuple[str, ...] = PACKAGES) -> str:
    """A hash of the package sources (and bundled models), so that new code reruns its steps."""
    h = hashlib.sha256()
    for package in packages:
        for path in sorted((ROOT / package).rglob("*")):
            if str(path.relative_to(ROOT)) in NOT_STAGE_CODE:
                continue
            if path.is_file() and path.suffix in (".py", ".ftz", ".yaml") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def files_fingerprint(patterns: list[str]) -> list[tuple[str, int, float]]:
    """``(path, size, modification time)`` of every file the globs match (any Beam filesystem)."""
    from apache_beam.io.filesystems import FileSystems

    out = []
    for pattern in patterns:
        if FileSystems.get_scheme(pattern) is None:
            out += [(p, os.path.getsize(p), os.path.getmtime(p))
                    for p in sorted(glob.glob(pattern)) if os.path.isfile(p)]
        else:
            for m in FileSystems.match([pattern])[0].metadata_list:
                out.append((m.path, m.size_in_bytes, m.last_updated_in_seconds))
    return out


def file_content(path: str | os.PathLike | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None


# ----------------------------------------------------------------------------- steps

@dataclass
class Step:
    """One unit of work: ``stage`` (for --until/--force), a name (``clean:finance``), its output
    directory, what it depends on (a dict hashed into its fingerprint) and how to run it."""

    stage: str
    name: str
    output: Path
    depends: dict[str, Any]
    run: Callable[[], None]
    keep_output: bool = False  # train: a changed fingerprint moves the old run aside, never deletes it
    local_output: Path | None = None  # train with a remote work directory: its local copy, moved aside with it
    resume_note: Callable[[], str] | None = None  # what rerunning an unfinished attempt does (train: its checkpoint)
    entry: dict[str, Any] | None = None  # clean/filter: this source's entry in its stage's one job (--sources)


class Runner:
    """Carries out the steps of a run config in order, skipping those already done."""

    def __init__(self, cfg: RunConfig, until: str | None = None, force: str | None = None):
        self.cfg, self.work = cfg, cfg.work_dir
        self.until = STAGES.index(until) if until else len(STAGES) - 1
        self.force = STAGES.index(force) if force else len(STAGES)
        self.records = self.work / ".run"
        self.fingerprints: dict[str, str] = {}
        self.code = {"curation": code_version(("pipelines", "filters")), "mixtures": code_version(("mixtures",)),
                     "train": code_version(("train",))}
        self.done: list[tuple[str, str]] = []  # (step, "ran" | "skipped")
        self.dry_run = False  # plan_run: steps are made without listing remote inputs or reading earlier outputs

    # ---- bookkeeping
    def _record(self, step: Step) -> dict[str, Any]:
        path = self.records / f"{step.name.replace(':', '-')}.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write_record(self, step: Step, record: dict[str, Any]) -> None:
        self.records.mkdir(parents=True, exist_ok=True)
        path = self.records / f"{step.name.replace(':', '-')}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str), encoding="utf-8")
        tmp.replace(path)

    def up_to_date(self, step: Step) -> bool:
        """Whether ``step`` is done with the same fingerprint, its output is there and it is not forced."""
        before = self._record(step)
        complete = before.get("status") == "done" and step.output.exists()  # (an output deleted by hand reruns)
        return before.get("fingerprint") == _sha(step.depends) and complete and STAGES.index(step.stage) < self.force

    def execute(self, step: Step) -> None:
        self.execute_group([step], lambda steps: steps[0].run())

    def execute_group(self, steps: list[Step], run: Callable[[list[Step]], None]) -> None:
        """Steps of one stage carried out as one job (clean, filter: one Beam job for every source):
        each keeps its own record, fingerprint and skip; ``run`` gets the steps that are not up to date,
        all marked running before and done after."""
        started = [(step, *begun) for step in steps if (begun := self._begin(step)) is not None]
        if not started:
            return
        run([step for step, _, _ in started])
        for step, fingerprint, t0 in started:
            self._write_record(step, {"step": step.name, "fingerprint": fingerprint, "status": "done",
                                      "started": t0, "seconds": round(time.time() - t0, 1), "depends": step.depends})
            self.done.append((step.name, "ran"))

    def _begin(self, step: Step) -> tuple[str, float] | None:
        """Skip an up-to-date step (None), or clear its old output and record it as running."""
        index = STAGES.index(step.stage)
        fingerprint = _sha(step.depends)
        self.fingerprints[step.name] = fingerprint
        if self.up_to_date(step):
            print(f"run: {step.name}: up to date, skipped")
            self.done.append((step.name, "skipped"))
            return None
        before = self._record(step)
        forced = index >= self.force
        resuming = before.get("fingerprint") == fingerprint and not forced
        why = (f"forced (--force {STAGES[self.force]})" if forced
               else "its settings or inputs changed" if before else "")
        if step.output.exists() and not resuming:
            if step.keep_output:
                aside = step.output.with_name(step.output.name + ".previous")
                rmtree(aside)
                step.output.rename(aside)
                print(f"run: {step.name}: {why or 'no record of it'}; the previous run was moved to {aside}")
            else:
                rmtree(step.output)
        if step.local_output is not None and step.local_output.exists() and not resuming:
            aside = step.local_output.with_name(step.local_output.name + ".previous")
            rmtree(aside)
            step.local_output.rename(aside)
        if resuming:  # what the step really does with the unfinished attempt's output
            what = (step.resume_note() if step.resume_note else "running again: its output is missing"
                    if before.get("status") == "done" else "running again: the last attempt did not finish")
        else:
            what = f"running ({why})" if why else "running"
        print(f"run: {step.name}: {what}")
        t0 = time.time()
        self._write_record(step, {"step": step.name, "fingerprint": fingerprint, "status": "running",
                                  "started": t0, "depends": step.depends})
        return fingerprint, t0

    # ---- the stages
    def run(self) -> None:
        cfg, work = self.cfg, self.work
        work.mkdir(parents=True, exist_ok=True)
        (work / "run.yaml").write_text(cfg.path.read_text(encoding="utf-8"), encoding="utf-8")
        beam = cfg.beam
        steps: list[tuple[str, Callable[[], Step | list[Step]]]] = [
            ("clean", lambda: [self._clean(s, beam) for s in cfg.sources]),  # one Beam job for the stale sources
            ("filter", lambda: [self._filter(s, beam) for s in cfg.sources]),
            ("dedup", lambda: self._dedup(beam)), ("tokenizer", self._tokenizer),
            ("tokenize", lambda: self._tokenize(beam)),
            ("mix", self._mix), ("train", self._train), ("export", self._export)]
        if cfg.mixture is not None:  # `mixture: DIR`: a built mixture stands for every step up to mix
            self.fingerprints["mix"] = _sha({"mixture": str(cfg.mixture), "files": files_fingerprint(
                [str(cfg.mixture / "*"), str(cfg.mixture / "*" / "*")])})
            steps = [(stage, make) for stage, make in steps if stage in ("train", "export")]
        for stage, make in steps:
            if STAGES.index(stage) > self.until:
                return
            step = make()
            if isinstance(step, list):
                self.execute_group(step, lambda stale, stage=stage: self._sources_job(stage, stale, beam))
                continue
            if stage == "train" and not self.up_to_date(step):  # the estimate once, before a training that runs
                self.print_plan()
            self.execute(step)
        if STAGES.index("report") <= self.until:
            from run import report

            if isinstance(work, RemotePath):  # the report reads the run's records and stats: a local view of them
                with _local_view(work) as view:
                    report.main(["--work", str(view), "--quiet"])
                    for name in ("report.html", "report.md"):
                        if (view / name).is_file():
                            (work / name).write_bytes((view / name).read_bytes())
            else:
                report.main(["--work", str(work), "--quiet"])
            self.done.append(("report", "ran"))

    def _clean(self, s: dict[str, Any], beam: list[str]) -> Step:
        from pipelines.options import argv_entry

        out = self.work / "clean" / s["name"]
        if s.get("inputs"):
            inputs = [x for pattern in s["inputs"] for x in ("--input", pattern)] + _field_flags(s)
            data = s["inputs"] if self.dry_run else files_fingerprint(s["inputs"])  # (a dry run lists nothing)
        else:
            inputs = ["--hf-dataset", s["hf_dataset"], "--hf-split", s.get("hf_split", "train")]
            inputs += ["--hf-config", s["hf_config"]] if s.get("hf_config") else []
            inputs += ["--hf-text-field", s.get("hf_text_field", s.get("text_field", "text")),
                       "--hf-id-field", s.get("hf_id_field", s.get("id_field", "id"))]
            data = {k: s.get(k) for k in ("hf_dataset", "hf_config", "hf_split", "hf_text_field", "hf_id_field")}
        own = [*inputs, "--output", str(out), "--source", s["name"], "--domain", s["domain"],
               "--format", s.get("format", "auto"), *_flags("clean", self.cfg.stage("clean"))]
        argv = [*own, *beam]  # the source's own command line (its fingerprint); it runs as an entry of one job
        step = Step("clean", f"clean:{s['name']}", out, {"argv": argv, "data": data, "code": self.code["curation"]},
                    lambda: self._sources_job("clean", [step], beam), entry={"name": s["name"], **argv_entry(own)})
        return step

    def _filter_config(self, s: dict[str, Any]) -> dict[str, Any]:
        return _filter_config(self.cfg, s)

    def _filter(self, s: dict[str, Any], beam: list[str]) -> Step:
        from pipelines.options import argv_entry

        out = self.work / "filter" / s["name"]
        config = self._filter_config(s)
        config_file = self.records / f"filter-{s['name']}.yaml"
        own = ["--input", str(self.work / "clean" / s["name"]), "--output", str(out), "--config", str(config_file),
               *_flags("filter", self.cfg.stage("filter"))]
        argv = [*own, *beam]
        # in the job, the entry carries the merged config itself, as the file written beside the records holds it
        entry = {"name": s["name"], **argv_entry(own), "config": yaml.safe_load(yaml.safe_dump(config, sort_keys=True))}
        step = Step("filter", f"filter:{s['name']}", out,
                    {"argv": argv, "config": config, "after": self.fingerprints[f"clean:{s['name']}"],
                     "code": self.code["curation"]}, lambda: self._sources_job("filter", [step], beam), entry=entry)
        return step

    def _sources_job(self, stage: str, steps: list[Step], beam: list[str]) -> None:
        """One Beam job for the given sources of ``stage`` (clean or filter): each source's entry, its own
        command line as a mapping (``pipelines.<stage> --sources``), writes its own directory."""
        if any(step.entry is None for step in steps):  # steps made another way (a test's stand-ins): one by one
            for step in steps:
                step.run()
            return
        from pipelines import clean
        from pipelines import filter as filter_stage
        from pipelines.options import beam_options

        if stage == "filter" and not self.dry_run:  # each source's merged filter config, beside the records
            self.records.mkdir(parents=True, exist_ok=True)
            for step in steps:
                path = self.records / f"filter-{step.entry['name']}.yaml"
                path.write_text(yaml.safe_dump(step.entry["config"], sort_keys=True), encoding="utf-8")
        if len(steps) > 1:
            print(f"run: {stage}: one Beam job for {len(steps)} sources ({', '.join(s.entry['name'] for s in steps)})")
        module = {"clean": clean, "filter": filter_stage}[stage]
        module.run_sources([step.entry for step in steps], beam_options(beam), where=f"{stage} job")

    def _dedup(self, beam: list[str]) -> Step:
        out = self.work / "dedup"
        ranked = sorted((s for s in self.cfg.sources if s.get("priority") is not None), key=lambda s: s["priority"])
        priority = ["--source-priority", ",".join(s["name"] for s in ranked)] if ranked else []
        kept = [s for s in self.cfg.sources if self.dry_run or _has_documents(self.work / "filter" / s["name"])]
        if not kept and STAGES.index("dedup") <= self.until:
            raise RunConfigError("the filter stage removed every document of every source: nothing to deduplicate")
        for s in self.cfg.sources:
            if s not in kept:
                print(f"run: {s['name']}: the filter removed all its documents; it is left out from dedup on")
        inputs = [x for s in kept for x in ("--input", str(self.work / "filter" / s["name"]))]
        argv = [*inputs, "--output", str(out), *priority, *_flags("dedup", self.cfg.stage("dedup")), *beam]

        def run():
            from pipelines import dedup
            dedup.main(argv)

        after = [self.fingerprints[f"filter:{s['name']}"] for s in self.cfg.sources]
        return Step("dedup", "dedup", out, {"argv": argv, "after": after, "code": self.code["curation"]}, run)

    def _tokenizer(self) -> Step:
        out = self.work / "tokenizer"
        settings = self.cfg.stage("tokenizer")
        if settings.get("pretrained") is not None:
            return self._pretrained_tokenizer(out, Path(settings["pretrained"]))
        config = settings.get("config")
        if not config:
            raise RunConfigError("tokenizer.config (a tokenizer YAML, e.g. configs/tokenizer/demo.yaml) is required")
        argv = ["--config", str(config), "--input", str(self.work / "dedup"), "--output", str(out),
                *_flags("tokenizer", settings)]

        def run():
            from mixtures import tokenizer
            tokenizer.main(argv)

        return Step("tokenizer", "tokenizer", out, {"argv": argv, "config": file_content(config),
                                                    "after": self.fingerprints["dedup"],
                                                    "code": self.code["mixtures"]}, run)

    def _pretrained_tokenizer(self, out: Path, directory: Path) -> Step:
        """``tokenizer.pretrained``: the base's tokenizer files copied into ``tokenizer/`` (nothing trained),
        so the tokenize step and everything after read them where a trained tokenizer would be."""
        files = [name for name in PRETRAINED_TOKENIZER_FILES if (directory / name).is_file()]

        def run():
            out.mkdir(parents=True, exist_ok=True)
            for name in files:  # (through FileSystems when the work directory is remote)
                (out / name).write_bytes((directory / name).read_bytes())

        return Step("tokenizer", "tokenizer", out, {"pretrained": {n: file_content(directory / n) for n in files},
                                                    "code": self.code["mixtures"]}, run)

    def _tokenize(self, beam: list[str]) -> Step:
        out = self.work / "tokens"
        argv = ["--input", str(self.work / "dedup"), "--output", str(out), "--tokenizer",
                str(self.work / "tokenizer" / "tokenizer.json"), *_flags("tokenize", self.cfg.stage("tokenize")), *beam]

        def run():
            from pipelines import tokenize
            tokenize.main(argv)

        return Step("tokenize", "tokenize", out, {"argv": argv, "after": [self.fingerprints["dedup"],
                                                                          self.fingerprints["tokenizer"]],
                                                  "code": self.code["curation"]}, run)

    def recipe(self) -> dict[str, Any]:
        """The mixer recipe: the config's ``mix`` settings and one mixer source per run source."""
        return make_recipe(self.cfg)

    def _mix(self) -> Step:
        out = self.work / "mix"
        recipe, recipe_file = self.recipe(), self.work / "recipe.yaml"
        argv = ["--recipe", str(recipe_file), "--output", str(out)]
        argv += ["--allow-shortfall"] if self.cfg.stage("mix").get("allow_shortfall") else []
        model_config = (recipe.get("target") or {}).get("model_config")

        def run():
            from mixtures import mix
            from run.dataset_card import write_dataset_card
            tokens = self.work / "tokens"  # a source that no route moved anything from has no routed part
            written = {**recipe, "sources": [src for src in recipe["sources"] if not src["name"].endswith(ROUTED)
                                             or (tokens / src["dir"]).is_dir()]}
            recipe_file.write_text(yaml.safe_dump(written, sort_keys=False), encoding="utf-8")
            mix.main(argv)
            if isinstance(self.work, RemotePath):  # the card reads the run's records and stats: a local view
                with _local_view(self.work) as view:
                    card = write_dataset_card(view, self.cfg.sources)
                    (out / card.name).write_bytes(card.read_bytes())
            else:
                write_dataset_card(self.work, self.cfg.sources)

        return Step("mix", "mix", out, {"argv": argv, "recipe": recipe, "model_config": file_content(model_config),
                                        "after": self.fingerprints["tokenize"], "code": self.code["mixtures"],
                                        "sources": [{k: s.get(k) for k in ("name", "license", "url", "description")}
                                                    for s in self.cfg.sources]}, run)

    def _train_overrides(self) -> list[str]:
        return _train_overrides(self.cfg)

    def print_plan(self) -> None:
        """The planner's memory and time estimate for the configured model, mixture and hardware."""
        from train import plan

        settings = self.cfg.stage("train")
        m = read_manifest(self.cfg.mixture or self.work / "mix")
        argv = ["--model-config", str(settings["config"]), *_flags("plan", self.cfg.stage("plan"))]
        if m is not None:
            try:  # the model's own vocabulary, or (vocab_size 0) the mixture's
                vocab = m.model_vocab_size(_run_model(self.cfg).vocab_size)
            except (OSError, ValueError):  # (validated before the run: a base gone since; the planner says why)
                vocab = m.vocab_size
            argv += ["--tokens", str(m.train_tokens), "--vocab-size", str(vocab)]
        print("run: the planner's estimate for this model and mixture (train.plan " + " ".join(argv) + "):")
        try:
            plan.main(argv)
        except SystemExit as exc:  # an estimate that cannot be made is not a reason to stop the run
            print(f"run: no estimate ({exc})")

    def _train(self) -> Step:
        settings = self.cfg.stage("train")
        out = self.work / "train"
        nproc = int(settings.get("nproc_per_node", 1))
        # train.run launches the ranks itself (torchrun in a session of its own): a Ctrl-C gives one line
        launch = ["--nproc-per-node", str(nproc)] if nproc > 1 else []
        cmd = [sys.executable, "-m", "train.run", *launch, "--config", str(settings["config"]),
               *self._train_overrides()]
        local = local_cache(self.cfg)

        def run():
            if local is not None:  # a remote work directory: the trainer reads a verified local copy
                self._stage_for_training(local, out)
            proc = subprocess.Popen(cmd, cwd=Path.cwd())
            # the launcher hands Ctrl-C / SIGTERM on to the ranks and prints where they stopped: this process
            # only waits for it (and passes a SIGTERM sent to it alone on to the launcher)
            previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
            try:
                code = proc.wait()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if code == EXIT_INTERRUPTED:  # the launcher said where training stopped and how to resume
                sys.exit(EXIT_INTERRUPTED)
            if code != 0:
                raise RuntimeError(f"training failed (exit {code}): {' '.join(cmd)}")
            if local is not None:
                rmtree(out)
                upload(local / "train", out)
                print(f"run: train: copied {local / 'train'} to {out}")

        # no code version: new trainer code resumes from the last checkpoint instead of starting over
        return Step("train", "train", out, {"cmd": cmd[1:], "config": file_content(settings["config"]),
                                            "after": self.fingerprints["mix"]}, run, keep_output=True,
                    resume_note=lambda: _train_resume_note(local / "train" if local else out),
                    local_output=local / "train" if local else None)

    def _stage_for_training(self, local: Path, out: RemotePath) -> None:
        """The mixture copied to ``local/mix`` (checked against the sha256 its mixer recorded; a verified copy is
        re-used), and, when this machine has no copy of an unfinished training run, its checkpoints."""
        if self.cfg.mixture is None:
            staged = stage_mixture(self.work / "mix", local / "mix")
            print(f"run: train: the mixture {self.work / 'mix'} is staged in {staged} (sha256 checked)")
        if out.exists() and not (local / "train").exists():
            download(out, local / "train")
            print(f"run: train: the unfinished run {out} is copied to {local / 'train'} to resume")

    def _export(self) -> Step:
        out = self.work / "hf"
        local = local_cache(self.cfg)  # a remote work directory: export the local copy, then copy it up
        argv = ["--checkpoint", str(local / "train" if local else self.work / "train"),
                "--output", str(local / "hf" if local else out), *_flags("export", self.cfg.stage("export"))]

        def run():
            from train import export
            if local is not None and not (local / "train").exists():
                download(self.work / "train", local / "train")
            export.main(argv)
            if local is not None:
                upload(local / "hf", out)

        return Step("export", "export", out, {"argv": argv, "after": self.fingerprints["train"],
                                              "code": self.code["train"]}, run)


def _train_resume_note(out: Path) -> str:
    """What the trainer will do with an unfinished run in ``out``: resume from its newest complete checkpoint
    (``checkpoints/step_N/meta.json``, train/checkpoint.py), or start from step 0 when there is none yet."""
    steps = []
    for meta in (out / "checkpoints").glob("step_*/meta.json"):
        try:
            steps.append(int(json.loads(meta.read_text(encoding="utf-8"))["step"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a checkpoint cut off while written: the trainer skips it too
    if not steps:
        return "starting from step 0: no checkpoint yet"
    return f"resuming from the checkpoint of step {max(steps)}"


# What the report and the card read: the run reader's records (core/workdir.py) and the report's results files.
VIEW_FILES = frozenset((*RECORD_FILES, "experiment.json", "results.json"))


class _local_view:
    """``with _local_view(work) as view``: a temporary local copy of the files of a remote work directory that
    the run reader reads (:data:`VIEW_FILES`: records, stats, manifests, metrics; not documents, shards or
    checkpoints), removed after."""

    def __init__(self, work: RemotePath):
        self.work = work

    def __enter__(self) -> Path:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory(prefix="domainlm-view-")
        view = Path(self.tmp.name) / self.work.name
        for f in self.work.files():
            if f.rsplit("/", 1)[-1] not in VIEW_FILES:
                continue
            target = view / f[len(str(self.work)):].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(RemotePath(f).read_bytes())
        view.mkdir(parents=True, exist_ok=True)
        return view

    def __exit__(self, *exc: Any) -> None:
        self.tmp.cleanup()


def _has_documents(stage_dir: Path) -> bool:
    """Whether a stage directory kept any document (a source the filter emptied has no parts)."""
    from pipelines.io import InputError, expand_inputs

    try:
        return bool(expand_inputs([str(stage_dir)]))
    except InputError:
        return False


# ----------------------------------------------------------------------------- the dry run of a whole run

LOCAL_STEPS = ("tokenizer", "mix", "train", "export", "report")  # steps that run on this machine, not as Beam jobs
DATAFLOW_NEEDS = ("--project", "--region", "--temp_location")  # else Beam asks gcloud or creates a bucket (network)


def _beam_value(beam: list[str], flag: str) -> str | None:
    for i, option in enumerate(beam):
        if option.startswith(flag + "="):
            return option.split("=", 1)[1]
        if option == flag and i + 1 < len(beam):
            return beam[i + 1]
    return None


def _input_bytes(s: dict[str, Any]) -> tuple[int, list[str]]:
    """The bytes of a source's local inputs (listed here, nothing read) and its inputs that cannot be
    measured without the network or credentials (remote globs, a hub dataset): those are "unknown"."""
    total, unknown = 0, []
    for pattern in s.get("inputs") or []:
        if "://" in pattern:
            unknown.append(pattern)
            continue
        total += sum(os.path.getsize(p) for p in glob.glob(pattern) if os.path.isfile(p))
    hf = s.get("hf_dataset")
    if hf:
        if Path(hf).is_dir():
            total += sum(p.stat().st_size for p in Path(hf).rglob("*") if p.is_file())
        else:
            unknown.append(f"hf:{hf}")
    return total, unknown


def _text_bytes(s: dict[str, Any]) -> float:
    """The text a source's local inputs hold, by the cost model (compressed files expand)."""
    from pipelines import costs

    total = 0.0
    for pattern in s.get("inputs") or []:
        if "://" not in pattern:
            total += sum(costs.text_bytes(p, os.path.getsize(p)) for p in glob.glob(pattern) if os.path.isfile(p))
    if s.get("hf_dataset") and Path(s["hf_dataset"]).is_dir():
        total += _input_bytes({"hf_dataset": s["hf_dataset"]})[0]
    return total


def plan_run(cfg: RunConfig, until: str | None = None) -> list[dict[str, Any]]:
    """``--dry-run``: the run's Beam jobs (one per Beam stage, every source in it) with their inputs, input
    bytes and estimated vCPU-hours and dollars (``pipelines/costs.py``), then the local steps. On
    DataflowRunner each job is also translated and packaged (Beam's ``--dry_run True``: no credentials, no
    network, no job), the later stages with their planned inputs and schemas (earlier stages' outputs that do
    not exist) and, for tokenize, a stand-in tokenizer. Nothing is written: not the work directory, not the
    step records; Beam's package builds go to a temporary directory that is removed. Returns the jobs."""
    from pipelines import costs

    last = STAGES.index(until) if until else len(STAGES) - 1
    runner = Runner(cfg, until)
    runner.dry_run = True
    beam = cfg.beam
    runner_name = beam_runner(beam)
    translate = runner_name.lower().removesuffix("runner") == "dataflow"
    if translate:
        missing = [f for f in DATAFLOW_NEEDS if not _beam_value(beam, f)]
        temp = _beam_value(beam, "--temp_location") or ""
        problems = [f"beam: a DataflowRunner dry run needs {f}" for f in missing]
        if temp and not temp.startswith("gs://"):
            problems.append(f"beam: --temp_location {temp} must be a gs:// path (else Beam creates a bucket)")
        if problems:
            raise RunConfigError(*[f"{cfg.path}: {p}" for p in problems])

    def made(step: Step) -> Step:
        runner.fingerprints[step.name] = _sha(step.depends)
        return step

    jobs: list[dict[str, Any]] = []
    if cfg.sources:
        cleans = [made(runner._clean(s, beam)) for s in cfg.sources]
        filters = [made(runner._filter(s, beam)) for s in cfg.sources]
        dedup = made(runner._dedup(beam))
        tokenize = None
        if cfg.stage("tokenizer").get("pretrained") is not None or cfg.stage("tokenizer").get("config"):
            made(runner._tokenizer())
            tokenize = made(runner._tokenize(beam))
        measured = {s["name"]: _input_bytes(s) for s in cfg.sources}
        docs = costs.documents(sum(_text_bytes(s) for s in cfg.sources))
        unknown = [x for _, u in measured.values() for x in u]
        jobs.append({"stage": "clean", "steps": cleans, "inputs": [x for s in cfg.sources
                                                                   for x in (s.get("inputs") or [s.get("hf_dataset")])],
                     "bytes": sum(b for b, _ in measured.values()), "unknown": unknown})
        jobs.append({"stage": "filter", "steps": filters, "inputs": [st.entry["input"] for st in filters]})
        jobs.append({"stage": "dedup", "steps": [dedup], "inputs": [str(runner.work / "filter" / s["name"])
                                                                    for s in cfg.sources]})
        if tokenize is not None:
            jobs.append({"stage": "tokenize", "steps": [tokenize], "inputs": [str(runner.work / "dedup")]})
        jobs = [j for j in jobs if STAGES.index(j["stage"]) <= last]
        for job in jobs:
            job["documents"] = docs  # (later stages: at most what clean reads; removals are not known before)
            job["cost"] = costs.stage_cost(job["stage"], docs)
            job["translated"] = False
    if translate and jobs:
        _translate(cfg, runner, jobs)
    _print_plan(cfg, jobs, runner_name, translate, last)
    return jobs


def _translate(cfg: RunConfig, runner: Runner, jobs: list[dict[str, Any]]) -> None:
    """Each planned job through Beam's DataflowRunner with ``--dry_run True``: translated and packaged here."""
    import tempfile

    from core.documents import DOC_SCHEMA
    from filters.rules import FilterConfig
    from pipelines import clean, dedup, tokenize
    from pipelines import filter as filter_stage
    from pipelines.options import beam_options, planned_inputs

    dry = ["--dry_run", "True"]
    options = beam_options([*cfg.beam, *dry])
    by_stage = {j["stage"]: j for j in jobs}
    schemas = {}  # each source's filter output schema: what dedup (and then tokenize) will read
    for st in by_stage.get("filter", {}).get("steps", []):
        annotate = bool(st.entry.get("annotate_only"))
        schemas[st.entry["output"]] = filter_stage.output_schema(DOC_SCHEMA, FilterConfig.from_dict(
            st.entry["config"]), annotate)
    with tempfile.TemporaryDirectory(prefix="domainlm-dry-run-") as tmp:
        saved, tempfile.tempdir = tempfile.tempdir, tmp  # Beam builds the --setup_file package in a temp dir
        try:
            for job in jobs:
                stage, steps = job["stage"], job["steps"]
                print(f"run: dry run: translating the {stage} job ({len(steps) if stage in ('clean', 'filter') else 1}"
                      f" {'sources' if stage in ('clean', 'filter') else 'job'}) on DataflowRunner", flush=True)
                if stage == "clean":
                    clean.run_sources([st.entry for st in steps], options, where="clean job")
                elif stage == "filter":
                    with planned_inputs({st.entry["input"]: DOC_SCHEMA for st in steps}):
                        filter_stage.run_sources([st.entry for st in steps], options, where="filter job")
                elif stage == "dedup":
                    with planned_inputs(schemas):
                        dedup.main([*steps[0].depends["argv"], *dry])
                else:
                    argv = list(steps[0].depends["argv"])
                    argv[argv.index("--tokenizer") + 1] = _stand_in_tokenizer(cfg, tmp)
                    first = next(iter(schemas.values()), DOC_SCHEMA)
                    with planned_inputs({str(runner.work / "dedup"): first}):
                        tokenize.main([*argv, *dry])
                job["translated"] = True
        finally:
            tempfile.tempdir = saved


def _stand_in_tokenizer(cfg: RunConfig, tmp: str) -> str:
    """The tokenizer the tokenize job is translated with: the pretrained one the run names, else a small
    byte-level BPE trained here on this module's text (the run's own is trained from dedup's output, which a
    dry run does not have; the job's graph does not depend on it)."""
    from mixtures import tokenizer as T

    pretrained = cfg.stage("tokenizer").get("pretrained")
    if pretrained is not None:
        return str(Path(pretrained) / "tokenizer.json")
    stand_in = T.TokenizerConfig(type="bpe", vocab_size=400)
    tok = T.train_tokenizer([line for line in (__doc__ or "").splitlines() if line.strip()] * 4, stand_in)
    return str(T.save_tokenizer(tok, Path(tmp) / "stand-in-tokenizer", stand_in))


def _print_plan(cfg: RunConfig, jobs: list[dict[str, Any]], runner_name: str, translate: bool, last: int) -> None:
    from pipelines import costs

    def size(n: float) -> str:
        return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"

    print(f"run: dry run of {cfg.path}: {len(jobs)} Beam job{'s' if len(jobs) != 1 else ''} on {runner_name}"
          + (" (each translated and packaged; nothing ran, nothing was written)" if translate else
             " (planned only: Beam's --dry_run translates for DataflowRunner; on this runner the jobs would run "
             "here; nothing was written)"))
    total_hours = total_usd = 0.0
    for k, job in enumerate(jobs, start=1):
        stage, cost = job["stage"], job["cost"]
        n = len(job["steps"]) if stage in ("clean", "filter") else len(job["inputs"])
        if "bytes" in job:
            measured = f"{size(job['bytes'])} measured locally"
            if job["unknown"]:
                measured += f" + {len(job['unknown'])} remote input(s) of unknown size"
        else:
            measured = "planned: the outputs of the stage before (not written yet)"
        print(f"  job {k}: {stage:<8} {n} {'sources' if stage in ('clean', 'filter') else 'inputs'}; {measured}")
        shown = job["inputs"] if len(job["inputs"]) <= 4 else [*job["inputs"][:3], f"... ({len(job['inputs'])} in all)"]
        print(f"          inputs: {', '.join(str(x) for x in shown)}")
        unknown_note = " of the local inputs" if job.get("unknown") or any(j.get("unknown") for j in jobs) else ""
        print(f"          ~{cost.documents:,.0f} documents{unknown_note} (~{costs.BYTES_PER_DOC:,} B of text each) x "
              f"{costs.CPU_MS_PER_DOC[stage]} ms = {cost.vcpu_hours:,.4f} vCPU-hours"
              + (f" + {cost.shuffle_gb:,.3f} GB of Shuffle" if cost.shuffle_gb else "")
              + f", ~${cost.usd:,.4f} on {costs.MACHINE_TYPE[stage]}" + (": translated and packaged" if job[
                  "translated"] else ""))
        total_hours += cost.vcpu_hours
        total_usd += cost.usd
    if jobs:
        print(f"  Beam total: ~{total_hours:,.4f} vCPU-hours, ~${total_usd:,.4f} (cost model: pipelines/costs.py; "
              "later stages assume no document is removed before them)")
    local = [s for s in LOCAL_STEPS if STAGES.index(s) <= last]
    if local:
        print(f"  local steps (on this machine, not Beam): {', '.join(local)}"
              + (" (train: the planner's estimate, train.plan, sizes it)" if "train" in local else ""))


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(prog="python -m run", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="run config YAML (configs/runs/*.yaml, docs/runs.md)")
    parser.add_argument("--until", choices=STAGES, help="stop after this stage")
    parser.add_argument("--force", choices=STAGES, help="rerun this stage and every stage after it")
    parser.add_argument("--check", action="store_true",
                        help="validate the whole config and exit (0: valid) without running or writing anything; "
                             "remote input globs (gs://...) are not listed")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate, then print the Beam jobs (one per stage) with their inputs, bytes and "
                             "estimated vCPU-hours and cost, and the local steps; on DataflowRunner each job is "
                             "translated and packaged offline (Beam's --dry_run); writes nothing")
    refuse_unknown_options([o for a in parser._actions for o in a.option_strings], argv)  # --confg: did you mean
    args = parser.parse_args(argv)
    try:  # the whole config, before any step and before the work directory exists
        cfg = load_run_config(args.config, remote_inputs=not (args.check or args.dry_run),
                              local_runner=not (args.check or args.dry_run))
        if args.dry_run:
            plan_run(cfg, args.until)
            return []
    except RunConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if args.check:
        remote = sorted({p for s in cfg.sources for p in s.get("inputs") or [] if "://" in p})
        print(f"run: {args.config}: valid ("
              + (f"from the mixture {cfg.mixture})" if cfg.mixture else f"{len(cfg.sources)} sources)")
              + (f"; {len(remote)} remote input globs not listed (--check)" if remote else ""))
        return []
    try:
        runner = Runner(cfg, args.until, args.force)
        runner.run()
    except RunConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except RuntimeError as exc:  # a step's own command failed: it printed why
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    ran = [name for name, what in runner.done if what == "ran"]
    print(f"run: done ({len(ran)} steps ran, {len(runner.done) - len(ran)} up to date) in {cfg.work_dir}/"
          + (f"; report: {cfg.work_dir}/report.html" if (cfg.work_dir / "report.html").exists() else ""))
    return runner.done


if __name__ == "__main__":
    main()
