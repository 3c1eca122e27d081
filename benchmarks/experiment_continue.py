"""Continued pretraining, in a closed loop: the experiment's general-only model is the "open base"; how much
finance perplexity does continuing it on finance text win, how much general perplexity does it lose, and how
does general replay (0 / 5 / 25 / 49%) move the two? And what does a model trained from scratch on the 51/49
blend reach with the same tokens?

    python benchmarks/experiment_continue.py [--seeds 1 2 3] [--jobs 2] [--steps N] [--base-steps N]
    make experiment-continue

    curation: benchmarks/experiment.py's (python -m run --until tokenize; cached by the orchestrator)
      -> mixtures.mix, one recipe (configs/runs/experiment.yaml's mix:): general_only (the base's, the
         experiment's budget) and replay0/5/25/49 (domain_share 1.0/0.95/0.75/0.51, the continuation budget);
         checked: byte-identical held-out sets in all five, none of their documents in any training stream
      -> the base per seed: configs/train/experiment.yaml on general_only, reused from work/experiment/runs
         (make experiment) when its fingerprint (config, overrides, mixture bytes, trainer code) is the same,
         else trained here; exported with python -m train.export (a Hugging Face Llama directory)
      -> per seed: configs/train/continue_experiment.yaml (model.init_from: the export; re-warmed WSD) on each
         replay mixture, and configs/train/experiment.yaml from scratch on replay49 (51/49) for the same steps
      -> work/experiment_continue/results.json, docs/experiment_continue.png and the "## Continued pretraining"
         section of docs/experiment.md (core/sections.py: the rest of the file is left as it is)

Runs go ``--jobs`` at a time, one single-threaded process per core, as in benchmarks/experiment.py.
Exit status: 0 done; 2 one ``error:`` line when a check of the design fails or an option is bad.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import experiment as E  # noqa: E402
from core.sections import replace_section  # noqa: E402
from mixtures import mix as mixer  # noqa: E402
from run.orchestrator import Runner, load_run_config  # noqa: E402
from train.checkpoint import latest_checkpoint  # noqa: E402
from train.config import load_config  # noqa: E402

WORK = Path("work/experiment_continue")
CONFIG = Path("configs/train/continue_experiment.yaml")
FIGURE = Path("docs/experiment_continue.png")
SECTION = "## Continued pretraining"
BASE = "general_only"  # the base's mixture (benchmarks/experiment.py's arm of that name)
REPLAYS = {"replay0": 1.0, "replay5": 0.95, "replay25": 0.75, "replay49": 0.51}  # arm -> domain_share
SCRATCH = "scratch"  # from scratch on replay49's mixture (the 51/49 blend), as many steps as a continuation
SPLITS = E.SPLITS
MARGIN, MARGIN_TOKENS = 1.02, 4096  # a continuation mixture: its run's tokens x 1.02 + 4,096 (one pass)


def replay_of(arm: str) -> float:
    """General replay share of a continuation arm (1 - domain_share)."""
    return round(1.0 - REPLAYS[arm], 4)


# ----------------------------------------------------------------------------- mixtures

def build_mixtures(run_config: Path, base_budget: int, budget: int) -> dict[str, dict[str, Any]]:
    """The base's general-only mixture (the experiment's: same recipe, same target) and one mixture per
    replay ratio sized to the continuation's budget, all from the run config's ``mix:``. Returns manifests."""
    recipe = Runner(load_run_config(run_config)).recipe()
    plan = {BASE: (0.0, base_budget), **{arm: (share, budget) for arm, share in REPLAYS.items()}}
    manifests = {}
    for arm, (share, tokens) in plan.items():
        path = WORK / "recipes" / f"{arm}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        # the base's: the experiment's target (same mixture); the others: a margin of whole documents too (the
        # mixer fills each source to within half a document, and a short run has few of them)
        target = {"tokens": int(tokens * E.MIX_MARGIN) if arm == BASE else int(tokens * MARGIN) + MARGIN_TOKENS}
        path.write_text(yaml.safe_dump({**recipe, "domain_share": share, "target": target}, sort_keys=False),
                        encoding="utf-8")
        print(f"experiment-continue: mixture {arm} (domain_share {share})")
        manifests[arm] = mixer.main(["--recipe", str(path), "--output", str(WORK / "mix" / arm)])
        E.check(manifests[arm]["train_tokens"] > tokens, f"{arm}: {manifests[arm]['train_tokens']:,} training "
                f"tokens cannot fill {tokens:,} tokens of steps in one pass")
    return manifests


# ----------------------------------------------------------------------------- the base

def base_overrides(seed: int, base_steps: int) -> list[str]:
    """benchmarks/experiment.py's general_only overrides, reading this script's copy of its mixture."""
    return [f"data.dir={WORK / 'mix' / BASE}" if o.startswith("data.dir=") else o
            for o in E.arm_overrides(BASE, seed, base_steps)]


def reusable(run: Path, fingerprint: str, parts: dict[str, Any] | None = None) -> bool:
    """Whether ``run`` finished with ``fingerprint`` and kept its final checkpoint (then it is the base). When
    it did not, and ``parts`` (E.fingerprint_parts) are given, says what differs."""
    try:
        record = json.loads((run / E.FINGERPRINT).read_text(encoding="utf-8"))
        recorded = record["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if recorded == fingerprint and latest_checkpoint(run / "checkpoints") is not None:
        return True
    if parts is not None:
        why = ([k for k in parts if (record.get("parts") or {}).get(k) != parts[k]] if recorded != fingerprint
               else ["no final checkpoint"])
        names = {"config": "the train config", "overrides": "steps or seeds", "mix": "the mixture's bytes",
                 "code": "the trainer's code (train/)"}
        print(f"experiment-continue: not reusing {run}: {', '.join(names.get(w, w) for w in why)} changed")
    return False


def bases(seeds: list[int], base_steps: int) -> tuple[dict[int, Path], dict[int, bool], list[tuple]]:
    """The base run of each seed: ``make experiment``'s general_only run when it is the same training
    (fingerprint), else one to train here (returned as a train job). Returns the runs, whether each is reused,
    and the jobs."""
    runs, reused, todo = {}, {}, []
    for seed in seeds:
        overrides = base_overrides(seed, base_steps)
        fingerprint = E.run_fingerprint(E.TRAIN_CONFIG, overrides, WORK / "mix" / BASE)
        parts = E.fingerprint_parts(E.TRAIN_CONFIG, overrides, WORK / "mix" / BASE)
        ours, theirs = WORK / "runs" / f"base-seed{seed}", E.WORK / "runs" / f"{BASE}-seed{seed}"
        found = next((run for run in (theirs, ours) if run.is_dir() and reusable(run, fingerprint, parts)), None)
        reused[seed] = found == theirs
        if found is None:
            todo.append((f"base-seed{seed}", E.TRAIN_CONFIG, overrides, ours))
            found = ours
        else:
            print(f"experiment-continue: base seed {seed}: reusing {found} (same config, mixture and trainer code)")
        runs[seed] = found
    return runs, reused, todo


def export_base(seed: int, run: Path) -> None:
    """``python -m train.export`` of the base's final checkpoint -> WORK/base/seed<S>/hf (the "open base")."""
    out = WORK / "base" / f"seed{seed}" / "hf"
    cmd = [sys.executable, "-m", "train.export", "--checkpoint", str(run), "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"experiment-continue: export of the base {run} failed (exit {proc.returncode}):\n"
                 + (proc.stdout + proc.stderr)[-2000:])
    print(f"experiment-continue: base seed {seed} exported to {out}")


