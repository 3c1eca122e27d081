"""Same inputs and config -> the same bytes (issue 21, item 4).

The demo run config (``configs/runs/demo.yaml``) is run up to ``mix`` twice, each in a directory
of its own that links the repository's top-level entries (so the config's relative paths, and so
every path written into the outputs, are the same in both), and every file of the two work
directories is compared byte by byte. Then two CPU trainings of the tiny model on that mixture
must log the same losses.

What is not compared byte by byte, and why (wall-clock times, nothing else):

- ``.run/*.json``: the runner's record of each step holds when it started and how many seconds it
  took (``started``, ``seconds``); its fingerprint of the step's settings is compared instead;
- ``tokenizer/training.json``: compared without ``train_seconds`` (the tokenizer's wall-clock time)
  and the ``training`` timings of split-and-merge workers.

About 40 s per run of the demo on a 2-core machine, a few seconds per training.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/runs/demo.yaml"
WORK = Path("work/demo")  # the demo's work_dir, relative to the (linked) repository
NOT_LINKED = {"work", ".git", ".venv", ".pytest_cache", ".ruff_cache"}
TIMING_KEYS = ("train_seconds", "training")  # tokenizer/training.json: wall-clock seconds


CODE = ("core", "filters", "mixtures", "pipelines", "train", "run", "configs")  # copied once: both runs see one code


def _checkout(root: Path, code: Path) -> Path:
    """A directory that looks like the repository, with an empty work/: the code from ``code`` (a copy
    taken once, so that both runs hash the same code even while the checkout is being edited), every
    other entry linked to the repository."""
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in NOT_LINKED:
            (root / entry.name).symlink_to(code / entry.name if entry.name in CODE else entry)
    return root


def _copy_code(dest: Path) -> Path:
    for name in CODE:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _run(cwd: Path, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": "random", "PYTHONPATH": str(cwd)}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


def _files(work: Path) -> dict[str, Path]:
    return {str(p.relative_to(work)): p for p in sorted(work.rglob("*")) if p.is_file()}


def _comparable(rel: str, path: Path) -> bytes | dict | None:
    """What of a file must be equal: its bytes, its JSON less wall-clock keys, or None (not compared)."""
    if rel.startswith(".run/") and rel.endswith(".json"):
        return json.loads(path.read_text(encoding="utf-8"))["fingerprint"]
    if rel == "tokenizer/training.json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {k: v for k, v in doc.items() if k not in TIMING_KEYS}
    return path.read_bytes()


def _losses(metrics: Path) -> list[tuple[int, float]]:
    recs = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["step"], r["loss"]) for r in recs if r.get("kind") in ("train", "eval")]


@pytest.mark.skipif(not (REPO / CONFIG).is_file(), reason="no demo run config")
def test_demo_until_mix_is_byte_identical_and_training_losses_repeat(tmp_path: Path) -> None:
    runs, code = [], _copy_code(tmp_path / "code")
    for name in ("a", "b"):
        cwd = _checkout(tmp_path / name, code)
        _run(cwd, ["-m", "run", "--config", CONFIG, "--until", "mix"])
        runs.append(cwd)
    a, b = (_files(cwd / WORK) for cwd in runs)
    assert a, "the demo wrote nothing"
    assert any(rel.startswith("mix/") and rel.endswith(".npy") for rel in a), "no mixture shards to compare"
    only = sorted(set(a) ^ set(b))
    assert not only, f"files in one run only: {only}"
    differ = [rel for rel in a if _comparable(rel, a[rel]) != _comparable(rel, b[rel])]
    assert not differ, f"{len(differ)} of {len(a)} files differ between two runs of {CONFIG}: {differ}"

    # Training on CPU: the same mixture and config -> the same loss at every logged step.
    losses = []
    for name in ("a", "b"):
        out = tmp_path / f"train_{name}"
        _run(runs[0], ["-m", "train.run", "--config", "configs/train/tiny.yaml", f"data.dir={WORK / 'mix'}",
                       f"train.out_dir={out}", "train.steps=6", "train.log_every=1", "train.eval_every=3",
                       "train.eval_tokens=2048", "train.ckpt_every=-1", "train.progress=false",
                       "train.tensorboard=false", "train.strategy=none"])
        losses.append(_losses(out / "metrics.jsonl"))
    assert len(losses[0]) >= 6, f"too few losses logged: {losses[0]}"
    assert losses[0] == losses[1], f"two CPU trainings logged different losses:\n{losses[0]}\n{losses[1]}"
