"""CPU-side checks of the throughput changes (no GPU needed): what can be measured on a CPU, measured there.

1. Loader: sequences/s of the step batches, the per-window Python loop (int64) the trainer had vs the
   vectorized gather (int32), seq_len 2,048, 64 sequences per step, a 3-shard stream of random ids.
2. Head + loss memory: peak resident memory added by one forward + backward of the output head and the
   cross-entropy (8,192 tokens, d_model 2,048, vocab 32,000: the 1.1B head at micro-batch 4), full fp32
   logits vs the chunked loss (train/loss.py), each in a fresh process.
3. Step time of a small model (fp32, 1 thread): fused q|k|v + gate|up + chunked loss vs all unfused,
   interleaved rounds, best of each. CPU GEMMs say little about GPU kernels: a sanity figure, not a claim.

    python benchmarks/bench_throughput_cpu.py [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402

TITLE = "## Trainer throughput, CPU-side checks"  # this script's section of benchmarks/RESULTS.md


def loop_batches(sb, step: int):  # noqa: ANN001 - the loader as it was (the reference of tests/test_train_data.py)
    import numpy as np

    def windows(samples):  # noqa: ANN001, ANN202
        out = np.empty(len(samples), dtype=np.int64)
        for k, i in enumerate(samples):
            epoch, pos = divmod(int(i), sb.n_windows)
            out[k] = sb.permutation(epoch)[pos]
        return out

    span = sb.seq_len + 1
    return [np.stack([sb.stream.window(int(w) * sb.seq_len, span) for w in windows(rows)])
            for rows in sb.rank_samples(step)]


def bench_loader(rounds: int = 3, steps: int = 20) -> dict:
    import numpy as np

    from mixtures.shards import TokenStream, write_shard
    from train.data import StepBatches

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i, n in enumerate([3_000_000, 1_234_567, 2_000_001]):
            write_shard(Path(tmp) / f"part-{i:05d}", rng.integers(0, 32000, n), 32000, doc_lengths=[n])
        sb = StepBatches(TokenStream(tmp), 2048, 64, 0, 1, 16, seed=1)
        for s in range(3):  # same batches, checked here too
            assert all(np.array_equal(a, b) for a, b in zip(loop_batches(sb, s), sb.micro_batches(s)))
        best = {"loop": 0.0, "vectorized": 0.0}
        for _ in range(rounds):
            for name, fn in (("loop", loop_batches), ("vectorized", lambda b, s: b.tokens(s))):
                t = time.perf_counter()
                for s in range(steps):
                    fn(sb, s)
                best[name] = max(best[name], steps * 64 / (time.perf_counter() - t))
    return best


HEAD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
from train.loss import linear_cross_entropy
torch.manual_seed(0)
n, d, V = 8192, 2048, 32000
h = torch.randn(n, d, requires_grad=True)
w = (0.02 * torch.randn(V, d)).requires_grad_()
t = torch.randint(0, V, (n,))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "full":
    loss = torch.nn.functional.cross_entropy((h @ w.t()).float(), t)
else:
    loss = linear_cross_entropy(h, w, t)
loss.backward()
extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"loss": loss.item(), "extra_mib": extra}))
"""


def bench_head_memory() -> dict:
    out = {}
    for mode in ("full", "chunked"):
        proc = subprocess.run([sys.executable, "-c", HEAD, mode], cwd=ROOT, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def bench_step(rounds: int = 5, steps: int = 6) -> dict:
    import torch

    from train.model import ModelConfig, Transformer

    torch.set_num_threads(1)
    kw = dict(vocab_size=8192, seq_len=256, n_layer=4, n_head=8, n_kv_head=2, d_model=256)
    models = {}
    for name, fused in (("unfused", False), ("fused", True)):
        torch.manual_seed(0)
        models[name] = Transformer(ModelConfig(**kw, fused_qkv=fused, fused_mlp=fused), fused_loss=fused)
    x = torch.randint(0, 8192, (8, 257))
    best = {name: float("inf") for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            t = time.perf_counter()
            for _ in range(steps):
                m(x[:, :-1], x[:, 1:]).backward()
            best[name] = min(best[name], (time.perf_counter() - t) / steps)
    return {"config": kw, "micro_batch": 8, "step_s": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the table is only printed")
    args = ap.parse_args()
    provenance.check_results(args.results)
    load0, t0 = os.getloadavg()[0], time.time()
    loader, head, step = bench_loader(), bench_head_memory(), bench_step()
    load1 = os.getloadavg()[0]
    lines = [
        "| check | before | after | ratio |", "| --- | ---: | ---: | ---: |",
        f"| loader, sequences/s (seq 2,048, 64 per step; same batches) | {loader['loop']:,.0f} | "
        f"{loader['vectorized']:,.0f} | {loader['vectorized'] / loader['loop']:.2f}x |",
        f"| head + loss, extra peak RSS of forward+backward, MiB (8,192 tokens, d 2,048, vocab 32,000) | "
        f"{head['full']['extra_mib']:,.0f} | {head['chunked']['extra_mib']:,.0f} | "
        f"{head['chunked']['extra_mib'] / head['full']['extra_mib']:.2f}x |",
        f"| step time, s, fwd+bwd, 4 x 256 model, micro-batch 8 x 256, fp32, 1 thread | "
        f"{step['step_s']['unfused']:.3f} | {step['step_s']['fused']:.3f} | "
        f"{step['step_s']['unfused'] / step['step_s']['fused']:.2f}x faster |",
        "",
        f"Same loss: {head['full']['loss']:.6f} (full logits) vs {head['chunked']['loss']:.6f} (chunked). "
        f"(wall {time.time() - t0:.0f} s; 1-minute load average {load0:.1f} at start, {load1:.1f} at end on "
        f"{os.cpu_count()} cores shared with other processes: best of interleaved rounds.)",
    ]
    table = "\n".join(lines)
    print(table)
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-throughput-cpu", table), header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
