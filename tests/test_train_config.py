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


def test_wsd_decay_shapes_share_their_ends_and_differ_between():
    """optim.decay_shape: cosine and 1-sqrt (Hägele et al. 2024) start at the peak and end at the floor like linear;
    at mid-decay cosine is halfway (as linear) and 1-sqrt has removed 1/sqrt(2) of it; a typo is refused."""
    def curve(shape):
        o = OptimConfig(lr=1.0, min_lr_ratio=0.0, warmup_steps=0, schedule="wsd", decay_fraction=0.5, decay_shape=shape)
        return [lr_at(s, 100, o) for s in range(101)]
    lin, cos, sqrt = curve("linear"), curve("cosine"), curve("sqrt")
    assert lin[:51] == cos[:51] == sqrt[:51] == [1.0] * 51 and lin[100] == cos[100] == sqrt[100] == 0.0
    assert lin[75] == pytest.approx(0.5) and cos[75] == pytest.approx(0.5) and sqrt[75] == pytest.approx(1 - 0.5**0.5)
    assert cos[60] > lin[60] > sqrt[60] and all(a >= b for a, b in zip(sqrt, sqrt[1:]))
    with pytest.raises(ValueError, match="decay_shape must be one of"):
        load_config(CONFIGS / "tiny.yaml", ["optim.schedule=wsd", "optim.decay_shape=sqrtt"])


def test_wsd_decay_start_puts_the_decay_on_the_last_phase():
    """optim.decay_on_last_phase: the trainer passes the last phase's first step; the decay covers exactly
    that phase, whatever decay_fraction says (Parmar et al. 2024), and warmup still comes first."""
    o = OptimConfig(lr=1.0, min_lr_ratio=0.1, warmup_steps=4, schedule="wsd", decay_fraction=0.2,
                    decay_on_last_phase=True)
    lrs = [lr_at(s, 60, o, decay_start=45) for s in range(61)]
    assert lrs[0] == pytest.approx(0.25) and lrs[4:46] == [1.0] * 42
    assert all(a > b for a, b in zip(lrs[45:60], lrs[46:61])) and lrs[60] == pytest.approx(0.1)
    assert lrs[52] == pytest.approx(1.0 - 0.9 * 7 / 15)
    assert lr_at(47, 60, o) == 1.0 and lr_at(49, 60, o) < 1.0  # without it: the last 20% (from step 48)
    assert lr_at(2, 60, o, decay_start=0) == pytest.approx(0.75)  # a decay from the start still warms up first
    with pytest.raises(ValueError, match="decay_on_last_phase needs optim.schedule=wsd"):
        load_config(CONFIGS / "tiny.yaml", ["optim.decay_on_last_phase=true"])
