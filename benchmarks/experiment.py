"""BloombergGPT's claim on this pipeline: at the same token budget, does a 51/49 domain/general blend
give lower perplexity on held-out finance text than general text only, and what does it cost on
general text?

    python benchmarks/experiment.py [--seeds 1 2 3] [--jobs 2] [--steps N]     # make experiment

    configs/runs/experiment.yaml (inputs moved to ../shared/corpora when it exists)
      -> python -m run --until tokenize     clean, filter, dedup, tokenizer, tokenize
      -> mixtures.mix twice, one recipe, domain_share 0.51 (blend) and 0.0 (general_only), same target
         and seed; checked: byte-identical held-out sets, none of their documents in either stream
      -> python -m train.run per arm and seed: configs/train/experiment.yaml, train.seed = data.seed
      -> work/experiment/experiment.json, docs/experiment_loss.png, docs/experiment.md (its "## Continued
         pretraining" and "## Mixture search" sections, written by other scripts, are kept as found)

general_only's runs keep their final checkpoint and a fingerprint.json: benchmarks/experiment_continue.py
(make experiment-continue) exports them as its "open base" when the fingerprint matches its own.

Both arms of a seed train side by side, one single-threaded process per core (--jobs). Curation is
cached by the run orchestrator (an unchanged step is skipped); mixtures and runs are rebuilt each time.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mixtures import mix as mixer  # noqa: E402
from mixtures.shards import list_shards, read_doc_index  # noqa: E402
from run.orchestrator import Runner, load_run_config  # noqa: E402
from train.config import load_config  # noqa: E402
from train.metrics import read_metrics  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"
RUN_CONFIG = Path("configs/runs/experiment.yaml")
TRAIN_CONFIG = Path("configs/train/experiment.yaml")
WORK = Path("work/experiment")
DOC = Path("docs/experiment.md")
FIGURE = Path("docs/experiment_loss.png")
ARMS = {"general_only": 0.0, "blend": 0.51}  # domain_share; BloombergGPT: 51.27% FinPile (Wu et al. 2023, Table 1)
SPLITS = ("val_domain", "val_general")
MIX_MARGIN = 1.01  # mixture = 1.01 x the tokens the steps read: one pass, no training window seen twice


class ExperimentError(RuntimeError):
    """A check of the experiment's design failed (the arms would not be comparable)."""


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ExperimentError(message)


# ----------------------------------------------------------------------------- curation

def effective_run_config() -> tuple[Path, bool]:
    """The run config to curate with: every ``data/X`` input moved to ``../shared/corpora/X`` (the
    full corpora, same layout) when all of them exist there; else the embedded sample as written."""
    doc = yaml.safe_load(RUN_CONFIG.read_text(encoding="utf-8"))
    moved = [[CORPORA / Path(p).relative_to("data") for p in s["inputs"]] for s in doc["sources"]]
    found = all(p.is_file() for paths in moved for p in paths)
    if found:
        for s, paths in zip(doc["sources"], moved):
            s["inputs"] = [os.path.relpath(p, ROOT) for p in paths]
        print(f"experiment: curating the full corpora in {os.path.relpath(CORPORA, ROOT)}")
    else:
        print(f"experiment: NOTE {CORPORA} not found (or incomplete): curating the embedded sample in data/ "
              "only (far less finance text; see data/README.md)")
    path = WORK / "run_config.yaml"
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# written by benchmarks/experiment.py from {RUN_CONFIG}\n"
                    + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, found


def curate(run_config: Path) -> str:
    """Run the orchestrator up to the tokenize stage; returns its summary line and the wall time."""
    log = WORK / "logs" / "curation.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "run", "--config", str(run_config), "--until", "tokenize"]
    print("experiment: " + " ".join(["python", *cmd[1:]]) + f"  (log: {log})")
    t0 = time.time()
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    lines = log.read_text(encoding="utf-8").splitlines()
    if proc.returncode != 0:
        sys.exit(f"experiment: curation failed (exit {proc.returncode}); the end of {log}:\n" + "\n".join(lines[-20:]))
    done = next((m for line in reversed(lines) if (m := re.search(r"\((\d+ steps ran, \d+ up to date)\)", line))),
                None)
    summary = f"{done.group(1) if done else 'done'}, {time.time() - t0:.0f} s"
    print(f"experiment: curation {summary}")
    return summary