# ----------------------------------------------------------------------------- the arms

def continue_config(seed: int):
    """CONFIG as the continuation of ``seed`` reads it (its base's export decides the model)."""
    return load_config(CONFIG, [f"model.init_from={WORK / 'base' / f'seed{seed}' / 'hf'}"])


def continuation_jobs(seeds: list[int], steps: int) -> list[tuple[str, Path, list[str], Path]]:
    """Per seed: each replay arm continued from that seed's base, and the from-scratch arm on the 51/49
    blend (replay49's mixture) with the experiment's model and schedule, for the same steps and evaluations."""
    eval_every = int(yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["train"]["eval_every"])  # (the bases may
    # not be exported yet: continue_config cannot read CONFIG whole before)
    jobs = []
    for seed in seeds:
        common = [f"train.steps={steps}", f"train.seed={seed}", f"data.seed={seed}"]
        for arm in REPLAYS:
            jobs.append((f"{arm}-seed{seed}", CONFIG, [f"model.init_from={WORK / 'base' / f'seed{seed}' / 'hf'}",
                                                       f"data.dir={WORK / 'mix' / arm}", *common],
                         WORK / "runs" / f"{arm}-seed{seed}"))
        jobs.append((f"{SCRATCH}-seed{seed}", E.TRAIN_CONFIG, [f"data.dir={WORK / 'mix' / 'replay49'}", *common,
                                                                f"train.eval_every={eval_every}"],
                     WORK / "runs" / f"{SCRATCH}-seed{seed}"))
    return jobs


