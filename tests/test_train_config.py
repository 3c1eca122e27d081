"""Config files, dotted overrides and learning-rate schedules."""

from pathlib import Path

import pytest

from train.config import OptimConfig, load_config
from train.model import param_counts
from train.schedule import lr_at

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "train"


def test_overrides_are_typed_and_validated():
    cfg = load_config(CONFIGS / "tiny.yaml", ["optim.lr=3e-4", "train.strategy=ddp", "train.compile=true",
                                              "model.n_layer=3", "data.val_splits=[val_domain]"])
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert (cfg.train.strategy, cfg.train.compile, cfg.model.n_layer) == ("ddp", True, 3)
    assert cfg.data.val_splits == ["val_domain"]
    with pytest.raises(ValueError, match="unknown optim keys"):
        load_config(None, ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="section"):
        load_config(None, ["lr=1"])


@pytest.mark.parametrize("name,low,high", [("gpt125m.yaml", 115e6, 135e6), ("llama1b.yaml", 1.0e9, 1.2e9)])
def test_shipped_configs_have_their_advertised_size(name, low, high):
    cfg = load_config(CONFIGS / name)
    assert low < param_counts(cfg.model)["total"] < high
    assert cfg.train.global_batch_tokens % cfg.model.seq_len == 0


def test_cosine_warms_up_then_decays_to_the_floor():
    o = OptimConfig(lr=1.0, min_lr_ratio=0.1, warmup_steps=10, schedule="cosine")
    lrs = [lr_at(s, 100, o) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lr_at(100, 100, o) == pytest.approx(0.1) and lrs[-1] > 0.1


def test_wsd_is_flat_then_decays_linearly():
    o = OptimConfig(lr=2.0, min_lr_ratio=0.0, warmup_steps=5, schedule="wsd", decay_fraction=0.2)
    lrs = [lr_at(s, 100, o) for s in range(101)]
    assert lrs[5:80] == [2.0] * 75
    assert lrs[90] == pytest.approx(1.0) and lrs[100] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        lr_at(0, 10, OptimConfig(schedule="linear"))
