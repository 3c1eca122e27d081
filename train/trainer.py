"""The training loop: one plain loop, the same on 1 CPU process and on many GPUs.

Per optimizer step: set the scheduled lr; for each of ``grad_accum`` micro-batches run
forward/backward (gradient sync only on the last); clip the global gradient norm; AdamW
step. Around it: periodic metrics (loss, lr, tokens/s, MFU, per-rank memory),
evaluation on val_domain / val_general (loss, perplexity, bits per byte), and DCP
checkpoints. Everything a resumed run needs (weights, optimizer, step, RNG) is in the
checkpoint, and the data order is a function of (seed, step), so a resumed run
continues with the exact next batch.

A phased mixture (``mix.phases``: one training stream per phase) trains its phases in order
(``train/data.py``: ``phase_steps``, ``PhasedBatches``), logs a ``{"kind": "phase"}`` record where each
begins, and records the phase and the step inside it in every checkpoint. With ``model.init_from`` the
base's weights start a fresh optimizer and the schedule's warmup (re-warming; docs/training.md,
"Continued pretraining"), and a mixture tokenized with another tokenizer than the base's is refused.

The code follows torchtitan's split of its Trainer: ``open_data`` and ``build_model`` set the run up,
``Trainer.train_step`` is one optimizer step, ``Trainer.run`` the train loop, and the loop hands off to the
evaluator (``Trainer.evaluate``: eval records) and the checkpointer (``Trainer.resume``, ``Trainer.save``
with ``Trainer.checkpoint_meta``; ``train/checkpoint.py`` ``Checkpointer``) between steps. What the steps
change besides tensors is one ``TrainState`` (step, tokens seen, time, fp16 overflows, QAT on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
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

from core.workdir import Manifest
from core.workdir import read_manifest as read_mix_manifest
from mixtures.shards import TokenStream, manifest_dtype
from train import checkpoint as ckpt
from train import hf_import, precision
from train.config import Config, ConfigError
from train.data import PhasedBatches, StepBatches, StepPrefetcher, phase_steps
from train.evaluate import evaluate_stream
from train.interrupt import StopOnSignal, TrainingInterrupted
from train.metrics import MetricsLogger, ThroughputWindow, bits_per_byte, mfu, peak_flops
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
    """The fields of the mixture's manifest.json ({} without one), read by the one reader (core/workdir.py)."""
    try:
        manifest = read_mix_manifest(mix_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return manifest.as_read() if manifest is not None else {}


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
    batches: StepBatches | PhasedBatches
    total_steps: int
    manifest: dict[str, Any]  # the mixer's manifest.json (bytes per token of the held-out splits)
    phases: list[dict[str, Any]] | None = None  # a phased mixture: {name, start, steps, tokens} per phase
    decay_start: int | None = None  # optim.decay_on_last_phase: the last phase's first step

    @property
    def train_tokens(self) -> int:
        return sum(p["tokens"] for p in self.phases) if self.phases else len(self.train)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_base_tokenizer(cfg: Config, manifest: dict[str, Any]) -> None:
    """``model.init_from``: the mixture must be tokenized with the base's ``tokenizer.json`` (byte for byte:
    sha256), else its token ids would index the base's embeddings as other tokens. A ConfigError if not."""
    base = cfg.model.init_from
    if not base or not (Path(base) / "tokenizer.json").is_file():
        return  # a base without tokenizer files: nothing to compare with
    mix_tok = Path(cfg.data.dir) / "tokenizer.json"
    have = _sha256(mix_tok) if mix_tok.is_file() else manifest.get("tokenizer_sha256")
    want = _sha256(Path(base) / "tokenizer.json")
    if have != want:
        what = f"sha256 {have[:12]}" if have else "no tokenizer recorded"
        raise ConfigError(f"data.dir={cfg.data.dir}: the mixture's tokenizer ({what}) is not the tokenizer of "
                          f"model.init_from={base} (sha256 {want[:12]}): tokenize with the base's "
                          "(run config `tokenizer: {pretrained: BASE}`) and mix again")


def open_data(cfg: Config, rank: int, world: int) -> RunData:
    """Open the mixture ``cfg.data.dir`` (and take ``model.vocab_size`` from it when the config says 0);
    a missing or too small mixture, or a batch the ranks cannot split, is a ConfigError."""
    tc, mc = cfg.train, cfg.model
    if not cfg.data.dir:
        raise ConfigError("data.dir is not set: point it at a mixture directory (train/, val_domain/, ...)")
    manifest = read_manifest(cfg.data.dir)
    check_base_tokenizer(cfg, manifest)  # (before the vocabularies: another tokenizer is the real mistake)
    mix = Manifest.from_dict(manifest)  # (typed: the "vocab_size 0 is the mixture's" rule is core.workdir's)
    vocab = mix.model_vocab_size(mc.vocab_size)
    if vocab <= 0:
        raise ConfigError("model.vocab_size is 0 but the mixture's manifest.json has no vocab_size")
    if vocab != mc.vocab_size:
        cfg.model = mc = dataclasses.replace(mc, vocab_size=vocab)
    if mix.vocab_size > mc.vocab_size:
        raise ConfigError(f"mixture vocab_size {mix.vocab_size} > model.vocab_size {mc.vocab_size}")
    if tc.global_batch_tokens % mc.seq_len:
        raise ConfigError(f"global_batch_tokens={tc.global_batch_tokens} is not a multiple of seq_len={mc.seq_len}")
    phases = manifest.get("phases") or None
    if cfg.optim.decay_on_last_phase and not phases:
        raise ConfigError(f"optim.decay_on_last_phase: the mixture {cfg.data.dir} has no phases (mix.phases)")
    try:  # a missing or too small mixture, a batch the ranks cannot split: the config's to fix
        dtype = manifest_dtype(manifest)  # uint16 or uint32 shards: a 128k vocabulary needs the latter
        val_streams = {s: TokenStream(Path(cfg.data.dir) / s, dtype=dtype) for s in cfg.data.val_splits
                       if (Path(cfg.data.dir) / s).is_dir()}
        batch = (tc.global_batch_tokens // mc.seq_len, rank, world, tc.micro_batch, cfg.data.seed)
        if phases:  # one stream per phase, in order; data.train_split does not apply
            streams = [TokenStream(Path(cfg.data.dir) / p["dir"], dtype=dtype) for p in phases]
            steps = phase_steps([len(st) for st in streams], tc.global_batch_tokens, tc.steps)
            batches = PhasedBatches([StepBatches(st, mc.seq_len, *batch, phase=i) for i, st in enumerate(streams)],
                                    steps, [p["name"] for p in phases])
            train_stream = streams[0]
        else:
            train_stream = TokenStream(Path(cfg.data.dir) / cfg.data.train_split, dtype=dtype)
            batches = StepBatches(train_stream, mc.seq_len, *batch)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"data.dir={cfg.data.dir}: {exc}") from exc
    if not phases:
        total_steps = tc.steps if tc.steps > 0 else math.ceil(len(train_stream) / tc.global_batch_tokens)
        return RunData(train_stream, val_streams, batches, total_steps, manifest)
    table = [{"phase": i, "name": p["name"], "start": start, "steps": n, "tokens": len(st),
              "domain_share": p.get("domain_share_actual")}
             for i, (p, start, n, st) in enumerate(zip(phases, batches.starts, batches.steps, streams))]
    return RunData(train_stream, val_streams, batches, batches.total_steps, manifest, table,
                   batches.starts[-1] if cfg.optim.decay_on_last_phase else None)


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


def build_model(cfg: Config, device: torch.device, world: int, total_steps: int,
                meta_init: bool | None = None) -> RunModel:
    """Build the plain model, then apply number formats (fp8, QAT), activation checkpointing, compile and
    data parallelism (train/parallel.py), torchtitan-style; then the optimizer and fp16's loss scaler.

    Continued pretraining (``model.init_from``) under a sharded strategy (fsdp, hsdp, cpu_offload) builds the
    model on the ``meta`` device (no memory, no random init), shards it, materializes only this rank's shards
    with ``to_empty``, recomputes the position tables (``Transformer.init_buffers``) and streams the base's
    rows into them (train/hf_import.py): a 7B base never exists whole on a rank. ``meta_init``: force that path
    on (True) or off (False; the whole model initialized on every rank first); None = as just said."""
    tc, mc = cfg.train, cfg.model
    # train.dtype -> its number format (train/precision.py FORMATS; auto: bf16 on CUDA, else fp32): the dtype
    # the model computes in. fp16: + dynamic loss scaling; fp8: fp8 matmuls in the blocks, bf16 elsewhere.
    if tc.dtype not in precision.names("train"):
        raise ConfigError(f"train.dtype must be one of {precision.names('train')}, got {tc.dtype!r}")
    fmt = precision.trainer_format(tc.dtype, device.type)
    if fmt.name == "fp8" and (why := precision.fp8_unsupported(device)):
        raise ConfigError(why)
    try:
        qat = precision.QATSettings.from_config(tc.qat) if tc.qat is not None else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if qat is not None and fmt.name == "fp8":
        raise ConfigError("train.qat and train.dtype=fp8 do not combine: QAT fake-quantizes the linears fp8 replaces")
    param_dtype = getattr(torch, fmt.param_dtype) if fmt.param_dtype else None  # None: fp32, no cast
    # Continued pretraining: the base's weights streamed tensor by tensor (train/hf_import.py); under FSDP2 after
    # sharding, so that each rank reads only its own rows of each tensor, into a model built on the meta device.
    sharded = tc.strategy in ("fsdp", "hsdp", "cpu_offload")
    on_meta = bool(mc.init_from) and sharded if meta_init is None else meta_init
    if on_meta and not (mc.init_from and sharded):
        raise ValueError("meta_init needs model.init_from and a sharded strategy (fsdp, hsdp, cpu_offload)")
    torch.manual_seed(tc.seed)  # identical init on every rank (FSDP shards it, DDP checks it)
    with torch.device("meta" if on_meta else device):
        model = Transformer(mc, fused_loss=tc.fused_loss)
    if mc.init_from and not sharded:
        hf_import.load_into(model, mc.init_from)
    if fmt.name == "fp8":
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
    if on_meta:  # this rank's shards only (CPU offload keeps them in host memory), then the buffers
        model.to_empty(device=torch.device("cpu") if tc.strategy == "cpu_offload" else device)
        model.init_buffers(device)
    if mc.init_from and sharded:
        hf_import.load_into(model, mc.init_from)
    optimizer = build_optimizer(model, cfg, device)
    scaler = precision.loss_scaler(fmt.name, device.type, tc.loss_scale)  # fp16 only, else None
    # DDP (and no wrapper) keep fp32 weights, so bf16 there means autocast; FSDP2 casts through its
    # MixedPrecisionPolicy.
    use_autocast = tc.strategy in ("ddp", "none") and param_dtype is not None

    def autocast():
        return torch.autocast(device.type, dtype=param_dtype) if use_autocast else contextlib.nullcontext()

    return RunModel(model, optimizer, scaler, qat, qat_start, param_dtype, autocast)


def _phase_plan(phases: list[dict[str, Any]] | None) -> list[tuple[str, int, int]] | None:
    """What must not change for an exact resume of a phased run: each phase's name, steps and tokens."""
    return [(p["name"], int(p["steps"]), int(p["tokens"])) for p in phases] if phases else None


def _phase_position(batches: PhasedBatches, phases: list[dict[str, Any]], step: int) -> dict[str, Any]:
    """A checkpoint's place in a phased run after ``step`` steps: the phase of the next step and the steps
    done inside it (the end of a phase is the start of the next one)."""
    p, local = batches.locate(step) if step < batches.total_steps else (len(phases) - 1, phases[-1]["steps"])
    return {"phases": phases, "phase": p, "phase_name": phases[p]["name"], "phase_step": local}


def train(cfg: Config, stop: StopOnSignal | None = None) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the final summary (also in OUT/summary.json).
    ``stop`` (installed here when not given) turns SIGINT/SIGTERM into a stop between two steps:
    :class:`TrainingInterrupted` on every rank, after the last checkpoint is complete."""
    own = stop is None
    stop = stop or StopOnSignal().install()
    rank, world, device = init_distributed(cfg.train.device, cfg.train.timeout_s)
    try:
        summary = Trainer(cfg, rank, world, device, stop).run()
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


@dataclasses.dataclass
class TrainState:
    """What the loop changes from step to step besides the tensors (torchtitan's ``TrainState``); all but
    ``qat_on`` go into the checkpoints' meta.json and come back on a resume."""

    step: int = 0  # optimizer steps done
    tokens_seen: int = 0
    train_time_s: float = 0.0  # the training time of the runs this one resumes
    overflow_steps: int = 0  # fp16: steps skipped because a gradient was inf/NaN
    qat_on: bool = False  # fake quantization is on (the QAT phase has begun)


@dataclasses.dataclass
class StepResult:
    """One optimizer step's loss and gradient norm, left on the device until a log step reads them."""

    loss_sum: torch.Tensor  # this rank's micro-batch losses, summed
    micro_batches: int
    grad_norm: torch.Tensor

    def mean_loss(self, world: int) -> float:
        """The mean micro-batch loss over all ranks (collective)."""
        dist.all_reduce(self.loss_sum)  # sum over ranks of each rank's micro-batch loss sum
        return self.loss_sum.item() / (world * self.micro_batches)

    def full_grad_norm(self) -> torch.Tensor:
        """The global gradient norm (a DTensor under FSDP2: its full value)."""
        return self.grad_norm.full_tensor() if hasattr(self.grad_norm, "full_tensor") else self.grad_norm


class Progress:
    """The console side of the loop (rank 0): a tqdm bar on a terminal, else one line per ``train`` record
    (a pipe, ``make demo``)."""

    def __init__(self, enabled: bool, is_main: bool, start_step: int, total_steps: int):
        show_bar = is_main and enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not show_bar, dynamic_ncols=True)
        self.print_lines = is_main and not show_bar
        self.start_step, self.total_steps, self.t0 = start_step, total_steps, time.perf_counter()

    def train_record(self, rec: dict[str, Any]) -> None:
        if self.print_lines:
            per_step = (time.perf_counter() - self.t0) / (rec["step"] - self.start_step)
            print(progress_line(rec, self.total_steps, per_step * (self.total_steps - rec["step"])), flush=True)
        self.bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:,.0f}", refresh=False)


