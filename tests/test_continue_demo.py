"""The continue demo (configs/runs/continue_demo.yaml, `make continue-demo`): a run config with `mixture: DIR` and
no sources trains from a built mixture, continuing an exported model (`model.init_from`), then exports and
reports; it is refused before any work when the mixture is missing or the config also asks for curation.

A tiny byte-level mixture of real text and a base trained on it for a few steps stand in for work/demo."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from run import orchestrator as run
from tests.conftest import ROOT
from tests.test_train_export import byte_mixture, byte_tokenizer, trained
from train.export import export
from train.metrics import read_metrics

DEMO = ROOT / "configs" / "runs" / "continue_demo.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(mixture, exported base, base's losses): what `make demo` leaves in work/demo/mix and work/demo/hf."""
    tmp = tmp_path_factory.mktemp("demo")
    mix = byte_mixture(tmp / "mix")
    byte_tokenizer().save(str(mix / "tokenizer.json"))
    manifest = json.loads((mix / "manifest.json").read_text())
    manifest.update({"tokenizer": str(mix / "tokenizer.json"), "eos_id": 256})
    (mix / "manifest.json").write_text(json.dumps(manifest))
    trained(mix, tmp / "train", "train.steps=40", "optim.warmup_steps=4", "model.n_kv_head=4")
    losses = [r["loss"] for r in read_metrics(tmp / "train" / "metrics.jsonl") if r.get("kind") == "train"]
    return mix, export(tmp / "train", tmp / "hf"), losses  # (the run's newest checkpoint: its last step)


def demo_config(tmp: Path, mix: Path, base: Path, **changes) -> Path:
    """configs/runs/continue_demo.yaml as shipped, with its paths moved to ``tmp`` and a shorter run."""
    cfg = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    cfg.update({"work_dir": str(tmp / "work"), "mixture": str(mix)})
    cfg["train"]["overrides"] = {"model.init_from": str(base), "train.steps": 6, "train.eval_every": 3,
                                 "train.eval_tokens": 2048, "train.global_batch_tokens": 512, "train.micro_batch": 4,
                                 "optim.warmup_steps": 2, "train.log_every": 1}
    cfg.update(changes)
    path = tmp / "continue_demo.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def test_the_shipped_config_starts_from_work_demo():
    cfg = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    train = yaml.safe_load((ROOT / cfg["train"]["config"]).read_text(encoding="utf-8"))
    assert cfg["mixture"] == "work/demo/mix" and "sources" not in cfg
    assert train["model"]["init_from"] == "work/demo/hf" and train["optim"]["schedule"] == "wsd"


def test_continue_demo_trains_from_the_base_exports_and_reports_then_skips(demo, tmp_path, capsys):
    mix, base, base_losses = demo
    config = demo_config(tmp_path, mix, base)
    done = run.main(["--config", str(config)])
    assert [name for name, what in done] == ["train", "export", "report"]
    work = tmp_path / "work"
    records = read_metrics(work / "train" / "metrics.jsonl")
    start = next(r for r in records if r.get("kind") == "start")
    losses = [r["loss"] for r in records if r.get("kind") == "train"]
    evals = {r["split"] for r in records if r.get("kind") == "eval"}
    assert start["params"]["total"] > 0 and evals == {"val_domain", "val_general"}
    # it continued the base: its first loss is the base's late loss, far below an untrained model's ln(257)
    assert base_losses[-1] < math.log(257) - 1.0
    assert losses[0] < base_losses[0] - 1.0 and abs(losses[0] - base_losses[-1]) < 0.5
    trained_on = yaml.safe_load((work / "train" / "config.yaml").read_text(encoding="utf-8"))
    assert trained_on["data"]["dir"] == str(mix) and trained_on["model"]["init_from"] == str(base)
    hf = json.loads((work / "hf" / "config.json").read_text())
    assert hf["vocab_size"] == json.loads((base / "config.json").read_text())["vocab_size"]
    assert (work / "report.html").is_file() and not (work / "mix").exists() and not (work / "tokens").exists()
    # a second run: every step is up to date
    capsys.readouterr()
    again = run.main(["--config", str(config)])
    assert [what for _, what in again if _ != "report"] == ["skipped", "skipped"]


@pytest.mark.parametrize("change, message", [
    ({"mixture": "MISSING"}, "does not exist: build that mixture first"),
    ({"sources": [{"name": "x", "domain": "domain", "inputs": ["data/finance/*.jsonl.gz"]}]},
     "starts the run at training: remove ['sources']"),
])
def test_a_bad_mixture_start_exits_2_before_any_work(demo, tmp_path, capsys, change, message):
    mix, base, _ = demo
    if change.get("mixture") == "MISSING":
        change = {"mixture": str(tmp_path / "no_such_mix")}
    config = demo_config(tmp_path, mix, base, **change)
    with pytest.raises(SystemExit) as exc:
        run.main(["--config", str(config)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "work").exists()
