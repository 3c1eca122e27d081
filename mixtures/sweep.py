"""Mixture search: choose the blend by measurement, with small proxy models and a fitted mixing law.

    python -m mixtures.sweep --config configs/runs/experiment.yaml [--general-tolerance 0.05] [--no-confirm]
    make sweep CONFIG=configs/runs/experiment.yaml

Over the run config's token shards (``WORK/tokens``, the output of ``python -m run --until tokenize``,
run first when it is missing):

1. **Mixtures.** K proxies (``sweep.proxies``): proxy ``k`` takes the domain share ``domain_shares[k % len]``,
   and source weights inside each side drawn from a Dirichlet around the recipe's weights (``concentration``
   x the recipe's weights; a side's weights default to its sources' available tokens, as in the mixer). Every
   mixture has the same target (the proxy's steps x batch tokens + 1%), seed and held-out split; built with
   ``mixtures.mix``. Checked: each hits its domain share and each source its share of the stream (+-0.005), the
   held-out sets are byte-identical in every mixture and none of their documents is in any training stream.
2. **Proxies.** ``configs/train/sweep_proxy.yaml`` (a smaller Llama than the experiment's) trained on each,
   same seed and steps, ``jobs`` single-threaded ``python -m train.run`` processes at a time; scored on
   ``val_domain``, ``val_general`` and per held-out source (``val_src_<source>``).
3. **Fit.** Two mixing laws, for the domain and the general held-out loss each: the data-mixing-law
   exponential (Ye et al. 2024) ``L = c + k exp(t d)`` in the domain share ``d`` (with two sides, Ye et al.'s
   ``exp(sum_j t_j r_j)`` reduces to this), and a RegMix-style linear regression (Liu et al. 2024) of the loss on
   every source's share of the stream. The one with the lower leave-one-out error over the fitted proxies is
   chosen; ``holdout`` proxies are never fitted and give the reported rank correlation and absolute error.
4. **Recommend.** The chosen law predicts both losses for many candidate mixtures (feasible at the
   confirmation's size); the Pareto front of domain vs general loss is printed, and the recommendation is the
   lowest predicted domain loss whose predicted general loss is within ``--general-tolerance`` (relative) of
   the measured general-only proxies' -> ``WORK/sweep/recommended_recipe.yaml``, a recipe for ``mixtures.mix``.
5. **Confirm.** The run config's training config (the experiment-size model) trained on the recommendation and
   on 51/49, same tokens, ``confirm_seeds``: does the recommendation beat 51/49 on domain loss by more than the
   seed spread, with its general loss within the tolerance of 51/49's?

Outputs: ``WORK/sweep/sweep.json`` (read by ``run.report``), ``recommended_recipe.yaml``, the figure
``docs/mixture_search.png`` and the ``## Mixture search`` section of ``docs/experiment.md``.

This module never imports ``train`` or ``run.orchestrator``: training and curation are subprocesses, the run
config is read here, and parameter counts come from the train config's shape (``params_from_shape``, the
arithmetic of ``core/model_config.py``'s ``param_counts``, which the planner's 6ND uses).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.cli import fail, refuse_unknown_options
from core.config import ConfigError, check_keys
from core.workdir import read_metrics

SIDES = ("domain", "general")
SPLITS = ("val_domain", "val_general")
ROUTED = " (routed)"          # run/orchestrator.py's name suffix of a source's routed part (same convention)
MIX_MARGIN = 1.01             # mixture = 1.01 x the tokens the steps read (one pass), as benchmarks/experiment.py
PROXY_MARGIN = 1.03           # the proxies' small streams: whole documents can leave a stream ~1% short
SHARE_TOLERANCE = 0.005       # every mixture's domain share and source shares, absolute
MIN_WEIGHT = 1e-3            # a drawn weight below this inside its side becomes 0 (a few tokens of a source)
REFERENCE_SHARE = 0.51        # BloombergGPT (Wu et al. 2023, Table 1): the blend the recommendation must beat
DOC = Path("docs/experiment.md")
FIGURE = Path("docs/mixture_search.png")
SECTION = "## Mixture search"


class SweepError(ConfigError):
    """A sweep setting that cannot be used (one line; exit 2 before any work)."""


class SweepCheckError(RuntimeError):
    """A check of the sweep's design failed (mixtures off target, held-out leak, ...)."""


def check(ok: bool, message: str) -> None:
    if not ok:
        raise SweepCheckError(message)


# ----------------------------------------------------------------------------- the sweep config

@dataclass
class SweepConfig:
    """The run config's ``sweep:`` block (docs/runs.md)."""

    proxies: int = 16                                   # K mixtures, one proxy each
    domain_shares: list[float] = field(default_factory=lambda: [0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9])
    concentration: float = 20.0                         # Dirichlet alpha = concentration x recipe weights
    seed: int = 1                                       # Dirichlet draws, held-out proxies, proxies' train/data seed
    proxy_config: str = "configs/train/sweep_proxy.yaml"
    confirm_config: str | None = None                   # None: the run config's train.config
    confirm_seeds: list[int] = field(default_factory=lambda: [1, 2])
    holdout: int = 4                                    # proxies the fit never sees
    jobs: int = 2                                       # training processes at a time, one thread each
    general_tolerance: float = 0.05                     # relative, on the general held-out loss
    candidates: int = 4000                              # mixtures the fitted law scores
    gpus: list[int] = field(default_factory=list)       # CUDA devices: one training process per device at a time


SWEEP_KEYS = {f for f in SweepConfig.__dataclass_fields__}


def _num(value: Any, key: str, lo: float, hi: float | None = None, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and float(value) != int(value)):
        raise SweepError(f"sweep.{key} must be a{' whole' if integer else ''} number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise SweepError(f"sweep.{key} must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}")
    return int(value) if integer else float(value)