class Trainer:
    """One rank's training run, split the way torchtitan splits its ``Trainer``:

    - ``__init__`` sets the run up: the output directory, the data (``open_data``), the model with its
      optimizer and number formats (``build_model``), the checkpointer, ``resume`` and the metrics logger;
    - ``train_step``: one optimizer step (micro-batches, gradient sync, fp16 loss scaling, clipping);
    - ``run``: the train loop (stop signal, phases, lr, QAT switch, logging cadence, kill hook), handing off
      to the evaluator (``evaluate``) and the checkpointer (``save``, ``checkpoint_meta``) between steps.
    """

    def __init__(self, cfg: Config, rank: int, world: int, device: torch.device, stop: StopOnSignal):
        self.t_start = time.time()
        self.cfg, self.world, self.device, self.stop, self.is_main = cfg, world, device, stop, rank == 0
        tc = cfg.train
        self.out = Path(tc.out_dir)
        self.checkpointer = ckpt.Checkpointer(self.out / "checkpoints", device, tc.keep_checkpoints,
                                              tc.async_checkpoint)
        if device.type == "cpu" and tc.cpu_threads > 0:
            torch.set_num_threads(tc.cpu_threads)
        self.prepare_out_dir()
        self.data = open_data(cfg, rank, world)  # (may set cfg.model.vocab_size from the mixture)
        self.parts = build_model(cfg, device, world, self.data.total_steps)
        self.counts, self.fpt = param_counts(cfg.model), flops_per_token(cfg.model)
        self.state = TrainState()
        self.resumed_from = self.resume()
        self.start_step = self.state.step
        self.logger = MetricsLogger(self.out, self.is_main, tc.tensorboard,
                                    purge_step=self.start_step + 1 if self.start_step else None)
        self.peak = peak_flops(device, tc.peak_tflops)  # dense bf16 FLOP/s for MFU (None: no MFU)
        self.log_start()

    # ---- setup

    def prepare_out_dir(self) -> None:
        """Rank 0: OUT/ exists, a crashed save's ``.tmp`` is gone, OUT/config.yaml is the config as given."""
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt.remove_partial(self.checkpointer.root)
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False),
                                                  encoding="utf-8")
        dist.barrier()

    def resume(self) -> Path | None:
        """The checkpointer hand-off before the first step: the checkpoint ``train.resume`` picks (said on
        rank 0), its weights, optimizer, RNG, loss scaler and :class:`TrainState` restored; a checkpoint whose
        data order differs from this run's is a ConfigError. Returns its path (None: from step 0)."""
        tc, p = self.cfg.train, self.parts
        path = self.checkpointer.resume_path(tc.resume)
        if self.is_main:  # what really happens, before the first step
            if path is not None:
                print(f"train: resuming from step {(ckpt.read_meta(path) or {}).get('step', '?')} ({path})",
                      flush=True)
            elif tc.resume == "auto":
                print("train: starting from step 0: no checkpoint yet", flush=True)
            else:
                print(f"train: starting from step 0 (train.resume={tc.resume})", flush=True)
        if path is None:
            return None
        meta = self.checkpointer.load(path, p.model, p.optimizer)
        self.state = TrainState(meta["step"], meta["tokens_seen"], meta.get("train_time_s", 0.0))
        if p.scaler is not None and meta.get("loss_scaler"):
            p.scaler.load_state_dict(meta["loss_scaler"])
            self.state.overflow_steps = meta.get("overflow_steps", 0)
        self.check_data_order(meta.get("data", {}), path)
        return path

    def check_data_order(self, ckpt_data: dict[str, Any], path: Path) -> None:
        """A resumed run sees the batches the checkpointed run would have: same seed, same phase plan."""
        if ckpt_data.get("seed") != self.cfg.data.seed:
            raise ConfigError("data.seed differs from the checkpoint's: the resumed run would see other batches")
        then, now = _phase_plan(ckpt_data.get("phases")), _phase_plan(self.data.phases)
        if then != now:
            raise ConfigError(f"the mixture's phases or train.steps changed since the checkpoint {path} "
                              f"(then {then}, now {now}): the resumed run would see other batches")

    def log_start(self) -> None:
        tc, mc, device = self.cfg.train, self.cfg.model, self.device
        self.logger.log({
            "kind": "start", "time": time.time(), "rank_count": self.world, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else socket.gethostname(),
            "strategy": tc.strategy, "sharding_factor": tc.sharding_factor,
            "dtype": str(self.parts.param_dtype or "fp32"), "params": self.counts, "flops_per_token": self.fpt,
            "flops_per_token_parts": flops_per_token_parts(mc),
            "attention": attention_kernel(mc.attention, mc.pos, device), "fused_loss": tc.fused_loss,
            "grad_accum": self.data.batches.grad_accum, "total_steps": self.data.total_steps,
            "start_step": self.start_step, "resumed_from": str(self.resumed_from) if self.resumed_from else None,
            **({"phases": self.data.phases} if self.data.phases else {})})

    # ---- the train loop

    def run(self) -> dict[str, Any]:
        """Train from the start (or resumed) step to the last: the summary (also OUT/summary.json), or
        ``{"interrupted": ...}`` when the stop signal came, once the checkpoints in flight are complete."""
        tc, total = self.cfg.train, self.data.total_steps
        kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
        progress = Progress(tc.progress, self.is_main, self.start_step, total)
        window = ThroughputWindow()
        prefetcher = StepPrefetcher(self.data.batches, self.device, total, tc.prefetch)
        interrupted_at, last, evals = None, {}, {}
        self.parts.model.train()
        for step in range(self.start_step, total):
            if _any_rank(bool(self.stop.signum), self.device):  # every rank stops before the same step
                interrupted_at = step
                break
            self.phase_record(step)
            lr = self.set_lr(step)
            self.switch_qat(step)
            result = self.train_step(prefetcher.get(step))  # step + 1 is being read meanwhile
            done = self.state.step = step + 1
            self.state.tokens_seen += tc.global_batch_tokens
            window.steps += 1
            if done % tc.log_every == 0 or done == total:
                last = self.log_train(done, lr, result, window)
                progress.train_record(last)
                window.reset()
            progress.bar.update(1)
            with window.paused():  # evaluation and checkpoints stay out of throughput
                if (tc.eval_every and done % tc.eval_every == 0) or done == total:
                    evals = self.evaluate(done)
                if tc.ckpt_every >= 0 and ((tc.ckpt_every and done % tc.ckpt_every == 0) or done == total):
                    self.save(done)
            if kill_after and done == kill_after and self.is_main:  # KILL_ENV: the crash tests' hook
                os.kill(os.getpid(), signal.SIGKILL)
        progress.bar.close()
        prefetcher.close()
        self.checkpointer.wait()
        if interrupted_at is not None:  # the checkpoints are complete: say where a rerun starts
            checkpoint_step = self.checkpointer.latest_step()
            self.logger.close()
            return {"interrupted": {"step": interrupted_at, "checkpoint_step": checkpoint_step}}
        if not evals and self.data.val:  # resumed at the very end: still report final numbers
            evals = self.evaluate(self.start_step)
        return self.finish(last, evals)

    def phase_record(self, step: int) -> None:
        """A ``phase`` metrics record where phase p begins (its first step is ``step + 1`` in train records'
        numbering), and on a resume inside a phase."""
        phases = self.data.phases
        if not phases:
            return
        p, local = self.data.batches.locate(step)
        if local == 0 or step == self.start_step:
            rec = {"kind": "phase", "step": step, **phases[p],
                   "lr": lr_at(step, self.data.total_steps, self.cfg.optim, self.data.decay_start)}
            if local:
                rec["resumed_at_phase_step"] = local
            self.logger.log(rec)
            if self.is_main:
                print(f"train: phase {p + 1}/{len(phases)} {phases[p]['name']}: steps "
                      f"{phases[p]['start'] + 1}-{phases[p]['start'] + phases[p]['steps']}"
                      f"{f' (resumed at its step {local})' if local else ''}", flush=True)

    def set_lr(self, step: int) -> float:
        lr = lr_at(step, self.data.total_steps, self.cfg.optim, self.data.decay_start)
        for group in self.parts.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def switch_qat(self, step: int) -> None:
        """Fake quantization on from the QAT phase's first step (also right after a resume inside the phase)."""
        p = self.parts
        if p.qat is not None and step >= p.qat_start and not self.state.qat_on:
            self.state.qat_on = precision.set_fake_quant(p.model, True) > 0
            self.logger.log({"kind": "qat", "step": step, **p.qat.to_dict()})

    def train_step(self, micro: list[torch.Tensor]) -> StepResult:
        """One optimizer step on this rank's micro-batches: forward/backward on each (gradient sync only on
        the last), fp16's loss scaling, global gradient-norm clipping, the AdamW step."""
        model, optimizer, scaler = self.parts.model, self.parts.optimizer, self.parts.scaler
        loss_sum = torch.zeros((), device=self.device)
        for m, x in enumerate(micro):
            set_gradient_sync(model, m == len(micro) - 1)
            with self.parts.autocast():
                loss = model(x[:, :-1], x[:, 1:])
            scaled = loss / len(micro)
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            loss_sum += loss.detach()
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip and step on the true gradients
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.optim.grad_clip or float("inf"))
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.step(optimizer)  # skipped if any gradient is inf/NaN (on any rank)
            scaler.update()  # halves the scale after an overflow, doubles it after 2000 clean steps
            self.state.overflow_steps += scaler.get_scale() < scale
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return StepResult(loss_sum, len(micro), grad_norm)

    def log_train(self, done: int, lr: float, result: StepResult, window: ThroughputWindow) -> dict[str, Any]:
        """The ``train`` metrics record after ``done`` steps (collective: loss, gradient norm and per-rank
        memory are gathered from every rank); returns it."""
        tc, world, p, batches = self.cfg.train, self.world, self.parts, self.data.batches
        loss = result.mean_loss(world)
        grad_norm = result.full_grad_norm()
        elapsed = time.perf_counter() - window.t
        tps = window.steps * tc.global_batch_tokens / elapsed
        mem = _gather_ints([peak_memory_bytes(self.device), *local_state_bytes(p.model, p.optimizer).values()],
                           self.device)
        rec = {"kind": "train", "step": done, "loss": loss, "lr": lr, "grad_norm": float(grad_norm),
               "tokens": self.state.tokens_seen, "tokens_per_s": tps, "tokens_per_s_per_device": tps / world,
               "step_time_s": elapsed / window.steps, "mfu": mfu(tps / world, self.fpt, self.peak),
               "cpu_time_per_step_s": (time.process_time() - window.cpu) / window.steps,
               "epochs": batches.epochs_done(done), "strategy": tc.strategy,
               **({"phase": batches.locate(done - 1)[0]} if self.data.phases else {}),
               "peak_mem_bytes_per_rank": [r[0] for r in mem], "state_bytes_per_rank": [sum(r[1:]) for r in mem]}
        if p.scaler is not None:
            rec.update(loss_scale=p.scaler.get_scale(), overflow_steps=self.state.overflow_steps)
        if p.qat is not None:
            rec["qat"] = self.state.qat_on
        self.logger.log(rec)
        return rec

    # ---- hand-offs: the evaluator, the checkpointer, the summary

    def evaluate(self, step: int) -> dict[str, Any]:
        """An ``eval`` record per held-out split (loss, perplexity, bits per byte), logged; by split."""
        tc, p = self.cfg.train, self.parts
        bytes_per_token = self.data.manifest.get("val_bytes_per_token") or {}
        results = {}
        for split, stream in self.data.val.items():
            loss, n_tok = evaluate_stream(p.model, stream, self.cfg.model.seq_len, tc.eval_tokens, tc.micro_batch,
                                          self.device, p.autocast)
            rec = {"kind": "eval", "split": split, "step": step, "loss": loss, "ppl": math.exp(min(loss, 50.0)),
                   "bpb": bits_per_byte(loss, bytes_per_token.get(split)), "tokens": n_tok}
            self.logger.log(rec)
            results[split] = rec
        return results

    def save(self, step: int) -> None:
        """Checkpoint after ``step`` steps (collective; asynchronous on CUDA unless train.async_checkpoint)."""
        p = self.parts
        self.checkpointer.save(step, p.model, p.optimizer, lambda: self.checkpoint_meta(step))

    def checkpoint_meta(self, step: int) -> dict[str, Any]:
        """What a checkpoint keeps besides tensors: everything ``resume`` restores and checks."""
        cfg, s, p, data = self.cfg, self.state, self.parts, self.data
        total, decay_start = data.total_steps, data.decay_start
        return {"tokens_seen": s.tokens_seen, "train_time_s": s.train_time_s + (time.time() - self.t_start),
                "config": cfg.to_dict(), "params": self.counts, "strategy": cfg.train.strategy,
                "scheduler": {"name": cfg.optim.schedule, "step": step, "total_steps": total,
                              "lr": lr_at(max(0, step - 1), total, cfg.optim, decay_start),
                              **({"decay_start": decay_start} if decay_start is not None else {})},
                "data": {"seed": cfg.data.seed, "samples_seen": step * data.batches.global_batch,
                         "n_windows": data.batches.n_windows, "train_tokens": data.train_tokens,
                         **(_phase_position(data.batches, data.phases, step) if data.phases else {})},
                "loss_scaler": p.scaler.state_dict() if p.scaler is not None else None,
                "overflow_steps": s.overflow_steps,
                "qat": {**p.qat.to_dict(), "start_step": p.qat_start} if p.qat is not None else None}

    def finish(self, last: dict[str, Any], evals: dict[str, Any]) -> dict[str, Any]:
        """The run's summary (rank 0 writes OUT/summary.json); closes the metrics logger."""
        tc, device = self.cfg.train, self.device
        summary = {"steps": self.data.total_steps, "tokens_seen": self.state.tokens_seen,
                   "train_time_s": self.state.train_time_s + time.time() - self.t_start,
                   "world_size": self.world, "strategy": tc.strategy, "device": str(device),
                   "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                   "params": self.counts, "flops_per_token": self.fpt, "last_train": last, "eval": evals,
                   **({"phases": self.data.phases} if self.data.phases else {})}
        if self.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")
        self.logger.close()
        return summary
