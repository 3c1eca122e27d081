"""Trainer throughput on GPUs, one row per throughput fix: tokens/s/GPU, MFU (output head counted) and peak memory.

Run by ``benchmarks/gpu_train.sh`` (``make bench-train-gpu``). Every row is a real ``torchrun -m train.run``
of configs/train/{gpt125m,llama1b}.yaml on synthetic tokens, with gradient accumulation (``--grad-accum``
micro-batches per optimizer step, so the optimizer and clipping run once per step, as in real runs) and
``--measured`` optimizer steps timed after a warm-up window (compilation). Rows:

- ``all on``: the defaults (attention ``auto``: cuDNN first on Hopper; fused q|k|v and gate|up; chunked
  head + loss; FSDP keeping its parameters gathered at world size 1; prefetching, pinned loader).
- ``all off``: every switch the other way (PyTorch's default SDPA kernel, unfused projections, full fp32
  logits, FSDP resharding every micro-batch, the synchronous int64 loader): the trainer as it was, except
  that grouped-query attention shares K/V inside the kernel instead of copying them.
- one row per fix, turned off alone from ``all on`` (its cost is that fix's contribution), and the larger
  micro-batch the fused loss leaves room for.

MFU (head incl.) is what the trainer logs now; MFU (old count) is the same run counted without the output
head, as before (core/model_config.py ``flops_per_token_parts``). Rows run in priority order until
``--budget-s`` is spent (a row that would not fit is listed as not run), and the table is rewritten after
every row, so a cut-off run still leaves what it measured. Before the rows, a micro-benchmark times the
attention kernels alone on the 1.1B shape.

    python benchmarks/gpu_ablation.py [--models gpt125m llama1b] [--rows all|headline] [--budget-s 420]
        [--results benchmarks/RESULTS.md]
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

# this script's section of benchmarks/RESULTS.md: its title says the GPUs and the "all on" MFU after this key
KEY = "## Trainer throughput on GPUs (issue 15)"
OFF = {"attention": "model.attention=sdpa", "fused_proj": ["model.fused_qkv=false", "model.fused_mlp=false"],
       "fused_loss": "train.fused_loss=false", "gathered": "train.reshard_after_forward=true",
       "loader": "train.prefetch=false"}


def flat(*items: str | list[str]) -> list[str]:
    return [x for i in items for x in ([i] if isinstance(i, str) else i)]


def rows_for(model: str, mb: int, big_mb: int) -> list[tuple[str, str, list[str], int]]:
    """(priority, label, overrides, micro-batch) of one model's rows; priority "headline" or "ablation"."""
    return [
        ("headline", "all on", [], mb),
        ("headline", "all off (the trainer before)", flat(*OFF.values()), mb),
        ("ablation", "- cuDNN attention (PyTorch's default SDPA kernel)", flat(OFF["attention"]), mb),
        ("ablation", "- fused q|k|v and gate|up", flat(OFF["fused_proj"]), mb),
        ("ablation", "- chunked head + loss (full fp32 logits)", flat(OFF["fused_loss"]), mb),
        ("ablation", "- gathered parameters at world size 1 (FSDP reshards every micro-batch)",
         flat(OFF["gathered"]), mb),
        ("ablation", "- prefetching loader (synchronous, int64, unpinned)", flat(OFF["loader"]), mb),
        ("ablation", "no FSDP at world size 1 (strategy none: bf16 autocast)", ["train.strategy=none"], mb),
        ("ablation", f"+ micro-batch {big_mb} (memory the chunked loss frees)", [], big_mb),
    ]


