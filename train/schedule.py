"""Learning-rate schedules as pure functions of the step (so the scheduler state is just the step).

- ``cosine``: linear warmup to the peak, then half a cosine down to ``min_lr_ratio * lr``
  (GPT-3, Brown et al. 2020; Chinchilla decays to 10%, Hoffmann et al. 2022).
- ``wsd``: warmup, stable at the peak, then a decay over the last ``decay_fraction`` of the steps
  (warmup-stable-decay; Hu et al. 2024, MiniCPM; Hägele et al. 2024): a run can be extended from any
  stable-phase checkpoint. ``decay_shape`` (``DECAY_SHAPES``): ``linear``; ``cosine`` (half a cosine);
  ``sqrt`` (1 - sqrt, which Hägele et al. 2024 find better than linear for the cooldown). With
  ``optim.decay_on_last_phase`` and a phased mixture the trainer passes ``decay_start``, the first
  step of the last phase: the decay then covers exactly that phase (Parmar et al. 2024's matched
  data distribution and schedule), whatever ``decay_fraction`` says.
- ``constant``: warmup then the peak.
"""

from __future__ import annotations

import math

from train.config import OptimConfig

SCHEDULES = ("cosine", "wsd", "constant")
DECAY_SHAPES = ("linear", "cosine", "sqrt")  # wsd's decay: the share of (peak - floor) removed after `progress`


def _decayed(progress: float, shape: str) -> float:
    """Fraction of the way from the peak to the floor after ``progress`` in [0, 1] of the decay."""
    if shape == "linear":
        return progress
    if shape == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * progress))
    if shape == "sqrt":
        return math.sqrt(progress)
    raise ValueError(f"optim.decay_shape must be one of {DECAY_SHAPES}, got {shape!r}")


def lr_at(step: int, total_steps: int, cfg: OptimConfig, decay_start: int | None = None) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``; ``decay_start`` (wsd only)
    puts the first decaying step there instead of at ``total_steps - decay_fraction * total_steps``."""
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
    if decay_start is None:
        decay_start = total_steps - max(1, int(round(cfg.decay_fraction * total_steps)))
    decay_start = max(cfg.warmup_steps, decay_start)
    if step < decay_start:
        return peak
    progress = min(1.0, (step - decay_start) / max(1, total_steps - decay_start))
    return peak + (floor - peak) * _decayed(progress, cfg.decay_shape)