# ----------------------------------------------------------------------------- mixtures

def build_mixtures(run_config: Path, budget: int) -> dict[str, dict[str, Any]]:
    """One mixture per arm from the run config's ``mix:`` (Runner.recipe: one mixer source per run
    source), differing only in domain_share. Returns each arm's manifest."""
    recipe = Runner(load_run_config(run_config)).recipe()
    target = {"tokens": int(budget * MIX_MARGIN)}
    manifests = {}
    for arm, share in ARMS.items():
        path = WORK / "recipes" / f"{arm}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({**recipe, "domain_share": share, "target": target},
                                       sort_keys=False), encoding="utf-8")
        print(f"experiment: mixture {arm} (domain_share {share})")
        manifests[arm] = mixer.main(["--recipe", str(path), "--output", str(WORK / "mix" / arm)])
        check(manifests[arm]["train_tokens"] > budget, f"{arm}: {manifests[arm]['train_tokens']:,} training tokens "
              f"cannot fill {budget:,} tokens of steps in one pass")
    return manifests


def doc_keys(split_dir: Path) -> list[tuple[str, str]]:
    """``(source, id)`` of every document of a split, in stream order (repeats included)."""
    out = []
    for prefix in list_shards(split_dir):
        index = read_doc_index(prefix)
        out += list(zip(index["source"].tolist(), index["id"].tolist()))
    return out


def check_held_out(manifests: dict[str, dict[str, Any]], dirs: dict[str, Path] | None = None,
                   shares: dict[str, float] | None = None) -> dict[str, list[tuple[str, str]]]:
    """The arms must be scored on the same documents and none may train on them. The mixer picks
    them per side from a permutation seeded by the recipe's seed until val_fraction of the side's tokens
    (not from domain_share), so the val sets of every arm must be byte-identical: checked, with the doc
    indexes. ``dirs``/``shares``: each arm's mixture and domain_share (default: this experiment's two arms);
    an arm of share 0.0 must hold no domain document, one of share 1.0 no general document."""
    shares = shares if shares is not None else ARMS
    dirs = dirs if dirs is not None else {arm: WORK / "mix" / arm for arm in shares}
    first, *others = dirs.values()
    for split in SPLITS:
        names = sorted(p.name for p in (first / split).iterdir())
        for other in others:
            check(sorted(p.name for p in (other / split).iterdir()) == names
                  and all((first / split / n).read_bytes() == (other / split / n).read_bytes() for n in names),
                  f"{split} differs between {first} and {other}: the arms would be scored on different text")
    held = {split: doc_keys(first / split) for split in SPLITS}
    held_set = {key for keys in held.values() for key in keys}
    domain_sources = {name for m in manifests.values() for name, s in m["sources"].items() if s["domain"] == "domain"}
    for arm, d in dirs.items():
        train = doc_keys(d / "train")
        leaked = held_set.intersection(train)
        check(not leaked, f"{arm}: {len(leaked)} held-out documents in the training stream, e.g. {sorted(leaked)[:3]}")
        check(len(train) == manifests[arm]["splits"]["train"]["docs"], f"{arm}: doc index and manifest disagree")
        if shares[arm] == 0.0:
            domain = [k for k in train if k[0] in domain_sources]
            check(not domain and manifests[arm]["domain_tokens"] == 0,
                  f"{arm}: {len(domain)} domain documents in a general-only stream")
        if shares[arm] == 1.0:
            general = [k for k in train if k[0] not in domain_sources]
            check(not general and manifests[arm]["general_tokens"] == 0,
                  f"{arm}: {len(general)} general documents in a domain-only stream")
    print(f"experiment: held-out sets identical in all {len(dirs)} arms ({len(held['val_domain'])} + "
          f"{len(held['val_general'])} documents) and absent from every training stream")
    return held


# ----------------------------------------------------------------------------- training

