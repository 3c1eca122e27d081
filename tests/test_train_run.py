"""End to end under torchrun (2 ranks, gloo, FSDP2): the loss falls, and a SIGKILLed run resumes exactly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bytemix import build_byte_mixture
from tests.conftest import DATA
from train.checkpoint import complete_checkpoints
from train.metrics import read_metrics
from train.trainer import KILL_ENV

ROOT = Path(__file__).resolve().parent.parent
CORPORA = DATA  # the repo's embedded sample: portable to any checkout
STEPS = 12
pytestmark = pytest.mark.slow  # torchrun launches: ~45 s together on 2 cores


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    out = tmp_path_factory.mktemp("mix")
    build_byte_mixture(out, [f"{CORPORA}/finance/bbc_business.jsonl.gz", f"{CORPORA}/finance/sec_10q_aapl.jsonl.gz"],
                       [f"{CORPORA}/general/wikipedia_en.jsonl.gz"], max_bytes=150_000)
    return out


def torchrun(mix, out, *over, env=None, timeout=120):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "train.run",
           "--config", str(ROOT / "configs/train/tiny.yaml"), f"data.dir={mix}", f"train.out_dir={out}",
           f"train.steps={STEPS}", "train.ckpt_every=4", "train.log_every=1", "train.eval_every=6",
           "train.eval_tokens=4096", "train.global_batch_tokens=1024", "train.micro_batch=4",
           "train.progress=false", "train.strategy=fsdp", *over]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def train_losses(out):
    """Loss per step; a step logged twice (replayed after a resume) keeps its last value."""
    return {r["step"]: r["loss"] for r in read_metrics(Path(out) / "metrics.jsonl") if r["kind"] == "train"}


@pytest.fixture(scope="module")
def uninterrupted(mix, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    proc = torchrun(mix, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_two_rank_fsdp_run_learns(uninterrupted):
    losses = train_losses(uninterrupted)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses[STEPS] < losses[1] - 1.0  # from ~ln(257)=5.55 nats towards byte unigram entropy
    records = read_metrics(uninterrupted / "metrics.jsonl")
    start = records[0]
    assert (start["kind"], start["rank_count"], start["strategy"]) == ("start", 2, "fsdp")
    last = [r for r in records if r["kind"] == "train"][-1]
    assert len(last["peak_mem_bytes_per_rank"]) == 2 and last["tokens_per_s"] > 0
    evals = {(r["step"], r["split"]): r for r in records if r["kind"] == "eval"}
    assert set(evals) == {(s, v) for s in (6, 12) for v in ("val_domain", "val_general")}
    assert evals[(12, "val_domain")]["loss"] < evals[(6, "val_domain")]["loss"]
    assert evals[(12, "val_domain")]["bpb"] > 0
    assert [p.name for p in complete_checkpoints(uninterrupted / "checkpoints")] == \
        ["step_00000004", "step_00000008", "step_00000012"]
    assert any((uninterrupted / "tensorboard").iterdir())


def test_sigkilled_run_resumes_bit_identically(mix, uninterrupted, tmp_path):
    killed = torchrun(mix, tmp_path, env={KILL_ENV: "6"})
    assert killed.returncode != 0  # rank 0 died of SIGKILL after step 6; torchrun tore the job down
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step_00000004"]
    assert max(train_losses(tmp_path)) == 6
    resumed = torchrun(mix, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    starts = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "start"]
    assert [s["start_step"] for s in starts] == [0, 4]
    # Steps 5 and 6 were replayed from the step-4 checkpoint; every step equals the uninterrupted run exactly.
    assert train_losses(tmp_path) == train_losses(uninterrupted)


def test_hsdp_with_sharding_factor_one_replicates_like_ddp(mix, uninterrupted, tmp_path):
    """A 2-D mesh (2 replicas x 1 shard): every rank holds the whole model state, twice what fsdp holds,
    and the training is the same computation as fsdp's."""
    proc = torchrun(mix, tmp_path, "train.strategy=hsdp", "train.sharding_factor=1", "train.ckpt_every=-1",
                    "data.val_splits=[]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_metrics(tmp_path / "metrics.jsonl")
    hsdp = [r for r in records if r["kind"] == "train"][-1]["state_bytes_per_rank"]
    fsdp = [r for r in read_metrics(uninterrupted / "metrics.jsonl") if r["kind"] == "train"][-1]
    n_params = records[0]["params"]["total"]
    # fp32 params + Adam exp_avg + exp_avg_sq = 12 bytes per parameter (+ Adam's step counters); gradients are
    # freed after each optimizer step, before the record is taken
    assert all(12 * n_params <= b < 12 * n_params + 4096 for b in hsdp)
    assert all(b < 0.6 * hsdp[0] for b in fsdp["state_bytes_per_rank"])
    ref = train_losses(uninterrupted)
    assert train_losses(tmp_path) == pytest.approx(ref, rel=1e-5)


# ----------------------------------------------------------------------------- interrupts (issue 21)

LONG = 100_000  # steps: the run is stopped long before


def _launch(mix, out, *over, nproc=2):
    """``python -m train.run --nproc-per-node N`` (the launcher) in a session of its own, as a shell runs a
    foreground command: the caller's SIGINT to that group is a Ctrl-C."""
    cmd = [sys.executable, "-m", "train.run", f"--nproc-per-node={nproc}", "--config",
           str(ROOT / "configs/train/tiny.yaml"), f"data.dir={mix}", f"train.out_dir={out}", "train.log_every=1",
           "train.eval_every=0", "train.eval_tokens=2048", "train.global_batch_tokens=1024", "train.micro_batch=4",
           "train.progress=false", "train.tensorboard=false", *over]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _interrupt(proc, after_line, send, timeout=120):
    """Read ``proc``'s output until a line starts with ``after_line``, call ``send()``, and return
    (exit status, all output)."""
    import threading
    import time

    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not any(line.startswith(after_line) for line in list(lines)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no line {after_line!r} before the run ended:\n{''.join(lines)[-3000:]}")
        time.sleep(0.05)
    send()
    rc = proc.wait(timeout=60)
    reader.join(timeout=10)
    return rc, "".join(lines)


def test_ctrl_c_stops_every_rank_with_one_line_and_the_rerun_resumes(mix, tmp_path):
    import re
    import signal

    proc = _launch(mix, tmp_path, f"train.steps={LONG}", "train.ckpt_every=3")
    rc, out = _interrupt(proc, "train: step 4/", lambda: os.killpg(proc.pid, signal.SIGINT))
    assert rc == 130, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out and "SignalException" not in out, out[-3000:]
    assert "train: starting from step 0: no checkpoint yet" in out
    stops = re.findall(r"^train: interrupted at step (\d+); last checkpoint step (\d+); "
                       r"rerun the same command to resume$", out, re.M)
    assert len(stops) == 1, out[-3000:]  # one line, not one per rank
    step, ckpt_step = map(int, stops[0])
    newest = complete_checkpoints(tmp_path / "checkpoints")[-1].name
    assert step >= 4 and ckpt_step == int(newest.split("_")[1]) and ckpt_step % 3 == 0 and ckpt_step <= step
    logged = max(train_losses(tmp_path))
    assert logged == step  # every rank stopped after the same step, which was logged
    # progress: one console line per log_every (1) steps, from rank 0 only
    assert len(re.findall(r"^train: step 1/", out, re.M)) == 1

    rerun = _launch(mix, tmp_path, f"train.steps={ckpt_step + 2}", "train.ckpt_every=3")
    out2, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out2[-3000:]
    assert f"train: resuming from step {ckpt_step} " in out2


def test_sigterm_before_the_first_checkpoint_says_the_rerun_starts_over(mix, tmp_path):
    import signal

    proc = _launch(mix, tmp_path, f"train.steps={LONG}", "train.ckpt_every=1000")
    rc, out = _interrupt(proc, "train: step 2/", lambda: os.kill(proc.pid, signal.SIGTERM))  # `kill PID`
    assert rc == 130, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if "interrupted at step" in line]
    assert len(lines) == 1 and lines[0].endswith("no checkpoint yet (train.ckpt_every=1000): a rerun starts "
                                                 "from step 0"), out[-3000:]
    assert complete_checkpoints(tmp_path / "checkpoints") == []
