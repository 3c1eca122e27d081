"""The training loop: one plain loop, the same on 1 CPU process and on many GPUs.

Per optimizer step: set the scheduled lr; for each of ``grad_accum`` micro-batches run
forward/backward (gradient sync only on the last); clip the global gradient norm; AdamW
step. Around it: periodic metrics (loss, lr, tokens/s, MFU, per-rank memory),
evaluation on val_domain / val_general (loss, perplexity, bits per byte), and DCP
checkpoints. Everything a resumed run needs (weights, optimizer, step, RNG) is in the
checkpoint, and the data order is a function of (seed, step), so a resumed run
continues with the exact next batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

try:
    from tqdm import tqdm
except ImportError:  # a bare GPU image may lack tqdm: train without a progress bar
    def tqdm(*args, **kwargs):  # noqa: ANN002, ANN003
        class _NoBar:
            def update(self, n: int = 1) -> None: ...
            def set_postfix(self, **kw) -> None: ...  # noqa: ANN003
            def close(self) -> None: ...
        return _NoBar()

from mixtures.shards import TokenStream, manifest_dtype
from train import checkpoint as ckpt
from train import hf_import, precision
from train.config import Config, ConfigError
from train.data import StepBatches, StepPrefetcher
from train.evaluate import evaluate_stream
from train.interrupt import StopOnSignal, TrainingInterrupted
from train.metrics import MetricsLogger, bits_per_byte, mfu, peak_flops
from train.model import Transformer, attention_kernel, flops_per_token, flops_per_token_parts, param_counts
from train.parallel import (
    apply_activation_checkpointing,
    apply_compile,
    apply_data_parallel,
    build_mesh,
    init_distributed,
    local_state_bytes,
    peak_memory_bytes,
    set_gradient_sync,
)
from train.schedule import lr_at

# Test hook: SIGKILL rank 0 right after this many completed steps (a real, unannounced crash).
KILL_ENV = "DOMAINLM_KILL_AFTER_STEP"


def _any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set on any rank (a one-element all-reduce; every rank must call it)."""
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(rec: dict[str, Any], total_steps: int, seconds_left: float) -> str:
    """The console line of a metrics record: step, loss, lr, throughput and the time left."""
    return (f"train: step {rec['step']}/{total_steps} ({rec['step'] / max(total_steps, 1):.0%}) "
            f"loss {rec['loss']:.4f} lr {rec['lr']:.2e} {rec['tokens_per_s']:,.0f} tok/s "
            f"~{_clock(seconds_left)} left")


