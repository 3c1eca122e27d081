"""Checkpoints: atomic, intact-only resume, exact continuation, no unpickling."""

import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from tests.bytemix import build_byte_mixture
from tests.conftest import DATA
from train import checkpoint as ckpt
from train.config import load_config
from train.metrics import read_metrics
from train.trainer import train

CORPORA = DATA  # the repo's embedded sample: portable to any checkout
TINY = Path(__file__).resolve().parent.parent / "configs" / "train" / "tiny.yaml"


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    out = tmp_path_factory.mktemp("mix")
    build_byte_mixture(out, [f"{CORPORA}/finance/bbc_business.jsonl.gz"],
                       [f"{CORPORA}/general/bbc_nonbusiness.jsonl.gz"], max_bytes=120_000)
    return out


def run(mix, out, *over):
    return train(load_config(TINY, [f"data.dir={mix}", f"train.out_dir={out}", "train.steps=8",
                                    "train.ckpt_every=4", "train.log_every=1", "train.eval_every=0",
                                    "train.eval_tokens=2048", "train.progress=false", "train.tensorboard=false",
                                    "train.strategy=fsdp", "train.global_batch_tokens=512", "train.micro_batch=4",
                                    *over]))


def losses(out):
    return {r["step"]: r["loss"] for r in read_metrics(Path(out) / "metrics.jsonl") if r["kind"] == "train"}


def test_damaged_checkpoint_is_skipped_and_resume_falls_back(mix, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "run"
    run(mix, ref)
    shutil.copytree(ref / "checkpoints", out / "checkpoints")
    root = out / "checkpoints"
    assert [p.name for p in ckpt.complete_checkpoints(root)] == ["step_00000004", "step_00000008"]
    # A crash mid-write: step 8's shard file cut in half, and a half-written newer .tmp directory.
    shard = next((root / "step_00000008").glob("*.distcp"))
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size // 2)
    partial = root / "step_00000012.tmp"
    shutil.copytree(root / "step_00000004", partial)
    (partial / "meta.json").unlink()
    assert ckpt.read_meta(root / "step_00000008") is None
    assert ckpt.latest_checkpoint(root) == root / "step_00000004"

    run(mix, out)  # resume=auto
    start = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "start"][-1]
    assert start["start_step"] == 4 and start["resumed_from"].endswith("step_00000004")
    assert not partial.exists()  # the leftover .tmp was cleaned up
    assert losses(out) == {s: v for s, v in losses(ref).items() if s > 4}  # bit-identical on CPU fp32
    assert ckpt.read_meta(root / "step_00000008")["step"] == 8  # rewritten intact


def test_missing_file_or_meta_makes_a_checkpoint_incomplete(mix, tmp_path):
    run(mix, tmp_path, "train.steps=4")
    d = tmp_path / "checkpoints" / "step_00000004"
    meta = ckpt.read_meta(d)
    assert meta["tokens_seen"] == 4 * 512 and meta["data"]["samples_seen"] == 4 * 8
    assert {".metadata", "meta.json"} - set(os.listdir(d)) == set()
    os.remove(d / "rng_rank00000.pt")
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints") is None


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_loading_refuses_pickled_entries(tmp_path):
    dcp.save({"w": torch.ones(3), "extra": {"note": "a python object"}}, checkpoint_id=str(tmp_path), no_dist=True)
    target = {"w": torch.zeros(3)}
    dcp.load(target, checkpoint_id=str(tmp_path), planner=ckpt.TensorOnlyLoadPlanner(), no_dist=True)
    assert torch.equal(target["w"], torch.ones(3))
    with pytest.raises(BaseException) as failure:  # DCP wraps errors in a BaseException
        dcp.load({"extra": {"note": ""}}, checkpoint_id=str(tmp_path), planner=ckpt.TensorOnlyLoadPlanner(),
                 no_dist=True)
    assert "pickled object" in str(failure.value) + repr(getattr(failure.value, "failures", ""))


def test_strategies_and_activation_checkpointing_compute_the_same_training(mix, tmp_path):
    """One process: ddp, hsdp and fsdp with or without recomputation are the same math, so the same losses."""
    run(mix, tmp_path / "fsdp", "train.steps=3", "train.ckpt_every=-1")
    ref = losses(tmp_path / "fsdp")
    for name, over in (("ddp", ["train.strategy=ddp"]), ("hsdp", ["train.strategy=hsdp"]),
                       ("ac", ["train.activation_checkpointing=true"])):
        run(mix, tmp_path / name, "train.steps=3", "train.ckpt_every=-1", *over)
        got = losses(tmp_path / name)
        assert got.keys() == ref.keys() == {1, 2, 3}
        for step in ref:
            assert got[step] == pytest.approx(ref[step], rel=1e-5), (name, step)
    assert not (tmp_path / "fsdp" / "checkpoints").exists()  # ckpt_every=-1: never


def test_throughput_counts_every_step_and_no_eval_or_checkpoint_time(mix, tmp_path, monkeypatch):
    """Each step is made to take >= 50 ms and each eval 0.4 s; evals fall inside logging windows
    (eval_every=3, log_every=4) and checkpoints every 2 steps: the logged step time is the steps' own."""
    import time

    import train.trainer as trainer

    step_s, eval_s = 0.05, 0.4

    def slow_lr(*args, **kwargs):
        time.sleep(step_s)
        return lr_at(*args, **kwargs)

    def slow_eval(*args, **kwargs):
        time.sleep(eval_s)
        return evaluate_stream(*args, **kwargs)

    lr_at, evaluate_stream = trainer.lr_at, trainer.evaluate_stream
    monkeypatch.setattr(trainer, "lr_at", slow_lr)
    monkeypatch.setattr(trainer, "evaluate_stream", slow_eval)
    run(mix, tmp_path, "train.log_every=4", "train.eval_every=3", "train.ckpt_every=2")
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == [4, 8]
    for r in records:
        assert step_s <= r["step_time_s"] < step_s + 0.1, r  # an eval (0.4 s) in the window would show
        assert r["tokens_per_s"] == pytest.approx(512 / r["step_time_s"])