# ----------------------------------------------------------------------------- numbers

def finals(runs: list[dict[str, Any]], arm: str, split: str, metric: str) -> dict[int, float]:
    """seed -> final ``metric`` of ``arm`` on ``split``."""
    return {r["seed"]: r["final"][split][metric] for r in runs if r["arm"] == arm}


def arm_summary(runs: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    """Per held-out set: the final perplexities over seeds, and the change against the same seed's base:
    ``gain`` (finance: 1 - ppl / base ppl, > 0 is better) and ``forgetting`` (general: ppl / base ppl - 1,
    > 0 is worse), and the loss changes in nats per token."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        ppl, base = finals(runs, arm, split, "ppl"), finals(runs, "base", split, "ppl")
        loss, base_loss = finals(runs, arm, split, "loss"), finals(runs, "base", split, "loss")
        seeds = sorted(ppl)
        out[split] = {"ppl": [ppl[s] for s in seeds], "rel": [ppl[s] / base[s] - 1.0 for s in seeds],
                      "dloss": [loss[s] - base_loss[s] for s in seeds]}
    return out


def spread(values: list[float]) -> float:
    return max(values) - min(values)


def mean_range(values: list[float], fmt: str, sign: bool = False, unit: str = "") -> str:
    f = ("+" if sign else "") + fmt
    if len(values) == 1:
        return format(values[0], f) + unit
    return f"{format(statistics.fmean(values), f)}{unit} ({format(min(values), f)} to {format(max(values), f)})"


def verdict(runs: list[dict[str, Any]]) -> list[str]:
    """The conclusion, from the numbers: whether continuing lowers finance perplexity, how forgetting moves
    with replay (against the seed spread), the best trade-off, and continuation vs from scratch."""
    s = {arm: arm_summary(runs, arm) for arm in (*REPLAYS, SCRATCH)}
    n = len(s["replay0"]["val_domain"]["ppl"])
    gain = {arm: -statistics.fmean(s[arm]["val_domain"]["rel"]) for arm in REPLAYS}
    forget = {arm: statistics.fmean(s[arm]["val_general"]["rel"]) for arm in REPLAYS}
    always = [arm for arm in REPLAYS if all(r < 0 for r in s[arm]["val_domain"]["rel"])]
    lines = []
    if len(always) == len(REPLAYS):
        lines.append(f"- **Finance.** Every replay ratio lowers held-out finance perplexity below the base's, in "
                     f"every seed ({n}): by {min(gain.values()):.1%} to {max(gain.values()):.1%}.")
    else:
        lines.append(f"- **Finance.** Held-out finance perplexity falls below the base's in every seed for "
                     f"{', '.join(f'{replay_of(a):.0%} replay' for a in always) or 'no replay ratio'}; the mean "
                     f"changes are " + ", ".join(f"{-gain[a]:+.1%} at {replay_of(a):.0%}" for a in REPLAYS) + ".")
    order = sorted(REPLAYS, key=replay_of)
    falls = all(forget[a] >= forget[b] for a, b in zip(order, order[1:]))
    low, high = order[0], order[-1]
    diff = forget[low] - forget[high]
    widest = max(spread(s[low]["val_general"]["rel"]), spread(s[high]["val_general"]["rel"]))
    lines.append(
        "- **General text.** General perplexity against the base: "
        + ", ".join(f"{forget[a]:+.1%} at {replay_of(a):.0%} replay" for a in order)
        + f" (negative: lower than the base's). It {'falls' if falls else 'does not fall'} monotonically as replay "
        f"rises; {replay_of(low):.0%} vs {replay_of(high):.0%} replay differ by {diff:+.1%} of the base's perplexity"
        + (f", {'more' if abs(diff) > widest else 'not more'} than the wider seed spread of the two ({widest:.1%})."
           if n > 1 else " (one seed: no spread to compare with)."))
    score = {arm: statistics.fmean(-d for d in s[arm]["val_domain"]["dloss"])
             - statistics.fmean(s[arm]["val_general"]["dloss"]) for arm in REPLAYS}
    best = max(REPLAYS, key=lambda a: score[a])
    lines.append(f"- **Trade-off.** Counting the finance loss drop minus the general loss rise (nats per token, "
                 f"mean over seeds), {replay_of(best):.0%} replay is best here ({score[best]:+.3f}; "
                 + ", ".join(f"{replay_of(a):.0%}: {score[a]:+.3f}" for a in order if a != best) + ").")
    c, f = s["replay49"], s[SCRATCH]
    lower = {split: sum(x < y for x, y in zip(c[split]["ppl"], f[split]["ppl"])) for split in SPLITS}
    lines.append(
        f"- **Continuing vs from scratch, same tokens.** On the same 51/49 mixture and steps, the continued model's "
        f"finance perplexity is {statistics.fmean(c['val_domain']['ppl']):,.1f} vs "
        f"{statistics.fmean(f['val_domain']['ppl']):,.1f} from scratch (lower in {lower['val_domain']} of {n} "
        f"seeds), general {statistics.fmean(c['val_general']['ppl']):,.1f} vs "
        f"{statistics.fmean(f['val_general']['ppl']):,.1f} (lower in {lower['val_general']} of {n}): "
        + ("the base's general training carries over." if lower["val_domain"] == n and lower["val_general"] == n
           else "the base's head start does not hold in every seed."))
    head = (f"**{replay_of(best):.0%} general replay gives the best trade-off at this scale**: finance perplexity "
            f"{-gain[best]:+.1%} and general perplexity {forget[best]:+.1%} against the base ("
            + (f"mean over {n} seeds)." if n > 1 else "one seed)."))
    return [head, "", *lines]


# ----------------------------------------------------------------------------- the write-up

def section(results: dict[str, Any], manifests: dict[str, dict[str, Any]]) -> str:
    runs, seeds = results["runs"], results["seeds"]
    cfg = continue_config(seeds[0])
    oc, tc = cfg.optim, cfg.train
    rows = ["| arm | replay | steps | finance ppl (val_domain) | general ppl (val_general) | "
            "domain gain vs base | general forgetting vs base |", "|---|---:|---:|---:|---:|---:|---:|"]
    base_d, base_g = (list(finals(runs, "base", split, "ppl").values()) for split in SPLITS)
    rows.append(f"| base (general only) | \u2013 | {results['base_steps']} | {mean_range(base_d, ',.1f')} | "
                f"{mean_range(base_g, ',.1f')} | \u2013 | \u2013 |")
    for arm in (*REPLAYS, SCRATCH):
        s = arm_summary(runs, arm)
        what = f"continued, {replay_of(arm):.0%} replay" if arm in REPLAYS else "from scratch on 51/49"
        replay = f"{replay_of(arm):.0%}" if arm in REPLAYS else "49%"
        rows.append(f"| {arm} ({what}) | {replay} | {results['steps']} | "
                    f"{mean_range(s['val_domain']['ppl'], ',.1f')} | {mean_range(s['val_general']['ppl'], ',.1f')} | "
                    f"{mean_range([-r * 100 for r in s['val_domain']['rel']], '.1f', sign=True, unit='%')} | "
                    f"{mean_range([r * 100 for r in s['val_general']['rel']], '.1f', sign=True, unit='%')} |")
    mixes = ["| mixture | domain_share | training tokens | finance epochs | general epochs |",
             "|---|---:|---:|---:|---:|"]
    for arm, m in manifests.items():
        mixes.append(f"| {arm} | {m['domain_share_target']} | {m['train_tokens']:,} | "
                     f"{E.side_epochs(m, 'domain'):.2f} | {E.side_epochs(m, 'general'):.2f} |")
    reused = [s for s, r in results["base_reused"].items() if r]
    base_note = (f"reused from `make experiment`'s `{E.WORK}/runs/{BASE}-seed<S>/` (seeds "
                 f"{', '.join(map(str, reused))}: same config, mixture bytes and trainer code)" if reused else
                 f"trained by this script in `{WORK}/runs/base-seed<S>/` (no matching `make experiment` run)")
    held = manifests[BASE]["splits"]
    over = f"mean over {len(seeds)} seeds (min to max)" if len(seeds) > 1 else "one seed"
    machine = f"{os.cpu_count()}-core {platform.machine()}"
    return f"""Date: {datetime.date.today().isoformat()}. Machine: {machine}, CPU. Command: `make experiment-continue`
(= `.venv/bin/python benchmarks/experiment_continue.py {results['argv']}`); wall time
{results['wall_s'] / 60:.1f} min. Written by the script; the numbers and the verdict come from that run.

**Question.** Most teams start from an open base model and continue pretraining it on their domain
(Gururangan et al. 2020). Ibrahim et al. 2024 find that re-warming and re-decaying the learning rate and
replaying a little general data (about 5% for a mild shift, 25% for a large one) keeps what the base knew.
Here, in a closed loop: the **base** is the experiment's general-only model ({results['base_steps']} steps,
{results['base_tokens']:,} tokens), {base_note}, exported with `python -m train.export` (a Hugging Face
Llama directory) and loaded back with `model.init_from`. It is continued for **{results['steps']} steps
({results['budget_tokens']:,} tokens, {results['budget_tokens'] / results['base_tokens']:.0%} of its own
training)** on four blends with 0 / 5 / 25 / 49% general replay (`domain_share` 1.0 / 0.95 / 0.75 / 0.51), and a
model of the same shape is trained **from scratch** on the 51/49 blend for the same steps
(`configs/train/experiment.yaml`: cosine, {load_config(E.TRAIN_CONFIG).optim.warmup_steps} warmup steps).