def read_manifest(mix_dir: str) -> dict[str, Any]:
    path = Path(mix_dir) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def build_optimizer(model: torch.nn.Module, cfg: Config, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on matrices only (not on norms' gains; GPT-2/nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    o = cfg.optim
    fused = device.type == "cuda" and cfg.train.strategy != "cpu_offload"
    return torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, fused=fused or None)


def _gather_ints(values: list[int], device: torch.device) -> list[list[int]]:
    """Every rank's ``values`` (one small all-gather), for per-rank memory logging."""
    t = torch.tensor(values, dtype=torch.int64, device=device)
    out = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [o.tolist() for o in out]


@dataclasses.dataclass
class RunData:
    """The mixture as the trainer reads it: the training stream cut into steps, the held-out splits."""

    train: TokenStream
    val: dict[str, TokenStream]
    batches: StepBatches
    total_steps: int
    manifest: dict[str, Any]  # the mixer's manifest.json (bytes per token of the held-out splits)


def open_data(cfg: Config, rank: int, world: int) -> RunData:
    """Open the mixture ``cfg.data.dir`` (and take ``model.vocab_size`` from it when the config says 0);
    a missing or too small mixture, or a batch the ranks cannot split, is a ConfigError."""
    tc, mc = cfg.train, cfg.model
    if not cfg.data.dir:
        raise ConfigError("data.dir is not set: point it at a mixture directory (train/, val_domain/, ...)")
    manifest = read_manifest(cfg.data.dir)
    if mc.vocab_size <= 0:  # "take it from the mixture"
        if not manifest.get("vocab_size"):
            raise ConfigError("model.vocab_size is 0 but the mixture's manifest.json has no vocab_size")
        cfg.model = mc = dataclasses.replace(mc, vocab_size=int(manifest["vocab_size"]))
    if manifest.get("vocab_size", 0) > mc.vocab_size:
        raise ConfigError(f"mixture vocab_size {manifest['vocab_size']} > model.vocab_size {mc.vocab_size}")
    if tc.global_batch_tokens % mc.seq_len:
        raise ConfigError(f"global_batch_tokens={tc.global_batch_tokens} is not a multiple of seq_len={mc.seq_len}")
    try:  # a missing or too small mixture, a batch the ranks cannot split: the config's to fix
        dtype = manifest_dtype(manifest)  # uint16 or uint32 shards: a 128k vocabulary needs the latter
        train_stream = TokenStream(Path(cfg.data.dir) / cfg.data.train_split, dtype=dtype)
        val_streams = {s: TokenStream(Path(cfg.data.dir) / s, dtype=dtype) for s in cfg.data.val_splits
                       if (Path(cfg.data.dir) / s).is_dir()}
        batches = StepBatches(train_stream, mc.seq_len, tc.global_batch_tokens // mc.seq_len, rank, world,
                              tc.micro_batch, cfg.data.seed)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"data.dir={cfg.data.dir}: {exc}") from exc
    total_steps = tc.steps if tc.steps > 0 else math.ceil(len(train_stream) / tc.global_batch_tokens)
    return RunData(train_stream, val_streams, batches, total_steps, manifest)


@dataclasses.dataclass
class RunModel:
    """The model with its parallelism, optimizer and number formats applied."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any  # fp16's loss scaler, else None
    qat: Any  # precision.QATSettings, else None
    qat_start: int  # first step of the QAT phase (total_steps: none)
    param_dtype: torch.dtype | None
    autocast: Any  # () -> context manager for the forward pass


def build_model(cfg: Config, device: torch.device, world: int, total_steps: int) -> RunModel:
    """Build the plain model, then apply number formats (fp8, QAT), activation checkpointing, compile and
    data parallelism (train/parallel.py), torchtitan-style; then the optimizer and fp16's loss scaler."""
    tc, mc = cfg.train, cfg.model
    # fp16: fp16 compute + dynamic loss scaling; fp8: fp8 matmuls in the blocks, bf16 elsewhere (train/precision.py)
    dtypes = {"auto": torch.bfloat16 if device.type == "cuda" else None, "bf16": torch.bfloat16,
              "fp16": torch.float16, "fp8": torch.bfloat16, "fp32": None}
    if tc.dtype not in dtypes:
        raise ConfigError(f"train.dtype must be one of {list(dtypes)}, got {tc.dtype!r}")
    if tc.dtype == "fp8" and (why := precision.fp8_unsupported(device)):
        raise ConfigError(why)
    try:
        qat = precision.QATSettings.from_config(tc.qat) if tc.qat is not None else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if qat is not None and tc.dtype == "fp8":
        raise ConfigError("train.qat and train.dtype=fp8 do not combine: QAT fake-quantizes the linears fp8 replaces")
    param_dtype = dtypes[tc.dtype]
    torch.manual_seed(tc.seed)  # identical init on every rank (FSDP shards it, DDP checks it)
    with torch.device(device):
        model = Transformer(mc, fused_loss=tc.fused_loss)
    # Continued pretraining: the base's weights streamed tensor by tensor (train/hf_import.py); under FSDP2 after
    # sharding, so that each rank reads only its own rows of each tensor.
    sharded = tc.strategy in ("fsdp", "hsdp", "cpu_offload")
    if mc.init_from and not sharded:
        hf_import.load_into(model, mc.init_from)
    if tc.dtype == "fp8":
        precision.apply_float8_training(model)
    qat_start = total_steps  # QAT phase: steps [qat_start, total_steps) with fake quantization
    if qat is not None:
        try:
            precision.prepare_qat(model, qat)  # fake quantization off until qat_start
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        qat_start = qat.start_step(total_steps)
    if tc.activation_checkpointing:
        apply_activation_checkpointing(model)
    if tc.compile:
        apply_compile(model)
    mesh = build_mesh(tc.strategy, world, device, tc.sharding_factor)
    model = apply_data_parallel(model, tc.strategy, mesh, device, param_dtype, tc.reshard_after_forward)
    if mc.init_from and sharded:
        hf_import.load_into(model, mc.init_from)
    optimizer = build_optimizer(model, cfg, device)
    scaler = precision.loss_scaler(tc.dtype, device.type, tc.loss_scale)  # fp16 only, else None
    # DDP (and no wrapper) keep fp32 weights, so bf16 there means autocast; FSDP2 casts through its
    # MixedPrecisionPolicy.
    use_autocast = tc.strategy in ("ddp", "none") and param_dtype is not None

    def autocast():
        return torch.autocast(device.type, dtype=param_dtype) if use_autocast else contextlib.nullcontext()

    return RunModel(model, optimizer, scaler, qat, qat_start, param_dtype, autocast)


