"""One run config from raw corpora to a trained domain model.

    python -m pipelines.run --config configs/runs/demo.yaml [--until STAGE] [--force STAGE]
    make all CONFIG=configs/runs/demo.yaml

Runs the stages in order (docs/runs.md documents every key of the config):

    clean (per source) -> filter (per source) -> dedup -> tokenizer -> tokenize -> mix (+ DATASET_CARD.md)
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
``report.html``, ``run.yaml`` (the config as run) and ``.run/`` (the step records).
"""

from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines import check_keys, fail, read_yaml
from pipelines.documents import DOMAINS

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
STAGES = ("clean", "filter", "dedup", "tokenizer", "tokenize", "mix", "train", "export", "report")
PACKAGES = ("pipelines", "filters", "mixtures", "train")
ROUTED = " (routed)"  # the mixer source of a source's documents that the filter's routes moved to the other side


class RunConfigError(ValueError):
    """A run config that cannot be carried out as written (printed as one error line, exit 2)."""


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
OTHER_KEYS = {"train": {"nproc_per_node", "overrides"}, "mix": {"domain_share", "target", "max_epochs", "val_fraction",
                                                                "seed", "shard_tokens", "allow_shortfall"}}
SOURCE_KEYS = {"name", "domain", "inputs", "hf_dataset", "hf_config", "hf_split", "hf_text_field", "hf_id_field",
               "format", "priority", "filter", "mix", "license", "url", "description"}
TOP_KEYS = {"work_dir", "beam", "sources", *FLAGS, *OTHER_KEYS, "filter", "tokenizer", "train"}


@dataclass
class RunConfig:
    """A parsed run config: ``sources`` and each stage's settings, as plain dicts (validated)."""

    path: Path
    work_dir: Path
    beam: list[str]
    sources: list[dict[str, Any]]
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stage(self, name: str) -> dict[str, Any]:
        return self.stages.get(name) or {}


def load_run_config(path: str | os.PathLike) -> RunConfig:
    """Read and validate a run config; paths in it are relative to the current directory (the repo)."""
    doc = read_yaml(path, RunConfigError)
    check_keys(doc, TOP_KEYS, "run config", RunConfigError)
    if not doc.get("work_dir"):
        raise RunConfigError(f"{path}: work_dir is required")
    sources = doc.get("sources") or []
    if not isinstance(sources, list) or not sources:
        raise RunConfigError(f"{path}: sources must be a non-empty list")
    names = []
    for i, s in enumerate(sources):
        where = f"{path}: sources[{i}]"
        if not isinstance(s, dict):
            raise RunConfigError(f"{where} must be a mapping")
        check_keys(s, SOURCE_KEYS, f"sources[{i}]", RunConfigError)
        if not s.get("name") or s.get("domain") not in DOMAINS:
            raise RunConfigError(f"{where}: needs a name and a domain ({' or '.join(DOMAINS)})")
        if bool(s.get("inputs")) == bool(s.get("hf_dataset")):
            raise RunConfigError(f"{where} ({s['name']}): give inputs (file globs) or hf_dataset, not both")
        names.append(s["name"])
    if len(set(names)) != len(names):
        raise RunConfigError(f"{path}: source names must be unique: {names}")
    stages = {}
    for name in set(FLAGS) | set(OTHER_KEYS) | set(FILE_KEYS):
        section = doc.get(name) or {}
        if not isinstance(section, dict):
            raise RunConfigError(f"{path}: {name} must be a mapping")
        known = set(FLAGS.get(name, {})) | OTHER_KEYS.get(name, set()) | ({FILE_KEYS[name]} if name in FILE_KEYS
                                                                          else set())
        check_keys(section, known, name, RunConfigError)
        stages[name] = section
    if not stages["train"].get("config"):
        raise RunConfigError(f"{path}: train.config (the model and trainer YAML) is required")
    beam = doc.get("beam") or ["--runner", "DirectRunner"]
    if isinstance(beam, str):
        beam = beam.split()
    return RunConfig(Path(path), Path(doc["work_dir"]), [str(b) for b in beam], sources, stages)


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


# ----------------------------------------------------------------------------- fingerprints

def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