def synthetic_mixture(out: Path, n_tokens: int, seq: int, vocab: int = 32000) -> None:
    """Random ids in documents of ``seq`` tokens (throughput does not depend on the text)."""
    import numpy as np

    from mixtures.shards import write_shard

    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab - 1, size=n_tokens, dtype=np.int64)
    ids[seq - 1::seq] = vocab - 1  # an EOS closing every document
    lengths = np.full(n_tokens // seq, seq, dtype=np.int64)
    write_shard(out / "train" / "part-00000", ids[: lengths.sum()], vocab, doc_lengths=lengths)
    (out / "manifest.json").write_text(json.dumps({"vocab_size": vocab, "note": "synthetic tokens, gpu_ablation.py"}))


def attention_microbench(device: str) -> list[str]:
    """Forward + backward time of the attention kernels alone, llama1b shape (B=8, 32 heads, 4 KV heads, T=2048,
    head dim 64, bf16), with the SDPA backend PyTorch picks for each."""
    code = r'''
import json, time, torch, torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from train.model import CUDNN_FIRST, causal_mask
from torch.nn.attention.flex_attention import create_block_mask, flex_attention
B, H, KV, T, hd = 8, 32, 4, 2048, 64
q = torch.randn(B, H, T, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
k = torch.randn(B, KV, T, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
v = torch.randn(B, KV, T, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
def expanded(q, k, v):
    return F.scaled_dot_product_attention(q, k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1),
                                          is_causal=True)
def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
def cudnn(q, k, v):
    with sdpa_kernel(CUDNN_FIRST, set_priority=True):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
def cudnn_expanded(q, k, v):
    with sdpa_kernel(CUDNN_FIRST, set_priority=True):
        return expanded(q, k, v)
mask = create_block_mask(causal_mask, None, None, T, T, device="cuda")
flex_c = torch.compile(flex_attention)
def flex(q, k, v):
    return flex_c(q, k, v, block_mask=mask, enable_gqa=True)
flops = 4 * B * H * T * T * hd * 3.5 / 2  # fwd 2 matmuls + bwd 5, causal half (FlashAttention's own count)
with torch.no_grad():
    ref = expanded(q, k, v).float()
for name, fn in [("sdpa + repeat_interleave K/V (before)", expanded), ("sdpa, enable_gqa", sdpa),
                 ("cuDNN first, enable_gqa", cudnn), ("cuDNN first, expanded K/V", cudnn_expanded),
                 ("FlexAttention (compiled)", flex)]:
    try:
        for _ in range(3):
            fn(q, k, v).sum().backward()
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(10):
            fn(q, k, v).sum().backward()
        torch.cuda.synchronize(); ms = (time.perf_counter() - t) / 10 * 1e3
        with torch.no_grad():
            err = (fn(q, k, v).float() - ref).abs().max().item()
        print(json.dumps({"kernel": name, "ms": ms, "tflops": flops / ms / 1e9, "max_abs_diff": err}), flush=True)
    except Exception as exc:
        print(json.dumps({"kernel": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}),
              flush=True)
'''
    if device != "cuda":
        return ["(attention micro-benchmark: CUDA only, skipped)"]
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = ["| attention kernel (llama1b shape, B=8, fwd+bwd) | ms | TFLOP/s (causal) | max abs diff vs first row |",
             "| --- | ---: | ---: | ---: |"]
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        lines.append(f"| {r['kernel']} | " + (f"{r['ms']:.2f} | {r['tflops']:.0f} | {r['max_abs_diff']:.2e} |"
                                               if "ms" in r else f"failed: {r['error']} | | |"))
    if proc.returncode:
        lines.append(f"(micro-benchmark exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]})")
    return lines


def run_row(args: argparse.Namespace, mix: Path, work: Path, model: str, overrides: list[str], mb: int,
            timeout_s: float, peak: float | None) -> dict:
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    steps = args.log_every + args.measured
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.ngpu}",
           "-m", "train.run", "--config", str(ROOT / "configs" / "train" / f"{model}.yaml"),
           f"data.dir={mix}", "data.val_splits=[]", f"model.seq_len={args.seq}",
           f"train.out_dir={out}", f"train.steps={steps}", f"train.log_every={args.log_every}",
           "train.ckpt_every=-1", "train.resume=none", f"train.micro_batch={mb}",
           f"train.global_batch_tokens={args.ngpu * mb * args.seq * args.grad_accum}", f"train.device={args.device}",
           "train.progress=false", "train.tensorboard=false", "optim.warmup_steps=5", *args.extra, *overrides]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s", "wall_s": time.time() - t0}
    if proc.returncode:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["?"]
        oom = "out of memory" in proc.stderr.lower()
        return {"error": "out of memory" if oom else f"exit {proc.returncode}: {tail[0][:160]}",
                "wall_s": time.time() - t0}
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    start = [r for r in recs if r["kind"] == "start"][-1]
    train = [r for r in recs if r["kind"] == "train"][1:]  # the first window holds compilation
    seconds = sum(r["step_time_s"] for r in train) * args.log_every
    tokens = len(train) * args.log_every * args.ngpu * mb * args.seq * args.grad_accum
    tps = tokens / seconds / args.ngpu
    parts = start["flops_per_token_parts"]
    fpt = sum(parts.values())
    mfu = tps * fpt / peak if peak else None
    return {"tokens_per_s_per_gpu": tps, "mfu": mfu, "mfu_old": mfu * (fpt - parts["head"]) / fpt if mfu else None,
            "peak_gib": max(max(r["peak_mem_bytes_per_rank"]) for r in train) / 2**30,
            "step_s": seconds / (len(train) * args.log_every), "measured_steps": len(train) * args.log_every,
            "final_loss": train[-1]["loss"],
            "attention": start.get("attention"), "device_name": start["device_name"], "strategy": start["strategy"],
            "params": start["params"]["total"], "wall_s": time.time() - t0}