def train(cfg: Config, stop: StopOnSignal | None = None) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the final summary (also in OUT/summary.json).
    ``stop`` (installed here when not given) turns SIGINT/SIGTERM into a stop between two steps:
    :class:`TrainingInterrupted` on every rank, after the last checkpoint is complete."""
    own = stop is None
    stop = stop or StopOnSignal().install()
    rank, world, device = init_distributed(cfg.train.device, cfg.train.timeout_s)
    try:
        summary = _train(cfg, rank, world, device, stop)
        # Every rank reaches here before any tears its process group down: a rank that destroys gloo's pairs
        # while a peer still uses them aborts that peer ("terminate called without an active exception").
        dist.barrier()
        if summary.get("interrupted"):
            i = summary["interrupted"]
            raise TrainingInterrupted(i["step"], i["checkpoint_step"], cfg.train.ckpt_every)
        return summary
    finally:
        dist.destroy_process_group()
        if own:
            stop.restore()


def _train(cfg: Config, rank: int, world: int, device: torch.device, stop: StopOnSignal) -> dict[str, Any]:
    t_start = time.time()
    tc, mc = cfg.train, cfg.model
    out = Path(tc.out_dir)
    ckpt_root = out / "checkpoints"
    is_main = rank == 0
    if device.type == "cpu" and tc.cpu_threads > 0:
        torch.set_num_threads(tc.cpu_threads)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.remove_partial(ckpt_root)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    dist.barrier()

    data = open_data(cfg, rank, world)
    mc = cfg.model  # the vocabulary may come from the mixture
    train_stream, val_streams, batches, total_steps, manifest = (data.train, data.val, data.batches,
                                                                 data.total_steps, data.manifest)
    run = build_model(cfg, device, world, total_steps)
    model, optimizer, scaler, qat, qat_start, param_dtype = (run.model, run.optimizer, run.scaler, run.qat,
                                                             run.qat_start, run.param_dtype)
    autocast, qat_on, overflow_steps = run.autocast, False, 0  # overflow_steps: fp16 steps skipped (inf/NaN)
    counts, fpt = param_counts(mc), flops_per_token(mc)

    # ---- resume
    start_step, tokens_seen, train_time = 0, 0, 0.0
    resume_from = ckpt.latest_checkpoint(ckpt_root) if tc.resume == "auto" else \
        (None if tc.resume in ("none", "", None) else Path(tc.resume))
    if is_main:  # what really happens, before the first step
        if resume_from is not None:
            step0 = (ckpt.read_meta(resume_from) or {}).get("step", "?")
            print(f"train: resuming from step {step0} ({resume_from})", flush=True)
        elif tc.resume == "auto":
            print("train: starting from step 0: no checkpoint yet", flush=True)
        else:
            print(f"train: starting from step 0 (train.resume={tc.resume})", flush=True)
    if resume_from is not None:
        meta = ckpt.load_checkpoint(resume_from, model, optimizer, device)
        start_step, tokens_seen, train_time = meta["step"], meta["tokens_seen"], meta.get("train_time_s", 0.0)
        if scaler is not None and meta.get("loss_scaler"):
            scaler.load_state_dict(meta["loss_scaler"])
            overflow_steps = meta.get("overflow_steps", 0)
        if meta.get("data", {}).get("seed") != cfg.data.seed:
            raise ConfigError("data.seed differs from the checkpoint's: the resumed run would see other batches")

    logger = MetricsLogger(out, is_main, tc.tensorboard, purge_step=start_step + 1 if start_step else None)
    peak = peak_flops(device, tc.peak_tflops)
    logger.log({"kind": "start", "time": time.time(), "rank_count": world, "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else socket.gethostname(),
                "strategy": tc.strategy, "sharding_factor": tc.sharding_factor, "dtype": str(param_dtype or "fp32"),
                "params": counts, "flops_per_token": fpt, "flops_per_token_parts": flops_per_token_parts(mc),
                "attention": attention_kernel(mc.attention, mc.pos, device), "fused_loss": tc.fused_loss,
                "grad_accum": batches.grad_accum,
                "total_steps": total_steps, "start_step": start_step,
                "resumed_from": str(resume_from) if resume_from else None})

    def meta_for(step: int) -> dict[str, Any]:
        return {"tokens_seen": tokens_seen, "train_time_s": train_time + (time.time() - t_start),
                "config": cfg.to_dict(), "params": counts, "strategy": tc.strategy,
                "scheduler": {"name": cfg.optim.schedule, "step": step, "total_steps": total_steps,
                              "lr": lr_at(max(0, step - 1), total_steps, cfg.optim)},
                "data": {"seed": cfg.data.seed, "samples_seen": step * batches.global_batch,
                         "n_windows": batches.n_windows, "train_tokens": len(train_stream)},
                "loss_scaler": scaler.state_dict() if scaler is not None else None, "overflow_steps": overflow_steps,
                "qat": {**qat.to_dict(), "start_step": qat_start} if qat is not None else None}

    def run_eval(step: int) -> dict[str, Any]:
        results = {}
        for split, stream in val_streams.items():
            loss, n_tok = evaluate_stream(model, stream, mc.seq_len, tc.eval_tokens, tc.micro_batch, device, autocast)
            bpt = (manifest.get("val_bytes_per_token") or {}).get(split)
            rec = {"kind": "eval", "split": split, "step": step, "loss": loss,
                   "ppl": math.exp(min(loss, 50.0)), "bpb": bits_per_byte(loss, bpt), "tokens": n_tok}
            logger.log(rec)
            results[split] = rec
        return results

    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
    tokens_per_step = tc.global_batch_tokens
    show_bar = is_main and tc.progress and sys.stderr.isatty()
    bar = tqdm(total=total_steps, initial=start_step, disable=not show_bar, dynamic_ncols=True)
    print_lines = is_main and not show_bar  # no bar (a pipe, `make demo`): one line per log_every steps
    run_t0, interrupted_at = time.perf_counter(), None
    window_t, window_cpu, window_steps = time.perf_counter(), time.process_time(), 0
    evals: dict[str, Any] = {}
    last: dict[str, Any] = {}
    prefetcher = StepPrefetcher(batches, device, total_steps, tc.prefetch)
    async_ckpt = tc.async_checkpoint if tc.async_checkpoint is not None else device.type == "cuda"
    pending: ckpt.AsyncCheckpoint | None = None  # an asynchronous checkpoint still being written
    model.train()
    for step in range(start_step, total_steps):
        if _any_rank(bool(stop.signum), device):  # every rank stops before the same step
            interrupted_at = step
            break
        lr = lr_at(step, total_steps, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if qat is not None and step >= qat_start and not qat_on:  # also right after a resume inside the phase
            qat_on = precision.set_fake_quant(model, True) > 0
            logger.log({"kind": "qat", "step": step, **qat.to_dict()})
        loss_sum = torch.zeros((), device=device)
        micro = prefetcher.get(step)  # int64 on the device; step + 1 is being read meanwhile
        for m, x in enumerate(micro):
            set_gradient_sync(model, m == len(micro) - 1)
            with autocast():
                loss = model(x[:, :-1], x[:, 1:])
            scaled = loss / len(micro)
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            loss_sum += loss.detach()
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip and step on the true gradients
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.step(optimizer)  # skipped if any gradient is inf/NaN (on any rank)
            scaler.update()  # halves the scale after an overflow, doubles it after 2000 clean steps
            overflow_steps += scaler.get_scale() < scale
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        tokens_seen += tokens_per_step
        window_steps += 1

        if done % tc.log_every == 0 or done == total_steps:
            dist.all_reduce(loss_sum)  # sum over ranks of each rank's mean micro-batch loss sum
            loss_val = loss_sum.item() / (world * len(micro))
            gn = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            elapsed = time.perf_counter() - window_t
            tps = window_steps * tokens_per_step / elapsed
            mem = _gather_ints([peak_memory_bytes(device), *local_state_bytes(model, optimizer).values()], device)
            last = {"kind": "train", "step": done, "loss": loss_val, "lr": lr, "grad_norm": float(gn),
                    "tokens": tokens_seen, "tokens_per_s": tps, "tokens_per_s_per_device": tps / world,
                    "step_time_s": elapsed / window_steps, "mfu": mfu(tps / world, fpt, peak),
                    "cpu_time_per_step_s": (time.process_time() - window_cpu) / window_steps,
                    "epochs": batches.epochs_done(done), "strategy": tc.strategy,
                    "peak_mem_bytes_per_rank": [r[0] for r in mem],
                    "state_bytes_per_rank": [sum(r[1:]) for r in mem]}
            if scaler is not None:
                last.update(loss_scale=scaler.get_scale(), overflow_steps=overflow_steps)
            if qat is not None:
                last["qat"] = qat_on
            logger.log(last)
            if print_lines:
                per_step = (time.perf_counter() - run_t0) / (done - start_step)
                print(progress_line(last, total_steps, per_step * (total_steps - done)), flush=True)
            bar.set_postfix(loss=f"{loss_val:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
            window_t, window_cpu, window_steps = time.perf_counter(), time.process_time(), 0
        bar.update(1)

        # evaluation and checkpoints stay out of throughput: the window's clocks skip their time,
        # and the steps already in the window still count
        paused_t, paused_cpu = time.perf_counter(), time.process_time()
        if (tc.eval_every and done % tc.eval_every == 0) or done == total_steps:
            evals = run_eval(done)
        if tc.ckpt_every >= 0 and ((tc.ckpt_every and done % tc.ckpt_every == 0) or done == total_steps):
            if pending is not None:
                pending.wait()
                pending = None
            if async_ckpt:
                pending = ckpt.AsyncCheckpoint(ckpt_root, done, model, optimizer, meta_for(done), device,
                                               tc.keep_checkpoints)
            else:
                ckpt.save_checkpoint(ckpt_root, done, model, optimizer, meta_for(done), device, tc.keep_checkpoints)
        window_t += time.perf_counter() - paused_t
        window_cpu += time.process_time() - paused_cpu
        if kill_after and done == kill_after and is_main:
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    prefetcher.close()
    if pending is not None:
        pending.wait()
    if interrupted_at is not None:  # the checkpoints are complete: say where a rerun starts
        newest = ckpt.latest_checkpoint(ckpt_root)
        logger.close()
        return {"interrupted": {"step": interrupted_at,
                                "checkpoint_step": ckpt.read_meta(newest)["step"] if newest else None}}

    if not evals and val_streams:  # resumed at the very end: still report final numbers
        evals = run_eval(start_step)
    summary = {"steps": total_steps, "tokens_seen": tokens_seen, "train_time_s": train_time + time.time() - t_start,
               "world_size": world, "strategy": tc.strategy, "device": str(device),
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "params": counts, "flops_per_token": fpt, "last_train": last, "eval": evals}
    if is_main:
        (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")
    logger.close()
    return summary
