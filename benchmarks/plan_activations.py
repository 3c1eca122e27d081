"""How many activation bytes does the trainer's model really keep for backward, against the planner?

    python benchmarks/plan_activations.py

Counts the distinct tensors autograd saves in one forward of ``train.model.Transformer`` (through
``torch.autograd.graph.saved_tensors_hooks``; parameters and buffers excluded), takes the
difference between a 3-layer and a 1-layer model to get bytes per layer, and prints them per
``s*b*h`` next to the planner's ``trainer`` formula and Korthikanti et al. 2022 Eq. 1 (flash:
34 bytes; 68 for fp32). Runs on CPU in about a minute; PyTorch's CPU SDPA kernel, like the GPU
flash / memory-efficient kernels, keeps no s^2 attention scores. Also times ``python -m train.plan``.
"""

from __future__ import annotations

import subprocess
import sys
import time


from train import plan
from train.activations import saved_for_backward_bytes as saved_bytes
from train.model import ModelConfig, param_counts


def main() -> None:
    b = 2
    shapes = [dict(seq_len=256, n_head=4, d_model=256),                     # SwiGLU 768 = 3 h
              dict(seq_len=256, n_head=4, d_model=256, ffn_hidden=512),     # 2 h
              dict(seq_len=256, n_head=8, d_model=256, n_kv_head=2),        # GQA
              dict(seq_len=512, n_head=4, d_model=256)]                     # longer sequence
    print(f"{'mode':<9}{'shape':<50}{'measured/sbh':>13}{'trainer':>9}{'korth.':>8}")
    for mode in ("bf16", "autocast", "fp32"):
        for kw in shapes:
            cfg1, cfg3 = (ModelConfig(vocab_size=512, n_layer=n, **kw) for n in (1, 3))
            per_layer = (saved_bytes(cfg3, b, mode) - saved_bytes(cfg1, b, mode)) / 2
            if mode == "autocast":  # autocast's cached bf16 weight copies are not activations
                per_layer -= (param_counts(cfg3)["non_embedding"] - param_counts(cfg1)["non_embedding"])
            sbh = cfg1.seq_len * b * cfg1.d_model
            per_h, per_f = plan.TRAINER_ACT_BYTES[mode]
            formula = per_h + per_f * cfg1.ffn_hidden / cfg1.d_model
            korth = plan.KORTHIKANTI_SBH * (2 if mode == "fp32" else 1)
            label = " ".join(f"{k}={v}" for k, v in kw.items())
            print(f"{mode:<9}{label:<50}{per_layer / sbh:>13.2f}{formula:>9.2f}{korth:>8}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "train.plan", "--params", "50.6e9", "--gpu", "a100-40gb",
                    "--gpus", "512"], check=True, capture_output=True)
    took = time.perf_counter() - t0
    print(f"python -m train.plan --params 50.6e9 --gpu a100-40gb --gpus 512: {took:.2f} s")


if __name__ == "__main__":
    main()
