"""Measure the activation bytes the trainer's model really keeps for backward.

Used by the planner's test (``tests/test_plan.py``) and benchmark (``benchmarks/plan_activations.py``)
to check the ``trainer`` activation formula in ``train/plan.py`` against the model itself.
"""

from __future__ import annotations

import torch

from train.model import ModelConfig, Transformer


def saved_for_backward_bytes(cfg: ModelConfig, micro_batch: int, mode: str) -> int:
    """Bytes of the distinct tensors autograd keeps in one forward of ``Transformer(cfg)``.

    ``mode``: ``"bf16"`` (the model cast to bf16: what FSDP2's ``MixedPrecisionPolicy(param_dtype=bf16)``
    computes with), ``"fp32"``, or ``"autocast"`` (fp32 weights under CPU bf16 autocast, like DDP's).
    Parameters and buffers are excluded; each storage is counted once.
    """
    torch.manual_seed(0)
    model = Transformer(cfg)
    if mode == "bf16":
        model = model.to(torch.bfloat16)
    skip = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = torch.randint(0, cfg.vocab_size, (micro_batch, cfg.seq_len))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
            model(x, x)
    return sum(n for ptr, n in storages.items() if ptr not in skip)