NOT_STAGE_CODE = {"pipelines/run.py", "pipelines/report.py", "pipelines/rule_report.py"}  # change no output


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

    def execute(self, step: Step) -> None:
        index = STAGES.index(step.stage)
        fingerprint = _sha(step.depends)
        self.fingerprints[step.name] = fingerprint
        before = self._record(step)
        complete = before.get("status") == "done" and step.output.exists()  # (an output deleted by hand reruns)
        if before.get("fingerprint") == fingerprint and complete and index < self.force:
            print(f"run: {step.name}: up to date, skipped")
            self.done.append((step.name, "skipped"))
            return
        resuming = before.get("fingerprint") == fingerprint and index < self.force
        if step.output.exists() and not resuming:
            if step.keep_output:
                aside = step.output.with_name(step.output.name + ".previous")
                shutil.rmtree(aside, ignore_errors=True)
                step.output.rename(aside)
                print(f"run: {step.name}: settings changed; the previous run was moved to {aside}")
            elif step.output.is_dir():
                shutil.rmtree(step.output)
            else:
                step.output.unlink()
        print(f"run: {step.name}: {'resuming' if resuming and step.output.exists() else 'running'}")
        t0 = time.time()
        self._write_record(step, {"step": step.name, "fingerprint": fingerprint, "status": "running",
                                  "started": t0, "depends": step.depends})
        step.run()
        self._write_record(step, {"step": step.name, "fingerprint": fingerprint, "status": "done", "started": t0,
                                  "seconds": round(time.time() - t0, 1), "depends": step.depends})
        self.done.append((step.name, "ran"))

    # ---- the stages
    def run(self) -> None:
        cfg, work = self.cfg, self.work
        work.mkdir(parents=True, exist_ok=True)
        (work / "run.yaml").write_text(cfg.path.read_text(encoding="utf-8"), encoding="utf-8")
        beam = cfg.beam
        steps: list[tuple[str, Callable[[], Step]]] = [
            *[("clean", lambda s=s: self._clean(s, beam)) for s in cfg.sources],
            *[("filter", lambda s=s: self._filter(s, beam)) for s in cfg.sources],
            ("dedup", lambda: self._dedup(beam)), ("tokenizer", self._tokenizer),
            ("tokenize", lambda: self._tokenize(beam)),
            ("mix", self._mix), ("train", self._train), ("export", self._export)]
        for stage, make in steps:
            if STAGES.index(stage) > self.until:
                return
            if stage == "train":
                self.print_plan()
            self.execute(make())
        if STAGES.index("report") <= self.until:
            from pipelines import report

            report.main(["--work", str(work), "--quiet"])
            self.done.append(("report", "ran"))

    def _clean(self, s: dict[str, Any], beam: list[str]) -> Step:
        out = self.work / "clean" / s["name"]
        if s.get("inputs"):
            inputs = [x for pattern in s["inputs"] for x in ("--input", pattern)]
            data = files_fingerprint(s["inputs"])
        else:
            inputs = ["--hf-dataset", s["hf_dataset"], "--hf-split", s.get("hf_split", "train")]
            inputs += ["--hf-config", s["hf_config"]] if s.get("hf_config") else []
            inputs += ["--hf-text-field", s.get("hf_text_field", "text"), "--hf-id-field", s.get("hf_id_field", "id")]
            data = {k: s.get(k) for k in ("hf_dataset", "hf_config", "hf_split", "hf_text_field", "hf_id_field")}
        argv = [*inputs, "--output", str(out), "--source", s["name"], "--domain", s["domain"],
                "--format", s.get("format", "auto"), *_flags("clean", self.cfg.stage("clean")), *beam]

        def run():
            from pipelines import clean
            clean.main(argv)

        return Step("clean", f"clean:{s['name']}", out, {"argv": argv, "data": data, "code": self.code["curation"]},
                    run)

    def _filter_config(self, s: dict[str, Any]) -> dict[str, Any]:
        """The filter config of one source: the stage's config file with the source's overrides on top."""
        base = self.cfg.stage("filter").get("config")
        return _deep_merge(read_yaml(base, RunConfigError) if base else {}, s.get("filter") or {})

    def _filter(self, s: dict[str, Any], beam: list[str]) -> Step:
        out = self.work / "filter" / s["name"]
        config = self._filter_config(s)
        config_file = self.records / f"filter-{s['name']}.yaml"
        argv = ["--input", str(self.work / "clean" / s["name"]), "--output", str(out), "--config", str(config_file),
                *_flags("filter", self.cfg.stage("filter")), *beam]

        def run():
            from pipelines import filter as filter_stage
            self.records.mkdir(parents=True, exist_ok=True)
            config_file.write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
            filter_stage.main(argv)

        return Step("filter", f"filter:{s['name']}", out,
                    {"argv": argv, "config": config, "after": self.fingerprints[f"clean:{s['name']}"],
                     "code": self.code["curation"]}, run)

    def _dedup(self, beam: list[str]) -> Step:
        out = self.work / "dedup"
        ranked = sorted((s for s in self.cfg.sources if s.get("priority") is not None), key=lambda s: s["priority"])
        priority = ["--source-priority", ",".join(s["name"] for s in ranked)] if ranked else []
        kept = [s for s in self.cfg.sources if _has_documents(self.work / "filter" / s["name"])]
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
        settings = {k: v for k, v in self.cfg.stage("mix").items() if k != "allow_shortfall"}
        sources = []
        for s in self.cfg.sources:
            src = {"name": s["name"], "domain": s["domain"], "dir": f"{s['domain']}/{s['name']}"}
            src.update(s.get("mix") or {})
            sources.append(src)
        for s in self.cfg.sources:  # what the filter's routes move to another side is mixed with that side
            routes = self._filter_config(s).get("route") or []
            routes = [routes] if isinstance(routes, (str, dict)) else routes  # `route: finance`: a bundled route
            targets = {r.get("to", "domain") if isinstance(r, dict) else "domain" for r in routes} - {s["domain"]}
            for to in sorted(targets):
                src = {"name": f"{s['name']}{ROUTED}", "domain": to, "dir": f"{to}/{s['name']}", "optional": True}
                src.update({k: v for k, v in (s.get("mix") or {}).items() if k == "max_epochs"})
                sources.append(src)
        return {**settings, "tokens_dir": str(self.work / "tokens"), "sources": sources}

    def _mix(self) -> Step:
        out = self.work / "mix"
        recipe, recipe_file = self.recipe(), self.work / "recipe.yaml"
        argv = ["--recipe", str(recipe_file), "--output", str(out)]
        argv += ["--allow-shortfall"] if self.cfg.stage("mix").get("allow_shortfall") else []
        model_config = (recipe.get("target") or {}).get("model_config")

        def run():
            from mixtures import mix
            from mixtures.dataset_card import write_dataset_card
            tokens = self.work / "tokens"  # a source that no route moved anything from has no routed part
            written = {**recipe, "sources": [src for src in recipe["sources"] if not src["name"].endswith(ROUTED)
                                             or (tokens / src["dir"]).is_dir()]}
            recipe_file.write_text(yaml.safe_dump(written, sort_keys=False), encoding="utf-8")
            mix.main(argv)
            write_dataset_card(self.work, self.cfg.sources)

        return Step("mix", "mix", out, {"argv": argv, "recipe": recipe, "model_config": file_content(model_config),
                                        "after": self.fingerprints["tokenize"], "code": self.code["mixtures"],
                                        "sources": [{k: s.get(k) for k in ("name", "license", "url", "description")}
                                                    for s in self.cfg.sources]}, run)

    def _train_overrides(self) -> list[str]:
        given = self.cfg.stage("train").get("overrides") or {}
        over = [f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in given.items()]
        return [f"data.dir={self.work / 'mix'}", f"train.out_dir={self.work / 'train'}", "train.progress=false", *over]

    def print_plan(self) -> None:
        """The planner's memory and time estimate for the configured model, mixture and hardware."""
        from train import plan

        settings = self.cfg.stage("train")
        manifest = self.work / "mix" / "manifest.json"
        argv = ["--model-config", str(settings["config"]), *_flags("plan", self.cfg.stage("plan"))]
        if manifest.is_file():
            m = json.loads(manifest.read_text())
            argv += ["--tokens", str(m["train_tokens"]), "--vocab-size", str(m["vocab_size"])]
        print("run: the planner's estimate for this model and mixture (train.plan " + " ".join(argv) + "):")
        try:
            plan.main(argv)
        except SystemExit as exc:  # an estimate that cannot be made is not a reason to stop the run
            print(f"run: no estimate ({exc})")

    def _train(self) -> Step:
        settings = self.cfg.stage("train")
        out = self.work / "train"
        nproc = int(settings.get("nproc_per_node", 1))
        args = ["-m", "train.run", "--config", str(settings["config"]), *self._train_overrides()]
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
        cmd = [sys.executable, *launch, *args]

        def run():
            proc = subprocess.run(cmd, cwd=Path.cwd())
            if proc.returncode != 0:
                raise RuntimeError(f"training failed (exit {proc.returncode}): {' '.join(cmd)}")

        # no code version: new trainer code resumes from the last checkpoint instead of starting over
        return Step("train", "train", out, {"cmd": cmd[1:], "config": file_content(settings["config"]),
                                            "after": self.fingerprints["mix"]}, run, keep_output=True)

    def _export(self) -> Step:
        out = self.work / "hf"
        argv = ["--checkpoint", str(self.work / "train"), "--output", str(out),
                *_flags("export", self.cfg.stage("export"))]

        def run():
            from train import export
            export.main(argv)

        return Step("export", "export", out, {"argv": argv, "after": self.fingerprints["train"],
                                              "code": self.code["train"]}, run)


def _has_documents(stage_dir: Path) -> bool:
    """Whether a stage directory kept any document (a source the filter emptied has no parts)."""
    from pipelines.io import InputError, expand_inputs

    try:
        return bool(expand_inputs([str(stage_dir)]))
    except InputError:
        return False


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="run config YAML (configs/runs/*.yaml, docs/runs.md)")
    parser.add_argument("--until", choices=STAGES, help="stop after this stage")
    parser.add_argument("--force", choices=STAGES, help="rerun this stage and every stage after it")
    args = parser.parse_args(argv)
    try:
        cfg = load_run_config(args.config)
        runner = Runner(cfg, args.until, args.force)
        runner.run()
    except RunConfigError as exc:
        fail(str(exc))
    except RuntimeError as exc:  # a step's own command failed: it printed why
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    ran = [name for name, what in runner.done if what == "ran"]
    print(f"run: done ({len(ran)} steps ran, {len(runner.done) - len(ran)} up to date) in {cfg.work_dir}/"
          + (f"; report: {cfg.work_dir}/report.html" if (cfg.work_dir / "report.html").exists() else ""))
    return runner.done


if __name__ == "__main__":
    main()