def mix_content(mix_dir: Path) -> str:
    """A hash of a mixture's bytes (token shards, doc indexes, tokenizer), not of its manifest, which names
    paths: the same mixture built in two directories hashes the same."""
    h = hashlib.sha256()
    for path in sorted(p for p in mix_dir.rglob("*") if p.is_file() and p.name != "manifest.json"):
        h.update(path.relative_to(mix_dir).as_posix().encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def fingerprint_parts(config: Path, overrides: list[str], mix_dir: Path) -> dict[str, Any]:
    """What a training run's result depends on: the train config's content, the overrides (less where it
    writes and reads), the mixture's bytes and the trainer's code (run.orchestrator.code_version)."""
    from run.orchestrator import code_version

    kept = sorted(o for o in overrides if not o.startswith(("train.out_dir=", "data.dir=")))
    return {"config": hashlib.sha256(Path(config).read_bytes()).hexdigest(), "overrides": kept,
            "mix": mix_content(mix_dir), "code": code_version(("train",))}


def run_fingerprint(config: Path, overrides: list[str], mix_dir: Path) -> str:
    """A hash of :func:`fingerprint_parts`: two runs with the same fingerprint train the same model, so one
    can stand for the other."""
    parts = fingerprint_parts(config, overrides, mix_dir)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


FINGERPRINT = "fingerprint.json"  # in a run directory: run_fingerprint of a run that finished


def train_jobs(jobs: list[tuple[str, Path, list[str], Path]], n: int, needs: dict[str, str] | None = None,
               on_done: Callable[[str], None] | None = None) -> dict[str, float]:
    """Run ``(name, train config, overrides, out_dir)`` jobs with ``python -m train.run``, up to ``n`` at a time
    (one single-threaded process per core; the next job starts as soon as a core is free), in list order except
    that a job named in ``needs`` waits until the job it needs has finished (and ``on_done(name)``, called as
    each finishes, has returned). Each logs to <out_dir's parent's parent>/logs/<name>.log; a finished run gets
    its FINGERPRINT. Exits with the end of the log when one fails. Returns each job's wall seconds."""
    needs = needs or {}
    names = {job[0] for job in jobs}
    pending, running, finished = list(jobs), [], set()
    wall: dict[str, float] = {}
    while pending or running:
        while len(running) < n:
            ready = next((job for job in pending if needs.get(job[0]) not in names - finished), None)
            if ready is None:
                break
            pending.remove(ready)
            name, config, overrides, out = ready
            shutil.rmtree(out, ignore_errors=True)
            log = out.parent.parent / "logs" / f"{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "train.run", "--config", str(config), *overrides, f"train.out_dir={out}",
                   "train.resume=none"]
            print(f"experiment: train {name}  (log: {log})")
            with open(log, "w", encoding="utf-8") as f:
                running.append((ready, log, time.time(), subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)))
        check(bool(running), f"jobs {[job[0] for job in pending]} wait for jobs that never finish")
        done = next((r for r in running if r[3].poll() is not None), None)
        if done is None:
            time.sleep(0.5)
            continue
        running.remove(done)
        (name, config, overrides, out), log, t0, proc = done
        if proc.returncode != 0:
            for *_, other in running:
                other.terminate()
            sys.exit(f"experiment: training {name} failed (exit {proc.returncode}); the end of {log}:\n"
                     + "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-20:]))
        wall[name] = time.time() - t0
        data_dir = Path(next(o for o in overrides if o.startswith("data.dir=")).split("=", 1)[1])
        parts = fingerprint_parts(config, overrides, data_dir)
        (out / FINGERPRINT).write_text(json.dumps({"fingerprint": run_fingerprint(config, overrides, data_dir),
                                                   "parts": parts}, indent=1) + "\n", encoding="utf-8")
        if on_done is not None:
            on_done(name)
        finished.add(name)
    return wall


def arm_overrides(arm: str, seed: int, steps: int) -> list[str]:
    """The trainer overrides of one (arm, seed) run. general_only keeps its final checkpoint: it is the
    "open base" that benchmarks/experiment_continue.py continues (and reuses when its fingerprint matches)."""
    return [f"data.dir={WORK / 'mix' / arm}", f"train.steps={steps}", f"train.seed={seed}", f"data.seed={seed}",
            *(["train.ckpt_every=0"] if ARMS[arm] == 0.0 else [])]


def train_all(seeds: list[int], jobs: int, steps: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every (seed, arm) run, ``jobs`` at a time (both arms of a seed together: the same load on the
    machine). Returns experiment.json's runs and each run's wall seconds."""
    todo = [(arm, seed) for seed in seeds for arm in ARMS]
    wall = train_jobs([(f"{arm}-seed{seed}", TRAIN_CONFIG, arm_overrides(arm, seed, steps),
                        WORK / "runs" / f"{arm}-seed{seed}") for arm, seed in todo], jobs)
    runs = []
    for arm, seed in todo:
        runs.append({"arm": arm, "seed": seed, **collect(WORK / "runs" / f"{arm}-seed{seed}" / "metrics.jsonl")})
        final = runs[-1]["final"]
        print(f"experiment: {arm} seed {seed}: val_domain ppl {final['val_domain']['ppl']:.1f}, "
              f"val_general ppl {final['val_general']['ppl']:.1f} ({wall[f'{arm}-seed{seed}']:.0f} s)")
    return runs, wall


def collect(metrics: Path) -> dict[str, Any]:
    """Final loss/ppl/bpb per held-out split and the validation-loss curve, from metrics.jsonl (the last
    record of a step and split counts: the trainer may log the final step twice)."""
    evals: dict[int, dict[str, dict[str, float]]] = {}
    for r in read_metrics(metrics):
        if r.get("kind") == "eval":
            evals.setdefault(r["step"], {})[r["split"]] = {k: r[k] for k in ("loss", "ppl", "bpb")}
    check(bool(evals) and all(set(e) == set(SPLITS) for e in evals.values()), f"{metrics}: missing evaluations")
    curve = [{"step": step, **{split: e[split]["loss"] for split in SPLITS}} for step, e in sorted(evals.items())]
    return {"final": evals[max(evals)], "curve": curve}


# ----------------------------------------------------------------------------- the write-up

def side_epochs(manifest: dict[str, Any], side: str) -> float:
    """Passes over one side's available (not held-out) tokens in a mixture."""
    srcs = [s for s in manifest["sources"].values() if s["domain"] == side]
    available = sum(s["available_tokens"] for s in srcs)
    return sum(s["sampled_tokens"] for s in srcs) / available if available else 0.0


def mean_range(values: list[float], fmt: str) -> str:
    return f"{format(statistics.fmean(values), fmt)} ({format(min(values), fmt)}\u2013{format(max(values), fmt)})"


def finals(runs: list[dict[str, Any]], arm: str, split: str, metric: str) -> list[float]:
    return [r["final"][split][metric] for r in sorted(runs, key=lambda r: r["seed"]) if r["arm"] == arm]


def compare(runs: list[dict[str, Any]], split: str) -> dict[str, Any]:
    """blend vs general_only on one held-out set: the gap between the means of the final perplexities
    (> 0: the blend is lower), the seed spread (the larger max - min of the two arms), whether the arms'
    ranges overlap, and in how many seeds the blend is lower (paired by seed)."""
    blend, general = finals(runs, "blend", split, "ppl"), finals(runs, "general_only", split, "ppl")
    gap = statistics.fmean(general) - statistics.fmean(blend)
    return {"blend": statistics.fmean(blend), "general_only": statistics.fmean(general), "gap": gap,
            "rel": gap / statistics.fmean(general),
            "spread": max(max(blend) - min(blend), max(general) - min(general)),
            "separated": max(blend) < min(general) or min(blend) > max(general),
            "blend_lower": sum(b < g for b, g in zip(blend, general)), "seeds": len(blend),
            "paired": [b - g for b, g in zip(finals(runs, "blend", split, "loss"),
                                             finals(runs, "general_only", split, "loss"))],
            "bpb": (statistics.fmean(finals(runs, "blend", split, "bpb")),
                    statistics.fmean(finals(runs, "general_only", split, "bpb")))}


def conclusion(runs: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Whether the claim held (the blend lower on finance by more than the seed spread, ranges apart),
    and one line per held-out set, from the numbers."""
    lines = []
    for split, what in (("val_domain", "held-out finance text"), ("val_general", "held-out general text")):
        c = compare(runs, split)
        verb = "lower" if c["gap"] > 0 else "higher"
        lines.append(
            f"- **{what.capitalize()} (`{split}`)**: the blend's perplexity is {abs(c['gap']):,.1f} {verb} than "
            f"general-only's ({c['blend']:,.1f} vs {c['general_only']:,.1f}, {abs(c['rel']):.1%} {verb}; "
            f"{c['bpb'][0]:.3f} vs {c['bpb'][1]:.3f} bits per byte). The larger seed spread (max - min) of the two "
            f"arms is {c['spread']:,.1f}: the gap is {'larger' if abs(c['gap']) > c['spread'] else 'not larger'} "
            f"than the spread, the arms' ranges {'do not overlap' if c['separated'] else 'overlap'}, and the blend "
            f"is lower in {c['blend_lower']} of {c['seeds']} seeds. Paired by seed, blend minus general-only "
            f"validation loss is {statistics.fmean(c['paired']):+.3f} nats per token (from {min(c['paired']):+.3f} to "
            f"{max(c['paired']):+.3f}).")
    domain = compare(runs, "val_domain")
    held = domain["gap"] > domain["spread"] and domain["separated"] and domain["gap"] > 0
    return held, lines


def verdict(runs: list[dict[str, Any]]) -> str:
    held, lines = conclusion(runs)
    domain, general = compare(runs, "val_domain"), compare(runs, "val_general")
    if held:
        head = (f"**The claim holds at this scale.** The blend's perplexity on held-out finance text is "
                f"{domain['rel']:.1%} lower than general-only's, by more than the spread over seeds.")
    else:
        head = ("**The claim is not shown at this scale.** The blend's perplexity on held-out finance text is not "
                "lower than general-only's by more than the spread over seeds.")
    cost = -general["rel"]
    head += (f" Its price on held-out general text: {cost:.1%} {'higher' if cost > 0 else 'lower'} perplexity "
             f"({'more' if abs(general['gap']) > general['spread'] else 'not more'} than the seed spread; "
             f"higher in {general['seeds'] - general['blend_lower']} of {general['seeds']} seeds paired by seed).")
    return "\n".join([head, "", *lines])


def write_doc(*, runs: list[dict[str, Any]], seeds: list[int], steps: int, budget: int,
              manifests: dict[str, dict[str, Any]], held: dict[str, list[tuple[str, str]]], corpora: bool,
              run_config: Path, curation: str, wall: dict[str, float], total_s: float) -> None:
    cfg = load_config(TRAIN_CONFIG)
    mc, tc, oc = cfg.model, cfg.train, cfg.optim
    start = next(r for r in read_metrics(WORK / "runs" / f"blend-seed{seeds[0]}" / "metrics.jsonl")
                 if r.get("kind") == "start")
    params = start["params"]
    tokens = json.loads((WORK / "tokens" / "stats.json").read_text(encoding="utf-8"))
    run = load_run_config(run_config)
    inputs = {s["name"]: ", ".join(f"`{p}`" for p in s["inputs"]) for s in run.sources}

    def stage_stats(stage: str, source: str) -> dict[str, Any]:
        return json.loads((WORK / stage / source / "stats.json").read_text(encoding="utf-8"))

    curated = ["| source | side | input | documents read | after filter | after dedup | tokens |",
               "|---|---|---|---:|---:|---:|---:|"]
    for s in tokens["sources"].values():
        name = s["source"]
        curated.append(f"| {name} | {s['domain']} | {inputs[name]} | {stage_stats('clean', name)['input']:,} | "
                       f"{stage_stats('filter', name)['output']:,} | {s['docs']:,} | {s['tokens']:,} |")
    side_tokens = {side: sum(s["tokens"] for s in tokens["sources"].values() if s["domain"] == side)
                   for side in ("domain", "general")}

    mixes = ["| arm | domain_share | training tokens | domain share realized | finance epochs | general epochs |",
             "|---|---:|---:|---:|---:|---:|"]
    for arm, m in manifests.items():
        mixes.append(f"| {arm} | {ARMS[arm]} | {m['train_tokens']:,} | {m['domain_share_actual']:.4f} | "
                     f"{side_epochs(m, 'domain'):.2f} | {side_epochs(m, 'general'):.2f} |")

    blend = manifests["blend"]
    held_lines = []
    for split in SPLITS:
        counts: dict[str, int] = {}
        for source, _ in held[split]:
            counts[source] = counts.get(source, 0) + 1
        sp = blend["splits"][split]
        held_lines.append(f"- `{split}`: {sp['docs']} documents, {sp['tokens']:,} tokens "
                          f"({blend['val_bytes_per_token'][split]:.2f} bytes per token): "
                          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])))

    table = ["| arm | seeds | val_domain perplexity | val_domain bits/byte | val_general perplexity | "
             "val_general bits/byte |", "|---|---:|---:|---:|---:|---:|"]
    for arm in ARMS:
        cells = [mean_range(finals(runs, arm, split, metric), fmt)
                 for split in SPLITS for metric, fmt in (("ppl", ",.1f"), ("bpb", ".3f"))]
        table.append(f"| {arm} | {len(finals(runs, arm, 'val_domain', 'ppl'))} | " + " | ".join(cells) + " |")
    per_seed = ["| arm | seed | val_domain loss | ppl | bits/byte | val_general loss | ppl | bits/byte | wall s |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: (r["seed"], r["arm"])):
        f = r["final"]
        per_seed.append(f"| {r['arm']} | {r['seed']} | " + " | ".join(
            f"{f[s]['loss']:.4f} | {f[s]['ppl']:,.1f} | {f[s]['bpb']:.4f}" for s in SPLITS)
            + f" | {wall[r['arm'] + '-seed' + str(r['seed'])]:.0f} |")

    data_note = ("The full corpora in `../shared/corpora`" if corpora else
                 "**Only the embedded sample in `data/`**: `../shared/corpora` was not found on this machine")
    machine = (f"{os.cpu_count()}-core {platform.machine()} sandbox, "
               + ("no GPU" if not torch.cuda.is_available() else "with a GPU (training ran on CPU)"))
    steps_s = statistics.median(wall.values())
    text = f"""# Experiment: does the 51/49 blend beat general text on finance, and what does it cost?

Date: {datetime.date.today().isoformat()}. Machine: {machine}.
Command: `make experiment` (= `.venv/bin/python benchmarks/experiment.py`).
Wall time: {total_s / 60:.1f} min for the whole script.
Everything below, numbers and verdict, is written by the script from that run.

## Question

BloombergGPT (Wu et al. 2023) trains on 51% financial text (FinPile) and 49% general text and claims a
model that is better on finance without giving up much on general text. The premise of this project,
tested at toy scale: with the **same token budget, steps, batch, model and seeds**, does a model trained on
the 51/49 blend (`blend`) have lower perplexity on held-out finance documents than one trained on general
text only (`general_only`)? And how much worse is the blend on held-out general documents?

## Setup

**Data.** {data_note}, curated by the run orchestrator:

    python -m run --config {run_config} --until tokenize

(`{run_config}` is `{RUN_CONFIG}` with its `data/` inputs moved to the corpora when they exist; this run:
{curation}). Stages: clean; filter (`configs/filter/demo.yaml`); dedup (exact, then MinHash
near-duplicates at Jaccard 0.8, across sources); a Unigram tokenizer of {blend['vocab_size']:,} pieces
(`configs/tokenizer/demo.yaml`); tokenize. After curation: {side_tokens['domain']:,} finance tokens and
{side_tokens['general']:,} general tokens.

{chr(10).join(curated)}

**Mixtures.** One recipe, the run config's `mix:` (max_epochs {blend['recipe']['max_epochs']:g}, val_fraction
{blend['recipe']['val_fraction']['domain']:g} of the domain side and {blend['recipe']['val_fraction']['general']:g} \
of the general side, seed {blend['seed']}), built twice with `mixtures.mix`, changing only `domain_share`. The
target is the training budget + 1% ({blend['target_tokens']:,} tokens), so the steps read each training window
at most once. Recipes: `{WORK}/recipes/<arm>.yaml`; mixtures: `{WORK}/mix/<arm>/`.

{chr(10).join(mixes)}

**Held-out sets**, the same documents for both arms:

{chr(10).join(held_lines)}

The mixer picks them per side, before any sampling, from a permutation seeded by the recipe's seed, until
val_fraction of the side's tokens: the choice does not depend on `domain_share`. The script checks it: the
`val_domain/` and `val_general/` shards of the two arms are byte-identical, no held-out `(source, id)` appears
in either training stream's doc index, and the general-only stream holds no finance document. Dedup ran
before the split and across sources, so exact copies and the near-copies MinHash finds (Jaccard >= 0.8) of a
held-out document are not in training either. Every evaluation scores every held-out token (`eval_tokens`
{tc.eval_tokens:,} is more than either set), so bits per byte use the exact bytes per token of the set.

**Model and training** (`{TRAIN_CONFIG}`): a Llama shape (RoPE, SwiGLU, RMSNorm, tied embeddings) of
{mc.n_layer} layers, d_model {mc.d_model}, {mc.n_head} heads, context {mc.seq_len}: {params['total']:,} parameters,
{params['non_embedding']:,} without the embedding. AdamW, lr {oc.lr:g}, {oc.warmup_steps} warmup steps, cosine
decay to {oc.min_lr_ratio:g}x, weight decay {oc.weight_decay:g}, fp32. **{steps} steps x {tc.global_batch_tokens:,} \
tokens = {budget:,} training tokens per run**, validation every {tc.eval_every} steps. Seeds \
{', '.join(map(str, seeds))}: `train.seed` (initialization) = `data.seed` (order of the windows) = the seed; the
mixtures and held-out sets are the same for every seed. Each run is one process with one thread; the two arms
of a seed ran side by side, median {steps_s:.0f} s per run. Runs: `{WORK}/runs/<arm>-seed<seed>/` (general_only
keeps its final checkpoint: `make experiment-continue` continues it, "Continued pretraining" below); results:
`{WORK}/experiment.json` (also read by `python -m run.report --work {WORK}`).

## Results

Final validation (step {steps}), mean over {len(seeds)} seeds (min\u2013max):

{chr(10).join(table)}

Per run:

{chr(10).join(per_seed)}

![validation loss per arm over steps]({FIGURE.name})

`{FIGURE}`: validation loss over steps on each held-out set; thick lines are the mean over seeds,
thin lines single seeds.

## Conclusion

{verdict(runs)}

What this does and does not show: a {params['total'] / 1e6:.1f}M-parameter model, {budget / 1e6:.2f}M tokens
per run, {len(seeds)} seeds, one choice of held-out documents ({blend['splits']['val_domain']['docs']} finance \
documents, most of them BBC business news). The general-only model never sees a finance document; the blend
reads its small finance side {side_epochs(blend, 'domain'):.2f} times and its general side \
{side_epochs(blend, 'general'):.2f} times (general-only: {side_epochs(manifests['general_only'], 'general'):.2f}).
BBC business and BBC non-business news share a house style, so part of any finance gain is news style, and
the general held-out set is mostly news, speeches and novels. The seed spread covers initialization and data
order only, not the choice of held-out documents. Nothing here says how the gap moves with model size or
budget: BloombergGPT's claim is about a 50B model; this is its smallest rehearsal, on this pipeline.
"""
    DOC.write_text(text + kept_sections(), encoding="utf-8")


# Sections of docs/experiment.md that other scripts write (core/sections.py replace_section): kept as found
# when this script rewrites the rest of the file.
OTHER_SECTIONS = ("## Continued pretraining", "## Mixture search")


def kept_sections() -> str:
    """The OTHER_SECTIONS the current docs/experiment.md has, in that order, each ending in a blank line."""
    from core.sections import get_section

    old = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    found = [get_section(old, title) for title in OTHER_SECTIONS]
    return "".join("\n" + body.strip("\n") + "\n" for body in found if body)


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="train.seed = data.seed per run")
    parser.add_argument("--steps", type=int, help="train.steps (default: the train config's); a quick check")
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="runs trained at the same time, one core each (default: 2)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # the configs' paths are relative to the repository root
    t0 = time.time()

    cfg = load_config(TRAIN_CONFIG)
    steps = args.steps or cfg.train.steps
    budget = steps * cfg.train.global_batch_tokens
    run_config, corpora = effective_run_config()
    curation = curate(run_config)
    manifests = build_mixtures(run_config, budget)
    held = check_held_out(manifests)
    runs, wall = train_all(args.seeds, args.jobs, steps)

    results = {"budget_tokens": budget, "seeds": args.seeds, "runs": runs}
    (WORK / "experiment.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    from run import report

    report.experiment_figure(results).savefig(FIGURE, dpi=150, facecolor="white")
    report.main(["--work", str(WORK), "--quiet"])  # the run report, with the experiment's section
    write_doc(runs=runs, seeds=args.seeds, steps=steps, budget=budget, manifests=manifests, held=held, corpora=corpora,
              run_config=run_config, curation=curation, wall=wall, total_s=time.time() - t0)
    print(f"experiment: wrote {WORK / 'experiment.json'}, {FIGURE}, {DOC} in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    try:
        main()
    except ExperimentError as exc:
        print(f"error: experiment: {exc}", file=sys.stderr)
        sys.exit(2)
