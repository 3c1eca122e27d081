"""Trainer overhead and memory: ddp, fsdp and hsdp under torchrun vs a plain single-process PyTorch loop.

Same model, same data, same micro-batch, one CPU thread per process. The plain loop is
what one would write by hand (model, AdamW, clip, step; no process group, no logging);
two copies of it run at the same time, each on its half of the batch, so they share the
cores exactly as the trainer's two ranks do: that is ideal, communication-free scaling.
The trainer runs under ``torchrun --nproc_per_node=2`` with gloo. Throughput is taken
over the steps after the first logging window (warm-up excluded).

Overhead per rank = 1 - (trainer tokens/s per rank) / (plain loop tokens/s per copy): the
share of each process's time spent on gradient communication, sharding and bookkeeping.
Target: <= 15% for ddp at 2 ranks. On a shared machine wall-clock rates move with other
processes' load, so the process CPU time per step is reported too. With two or more GPUs
(``--device auto``) the same comparison runs on GPUs with NCCL.

    python benchmarks/bench_train.py [--steps 40] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402

TITLE = "## Trainer"  # this script's section of benchmarks/RESULTS.md
CORPORA = str(ROOT.parent / "shared" / "corpora")
# Small enough for a 2-core CPU, big enough that compute (not Python) dominates a step.
MODEL = dict(vocab_size=257, seq_len=128, n_layer=4, n_head=4, d_model=128)
MICRO_BATCH = 8
RANKS = 2
STRATEGIES = (("ddp", []), ("fsdp", []), ("hsdp", ["train.sharding_factor=1"]), ("hsdp", ["train.sharding_factor=2"]))


def plain_loops(mix: Path, steps: int, log_every: int, copies: int, device: str) -> list[dict]:
    """The hand-written baseline: ``copies`` independent processes (1 CPU thread, or 1 GPU, each) started
    together, so they compete for the cores exactly as the trainer's ranks do (ideal, communication-free
    scaling), each on its half of the same global batch."""
    code = f"""
import json, resource, sys, time, torch
torch.set_num_threads(1)
from mixtures.shards import TokenStream
from train.data import StepBatches
from train.model import ModelConfig, Transformer
copy = int(sys.argv[1])
dev = torch.device({device!r}, copy) if {device!r} == "cuda" else torch.device("cpu")
torch.manual_seed(0)
cfg = ModelConfig(**{MODEL!r})
model = Transformer(cfg, fused_loss=True).to(dev)  # as the trainer (train.fused_loss defaults on)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
batches = StepBatches(TokenStream({str(mix / 'train')!r}), cfg.seq_len, {MICRO_BATCH} * {copies}, copy, {copies},
                      {MICRO_BATCH}, 1234)
for step in range({steps}):
    if step == {log_every}:
        loss.item()  # drain queued GPU work before the clock starts
        t0, c0 = time.perf_counter(), time.process_time()
    x = torch.from_numpy(batches.micro_batches(step)[0]).to(dev)
    loss = model(x[:, :-1], x[:, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
loss.item()
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
mem = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"tokens_per_s": ({steps} - {log_every}) * {MICRO_BATCH} * cfg.seq_len / dt,
                  "cpu_per_step": cpu / ({steps} - {log_every}), "peak_mem": mem}}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              text=True) for i in range(copies)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("plain loop failed")
    runs = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    return {"tokens_per_s": sum(r["tokens_per_s"] for r in runs), "peak_mem": max(r["peak_mem"] for r in runs),
            "cpu_per_step": sum(r["cpu_per_step"] for r in runs) / copies, "state_bytes": None}


def trainer_run(mix: Path, out: Path, strategy: str, extra: list[str], steps: int, log_every: int,
                device: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)  # a fresh run each round (metrics.jsonl appends)
    overrides = ["train.resume=none", f"data.dir={mix}", f"train.out_dir={out}", f"train.steps={steps}",
                 f"train.log_every={log_every}", f"train.strategy={strategy}", f"train.micro_batch={MICRO_BATCH}",
                 f"train.global_batch_tokens={RANKS * MICRO_BATCH * MODEL['seq_len']}", "train.ckpt_every=-1",
                 "data.val_splits=[]", "train.progress=false", "train.tensorboard=false", f"train.device={device}",
                 "train.dtype=fp32", "train.cpu_threads=1", "optim.lr=1e-3", "optim.warmup_steps=0",
                 "optim.schedule=constant", *[f"model.{k}={v}" for k, v in MODEL.items()], *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}",
           "-m", "train.run", *overrides]
    subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"][1:]  # drop the warm-up window
    seconds = sum(r["step_time_s"] for r in train) * log_every
    return {"tokens_per_s": len(train) * log_every * RANKS * MICRO_BATCH * MODEL["seq_len"] / seconds,
            "peak_mem": max(max(r["peak_mem_bytes_per_rank"]) for r in train),
            "state_bytes": max(train[-1]["state_bytes_per_rank"]),
            "cpu_per_step": sum(r["cpu_time_per_step_s"] for r in train) / len(train)}