def parse_sweep(doc: Any) -> SweepConfig:
    """Validate a ``sweep:`` mapping (``None``: every default); every mistake is a :class:`SweepError`."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SweepError(f"sweep must be a mapping, got {type(doc).__name__}")
    check_keys(doc, SWEEP_KEYS, "sweep", SweepError)
    cfg = SweepConfig()
    if "proxies" in doc:
        cfg.proxies = _num(doc["proxies"], "proxies", 3, 100_000, integer=True)
    if "domain_shares" in doc:
        shares = doc["domain_shares"]
        if not isinstance(shares, list) or len(shares) < 2:
            raise SweepError(f"sweep.domain_shares must be a list of at least 2 shares in [0, 1], got {shares!r}")
        cfg.domain_shares = [_num(s, "domain_shares[]", 0.0, 1.0) for s in shares]
        if len(set(cfg.domain_shares)) != len(cfg.domain_shares):
            raise SweepError(f"sweep.domain_shares has repeated values: {shares}")
    if 0.0 not in cfg.domain_shares:
        raise SweepError("sweep.domain_shares must include 0.0: the general-only proxies are the reference of "
                         "--general-tolerance")
    for key in ("concentration", "general_tolerance"):
        if key in doc:
            setattr(cfg, key, _num(doc[key], key, 1e-9))
    for key, lo in (("seed", 0), ("holdout", 1), ("jobs", 1), ("candidates", 10)):
        if key in doc:
            setattr(cfg, key, _num(doc[key], key, lo, integer=True))
    for key in ("proxy_config", "confirm_config"):
        if key in doc and doc[key] is not None:
            if not isinstance(doc[key], str) or not doc[key]:
                raise SweepError(f"sweep.{key} must be a path to a train config, got {doc[key]!r}")
            if not Path(doc[key]).is_file():
                raise SweepError(f"sweep.{key}: {doc[key]} does not exist")
            setattr(cfg, key, doc[key])
    if "gpus" in doc:
        gpus = doc["gpus"]
        if not isinstance(gpus, list) or len(set(map(str, gpus))) != len(gpus):
            raise SweepError(f"sweep.gpus must be a list of distinct CUDA device numbers, got {gpus!r}")
        cfg.gpus = [_num(g, "gpus[]", 0, integer=True) for g in gpus]
        if cfg.gpus:
            cfg.jobs = len(cfg.gpus) if "jobs" not in doc else cfg.jobs
            if cfg.jobs > len(cfg.gpus):
                raise SweepError(f"sweep.jobs ({cfg.jobs}) exceeds the {len(cfg.gpus)} gpus: one process per device")
    if "confirm_seeds" in doc:
        seeds = doc["confirm_seeds"]
        if not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds):
            raise SweepError(f"sweep.confirm_seeds must be a non-empty list of distinct seeds, got {seeds!r}")
        cfg.confirm_seeds = [_num(s, "confirm_seeds[]", 0, integer=True) for s in seeds]
    if cfg.proxies - cfg.holdout < 3:
        raise SweepError(f"sweep: {cfg.proxies} proxies with holdout {cfg.holdout} leave fewer than 3 to fit")
    if cfg.proxies < len(cfg.domain_shares):
        raise SweepError(f"sweep.proxies ({cfg.proxies}) must be at least the number of domain_shares "
                         f"({len(cfg.domain_shares)}): every grid point gets a proxy")
    if not Path(cfg.proxy_config).is_file():
        raise SweepError(f"sweep.proxy_config: {cfg.proxy_config} does not exist")
    return cfg


@dataclass
class Plan:
    """What the run config says: where the tokens are, the base recipe, the configs."""

    config: Path
    work: Path
    sweep: SweepConfig
    sources: list[dict[str, Any]]
    mix: dict[str, Any]
    confirm_config: str


def read_run_config(path: str | os.PathLike) -> Plan:
    """The parts of a run config the sweep needs, validated (the rest is the orchestrator's: it validates
    the whole config when the curation runs)."""
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"run config {path} does not exist")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SweepError(f"run config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise SweepError(f"run config {path} must be a mapping")
    work = doc.get("work_dir")
    if not isinstance(work, str) or not work or "://" in work:
        raise SweepError(f"run config {path}: work_dir must be a local directory")
    sources = doc.get("sources")
    if not isinstance(sources, list) or not sources or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and s.get("domain") in SIDES for s in sources):
        raise SweepError(f"run config {path}: sources must be a list of mappings with a name and a domain")
    mix = doc.get("mix") or {}
    if not isinstance(mix, dict):
        raise SweepError(f"run config {path}: mix must be a mapping")
    if mix.get("phases") is not None:
        raise SweepError(f"run config {path}: mix.phases: the sweep searches one blend; give a single mix")
    sweep = parse_sweep(doc.get("sweep"))
    confirm = sweep.confirm_config or ((doc.get("train") or {}).get("config") if isinstance(doc.get("train"), dict)
                                       else None)
    if not confirm or not Path(confirm).is_file():
        raise SweepError(f"run config {path}: the confirmation needs a train config (sweep.confirm_config or "
                         f"train.config), got {confirm!r}")
    for cfg_path in (sweep.proxy_config, confirm):
        train_shape(cfg_path)  # readable, with the keys the sweep needs
    return Plan(p, Path(work), sweep, sources, mix, confirm)


def train_shape(path: str) -> dict[str, Any]:
    """Model shape, steps and batch tokens of a train config, read as YAML (no ``train`` import)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    model, tr = doc.get("model") or {}, doc.get("train") or {}
    missing = [k for k in ("n_layer", "d_model", "n_head") if not isinstance(model.get(k), int)]
    missing += [f"train.{k}" for k in ("steps", "global_batch_tokens") if not isinstance(tr.get(k), int)]
    if missing:
        raise SweepError(f"{path}: the sweep needs model.n_layer, model.d_model, model.n_head, train.steps and "
                         f"train.global_batch_tokens; missing or not whole numbers: {missing}")
    return {"model": model, "steps": tr["steps"], "global_batch_tokens": tr["global_batch_tokens"]}