def pct(v: float | None) -> str:
    return f"{100 * v:.1f}%" if v is not None else "n/a"


def table(header: list[str], results: list[dict], args: argparse.Namespace) -> str:
    lines = [*header, "",
             "| model | row | micro-batch x accumulation | tokens/s/GPU | MFU (head incl.) | MFU (old count) "
             "| peak memory (GiB) | step (s) | vs all on | last loss |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    best = {r["model"]: r for r in results if r["label"] == "all on" and "tokens_per_s_per_gpu" in r}
    for r in results:
        name = f"{r['model']} ({r['params'] / 1e6:,.0f}M)" if "params" in r else r["model"]
        if "tokens_per_s_per_gpu" not in r:
            lines.append(f"| {name} | {r['label']} | {r['mb']} x {args.grad_accum} | {r.get('error', 'not run')} "
                         "| | | | | | |")
            continue
        ref = best.get(r["model"])
        rel = f"{r['tokens_per_s_per_gpu'] / ref['tokens_per_s_per_gpu'] - 1:+.1%}" if ref and r is not ref else ""
        lines.append(f"| {name} | {r['label']} ({r['attention']}) | {r['mb']} x {args.grad_accum} "
                     f"| {r['tokens_per_s_per_gpu']:,.0f} | {pct(r['mfu'])} | {pct(r['mfu_old'])} "
                     f"| {r['peak_gib']:.1f} | {r['step_s']:.3f} | {rel} | {r['final_loss']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu only smoke-tests this script")
    ap.add_argument("--ngpu", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["llama1b", "gpt125m"])
    ap.add_argument("--rows", default="all", choices=["all", "headline"])
    ap.add_argument("--measured", type=int, default=50, help="optimizer steps timed per row (after the warm-up)")
    ap.add_argument("--log-every", type=int, default=5, help="steps per metrics window; the first is warm-up")
    ap.add_argument("--grad-accum", type=int, default=4, help="micro-batches per optimizer step")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--mb", nargs="*", default=[], help="MODEL=MICRO_BATCH[:LARGER] (default from GPU memory)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="wall time for all rows; the rest is not run")
    ap.add_argument("--extra", nargs="*", default=[], help="key=value overrides for every row")
    ap.add_argument("--out", default=os.environ.get("OUT") or None, help="directory for gpu_train.md / .json")
    ap.add_argument("--results", help=f"replace the '{KEY}...' section of this file (e.g. benchmarks/RESULTS.md) "
                    "after every row; CUDA only (a CPU smoke test is no GPU figure)")
    args = ap.parse_args()
    provenance.check_results(args.results)
    if args.results and args.device != "cuda":
        print("error: --results needs --device cuda: a CPU smoke test is no GPU figure", file=sys.stderr)
        sys.exit(2)
    t_start = time.time()
    import torch

    from core.config import read_yaml
    from train.metrics import peak_flops

    if args.device == "cuda":
        assert torch.cuda.is_available(), "no CUDA device"
        props = torch.cuda.get_device_properties(0)
        gib = props.total_memory / 2**30
        machine = (f"{args.ngpu} x {props.name} ({gib:.0f} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}, "
                   f"cuDNN {torch.backends.cudnn.version()}")
        peak = peak_flops(torch.device("cuda", 0))
    else:
        peak, gib = None, 0.0
        machine = f"CPU ({os.cpu_count()} cores), torch {torch.__version__}: a smoke test, not a GPU figure"
    # micro-batches: the shipped configs' (16 at 125M, 8 at 1.1B), and a larger one for the row that spends the
    # memory the chunked loss frees (1.1B at 16 needs ~100 GB without checkpointing: H200-class only)
    mbs = {"gpt125m": (16, 32), "llama1b": (8, 16 if gib >= 120 else 8)}
    for item in args.mb:
        name, sizes = item.split("=")
        small, _, big = sizes.partition(":")
        mbs[name] = (int(small), int(big or small))
    header = [provenance.line("bench-train-gpu", device=machine),
              f"Each row: `torchrun -m train.run`, sequence {args.seq}, {args.grad_accum} micro-batches per optimizer "
              f"step, {args.measured} measured steps after a {args.log_every}-step warm-up window, "
              f"{'bf16, torch.compile' if args.device == 'cuda' else 'as --extra sets (smoke test)'}, synthetic "
              "tokens. MFU against the dense bf16 peak of train/gpus.py."]
    print("\n".join(header), flush=True)
    micro = attention_microbench(args.device)
    print("\n".join(micro), flush=True)
    header += ["", *micro]

    plan = []
    for prio in ("headline", "ablation"):
        if prio == "ablation" and args.rows == "headline":
            break
        for model in args.models:
            mb, big = mbs.get(model, (8, 8))
            strategy = read_yaml(ROOT / "configs" / "train" / f"{model}.yaml")["train"].get("strategy")
            sharded = strategy in ("fsdp", "hsdp")
            for p, label, over, row_mb in rows_for(model, mb, big):
                if p != prio or (label.startswith("+ micro-batch") and row_mb == mb):
                    continue
                if "gathered" in label and not (sharded or any("strategy=fsdp" in e for e in args.extra)):
                    continue  # a ddp model has nothing to gather
                plan.append((model, label, over, row_mb))
    results: list[dict] = []
    last_wall: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="gpu_ablation."))
    try:
        mix = work / "mix"
        biggest = max(max(v) for v in mbs.values())
        synthetic_mixture(mix, max(4 * args.ngpu * biggest * args.grad_accum * (args.seq + 1), 2_000_000), args.seq)
        for model, label, over, row_mb in plan:
            left = args.budget_s - (time.time() - t_start)
            need = last_wall.get(model, 0.0)  # a row costs about what the model's previous row did
            row = {"model": model, "label": label, "mb": row_mb}
            if left < max(need, 30.0):
                row["error"] = f"not run: time budget ({left:.0f} s left, a row takes ~{need:.0f} s)"
            else:
                row.update(run_row(args, mix, work, model, over, row_mb, timeout_s=left, peak=peak))
                last_wall[model] = row.get("wall_s", 0.0)
            results.append(row)
            print(json.dumps(row), flush=True)
            text = table(header, results, args)
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                (Path(args.out) / "gpu_train.md").write_text(text + "\n")
                (Path(args.out) / "gpu_train.json").write_text(json.dumps(results, indent=1))
            if args.results:
                gpu = f"{args.ngpu} x {torch.cuda.get_device_name(0)}"
                mfu = ", ".join(f"{r['model']} {pct(r['mfu'])} MFU" for r in results
                                if r["label"] == "all on" and r.get("mfu") is not None)
                replace_section(args.results, f"{KEY}: {gpu}" + (f", {mfu}" if mfu else ""), text,
                                header=provenance.HEADER, key=KEY)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + table(header, results, args))
    print(f"\n(total wall time {time.time() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