def main() -> None:
    global MICRO_BATCH
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="rounds over all configurations; the best is kept")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: cuda when this node has >= 2 GPUs, else cpu")
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the table is only printed")
    ap.add_argument("--seq-len", type=int, default=MODEL["seq_len"],
                    help="tokens per sequence: compute per step grows with it, communication does not")
    ap.add_argument("--micro-batch", type=int, default=MICRO_BATCH, help="sequences per rank per step")
    args = ap.parse_args()
    provenance.check_results(args.results)
    MODEL["seq_len"], MICRO_BATCH = args.seq_len, args.micro_batch
    import torch

    from tests.bytemix import build_byte_mixture
    from train.model import ModelConfig, param_counts

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.device_count() >= RANKS else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        mix = Path(tmp) / "mix"
        build_byte_mixture(mix, [f"{CORPORA}/finance/bbc_business.jsonl.gz"],
                           [f"{CORPORA}/general/wikipedia_en.jsonl.gz"], max_bytes=600_000)
        t0, load0 = time.time(), os.getloadavg()[0]
        best: dict[str, dict] = {}
        for _ in range(args.repeats):  # rounds interleave the configurations; keep each one's best round
            results = {f"plain PyTorch loop ({RANKS} independent copies)":
                       plain_loops(mix, args.steps, args.log_every, RANKS, device)}
            for strategy, extra in STRATEGIES:
                name = strategy + (f" (sharding_factor={extra[0].split('=')[1]})" if extra else "")
                results[name] = trainer_run(mix, Path(tmp) / name.replace(" ", "_"), strategy, extra, args.steps,
                                            args.log_every, device)
            for name, r in results.items():  # best throughput, least CPU time, largest memory over rounds
                b = best.setdefault(name, dict(r))
                b["tokens_per_s"] = max(b["tokens_per_s"], r["tokens_per_s"])
                b["cpu_per_step"] = min(b["cpu_per_step"], r["cpu_per_step"])
                b["peak_mem"] = max(b["peak_mem"], r["peak_mem"])
        wall, load1 = time.time() - t0, os.getloadavg()[0]

    base = next(iter(best.values()))
    n = param_counts(ModelConfig(**MODEL))["total"]
    mem = "peak CUDA memory" if device == "cuda" else "peak RSS"
    lines = [f"Model: {MODEL} ({n:,} parameters), micro-batch {MICRO_BATCH} x {MODEL['seq_len']} tokens per rank, "
             f"{args.steps} steps (first {args.log_every} excluded), byte-level real text, fp32, "
             f"{'NCCL' if device == 'cuda' else 'gloo, 1 thread per process'}; best of {args.repeats} interleaved "
             "rounds (highest rate, least CPU time). Overhead = 1 - trainer rate per rank / plain rate per copy "
             "(wall clock), and trainer CPU time per step / plain CPU time per step - 1 (process CPU time: "
             "not inflated by other processes sharing the cores, but blind to waiting on communication).", "",
             f"| run | ranks | tokens/s (all ranks) | tokens/s per rank | {mem} per rank (MiB) "
             "| params+Adam states per rank (KiB) | overhead per rank (wall) | CPU ms per step | overhead (CPU time) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in best.items():
        over = 1 - r["tokens_per_s"] / base["tokens_per_s"]
        cpu_over = r["cpu_per_step"] / base["cpu_per_step"] - 1
        is_base = r is base
        lines.append(f"| {name} | {RANKS} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / RANKS:,.0f} | "
                     f"{r['peak_mem'] / 2**20:,.0f} | "
                     f"{'' if r['state_bytes'] is None else format(r['state_bytes'] / 1024, ',.0f')} | "
                     f"{'' if is_base else f'{100 * over:+.1f}%'} | {1000 * r['cpu_per_step']:.1f} | "
                     f"{'' if is_base else f'{100 * cpu_over:+.1f}%'} |")
    lines.append(f"\n(bench wall time {wall:.0f} s; 1-minute load average {load0:.1f} at start, {load1:.1f} at end "
                 f"on {os.cpu_count()} cores: other processes compete for the same cores, so compare rows "
                 "of one run, not across runs)")
    table = "\n".join(lines)
    print(table)
    if args.results:
        gpus = f"{RANKS} x {torch.cuda.get_device_name(0)}" if device == "cuda" else "CPU only"
        replace_section(args.results, TITLE, provenance.body("bench-train", table, device=gpus),
                        header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