**Schedule** (`{CONFIG}`): a fresh AdamW state, the learning rate re-warmed over {oc.warmup_steps} steps to the
base's peak {oc.lr:g}, then **WSD** (warmup-stable-decay): held, and decayed linearly to {oc.min_lr_ratio:g}x over
the last {oc.decay_fraction:.0%} of the steps; weight decay {oc.weight_decay:g}, batch {tc.global_batch_tokens:,}
tokens, validation every {tc.eval_every} steps on every held-out token.

**Data.** `make experiment`'s curation and recipe (`mix:` of `configs/runs/experiment.yaml`, seed
{manifests[BASE]['seed']}); each mixture is sized to its run's tokens plus a margin (+1% for the base's, +2% + 4,096
for the others), so no window is read twice:

{chr(10).join(mixes)}

All arms, the base included, are scored on the same held-out sets (`val_domain` {held['val_domain']['docs']}
documents, {held['val_domain']['tokens']:,} tokens; `val_general` {held['val_general']['docs']} documents,
{held['val_general']['tokens']:,} tokens): the script checks that the five mixtures' held-out shards are
byte-identical and that none of their `(source, id)` is in any training stream (the base's included).

**Results**, final validation, {over}. Domain gain: how much lower the
finance perplexity is than the same seed's base; general forgetting: how much higher the general perplexity is.

{chr(10).join(rows)}

![domain gain vs general forgetting per replay ratio]({FIGURE.name})

`{FIGURE}`: each replay arm's finance gain against its general forgetting, relative to the base of the same
seed; large markers are the means, small ones single seeds, the bars the range over seeds.

{chr(10).join(verdict(runs))}

What this does and does not show: one {results['params'] / 1e6:.1f}M-parameter model, a base trained on
{results['base_tokens'] / 1e6:.2f}M tokens and continued on {results['budget_tokens'] / 1e6:.2f}M, one set of
held-out documents; the replay-0 arm reads the finance side {E.side_epochs(manifests['replay0'], 'domain'):.2f}
times. The "open base" is small and was trained on the same general sources the replay draws from, so
forgetting here is forgetting of text very like the replay; with a real base the replay is a sample of a
pretraining set it cannot see whole. Results: `{WORK}/results.json`; runs: `{WORK}/runs/<arm>-seed<S>/`.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="train.seed = data.seed per run")
    parser.add_argument("--steps", type=int, help=f"continuation steps (default: {CONFIG}'s)")
    parser.add_argument("--base-steps", type=int, help="the base's steps (default: configs/train/experiment.yaml's)")
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="runs trained at the same time, one core each (default: 2)")
    args = parser.parse_args(argv)
    for name in ("steps", "base_steps", "jobs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    os.chdir(ROOT)  # the configs' paths are relative to the repository root
    t0 = time.time()

    base_cfg = load_config(E.TRAIN_CONFIG)
    base_steps = args.base_steps or base_cfg.train.steps
    batch = base_cfg.train.global_batch_tokens
    steps = args.steps or int(yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["train"]["steps"])  # (the base
    # that its init_from names does not exist yet: the config is read whole once the bases are exported)
    run_config, _ = E.effective_run_config()
    E.curate(run_config)
    manifests = build_mixtures(run_config, base_steps * batch, steps * batch)
    E.check_held_out(manifests, {arm: WORK / "mix" / arm for arm in manifests},
                     {BASE: 0.0, **REPLAYS})
    base_runs, reused, todo = bases(args.seeds, base_steps)
    for seed in args.seeds:
        if not any(job[0] == f"base-seed{seed}" for job in todo):
            export_base(seed, base_runs[seed])
    jobs = continuation_jobs(args.seeds, steps)
    # a continuation starts once its seed's base is trained and exported; the from-scratch runs need no base
    needs = {name: f"base-seed{name.rsplit('-seed', 1)[1]}" for name, *_ in jobs if not name.startswith(SCRATCH)}
    jobs.sort(key=lambda job: not job[0].startswith(SCRATCH))  # (they fill a core while a base trains alone)

    def trained(name: str) -> None:
        if name.startswith("base-seed"):
            seed = int(name.removeprefix("base-seed"))
            export_base(seed, base_runs[seed])

    wall = E.train_jobs([*todo, *jobs], args.jobs, needs, trained)

    runs = [{"arm": "base", "seed": seed, "run": str(run), **E.collect(run / "metrics.jsonl")}
            for seed, run in base_runs.items()]
    for seed in args.seeds:
        for arm in (*REPLAYS, SCRATCH):
            runs.append({"arm": arm, "seed": seed, **E.collect(WORK / "runs" / f"{arm}-seed{seed}" / "metrics.jsonl")})
            final = runs[-1]["final"]
            print(f"experiment-continue: {arm} seed {seed}: val_domain ppl {final['val_domain']['ppl']:.1f}, "
                  f"val_general ppl {final['val_general']['ppl']:.1f}")
    start = next(r for r in E.read_metrics(base_runs[args.seeds[0]] / "metrics.jsonl") if r.get("kind") == "start")
    argv = ["--seeds", *map(str, args.seeds), *(["--steps", str(args.steps)] if args.steps else []),
            *(["--base-steps", str(args.base_steps)] if args.base_steps else []),
            *(["--jobs", str(args.jobs)] if args.jobs != parser.get_default("jobs") else [])]
    results = {"kind": "experiment_continue", "argv": " ".join(argv), "seeds": args.seeds, "base_steps": base_steps,
               "steps": steps,
               "base_tokens": base_steps * batch, "budget_tokens": steps * batch, "params": start["params"]["total"],
               "schedule": {k: getattr(continue_config(args.seeds[0]).optim, k)
                            for k in ("schedule", "lr", "warmup_steps", "decay_fraction", "min_lr_ratio")},
               "arms": {**{arm: {"kind": "continue", "domain_share": share, "replay": replay_of(arm)}
                           for arm, share in REPLAYS.items()},
                        SCRATCH: {"kind": "scratch", "domain_share": REPLAYS["replay49"],
                                  "replay": replay_of("replay49")}},
               "base_reused": {str(s): r for s, r in reused.items()},
               "runs": runs, "wall": {k: round(v, 1) for k, v in wall.items()}}
    results["wall_s"] = round(time.time() - t0, 1)
    (WORK / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    from run import report_figures

    report_figures.continue_figure(results).savefig(FIGURE, dpi=150, facecolor="white")
    replace_section(E.DOC, SECTION, section(results, manifests))
    print(f"experiment-continue: wrote {WORK / 'results.json'}, {FIGURE} and the '{SECTION}' section of {E.DOC} "
          f"in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    try:
        main()
    except E.ExperimentError as exc:
        print(f"error: experiment-continue: {exc}", file=sys.stderr)
        sys.exit(2)