def params_from_shape(model: dict[str, Any], vocab_size: int) -> int:
    """Parameters of the trainer's Llama for a config's ``model:`` block: the arithmetic of
    ``core/model_config.py`` ``param_counts`` (total; shared weights once), repeated here because mixtures
    must not import train. The planner's 6ND uses this N."""
    d, n_head = int(model["d_model"]), int(model["n_head"])
    kv = int(model.get("n_kv_head") or n_head) * (d // n_head)
    multiple = int(model.get("multiple_of", 256))
    hidden = model.get("ffn_hidden") or multiple * ((int(2 * (4 * d) / 3) + multiple - 1) // multiple)
    attn = 2 * d * d + 2 * d * kv + ((d + 2 * kv) if model.get("qkv_bias") else 0)
    non_embedding = int(model["n_layer"]) * (attn + 3 * d * int(hidden) + 2 * d) + d
    vocab = int(model.get("vocab_size") or 0) or vocab_size
    return non_embedding + vocab * d * (1 if model.get("tie_embeddings", True) else 2)


# ----------------------------------------------------------------------------- recipes and mixtures

def base_recipe(plan: Plan) -> dict[str, Any]:
    """The mixer recipe of the run config (as ``run.orchestrator`` makes it): its ``mix:`` settings and one
    mixer source per run source, plus a source's part that the filter's routes moved to the other side when
    the tokenize stage wrote one."""
    settings = {k: v for k, v in plan.mix.items() if k != "allow_shortfall"}
    tokens = plan.work / "tokens"
    sources = []
    for s in plan.sources:
        src = {"name": s["name"], "domain": s["domain"], "dir": f"{s['domain']}/{s['name']}"}
        src.update(s.get("mix") or {})
        sources.append(src)
    for s in plan.sources:
        other = "general" if s["domain"] == "domain" else "domain"
        if (tokens / other / s["name"]).is_dir():
            src = {"name": s["name"] + ROUTED, "domain": other, "dir": f"{other}/{s['name']}", "optional": True}
            src.update({k: v for k, v in (s.get("mix") or {}).items() if k == "max_epochs"})
            sources.append(src)
    return {**settings, "tokens_dir": str(tokens), "sources": sources}


def available_tokens(recipe: dict[str, Any]) -> dict[str, int]:
    """Tokens of every recipe source's shards (held-out documents included)."""
    from mixtures.shards import Shard, list_shards

    out = {}
    for s in recipe["sources"]:
        d = Path(s.get("path") or Path(recipe["tokens_dir"]) / s["dir"])
        out[s["name"]] = int(sum(Shard.open(p).tokens.size for p in list_shards(d))) if d.is_dir() else 0
    return out


def base_weights(recipe: dict[str, Any], available: dict[str, int]) -> dict[str, float]:
    """Each source's weight inside its side, normalized: the recipe's, else its available tokens (the
    mixer's default). Sources without tokens get 0."""
    out: dict[str, float] = {}
    for side in SIDES:
        members = [s for s in recipe["sources"] if s["domain"] == side and available.get(s["name"], 0) > 0]
        raw = {s["name"]: float(s["weight"]) if s.get("weight") is not None else float(available[s["name"]])
               for s in members}
        total = sum(raw.values())
        out.update({n: (w / total if total else 0.0) for n, w in raw.items()})
    return out


def draw_mixtures(cfg: SweepConfig, weights: dict[str, float], sides: dict[str, str]) -> list[dict[str, Any]]:
    """The K mixtures: ``{"domain_share", "weights": {source: weight inside its side}}``. Proxy ``k`` takes
    grid point ``k mod len(grid)``; weights are Dirichlet(concentration x base weights) per side, from a
    generator seeded by (seed, k): the same seed gives the same mixtures."""
    names = [n for n in weights if weights[n] > 0]
    out = []
    for k in range(cfg.proxies):
        rng = np.random.default_rng([cfg.seed, k])
        share = cfg.domain_shares[k % len(cfg.domain_shares)]
        w: dict[str, float] = {}
        for side in SIDES:
            members = [n for n in names if sides[n] == side]
            if not members:
                continue
            alpha = np.array([cfg.concentration * weights[n] for n in members])
            draw = rng.dirichlet(alpha) if len(members) > 1 else np.ones(1)
            draw[draw < MIN_WEIGHT] = 0.0  # a source left at a handful of tokens: not sampled at all
            draw = np.round(draw / draw.sum(), 6)
            top = int(np.argmax(draw))
            draw[top] = 1.0 - (draw.sum() - draw[top])
            w.update({n: float(x) for n, x in zip(members, draw)})
        out.append({"name": f"p{k:02d}", "domain_share": share, "weights": w})
    return out


def proportions(mixture: dict[str, Any], sides: dict[str, str], names: list[str]) -> np.ndarray:
    """Each source's share of the whole stream, in ``names`` order."""
    d = mixture["domain_share"]
    return np.array([(d if sides[n] == "domain" else 1.0 - d) * mixture["weights"].get(n, 0.0) for n in names])


def recipe_for(base: dict[str, Any], mixture: dict[str, Any], tokens: int) -> dict[str, Any]:
    """A mixer recipe: the base recipe with the mixture's domain share, weights and a token target. A source
    whose side has weight 0 in the mixture keeps weight 0 (it is not sampled)."""
    sources = []
    for s in base["sources"]:
        w = mixture["weights"].get(s["name"])
        if w is None:
            continue  # no tokens (e.g. an optional routed part that was never written)
        sources.append({**s, "weight": round(float(w), 6)})
    return {**base, "domain_share": mixture["domain_share"], "target": {"tokens": int(tokens)}, "sources": sources}


def build_mixture(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write the recipe under ``out.parent/../recipes`` and mix it into ``out``; returns the manifest."""
    from mixtures import mix as mixer
    from mixtures.recipe import recipe_from_dict

    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return mixer.mix(recipe_from_dict(recipe), out)


def realized(manifest: dict[str, Any], names: list[str]) -> np.ndarray:
    """Each source's share of the training stream as written (``names`` order)."""
    total = manifest["train_tokens"]
    return np.array([manifest["sources"][n]["sampled_tokens"] / total if total and n in manifest["sources"] else 0.0
                     for n in names])


def check_shares(manifest: dict[str, Any], mixture: dict[str, Any], sides: dict[str, str]) -> tuple[float, float]:
    """``(domain share error, largest source share error)`` of a mixture against its target. The domain share
    must be within +-0.005 (else the sources cannot supply it within max_epochs: an error). A source's share
    can miss by more when its documents are large against the stream (the mixer samples whole documents: a
    4,000-token chapter is 2% of a 200,000-token proxy stream): said, and the fit uses the realized shares."""
    names = list(mixture["weights"])
    dom = abs(manifest["domain_share_actual"] - mixture["domain_share"])
    src = float(np.max(np.abs(realized(manifest, names) - proportions(mixture, sides, names)))) if names else 0.0
    check(dom <= SHARE_TOLERANCE, f"mixture {mixture['name']}: domain share {manifest['domain_share_actual']:.4f} is "
          f"{dom:.4f} off its target {mixture['domain_share']} (> {SHARE_TOLERANCE}); the sources cannot supply it "
          "within max_epochs")
    if src > SHARE_TOLERANCE:
        print(f"sweep: note: mixture {mixture['name']}: a source's share is {src:.4f} off its target (whole "
              "documents); the fit uses the realized shares", flush=True)
    return dom, src


def doc_keys(split_dir: Path) -> list[tuple[str, str]]:
    from mixtures.shards import list_shards, read_doc_index

    out: list[tuple[str, str]] = []
    for prefix in list_shards(split_dir):
        index = read_doc_index(prefix)
        out += list(zip(index["source"].tolist(), index["id"].tolist()))
    return out


def check_held_out(dirs: list[Path]) -> dict[str, int]:
    """Every mixture's held-out shards byte-identical to the first's, and no held-out ``(source, id)`` in any
    training stream. Returns the documents per held-out split."""
    first = dirs[0]
    for split in SPLITS:
        names = sorted(p.name for p in (first / split).iterdir())
        for other in dirs[1:]:
            check(sorted(p.name for p in (other / split).iterdir()) == names
                  and all((first / split / n).read_bytes() == (other / split / n).read_bytes() for n in names),
                  f"{split} differs between {first} and {other}: the proxies would be scored on different text")
    held = {split: doc_keys(first / split) for split in SPLITS}
    held_set = {k for keys in held.values() for k in keys}
    for d in dirs:
        leaked = held_set.intersection(doc_keys(d / "train"))
        check(not leaked, f"{d}: {len(leaked)} held-out documents in the training stream, e.g. {sorted(leaked)[:3]}")
    return {split: len(keys) for split, keys in held.items()}


def split_name(source: str) -> str:
    return "val_src_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", source).strip("_")


def write_source_splits(mix_dir: Path, vocab_size: int) -> list[str]:
    """``val_src_<source>/``: the held-out documents of each source, one split each (for per-source scores).
    Returns the split names in order."""
    from mixtures.shards import Shard, list_shards, read_doc_index, write_doc_index, write_shard

    per: dict[str, list[tuple[np.ndarray, str, int]]] = {}
    for split in SPLITS:
        for prefix in list_shards(mix_dir / split):
            shard, index = Shard.open(prefix), read_doc_index(prefix)
            off = np.asarray(shard.offsets, dtype=np.int64)
            for i, (src, doc_id, nb) in enumerate(zip(index["source"], index["id"], index["bytes"])):
                per.setdefault(str(src), []).append((np.asarray(shard.tokens[off[i]:off[i + 1]]), str(doc_id), int(nb)))
    names = []
    for src in sorted(per):
        d = mix_dir / split_name(src)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        docs = per[src]
        write_shard(d / "part-00000", [t for t, _, _ in docs], vocab_size)
        write_doc_index(d / "part-00000", [src] * len(docs), [i for _, i, _ in docs], [b for _, _, b in docs])
        names.append(d.name)
    return names


# ----------------------------------------------------------------------------- training and metrics

def read_final_evals(path: Path) -> dict[str, float]:
    """``{split: loss}`` of the last evaluation in a metrics.jsonl (a torn last line, from a killed writer, is
    skipped; any other unreadable line is an error)."""
    try:
        records = read_metrics(path)  # (core/workdir.py: the one metrics reader)
    except ValueError as exc:
        raise SweepCheckError(str(exc)) from None
    evals: dict[int, dict[str, float]] = {}
    for rec in records:
        if rec.get("kind") == "eval":
            evals.setdefault(int(rec["step"]), {})[rec["split"]] = float(rec["loss"])
    check(bool(evals), f"{path}: no evaluation")
    return evals[max(evals)]


STAMP = "sweep_job.json"


def _stamp(job: dict[str, Any]) -> str:
    """What a finished run depended on: its config's text, its overrides and its mixture's manifest."""
    data = next(o.split("=", 1)[1] for o in job["overrides"] if o.startswith("data.dir="))
    manifest = Path(data) / "manifest.json"
    return json.dumps({"config": Path(job["config"]).read_text(encoding="utf-8"), "overrides": job["overrides"],
                       "out": str(job["out"]),
                       "manifest": manifest.read_text(encoding="utf-8") if manifest.is_file() else None}, indent=1)


def train_runs(jobs: list[dict[str, Any]], n_parallel: int, logs: Path, gpus: list[int] | None = None
               ) -> dict[str, float]:
    """Run ``python -m train.run`` for every job (``name``, ``config``, ``overrides``, ``out``), ``n_parallel``
    at a time (with ``gpus``: each process sees one free device, ``CUDA_VISIBLE_DEVICES``); returns each run's
    wall seconds. A failed run stops the sweep with the end of its log."""
    logs.mkdir(parents=True, exist_ok=True)
    todo, running, wall = [], [], {}
    for job in jobs:  # a run finished before with the same command, config and mixture is not trained again
        stamp = Path(job["out"]) / STAMP
        if stamp.is_file() and stamp.read_text(encoding="utf-8") == _stamp(job):
            wall[job["name"]] = 0.0
            print(f"sweep: {job['name']}: up to date (trained before with the same command), skipped", flush=True)
        else:
            todo.append(job)
    while todo or running:
        while todo and len(running) < n_parallel:
            job = todo.pop(0)
            env = dict(os.environ)
            if gpus:
                busy = {item[0].get("gpu") for item in running}
                job["gpu"] = next(g for g in gpus if g not in busy)
                env["CUDA_VISIBLE_DEVICES"] = str(job["gpu"])
            shutil.rmtree(job["out"], ignore_errors=True)
            log = logs / f"{job['name']}.log"
            cmd = [sys.executable, "-m", "train.run", "--config", job["config"], f"train.out_dir={job['out']}",
                   "train.resume=none", *job["overrides"]]
            f = open(log, "w", encoding="utf-8")
            running.append((job, log, f, time.time(), subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                                                         env=env)))
        time.sleep(0.2)
        for item in list(running):
            job, log, f, t0, proc = item
            if proc.poll() is None:
                continue
            f.close()
            running.remove(item)
            if proc.returncode != 0:
                for *_, other in running:
                    other.kill()
                tail = "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
                raise SweepCheckError(f"training {job['name']} failed (exit {proc.returncode}); the end of {log}:\n"
                                      + tail)
            wall[job["name"]] = time.time() - t0
            (Path(job["out"]) / STAMP).write_text(_stamp(job), encoding="utf-8")
            print(f"sweep: trained {job['name']} in {wall[job['name']]:.0f} s", flush=True)
    return wall


# ----------------------------------------------------------------------------- mixing laws

def fit_exponential(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least squares ``y = c + k exp(t x)`` (Ye et al. 2024's data mixing law, one proportion): for a given
    ``t`` the model is linear in ``(c, k)``; ``t`` is found on a grid, then refined by golden section."""
    x, y = np.asarray(x, float), np.asarray(y, float)

    def solve(t: float) -> tuple[float, float, float]:
        a = np.column_stack([np.ones_like(x), np.exp(t * x)])
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        return float(np.sum((a @ coef - y) ** 2)), float(coef[0]), float(coef[1])

    grid = np.linspace(-20.0, 20.0, 801)
    sse = [solve(t)[0] for t in grid]
    i = int(np.argmin(sse))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(80):
        if solve(a)[0] < solve(b)[0]:
            hi, b = b, a
            a = hi - g * (hi - lo)
        else:
            lo, a = a, b
            b = lo + g * (hi - lo)
    t = (lo + hi) / 2
    _, c, k = solve(t)
    return {"c": c, "k": k, "t": t}


def fit_linear(p: np.ndarray, y: np.ndarray, ridge: float = 1e-4) -> dict[str, Any]:
    """RegMix-style (Liu et al. 2024) linear regression of the loss on each source's share of the stream,
    with a small ridge (the shares sum to 1, so no intercept: each coefficient is the loss the law assigns to
    a stream of that source alone)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    a = p.T @ p + ridge * np.eye(p.shape[1])
    return {"w": np.linalg.solve(a, p.T @ y).tolist()}


LAWS = ("mixing_law_exp", "regmix_linear")


def fit_law(law: str, d: np.ndarray, p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return fit_exponential(d, y) if law == "mixing_law_exp" else fit_linear(p, y)


def predict(law: str, params: dict[str, Any], d: np.ndarray, p: np.ndarray) -> np.ndarray:
    if law == "mixing_law_exp":
        return params["c"] + params["k"] * np.exp(params["t"] * np.asarray(d, float))
    return np.asarray(p, float) @ np.asarray(params["w"], float)


def loo_error(law: str, d: np.ndarray, p: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute leave-one-out error of ``law`` over the points."""
    errs = []
    for i in range(y.size):
        keep = np.arange(y.size) != i
        params = fit_law(law, d[keep], p[keep], y[keep])
        errs.append(abs(float(predict(law, params, d[i:i + 1], p[i:i + 1])[0]) - y[i]))
    return float(np.mean(errs))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    def ranks(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, float)
        order = np.argsort(v, kind="stable")
        r = np.empty(v.size)
        r[order] = np.arange(v.size, dtype=float)
        for value in np.unique(v):
            same = v == value
            r[same] = r[same].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def fit_and_check(d: np.ndarray, p: np.ndarray, losses: dict[str, np.ndarray], fit_idx: np.ndarray,
                  test_idx: np.ndarray) -> dict[str, Any]:
    """Both laws on the fitted proxies, per target; the law with the lower mean leave-one-out error (over both
    targets) is chosen; its error and rank correlation on the proxies it did not see are reported."""
    loo = {law: {t: loo_error(law, d[fit_idx], p[fit_idx], y[fit_idx]) for t, y in losses.items()} for law in LAWS}
    chosen = min(LAWS, key=lambda law: (float(np.mean(list(loo[law].values()))), LAWS.index(law)))
    params = {t: fit_law(chosen, d[fit_idx], p[fit_idx], y[fit_idx]) for t, y in losses.items()}
    held = {}
    for t, y in losses.items():
        pred = predict(chosen, params[t], d[test_idx], p[test_idx])
        held[t] = {"mae": float(np.mean(np.abs(pred - y[test_idx]))), "spearman": spearman(pred, y[test_idx]),
                   "predicted": pred.tolist(), "measured": y[test_idx].tolist()}
    others = {law: {t: fit_law(law, d[fit_idx], p[fit_idx], y[fit_idx]) for t, y in losses.items()} for law in LAWS}
    return {"loo_mae": loo, "chosen": chosen, "params": params, "held_out": held, "all_params": others}


# ----------------------------------------------------------------------------- candidates and recommendation

def candidate_mixtures(cfg: SweepConfig, law: str, weights: dict[str, float], sides: dict[str, str],
                       caps: dict[str, float], target: int) -> list[dict[str, Any]]:
    """Mixtures the law scores, inside the swept range of domain shares: the exponential law sees only the
    domain share, so its candidates keep the recipe's weights on a fine grid of shares; the linear law's are
    that grid plus Dirichlet draws of weights. Only mixtures the sources can supply at the confirmation's
    size (``target`` tokens, each source at most ``caps`` tokens) are kept."""
    lo, hi = min(cfg.domain_shares), max(cfg.domain_shares)
    grid = np.round(np.linspace(lo, hi, 201), 4)
    base = {n: w for n, w in weights.items() if w > 0}
    out = [{"domain_share": float(s), "weights": dict(base)} for s in grid]
    if law == "regmix_linear":
        rng = np.random.default_rng([cfg.seed, 10_000])
        fake = SweepConfig(**{**asdict(cfg), "proxies": cfg.candidates, "domain_shares": [0.0, 1.0]})
        for m in draw_mixtures(fake, base, sides):
            out.append({"domain_share": float(np.round(rng.uniform(lo, hi), 4)), "weights": m["weights"]})
    names = sorted(base)
    feasible = []
    for m in out:
        need = proportions(m, sides, names) * target
        if all(need[i] <= caps.get(n, 0.0) * (1 - 1e-9) + 0.5 for i, n in enumerate(names)):
            feasible.append(m)
    return feasible


def pareto_front(dom: np.ndarray, gen: np.ndarray) -> list[int]:
    """Indices of the points no other point beats on both losses, by increasing domain loss."""
    order = np.lexsort((gen, dom))
    front, best_gen = [], math.inf
    for i in order:
        if gen[i] < best_gen - 1e-12:
            front.append(int(i))
            best_gen = gen[i]
    return front


def recommend(dom: np.ndarray, gen: np.ndarray, reference_general: float, tolerance: float) -> int | None:
    """The lowest predicted domain loss among points whose predicted general loss is at most
    ``(1 + tolerance) x reference_general``; None when none is."""
    ok = np.flatnonzero(gen <= (1.0 + tolerance) * reference_general)
    if ok.size == 0:
        return None
    return int(ok[np.lexsort((gen[ok], dom[ok]))[0]])


# ----------------------------------------------------------------------------- the confirmation

def confirmation_verdict(runs: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """recommended vs 51/49 at the experiment's size: mean losses, the seed spread (the larger max - min of the
    two arms), and whether the recommendation beats 51/49 on domain loss by more than the spread with its
    general loss within ``tolerance`` (relative) of 51/49's. Derived from the numbers only."""
    def vals(arm: str, split: str) -> list[float]:
        return [r["final"][split] for r in runs if r["arm"] == arm]
    out: dict[str, Any] = {}
    for split in SPLITS:
        rec, ref = vals("recommended", split), vals("51_49", split)
        out[split] = {"recommended": float(np.mean(rec)), "51_49": float(np.mean(ref)),
                      "gap": float(np.mean(ref) - np.mean(rec)),
                      "spread": float(max(max(rec) - min(rec), max(ref) - min(ref)))}
    dom, gen = out["val_domain"], out["val_general"]
    out["general_within_tolerance"] = gen["recommended"] <= (1.0 + tolerance) * gen["51_49"]
    out["domain_beats_by_more_than_spread"] = dom["gap"] > 0 and dom["gap"] > dom["spread"]
    out["beats"] = out["general_within_tolerance"] and out["domain_beats_by_more_than_spread"]
    return out


def verdict_text(v: dict[str, Any], tolerance: float) -> str:
    dom, gen = v["val_domain"], v["val_general"]
    word = "lower" if dom["gap"] > 0 else "higher"
    gen_rel = gen["recommended"] / gen["51_49"] - 1.0
    head = ("**The recommendation beats 51/49 at the experiment's size.**" if v["beats"] else
            "**The recommendation does not beat 51/49 at the experiment's size.**")
    return (f"{head} Its domain loss is {abs(dom['gap']):.4f} nats {word} than 51/49's ({dom['recommended']:.4f} vs "
            f"{dom['51_49']:.4f}); the larger seed spread of the two is {dom['spread']:.4f}, so the gap is "
            f"{'larger' if abs(dom['gap']) > dom['spread'] else 'not larger'} than the spread. Its general loss is "
            f"{gen['recommended']:.4f} vs {gen['51_49']:.4f} ({gen_rel:+.1%}), "
            f"{'within' if v['general_within_tolerance'] else 'outside'} the {tolerance:.0%} tolerance.")


# ----------------------------------------------------------------------------- outputs

def write_recipe(path: Path, recipe: dict[str, Any], provenance: dict[str, Any]) -> None:
    """The recommended recipe, ready for ``python -m mixtures.mix --recipe``; its provenance is in the header
    comment and in ``sweep.json`` (the dataset card matches a mixture's recipe against it)."""
    head = ["# written by python -m mixtures.sweep: the mixture search's recommendation (docs/mixing.md,",
            "# 'Mixture search'); use it with python -m mixtures.mix --recipe THIS --output DIR, or copy",
            "# domain_share and the sources' weights into the run config's mix:",
            *(f"# provenance: {k}: {v}" for k, v in provenance.items())]
    path.write_text("\n".join(head) + "\n" + yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")


def sweep_figure(results: dict[str, Any]):
    """Proxies as points (colour: domain share), the fitted front, the recommendation and the tolerance."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.8))
    ax = fig.subplots()
    prox = results["proxies"]
    fit = [p for p in prox if not p["held_out"]]
    held = [p for p in prox if p["held_out"]]
    sc = ax.scatter([p["loss"]["val_domain"] for p in fit], [p["loss"]["val_general"] for p in fit],
                    c=[p["domain_share"] for p in fit], cmap="viridis", vmin=0, vmax=1, s=36, label="proxy (fitted)")
    ax.scatter([p["loss"]["val_domain"] for p in held], [p["loss"]["val_general"] for p in held],
               c=[p["domain_share"] for p in held], cmap="viridis", vmin=0, vmax=1, s=60, marker="D",
               edgecolors="black", label="proxy (not fitted)")
    front = results["front"]
    ax.plot([f["pred"]["val_domain"] for f in front], [f["pred"]["val_general"] for f in front], color="tab:red",
            lw=1.5, label=f"fitted front ({results['fit']['chosen']})")
    ref = results["reference_general"] * (1 + results["general_tolerance"])
    ax.axhline(ref, color="grey", ls="--", lw=1, label=f"general-only + {results['general_tolerance']:.0%}")
    rec = results.get("recommendation")
    if rec:
        ax.scatter([rec["pred"]["val_domain"]], [rec["pred"]["val_general"]], marker="*", s=260, color="tab:red",
                   edgecolors="black", zorder=5, label=f"recommended (domain share {rec['domain_share']:.2f})")
    ax.set_xlabel("val_domain loss (nats/token)")
    ax.set_ylabel("val_general loss (nats/token)")
    ax.set_title("Mixture search: proxies, fitted front, recommendation")
    fig.colorbar(sc, ax=ax, label="domain share")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def section_markdown(r: dict[str, Any]) -> str:
    fit, rec, conf = r["fit"], r.get("recommendation"), r.get("confirmation")
    lines = [f"Written by `python -m mixtures.sweep --config {r['run_config']}` "
             f"(`make sweep CONFIG={r['run_config']}`) "
             f"on {r['date']}, {r['machine']}. Wall time: **{r['wall_s'] / 60:.1f} min** (proxies "
             f"{r['timing']['proxies_s'] / 60:.1f} min, confirmation {r['timing']['confirm_s'] / 60:.1f} min). "
             "Method and how to run it for a real target: [mixing.md](mixing.md), \"Mixture search\".", "",
             f"**Proxies.** {len(r['proxies'])} mixtures over the curated tokens: domain share on the grid "
             f"{r['sweep']['domain_shares']}, source weights inside each side from Dirichlet(concentration "
             f"{r['sweep']['concentration']:g} x the recipe's weights), seed {r['sweep']['seed']}; every mixture "
             f"{r['proxy']['target_tokens']:,} tokens, its domain share within {r['max_share_error']['domain']:.4f} of "
             f"the target and each source's share within {r['max_share_error']['source']:.4f} (whole documents; the "
             f"fit uses the realized shares). Proxy `{r['proxy']['config']}`: {r['proxy']['params']:,} "
             f"parameters, {r['proxy']['steps']} steps x {r['proxy']['batch_tokens']:,} tokens, one seed. Held-out "
             f"sets byte-identical in every mixture ({r['held_out_docs']['val_domain']} + "
             f"{r['held_out_docs']['val_general']} documents) and in no training stream (checked).", "",
             f"**Cost.** Proxies: {r['cost']['sweep_flops']:.3g} FLOPs (6ND, N from the configs' shapes) = "
             f"**{r['cost']['fraction']:.1%}** of one target run's {r['cost']['target_flops']:.3g} "
             f"(`{r['confirm']['config']}`, {r['confirm']['params']:,} parameters x "
             f"{r['confirm']['budget_tokens']:,} tokens). At this toy scale the vocabulary matrix is most of "
             "both models, so a proxy is not much cheaper per token than the target.", "",
             "**Fit.** Mean absolute leave-one-out error (nats/token) over the "
             f"{len(r['proxies']) - sum(p['held_out'] for p in r['proxies'])} fitted proxies:", "",
             "| law | val_domain | val_general |", "|---|---:|---:|"]
    for law in LAWS:
        lines.append(f"| {law}{' (chosen)' if law == fit['chosen'] else ''} | {fit['loo_mae'][law]['val_domain']:.4f} "
                     f"| {fit['loo_mae'][law]['val_general']:.4f} |")
    ho = fit["held_out"]
    lines += ["", "Every proxy (final loss, nats/token; *unseen*: not fitted):", "",
              "| proxy | domain share (realized) | val_domain | val_general | fitted |", "|---|---:|---:|---:|---|"]
    for p in r["proxies"]:
        lines.append(f"| {p['name']} | {p['domain_share']:.2f} ({p.get('realized', {}).get('domain_share', 0):.4f}) "
                     f"| {p['loss']['val_domain']:.4f} | {p['loss']['val_general']:.4f} "
                     f"| {'unseen' if p['held_out'] else 'yes'} |")
    lo, hi = min(r["sweep"]["domain_shares"]), max(r["sweep"]["domain_shares"])
    per = {k: [p.get("per_source") or {} for p in r["proxies"] if p["domain_share"] == k] for k in (lo, hi)}
    names = sorted({n for group in per.values() for ps in group for n in ps})
    if names and all(per.values()):
        lines += ["", f"Per held-out source (mean loss of the proxies at domain share {lo:g} and {hi:g}):", "",
                  f"| held-out source | share {lo:g} | share {hi:g} | change |", "|---|---:|---:|---:|"]
        for n in names:
            a, b = (float(np.mean([ps[n] for ps in per[k] if n in ps])) for k in (lo, hi))
            lines.append(f"| {n} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    lines += ["", f"On the {len(ho['val_domain']['measured'])} proxies the fit did not see, `{fit['chosen']}`: "
              f"val_domain mean absolute error {ho['val_domain']['mae']:.4f}, "
              f"Spearman {_f(ho['val_domain']['spearman'])}; "
              f"val_general {ho['val_general']['mae']:.4f}, Spearman {_f(ho['val_general']['spearman'])}.", ""]
    if fit["chosen"] == "mixing_law_exp":
        lines.append("Fitted law: " + "; ".join(
            f"{t} = {p['c']:.3f} + {p['k']:.3f} exp({p['t']:.3f} d)" for t, p in fit["params"].items()) + ".")
        lines.append("")
    step = max(1, len(r["front"]) // 12)
    lines += [f"**Pareto front** of the {r['candidates']:,} candidates (predicted; {len(r['front'])} points"
              + (f", every {step}th shown" if step > 1 else "") + "):", "",
              "| domain share | val_domain | val_general |", "|---:|---:|---:|"]
    for f in r["front"][::step]:
        lines.append(f"| {f['domain_share']:.3f} | {f['pred']['val_domain']:.4f} | {f['pred']['val_general']:.4f} |")
    lines.append("")
    if rec:
        w = ", ".join(f"{n} {x:.3f}" for n, x in rec["weights"].items())
        lines += [f"**Recommended** (lowest predicted domain loss with predicted general loss within "
                  f"{r['general_tolerance']:.0%} of the general-only proxies' {r['reference_general']:.4f}): domain "
                  f"share **{rec['domain_share']:.3f}**, weights inside each side: {w}. Predicted val_domain "
                  f"{rec['pred']['val_domain']:.4f}, val_general {rec['pred']['val_general']:.4f}. Recipe: "
                  f"`{r['recipe_path']}`.", ""]
    else:
        lines += ["**No recommendation**: no candidate's predicted general loss is within the tolerance.", ""]
    if conf:
        lines += [f"**Confirmation** (`{r['confirm']['config']}`, {r['confirm']['steps']} steps x "
                  f"{r['confirm']['batch_tokens']:,} tokens, seeds {r['confirm']['seeds']}; final loss, nats/token):",
                  "", "| arm | seed | domain share | val_domain | val_general |", "|---|---:|---:|---:|---:|"]
        for run in conf["runs"]:
            lines.append(f"| {run['arm']} | {run['seed']} | {run['domain_share']:.3f} "
                         f"| {run['final']['val_domain']:.4f} "
                         f"| {run['final']['val_general']:.4f} |")
        v = conf["verdict"]
        for split in SPLITS:
            s = v[split]
            lines.append(f"| mean ({split}) | | | recommended {s['recommended']:.4f} | 51/49 {s['51_49']:.4f}, "
                         f"spread {s['spread']:.4f} |")
        lines += ["", verdict_text(v, r["general_tolerance"]), ""]
    else:
        lines += ["**Confirmation**: not run (`--no-confirm`).", ""]
    lines += [f"![proxies, fitted front and recommendation]({FIGURE.name})", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def ensure_tokens(plan: Plan) -> None:
    """The run's token shards; when they are missing, the orchestrator's curation up to tokenize runs first."""
    if (plan.work / "tokens" / "stats.json").is_file():
        print(f"sweep: using the token shards in {plan.work / 'tokens'} as they are")
        return
    cmd = [sys.executable, "-m", "run", "--config", str(plan.config), "--until", "tokenize"]
    print("sweep: no token shards yet: python -m run --config "
          f"{plan.config} --until tokenize", flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise SweepCheckError(f"curation failed: run python -m run --config {plan.config} --until "
                              "tokenize and fix what it reports")


def write_outputs(results: dict[str, Any], out: Path, write_docs: bool) -> None:
    """The figure (``WORK/sweep`` and, with ``write_docs``, ``docs/``) and the doc section, from the results."""
    fig = sweep_figure(results)
    fig.savefig(out / FIGURE.name, dpi=130, facecolor="white")
    if write_docs:
        from core.sections import replace_section

        fig.savefig(FIGURE, dpi=130, facecolor="white")
        replace_section(DOC, SECTION, section_markdown(results))
        print(f"sweep: wrote {FIGURE} and the '{SECTION}' section of {DOC}")


def run_sweep(plan: Plan, tolerance: float, confirm: bool, write_docs: bool) -> dict[str, Any]:
    t_start = time.time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other work on the machine slows the runs
    cfg = plan.sweep
    ensure_tokens(plan)
    out = plan.work / "sweep"
    base = base_recipe(plan)
    avail = available_tokens(base)
    base["sources"] = [s for s in base["sources"] if avail[s["name"]] > 0 or not s.get("optional")]
    sides = {s["name"]: s["domain"] for s in base["sources"]}
    weights = base_weights(base, avail)
    names = sorted(n for n in weights if weights[n] > 0)
    proxy, target = train_shape(cfg.proxy_config), train_shape(plan.confirm_config)
    proxy_budget = proxy["steps"] * proxy["global_batch_tokens"]
    proxy_tokens = int(proxy_budget * PROXY_MARGIN)

    # 1. mixtures
    mixtures = draw_mixtures(cfg, weights, sides)
    dirs, manifests, worst = [], [], {"domain": 0.0, "source": 0.0}
    for m in mixtures:
        d = out / "mix" / m["name"]
        man = build_mixture(recipe_for(base, m, proxy_tokens), d)
        check(man["train_tokens"] > proxy_budget, f"{m['name']}: {man['train_tokens']:,} tokens cannot fill "
              f"{proxy_budget:,} tokens of steps")
        dom_err, src_err = check_shares(man, m, sides)
        worst = {"domain": max(worst["domain"], dom_err), "source": max(worst["source"], src_err)}
        dirs.append(d)
        manifests.append(man)
        print(f"sweep: mixture {m['name']}: domain share {m['domain_share']:.2f} "
              f"(realized {man['domain_share_actual']:.4f})", flush=True)
    vocab = manifests[0]["vocab_size"]
    val_splits = write_source_splits(dirs[0], vocab)
    for d in dirs[1:]:
        for s in val_splits:
            shutil.rmtree(d / s, ignore_errors=True)
            shutil.copytree(dirs[0] / s, d / s)
    held_docs = check_held_out(dirs)
    print(f"sweep: held-out sets identical in all {len(dirs)} mixtures ({held_docs['val_domain']} + "
          f"{held_docs['val_general']} documents), none in any training stream", flush=True)

    # 2. proxies
    t0 = time.time()
    splits_arg = "data.val_splits=[" + ",".join([*SPLITS, *val_splits]) + "]"
    jobs = [{"name": m["name"], "config": cfg.proxy_config, "out": out / "proxies" / m["name"],
             "overrides": [f"data.dir={d}", f"train.seed={cfg.seed}", f"data.seed={cfg.seed}", splits_arg]}
            for m, d in zip(mixtures, dirs)]
    wall = train_runs(jobs, cfg.jobs, out / "logs", cfg.gpus)
    proxies_s = time.time() - t0
    rng = np.random.default_rng([cfg.seed, 20_000])
    test_idx = np.sort(rng.permutation(len(mixtures))[:cfg.holdout])
    fit_idx = np.setdiff1d(np.arange(len(mixtures)), test_idx)
    proxies = []
    for k, m in enumerate(mixtures):
        ev = read_final_evals(out / "proxies" / m["name"] / "metrics.jsonl")
        check(all(s in ev for s in SPLITS), f"{m['name']}: the proxy was not scored on {SPLITS}")
        proxies.append({**m, "held_out": bool(k in test_idx), "loss": {s: ev[s] for s in SPLITS},
                        "realized": {"domain_share": manifests[k]["domain_share_actual"],
                                     "proportions": dict(zip(names, realized(manifests[k], names).tolist()))},
                        "per_source": {s[len("val_src_"):]: ev[s] for s in val_splits if s in ev},
                        "wall_s": wall[m["name"]]})

    # 3. fit
    d_arr = np.array([man["domain_share_actual"] for man in manifests])  # what the proxies trained on
    p_arr = np.array([realized(man, names) for man in manifests])
    losses = {s: np.array([p["loss"][s] for p in proxies]) for s in SPLITS}
    fit = fit_and_check(d_arr, p_arr, losses, fit_idx, test_idx)
    law = fit["chosen"]
    print(f"sweep: fit: {law} chosen (leave-one-out MAE " + ", ".join(
        f"{s} {fit['loo_mae'][law][s]:.4f}" for s in SPLITS) + "); on unseen proxies: " + ", ".join(
        f"{s} MAE {fit['held_out'][s]['mae']:.4f} Spearman {_f(fit['held_out'][s]['spearman'])}" for s in SPLITS))

    # 4. recommend
    confirm_budget = target["steps"] * target["global_batch_tokens"]
    confirm_tokens = int(confirm_budget * MIX_MARGIN)
    max_ep = float(base.get("max_epochs", 4.0))
    val_frac = base.get("val_fraction", 0.01)
    caps = {}
    for s in base["sources"]:
        vf = val_frac.get(s["domain"], 0.01) if isinstance(val_frac, dict) else float(val_frac)
        caps[s["name"]] = float(s.get("max_epochs", max_ep)) * avail[s["name"]] * (1 - vf) * 0.98  # 2% margin
    cands = candidate_mixtures(cfg, law, weights, sides, caps, confirm_tokens)
    check(bool(cands), "no candidate mixture can be supplied at the confirmation's size")
    cd = np.array([c["domain_share"] for c in cands])
    cp = np.array([proportions(c, sides, names) for c in cands])
    pred = {s: predict(law, fit["params"][s], cd, cp) for s in SPLITS}
    general_only = [p["loss"]["val_general"] for p in proxies if p["domain_share"] == 0.0]
    reference = float(np.mean(general_only))
    front_idx = pareto_front(pred["val_domain"], pred["val_general"])
    front = [{"domain_share": cands[i]["domain_share"], "weights": cands[i]["weights"],
              "pred": {s: float(pred[s][i]) for s in SPLITS}} for i in front_idx]
    print(f"sweep: Pareto front of {len(cands)} candidates ({len(front)} points; domain share, predicted losses):")
    for f in front[::max(1, len(front) // 12)]:
        print(f"  {f['domain_share']:.3f}  val_domain {f['pred']['val_domain']:.4f}  "
              f"val_general {f['pred']['val_general']:.4f}")
    ri = recommend(pred["val_domain"], pred["val_general"], reference, tolerance)
    results: dict[str, Any] = {
        "run_config": str(plan.config), "sweep": asdict(cfg), "general_tolerance": tolerance,
        "proxy": {"config": cfg.proxy_config, "params": params_from_shape(proxy["model"], vocab),
                  "steps": proxy["steps"], "batch_tokens": proxy["global_batch_tokens"], "target_tokens": proxy_tokens},
        "held_out_docs": held_docs, "max_share_error": worst, "proxies": proxies, "sources": names,
        "fit": fit, "reference_general": reference, "front": front, "candidates": len(cands)}
    recipe_path = out / "recommended_recipe.yaml"
    rec_mix = None
    if ri is not None:
        rec_mix = {"name": "recommended", "domain_share": cands[ri]["domain_share"], "weights": cands[ri]["weights"]}
        results["recommendation"] = {**rec_mix, "pred": {s: float(pred[s][ri]) for s in SPLITS}}
        recipe = recipe_for(base, rec_mix, int((plan.mix.get("target") or {}).get("tokens") or confirm_tokens))
        if isinstance(plan.mix.get("target"), dict) and "tokens" not in plan.mix["target"]:
            recipe["target"] = plan.mix["target"]
        write_recipe(recipe_path, recipe, {
            "source": f"python -m mixtures.sweep --config {plan.config}", "law": law,
            "why": f"lowest predicted val_domain loss with predicted val_general within {tolerance:.0%} of the "
                   f"general-only proxies' ({reference:.4f})",
            "results": str(out / "sweep.json")})
        results["recipe_path"] = str(recipe_path)
        print(f"sweep: recommended domain share {rec_mix['domain_share']:.3f}, weights "
              + ", ".join(f"{n} {w:.3f}" for n, w in rec_mix["weights"].items()) + f" -> {recipe_path}")
    else:
        recipe_path.unlink(missing_ok=True)
        print(f"sweep: no candidate's predicted general loss is within {tolerance:.0%} of the general-only proxies'")

    # 5. confirm
    t1 = time.time()
    target_params = params_from_shape(target["model"], vocab)
    results["confirm"] = {"config": plan.confirm_config, "params": target_params, "steps": target["steps"],
                          "batch_tokens": target["global_batch_tokens"], "budget_tokens": confirm_budget,
                          "seeds": cfg.confirm_seeds}
    sweep_flops = 6.0 * results["proxy"]["params"] * proxy_budget * len(mixtures)
    target_flops = 6.0 * target_params * confirm_budget
    results["cost"] = {"sweep_flops": sweep_flops, "target_flops": target_flops, "fraction": sweep_flops / target_flops}
    if confirm and rec_mix is not None:
        ref_mix = {"name": "51_49", "domain_share": REFERENCE_SHARE, "weights": {n: weights[n] for n in names}}
        cdirs = {}
        for m in (rec_mix, ref_mix):
            cdirs[m["name"]] = out / "confirm" / "mix" / m["name"]
            man = build_mixture(recipe_for(base, m, confirm_tokens), cdirs[m["name"]])
            check(man["train_tokens"] > confirm_budget, f"{m['name']}: too few tokens for the confirmation")
            check_shares(man, m, sides)
        check_held_out([dirs[0], *cdirs.values()])
        cjobs = [{"name": f"confirm-{arm}-seed{seed}", "config": plan.confirm_config,
                  "out": out / "confirm" / "runs" / f"{arm}-seed{seed}", "arm": arm, "seed": seed,
                  "overrides": [f"data.dir={cdirs[arm]}", f"train.seed={seed}", f"data.seed={seed}"]}
                 for seed in cfg.confirm_seeds for arm in cdirs]
        cwall = train_runs(cjobs, cfg.jobs, out / "logs", cfg.gpus)
        runs = [{"arm": j["arm"], "seed": j["seed"], "wall_s": cwall[j["name"]],
                 "domain_share": rec_mix["domain_share"] if j["arm"] == "recommended" else REFERENCE_SHARE,
                 "final": read_final_evals(j["out"] / "metrics.jsonl")} for j in cjobs]
        verdict = confirmation_verdict(runs, tolerance)
        results["confirmation"] = {"runs": runs, "verdict": verdict}
        print("sweep: " + verdict_text(verdict, tolerance).replace("**", ""))
    results["timing"] = {"proxies_s": proxies_s, "confirm_s": time.time() - t1}
    results["wall_s"] = time.time() - t_start
    results["date"] = datetime.date.today().isoformat()
    results["machine"] = (f"{os.cpu_count()}-core {platform.machine()}, training on CPU"
                          + (f", load average {load:.1f} when it started" if load is not None else ""))
    (out / "sweep.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    write_outputs(results, out, write_docs)
    print(f"sweep: cost {results['cost']['fraction']:.1%} of one target run's 6ND; wall {results['wall_s'] / 60:.1f} "
          f"min; results {out / 'sweep.json'}")
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True,
                        help="run config (configs/runs/*.yaml) with an optional sweep: block")
    parser.add_argument("--general-tolerance", type=float, default=None,
                        help="relative increase of the general held-out loss over the general-only proxies that the "
                             "recommendation may cost (default: sweep.general_tolerance, 0.05)")
    parser.add_argument("--no-confirm", action="store_true", help="skip the confirmation at the experiment's size")
    parser.add_argument("--docs-only", action="store_true",
                        help="rewrite the figure and the docs/experiment.md section from WORK/sweep/sweep.json; "
                             "nothing is mixed or trained")
    parser.add_argument("--no-docs", action="store_true",
                        help="write only under WORK/sweep (not docs/experiment.md and docs/mixture_search.png)")
    refuse_unknown_options(parser._option_string_actions, argv)
    args = parser.parse_args(argv)
    try:
        plan = read_run_config(args.config)
        tol = plan.sweep.general_tolerance if args.general_tolerance is None else args.general_tolerance
        if not (0 < tol < 10) or math.isnan(tol):
            raise SweepError(f"--general-tolerance must be in (0, 10), got {tol}")
    except ConfigError as exc:
        fail(f"sweep: {exc}")
    if args.docs_only:
        path = plan.work / "sweep" / "sweep.json"
        if not path.is_file():
            fail(f"sweep: --docs-only: no {path} (run the sweep first)")
        results = json.loads(path.read_text(encoding="utf-8"))
        write_outputs(results, path.parent, True)
        return results
    try:
        return run_sweep(plan, tol, not args.no_confirm, not args.no_docs)
    except SweepCheckError as exc:
        print(f"error: sweep: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
