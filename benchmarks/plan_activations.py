"""How many activation bytes does the trainer's model really keep for backward, against the planner?

    python benchmarks/plan_activations.py [--results benchmarks/RESULTS.md]

Counts the distinct tensors autograd saves in one forward of ``train.model.Transformer`` (through
``torch.autograd.graph.saved_tensors_hooks``; parameters and buffers excluded), takes the
difference between a 3-layer and a 1-layer model to get bytes per layer, and prints them per
``s*b*h`` next to the planner's ``trainer`` formula and Korthikanti et al. 2022 Eq. 1 (flash:
34 bytes; 68 for fp32). Runs on CPU in about a minute; PyTorch's CPU SDPA kernel, like the GPU
flash / memory-efficient kernels, keeps no s^2 attention scores. Also times ``python -m train.plan``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402
from train import plan  # noqa: E402
from train.activations import saved_for_backward_bytes as saved_bytes  # noqa: E402
from train.model import ModelConfig, param_counts  # noqa: E402

# this script's section of benchmarks/RESULTS.md
TITLE = "## Planner: activation memory of the trainer's blocks (`train.plan`)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the table is only printed")
    args = ap.parse_args()
    provenance.check_results(args.results)
    b = 2
    shapes = [dict(seq_len=256, n_head=4, d_model=256),                     # SwiGLU 768 = 3 h
              dict(seq_len=256, n_head=4, d_model=256, ffn_hidden=512),     # 2 h
              dict(seq_len=256, n_head=8, d_model=256, n_kv_head=2),        # GQA
              dict(seq_len=512, n_head=4, d_model=256)]                     # longer sequence
    out = ["| mode | shape | measured bytes / (s b h) per layer | planner `trainer` | Korthikanti (flash) |",
           "|---|---|---:|---:|---:|"]
    print("\n".join(out))
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
            out.append(f"| {mode} | {label} | {per_layer / sbh:.2f} | {formula:.2f} | {korth} |")
            print(out[-1], flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "train.plan", "--params", "50.6e9", "--gpu", "a100-40gb",
                    "--gpus", "512"], check=True, capture_output=True)
    took = time.perf_counter() - t0
    speed = f"Planner speed: `python -m train.plan --params 50.6e9 --gpu a100-40gb --gpus 512` takes {took:.2f} s."
    print(speed)
    if args.results:
        replace_section(args.results, TITLE,
                        provenance.body("bench-plan", provenance.method(__doc__), "\n".join(out), speed),
                        header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
