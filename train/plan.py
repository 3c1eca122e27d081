"""Will it fit, how many tokens, how many FLOPs, how many days: a training plan from first principles.

    python -m train.plan --params 1.3e9 --gpu a100-80gb --gpus 8
    python -m train.plan --model-config configs/train/llama1b.yaml --gpu h100-80gb --gpus 8 --json
    python -m train.plan --gpu-hours 1.3e6 --gpu a100-40gb --gpus 512      # the inverse question
    python -m train.plan --init-from BASE_DIR --tokens 2e10 --gpu h100-80gb --gpus 8   # continued pretraining

Pure arithmetic: no torch here (``--model-config`` imports ``train.model`` lazily for its exact
parameter count). Every memory number is in bytes internally and printed in GB = 1e9 bytes, the
unit of the ZeRO paper; GPU capacities are also given in GiB = 2**30 bytes. The formulas, their
sources and a check against published runs are in docs/planning.md.

Memory per GPU = weights + gradients + optimizer states (each divided by the sharding degree
of the strategy; Rajbhandari et al. 2020, Fig. 1) + gathered parameter buffers (sharded
strategies) + activations (Korthikanti et al. 2022, Eq. 1-2). Compute = 6 N D (Kaplan et al.
2020), tokens D = 20 N (Hoffmann et al. 2022), time = compute / (GPUs x peak x MFU).

Continued pretraining (``--init-from DIR``, a Hugging Face model directory as ``model.init_from`` takes it):
the shape and exact parameter count come from ``DIR/config.json`` alone (train/hf_import.py reads it; no
weights are needed), memory is that of training the base's size, and the token budget is the one given
(``--tokens``), not 20 x N: a continued run spends a few percent of what training the base took.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.cli import fail, refuse_unknown_options
from core.config import read_yaml
from core.model_config import ModelConfig, param_counts
from core.workdir import MANIFEST, read_manifest, read_metrics, takes_mixture_vocab
from mixtures.recipe import DEFAULT_DOMAIN_SHARE as DOMAIN_FRACTION  # 0.51, BloombergGPT: defined once
from mixtures.recipe import DEFAULT_TOKENS_PER_PARAM as TOKENS_PER_PARAM  # 20, Chinchilla: defined once
from mixtures.recipe import chinchilla_tokens
from train.gpus import GB, GIB, GPU, GPUS, get_gpu
from train.precision import FLOAT_FORMATS, FORMATS, INT_FORMATS, NumberFormat, format_for, names, resolve

# ----------------------------------------------------------------------------- constants

FLOPS_PER_PARAM_TOKEN = 6.0    # forward 2N + backward 4N per token (Kaplan et al. 2020, Sec. 2.1)
DEFAULT_MFU = 0.40             # a good, not heroic, dense-transformer MFU (PaLM 46%, Chowdhery et al. 2022)
PFS_DAY = 1e15 * 86400         # FLOPs in one petaflop/s-day (Brown et al. 2020, GPT-3 Table D.1)
HEADROOM = 0.10                # share of GPU memory kept free: CUDA context, NCCL buffers, fragmentation
ASPECT_RATIO = 128             # d_model / n_layer used to guess a shape from N (GPT-3 6.7B-175B, LLaMA-7B)
HEAD_DIM = 128                 # head size used to guess n_head (GPT-3 >= 6.7B, LLaMA)
DEFAULT_VOCAB = 32000          # LLaMA's vocabulary, when only --params is given
DEFAULT_SEQ_LEN = 2048
RULE_OF_THUMB_ACT_BYTES = 8    # "~24 B/param to train" = 16 B fp32 Adam states + ~8 B activations

# Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"), Eq. 1:
# activations of one transformer layer in 16-bit = s*b*h*(34 + 5*a*s/h) bytes (no parallelism);
# with full recomputation only the layer input is kept: 2*s*b*h bytes (Sec. 4.1).
KORTHIKANTI_SBH = 34
KORTHIKANTI_ATTN = 5
RECOMPUTE_SBH = 2
LOGIT_BYTES = 4                # the loss upcasts the (s, b, vocab) logits to fp32

# The trainer's own blocks (train/model.py: RMSNorm in fp32, RoPE, SDPA, SwiGLU, no dropout) save
# s*b*(per_h*d_model + per_f*ffn_hidden) bytes per layer for backward. Counted with
# torch.autograd.graph.saved_tensors_hooks (benchmarks/plan_activations.py; pinned by
# tests/test_plan.py). SDPA (flash / memory-efficient kernels) keeps no s^2 scores.
TRAINER_ACT_BYTES = {
    "bf16": (24, 8),       # FSDP2 MixedPrecisionPolicy: bf16 parameters and activations
    "autocast": (28, 8),   # DDP + torch.autocast: fp32 residual stream and norm inputs (fused q|k|v, gate|up:
                           # one bf16 copy of each norm output where unfused projections took three and two)
    "fp32": (40, 16),
}
ACTIVATION_FORMULAS = ("korthikanti", "korthikanti-flash", "trainer")
ACTIVATION_LABELS = {
    "korthikanti": "Korthikanti et al. 2022 Eq. 1, eager attention (s^2 scores kept)",
    "korthikanti-flash": "Korthikanti et al. 2022 Eq. 1 without the 5as/h score term (flash attention)",
    "trainer": "the trainer's blocks (train/model.py), bytes saved for backward as measured",
}


OPTIMIZERS = ("adam", "adam8bit")

# name -> (what is sharded, trainer strategy or None when the trainer has no such mode)
STRATEGIES = {
    "ddp": "nothing sharded, every GPU holds everything",
    "zero1": "optimizer states sharded (ZeRO stage 1)",
    "zero2": "optimizer states + gradients sharded (ZeRO stage 2)",
    "fsdp": "full shard: + parameters (ZeRO stage 3)",
    "hsdp": "full shard inside groups of sharding_factor GPUs, replicated across groups",
}
# What train/parallel.py implements (``train.strategy``): CPU offload is its own strategy,
# ``cpu_offload`` = ``fsdp`` (full shard over all ranks) + FSDP2's CPUOffloadPolicy.
TRAINER_STRATEGIES = {("ddp", False): "ddp", ("hsdp", False): "hsdp", ("fsdp", False): "fsdp",
                      ("fsdp", True): "cpu_offload"}


# ----------------------------------------------------------------------------- model shape

@dataclass
class ModelShape:
    """What the memory formulas need. ``n_params`` is Chinchilla's N (all parameters, tied once)."""

    n_params: float
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    vocab_size: int
    seq_len: int
    non_embedding: float
    source: str
    ffn_hidden: int = 0   # MLP width; 0 = the Llama SwiGLU rule, 8/3 d_model rounded up to 256

    def __post_init__(self) -> None:
        if not self.ffn_hidden:  # train/model.py llama_ffn_hidden, without importing torch
            self.ffn_hidden = 256 * ((int(8 * self.d_model / 3) + 255) // 256)

    @property
    def unit_params(self) -> float:
        """Parameters of the largest FSDP unit: one transformer block or the vocabulary matrix."""
        return max(self.non_embedding / self.n_layer, self.vocab_size * self.d_model)


def infer_shape(n_params: float, vocab_size: int = DEFAULT_VOCAB, seq_len: int = DEFAULT_SEQ_LEN,
                n_layer: int | None = None, d_model: int | None = None,
                n_head: int | None = None) -> ModelShape:
    """A plausible transformer shape for ``n_params`` when only the count is known.

    Solves ``N = 12 * L * d**2 + vocab * d`` (Kaplan et al. 2020, Eq. 2.1, tied embeddings) with
    ``d = 128 * L`` unless ``n_layer`` or ``d_model`` is given; ``d`` is rounded to a multiple of
    256 and ``n_head = d / 128``. Only the activation and buffer estimates depend on this guess.
    """
    if n_params <= 0:
        raise ValueError(f"n_params must be positive, got {n_params}")
    guessed = d_model is None or n_layer is None
    if d_model is None:
        d = (n_params / (12 * ASPECT_RATIO**2)) ** (1 / 3) * ASPECT_RATIO  # first guess, no embeddings
        for _ in range(20):  # fixed point on the embedding share
            body = max(n_params - vocab_size * d, 0.5 * n_params)
            if n_layer:
                d = math.sqrt(body / (12 * n_layer))
            else:
                d = (body / (12 * ASPECT_RATIO**2)) ** (1 / 3) * ASPECT_RATIO
        d_model = max(HEAD_DIM, int(round(d / (2 * HEAD_DIM))) * 2 * HEAD_DIM)
    body = max(n_params - vocab_size * d_model, 0.5 * n_params)
    if n_layer is None:
        n_layer = max(1, int(round(body / (12 * d_model**2))))
    if n_head is None:
        n_head = max(1, d_model // HEAD_DIM)
    return ModelShape(float(n_params), n_layer, d_model, n_head, n_head, vocab_size, seq_len, float(body),
                      "--params (shape guessed: d_model = 128 x n_layer)" if guessed else "--params")


def shape_from_config(path: str | Path, vocab_size: int | None = None) -> tuple[ModelShape, dict[str, Any]]:
    """The trainer's own model (``model:`` section) with its exact parameter count, plus the
    ``train:`` section of the same YAML (for its micro-batch).

    ``vocab_size: 0`` in a trainer config means "the mixture's manifest.json vocab_size": we read
    ``data.dir``/manifest.json when it exists, else use ``vocab_size`` (``--vocab-size``), else
    LLaMA's 32000, and say which in ``source``. An explicit ``vocab_size`` always wins.
    """
    import dataclasses

    cfg = ModelConfig.from_yaml(path)
    doc = read_yaml(path)
    source = f"config {path}"
    if vocab_size:
        cfg, source = dataclasses.replace(cfg, vocab_size=vocab_size), f"{source} (vocab from --vocab-size)"
    elif takes_mixture_vocab(cfg.vocab_size):
        mix_dir = Path((doc.get("data") or {}).get("dir") or "/nonexistent")
        manifest = mix_dir / MANIFEST
        found = read_manifest(mix_dir)
        if found is not None:
            vocab, why = found.model_vocab_size(cfg.vocab_size), f"vocab from {manifest}"
        else:
            vocab, why = DEFAULT_VOCAB, f"vocab_size 0 and no {manifest}: assumed {DEFAULT_VOCAB}"
        cfg, source = dataclasses.replace(cfg, vocab_size=vocab), f"{source} ({why})"
    counts = param_counts(cfg)
    shape = ModelShape(float(counts["total"]), cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head,
                       cfg.vocab_size, cfg.seq_len, float(counts["non_embedding"]), source, cfg.ffn_hidden)
    return shape, doc.get("train") or {}


def shape_from_base(model_dir: str | Path, seq_len: int | None = None) -> tuple[ModelShape, dict[str, Any]]:
    """The shape and exact parameter count of the Hugging Face base in ``model_dir`` as the trainer would
    build it with ``model.init_from`` (``DIR/config.json`` only; ``seq_len``: the run's, default
    ``min(2048, max_position_embeddings)``), and what the plan says of the base (name, family, class).
    A ``ConfigError`` (one line) for a missing or unsupported base."""
    from train.hf_import import model_config_from_hf, read_hf_config
    from train.model_card import base_model_name

    cfg = model_config_from_hf(model_dir, {"seq_len": seq_len} if seq_len else {})
    hf = read_hf_config(model_dir)
    counts = param_counts(cfg)
    name = base_model_name(hf, model_dir)
    base = {"name": name, "model_type": hf["model_type"], "architectures": hf.get("architectures") or [],
            "max_position_embeddings": hf.get("max_position_embeddings"),
            "tie_embeddings": cfg.tie_embeddings, "qkv_bias": cfg.qkv_bias,
            "rope_scaling": (cfg.rope_scaling or {}).get("rope_type")}
    shape = ModelShape(float(counts["total"]), cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head, cfg.vocab_size,
                       cfg.seq_len, float(counts["non_embedding"]), f"base {name} ({hf['model_type']}, config.json)",
                       cfg.ffn_hidden)
    return shape, base


# ----------------------------------------------------------------------------- memory

def precision_format(precision: str) -> NumberFormat:
    """The number format a ``--precision`` name or alias means (train/precision.py ``FORMATS``), checked to be
    one the planner knows: training bytes, inference bytes, or both."""
    try:
        return format_for("plan", precision)
    except ValueError:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(names('plan'))}") from None


def model_state_bytes(n_params: float, precision: str = "bf16",
                      optimizer: str = "adam") -> dict[str, float]:
    """Unsharded weights, gradients and optimizer states in bytes (ZeRO's 2N + 2N + K N); an inference
    format: its weights only."""
    f = precision_format(precision)
    if f.training is None:
        return {"weights": n_params * f.inference.weight_bytes, "gradients": 0.0, "optimizer": 0.0}
    t = f.training
    return {"weights": n_params * t.weights, "gradients": n_params * t.grads,
            "optimizer": n_params * t.optimizer(optimizer)}


def sharded_state_bytes(states: dict[str, float], strategy: str, shards: int,
                        offload: bool = False) -> tuple[dict[str, float], float]:
    """Per-GPU weights/gradients/optimizer for ``strategy`` over ``shards`` GPUs, and the bytes per
    GPU moved to host memory by CPU offload.

    ZeRO (Rajbhandari et al. 2020, Fig. 1): stage 1 divides the optimizer states, stage 2 also the
    gradients, stage 3 (= FSDP full shard) also the parameters. HSDP is stage 3 with ``shards`` =
    sharding factor. Offload: ZeRO-Offload (Ren et al. 2021) keeps parameters on the GPU and moves
    gradients + optimizer states to the CPU; FSDP2's ``CPUOffloadPolicy`` moves all three shards.
    """
    w, g, o = states["weights"], states["gradients"], states["optimizer"]
    if strategy == "ddp":
        if offload:
            raise ValueError("DDP has no CPU offload")
        out = {"weights": w, "gradients": g, "optimizer": o}
    elif strategy == "zero1":
        out = {"weights": w, "gradients": g, "optimizer": o / shards}
    elif strategy == "zero2":
        out = {"weights": w, "gradients": g / shards, "optimizer": o / shards}
    elif strategy in ("fsdp", "zero3", "hsdp"):
        out = {"weights": w / shards, "gradients": g / shards, "optimizer": o / shards}
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    cpu = 0.0
    if offload:
        moved = ("weights", "gradients", "optimizer") if strategy in ("fsdp", "zero3", "hsdp") else (
            "gradients", "optimizer")
        for k in moved:
            cpu += out[k]
            out[k] = 0.0
    return out, cpu


def activation_bytes_per_layer(seq_len: int, micro_batch: int, d_model: int, n_head: int,
                               flash: bool = False, act_scale: float = 1.0) -> float:
    """Activations one transformer layer keeps for backward, in bytes.

    Korthikanti et al. 2022, Eq. 1: ``s*b*h*(34 + 5*a*s/h)`` in 16-bit, no tensor/sequence parallelism.
    The ``5*a*s/h`` term is the attention scores, softmax and its dropout mask (``5*a*s**2*b``); a
    flash / memory-efficient attention kernel never stores them (``flash=True``). ``act_scale=2``
    for fp32 training (every stored tensor twice as wide; the 1-byte dropout masks are counted
    twice too, a small over-estimate).
    """
    s, b, h, a = seq_len, micro_batch, d_model, n_head
    per_token = KORTHIKANTI_SBH + (0.0 if flash else KORTHIKANTI_ATTN * a * s / h)
    return s * b * h * per_token * act_scale


def trainer_activation_path(precision: str, strategy: str) -> str:
    """How the trainer runs a precision: FSDP2 casts parameters to bf16 (``bf16``); DDP keeps fp32
    weights and uses ``torch.autocast`` (``autocast``, fp32 residual stream); or plain ``fp32``."""
    f = precision_format(precision)
    if f.name == "fp32":
        return "fp32"
    return "autocast" if strategy == "ddp" and f.trainable else "bf16"  # a what-if (pure bf16) has bf16 weights


def activation_bytes(shape: ModelShape, micro_batch: int, checkpointing: bool = False,
                     activations: str = "korthikanti", act_scale: float = 1.0, path: str = "bf16") -> float:
    """Peak activation bytes of one micro-batch on one GPU (activations are never sharded by FSDP).

    ``activations`` picks the per-layer formula: ``korthikanti`` (Eq. 1, eager attention),
    ``korthikanti-flash`` (Eq. 1 without the ``5as/h`` score term), or ``trainer`` (the blocks of
    train/model.py, bytes counted per tensor saved for backward: ``TRAINER_ACT_BYTES[path]``).
    Without checkpointing: ``L`` layers. With full activation checkpointing (recompute every
    block) each layer keeps only its input (``2*s*b*h`` in 16-bit; Korthikanti Sec. 4.1) and one
    layer is rematerialised at a time during backward, so add one full layer. Both add the fp32
    log-probabilities of the loss, ``4*s*b*vocab``. DDP under autocast also caches a bf16 copy of
    every weight for the whole forward (``2 * N_non_embedding`` bytes), counted here.
    """
    s, b, h = shape.seq_len, micro_batch, shape.d_model
    if activations == "trainer":
        per_h, per_f = TRAINER_ACT_BYTES[path]
        layer = s * b * (per_h * h + per_f * shape.ffn_hidden)
        layer_input = s * b * h * (2 if path == "bf16" else 4)
        extra = 2 * shape.non_embedding if path == "autocast" else 0.0
    elif activations in ("korthikanti", "korthikanti-flash"):
        layer = activation_bytes_per_layer(s, b, h, shape.n_head, activations == "korthikanti-flash",
                                           act_scale)
        layer_input = RECOMPUTE_SBH * s * b * h * act_scale
        extra = 0.0
    else:
        raise ValueError(f"unknown activation formula {activations!r}; known: {ACTIVATION_FORMULAS}")
    logits = LOGIT_BYTES * s * b * shape.vocab_size
    if checkpointing:
        return shape.n_layer * layer_input + layer + logits + extra
    return shape.n_layer * layer + logits + extra


def gathered_bytes(shape: ModelShape, precision: str, strategy: str) -> float:
    """Transient unsharded parameters of sharded strategies: the current and the prefetched FSDP
    unit (one block, or the vocabulary matrix) in the compute dtype, plus that unit's unsharded
    gradient before its reduce-scatter. Zero for DDP and ZeRO 1/2 (parameters are whole)."""
    if strategy not in ("fsdp", "zero3", "hsdp"):
        return 0.0
    t = precision_format(precision).training
    return shape.unit_params * (2 * t.weights + t.grads)


@dataclass
class MemoryRow:
    """Per-GPU memory of one (strategy, sharding, offload, checkpointing, micro-batch) choice, in bytes."""

    strategy: str
    sharding_factor: int
    cpu_offload: bool
    activation_checkpointing: bool
    micro_batch: int
    weights: float
    gradients: float
    optimizer: float
    gathered: float
    activations: float
    total: float
    cpu_per_gpu: float
    fits: bool


def memory_per_gpu(shape: ModelShape, *, strategy: str, n_gpus: int, sharding_factor: int | None = None,
                   cpu_offload: bool = False, checkpointing: bool = False, micro_batch: int = 1,
                   precision: str = "bf16", optimizer: str = "adam", activations: str = "korthikanti",
                   capacity: float = math.inf) -> MemoryRow:
    """Everything one GPU holds at the peak of a training step; ``fits`` compares with ``capacity`` bytes."""
    if strategy == "hsdp":
        shards = sharding_factor or n_gpus
    elif strategy in ("zero1", "zero2", "fsdp", "zero3"):
        shards = n_gpus
    else:
        shards = 1
    if n_gpus % shards:
        raise ValueError(f"sharding factor {shards} does not divide {n_gpus} GPUs")
    unsharded = model_state_bytes(shape.n_params, precision, optimizer)
    states, cpu = sharded_state_bytes(unsharded, strategy, shards, cpu_offload)
    gathered = gathered_bytes(shape, precision, strategy)
    act_scale = precision_format(precision).training.act_scale
    act = activation_bytes(shape, micro_batch, checkpointing, activations, act_scale,
                           trainer_activation_path(precision, strategy))
    total = states["weights"] + states["gradients"] + states["optimizer"] + gathered + act
    return MemoryRow(strategy, shards, cpu_offload, checkpointing, micro_batch, states["weights"],
                     states["gradients"], states["optimizer"], gathered, act, total, cpu, total <= capacity)


def inference_bytes(shape: ModelShape, precision: str, batch: int = 1, context: int | None = None) -> dict[str, float]:
    """One inference replica in bytes: weights in ``precision`` (a format of train/precision.py ``FORMATS``
    with inference bytes: fp32, bf16, fp16, int8, int4; 8da4w is priced as int4), their quantization scales,
    and the KV cache of ``batch`` sequences of ``context`` tokens (default ``seq_len``):
    ``2 (K and V) * L * context * batch * n_kv_head * head_dim * kv_bytes``
    (Pope et al. 2022), ``kv_bytes`` = 4 for an fp32 model, else 2 (weight-only quantization computes
    in 16-bit). Scales: one 16-bit scale per row for int8 (rows ~ N / d_model), per 32 weights for int4."""
    fmt = resolve(precision)
    f = FORMATS[fmt.priced_as or fmt.name].inference
    if f is None:
        raise ValueError(f"{fmt.name} is not an inference format; known: "
                         f"{', '.join(n for n, g in FORMATS.items() if g.inference)}")
    head_dim = shape.d_model // shape.n_head
    context = context or shape.seq_len
    kv = 2 * shape.n_layer * context * batch * shape.n_kv_head * head_dim * f.kv_bytes
    weights = shape.n_params * f.weight_bytes
    scales = f.scale_bytes(shape.n_params, shape.d_model)
    return {"weights": weights, "scales": scales, "kv_cache": float(kv), "total": weights + scales + kv,
            "kv_bytes": f.kv_bytes, "batch": batch, "context": context}


def formats_table(shape: ModelShape, *, gpu: GPU, n_gpus: int, micro_batch: int, optimizer: str, activations: str,
                  batch: int = 1, context: int | None = None, tokens: float | None = None,
                  mfu: float = DEFAULT_MFU) -> dict[str, list[dict[str, Any]]]:
    """Memory per number format, side by side, in bytes.

    Training: one GPU holding everything (the DDP row of ``memory_per_gpu``, no checkpointing) for
    fp32, bf16 and fp16 mixed precision and fp8 matmuls, with the GPU's dense peak in the format the
    matmuls run in and the wall-clock days of ``6 N tokens`` on ``n_gpus`` at ``mfu`` (None where the
    GPU has no such tensor cores). Inference: ``inference_bytes`` for fp32, bf16, fp16, int8, int4.
    """
    d = tokens if tokens is not None else chinchilla_tokens(shape.n_params)
    training = []
    for name, f in FORMATS.items():
        if f.train_label is None:  # a what-if (pure bf16) has no row
            continue
        row = memory_per_gpu(shape, strategy="ddp", n_gpus=1, micro_batch=micro_batch, precision=name,
                             optimizer=optimizer, activations=activations)
        peak = gpu.peak_flops.get(f.compute_dtype)
        fmt = FLOAT_FORMATS[f.matmul]
        training.append({"format": name, "label": f.train_label,
                         "matmul_bits": f"{fmt.bits} (1+{fmt.exponent}+{fmt.mantissa})",
                         "bytes_per_param": sum(model_state_bytes(1.0, name, optimizer).values()),
                         "states": row.weights + row.gradients + row.optimizer, "activations": row.activations,
                         "total": row.total, "peak_flops": peak,
                         "days": wall_clock_days(training_flops(shape.n_params, d), peak, mfu, n_gpus) if peak
                         else None})
    inference = []
    for name, f in FORMATS.items():
        if f.inference is None:
            continue
        bits = FLOAT_FORMATS[name].bits if name in FLOAT_FORMATS else INT_FORMATS[name].bits
        inference.append({"format": name, "label": f.inference.label, "bits": bits,
                          **inference_bytes(shape, name, batch, context)})
    return {"training": training, "inference": inference, "micro_batch": micro_batch, "batch": batch,
            "context": context or shape.seq_len, "mfu": mfu, "gpus": n_gpus, "tokens": d}


def rule_of_thumb(n_params: float) -> dict[str, float]:
    """The fp32-Adam rule of thumb in bytes: 4 B/param to store, 16 B/param of model states
    (4 weights + 4 gradients + 8 Adam), ~24 B/param to train with a high-end activation allowance
    of ~8 B/param. 1B parameters: 4 GB to store, 16 GB of states, ~24 GB to train."""
    return {"store": 4 * n_params, "states": 16 * n_params,
            "train": (16 + RULE_OF_THUMB_ACT_BYTES) * n_params}


# ----------------------------------------------------------------------------- choosing a strategy

def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def recommend(shape: ModelShape, *, n_gpus: int, capacity: float, micro_batch: int, precision: str,
              optimizer: str, activations: str) -> MemoryRow | None:
    """The cheapest trainer setting that fits, or None.

    Cheapest = least extra work, in this order: no CPU offload (PCIe traffic every step) before
    offload; no activation checkpointing (~33% more compute: one more forward) before checkpointing;
    the asked micro-batch before smaller ones; then the least sharding (DDP, HSDP with the smallest
    factor, FSDP), since every sharded parameter costs an all-gather per forward and backward.
    """
    batches = []
    b = micro_batch
    while b >= 1:
        batches.append(b)
        b //= 2
    hsdp_factors = [f for f in divisors(n_gpus) if 1 < f < n_gpus]
    plans = [("ddp", 1)] + [("hsdp", f) for f in hsdp_factors] + [("fsdp", n_gpus)]
    for offload in (False, True):
        for ckpt in (False, True):
            for mb in batches:
                for strategy, f in plans:
                    if (strategy, offload) not in TRAINER_STRATEGIES:
                        continue
                    row = memory_per_gpu(shape, strategy=strategy, n_gpus=n_gpus, sharding_factor=f,
                                         cpu_offload=offload, checkpointing=ckpt, micro_batch=mb,
                                         precision=precision, optimizer=optimizer, activations=activations,
                                         capacity=capacity)
                    if row.fits:
                        return row
    return None


def largest_micro_batch(shape: ModelShape, row: MemoryRow, *, n_gpus: int, capacity: float, precision: str,
                        optimizer: str, activations: str, limit: int = 1024) -> int:
    """The largest power-of-two multiple of ``row.micro_batch`` that still fits with the same setting."""
    best = row.micro_batch
    while best * 2 <= limit:
        trial = memory_per_gpu(shape, strategy=row.strategy, n_gpus=n_gpus,
                               sharding_factor=row.sharding_factor, cpu_offload=row.cpu_offload,
                               checkpointing=row.activation_checkpointing,
                               micro_batch=best * 2, precision=precision, optimizer=optimizer,
                               activations=activations, capacity=capacity)
        if not trial.fits:
            break
        best *= 2
    return best


def trainer_settings(row: MemoryRow, precision: str = "bf16") -> dict[str, Any]:
    """The trainer's own ``train.*`` keys for ``row`` (train/config.py ``RunConfig``).

    The trainer spells CPU offload as ``train.strategy=cpu_offload`` (full shard + offload), not
    as a separate flag; ``sharding_factor`` is 1 for DDP and the world size for full sharding, as
    ``train/parallel.py`` reads it ("1 is DDP, world_size is full shard"). ``train.dtype`` is
    the format's ``runs_as`` (train/precision.py ``FORMATS``): fp32, bf16 (mixed), fp16 (mixed, loss scaling)
    or fp8; the trainer has no pure-bf16 or 8-bit-Adam mode, so those plans are what-ifs (a bf16-pure plan
    prints bf16).
    """
    strategy = TRAINER_STRATEGIES.get((row.strategy, row.cpu_offload))
    if strategy is None:
        raise ValueError(f"the trainer has no {row.strategy} with cpu_offload={row.cpu_offload}")
    return {"train.strategy": strategy, "train.sharding_factor": row.sharding_factor,
            "train.activation_checkpointing": row.activation_checkpointing,
            "train.micro_batch": row.micro_batch, "train.dtype": precision_format(precision).runs_as}


def _yaml_value(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def settings_overrides(settings: dict[str, Any]) -> str:
    """``key=value`` overrides for ``python -m train.run --config FILE ...``."""
    return " ".join(f"{k}={_yaml_value(v)}" for k, v in settings.items())


def settings_yaml(settings: dict[str, Any]) -> str:
    """The same settings as a ``train:`` YAML section."""
    lines = ["train:"] + [f"  {k.split('.', 1)[1]}: {_yaml_value(v)}" for k, v in settings.items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tokens, FLOPs, time

def domain_split(tokens: float, domain_fraction: float = DOMAIN_FRACTION) -> dict[str, float]:
    """Tokens from the domain corpus and from general text (BloombergGPT's 51/49)."""
    return {"domain": tokens * domain_fraction, "general": tokens * (1 - domain_fraction)}


def training_flops(n_params: float, tokens: float) -> float:
    """C = 6 N D FLOPs (Kaplan et al. 2020): 2 N per token forward, 4 N backward; attention's
    ``12 * L * d * s`` per token and activation recomputation are not included."""
    return FLOPS_PER_PARAM_TOKEN * n_params * tokens


def pfs_days(flops: float) -> float:
    """FLOPs in petaflop/s-days (1e15 FLOP/s for one day = 8.64e19 FLOPs)."""
    return flops / PFS_DAY


def gpu_hours(flops: float, peak_flops: float, mfu: float) -> float:
    """GPU-hours at model FLOPs utilisation ``mfu`` of a ``peak_flops`` (FLOP/s) GPU."""
    return flops / (peak_flops * mfu) / 3600


def wall_clock_days(flops: float, peak_flops: float, mfu: float, n_gpus: int) -> float:
    """Days of uninterrupted training on ``n_gpus`` GPUs (no restarts, no evaluation pauses)."""
    return gpu_hours(flops, peak_flops, mfu) / n_gpus / 24


def compute_optimal(flops: float, tokens_per_param: float = TOKENS_PER_PARAM) -> tuple[float, float]:
    """The inverse question: with C = 6 N D and D = r N, N = sqrt(C / (6 r)) and D = r N."""
    n = math.sqrt(flops / (FLOPS_PER_PARAM_TOKEN * tokens_per_param))
    return n, tokens_per_param * n


def trainer_flops_per_token(shape: ModelShape) -> float:
    """FLOPs per token as the trainer counts them for its MFU (core/model_config.py ``flops_per_token``):
    ``6 * N_non_embedding + 12 * n_layer * d_model * seq_len`` (PaLM, Chowdhery et al. 2022, App. B)
    ``+ 6 * vocab_size * d_model`` (the output head's matmul)."""
    return (FLOPS_PER_PARAM_TOKEN * (shape.non_embedding + shape.vocab_size * shape.d_model)
            + 12 * shape.n_layer * shape.d_model * shape.seq_len)


def mfu_from_log(path: str | Path, warmup_fraction: float = 0.1) -> float:
    """Median ``mfu`` of a trainer metrics.jsonl (one JSON object per line), skipping the first
    ``warmup_fraction`` of the lines that have one (compilation and warm-up steps). Percentages
    (values > 1) are read as percent."""
    values = [float(rec["mfu"]) for rec in read_metrics(path)  # (core/workdir.py: the one metrics reader)
              if isinstance(rec, dict) and isinstance(rec.get("mfu"), (int, float))]
    if not values:
        raise ValueError(f"no 'mfu' values in {path}")
    values = values[int(len(values) * warmup_fraction):] or values
    mfu = statistics.median(values)
    return mfu / 100 if mfu > 1 else mfu


# ----------------------------------------------------------------------------- the plan

def _gpu_dict(gpu: GPU, dtype: str) -> dict[str, Any]:
    return {"name": gpu.name, "memory_bytes": gpu.memory_bytes, "memory_gb": gpu.memory_bytes / GB,
            "memory_gib": gpu.memory_bytes / GIB, "peak_flops": gpu.peak(dtype), "peak_dtype": dtype,
            "note": gpu.note}


def table_rows(shape: ModelShape, *, n_gpus: int, sharding_factor: int, micro_batch: int, precision: str,
               optimizer: str, activations: str, capacity: float) -> list[dict[str, Any]]:
    """The strategies the console table shows, each without and with activation checkpointing."""
    specs = [("ddp", 1, False), ("zero1", n_gpus, False), ("zero2", n_gpus, False), ("fsdp", n_gpus, False),
             ("hsdp", sharding_factor, False), ("zero2", n_gpus, True), ("fsdp", n_gpus, True),
             ("hsdp", sharding_factor, True)]
    rows = []
    for strategy, f, offload in specs:
        for ckpt in (False, True):
            row = memory_per_gpu(shape, strategy=strategy, n_gpus=n_gpus, sharding_factor=f,
                                 cpu_offload=offload, checkpointing=ckpt, micro_batch=micro_batch,
                                 precision=precision, optimizer=optimizer, activations=activations,
                                 capacity=capacity)
            d = asdict(row)
            d["in_trainer"] = (strategy, offload) in TRAINER_STRATEGIES
            rows.append(d)
    return rows


def make_plan(shape: ModelShape, *, gpu: GPU, n_gpus: int, gpus_per_node: int = 8,
              precision: str = "bf16", optimizer: str = "adam", micro_batch: int = 1,
              sharding_factor: int | None = None, activations: str = "korthikanti", mfu: float = DEFAULT_MFU,
              mfu_source: str = "assumed",
              tokens: float | None = None, tokens_per_param: float = TOKENS_PER_PARAM,
              domain_fraction: float = DOMAIN_FRACTION, headroom: float = HEADROOM,
              compute_dtype: str | None = None, usd_per_gpu_hour: float | None = None,
              budget: dict[str, Any] | None = None, batch: int | None = None,
              context: int | None = None) -> dict[str, Any]:
    """Everything the planner knows about one run, as a JSON-able dict: memory in bytes, compute in
    FLOPs, time in the unit its key names (``gpu_hours``, ``wall_clock_days``). ``batch`` and
    ``context``: sequences and tokens of the inference KV cache (default ``micro_batch`` and
    ``seq_len``); ``formats`` holds the side-by-side table of ``formats_table``."""
    p = precision_format(precision)
    precision = p.name  # an alias (bf16-mixed, float16, ...) plans as its format
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {OPTIMIZERS}")
    dtype = compute_dtype or p.compute_dtype
    capacity = gpu.memory_bytes * (1 - headroom)
    plan: dict[str, Any] = {
        "units": {"memory": "bytes (console: GB = 1e9 bytes)", "compute": "FLOPs", "time": "hours/days"},
        "model": asdict(shape),
        "gpu": _gpu_dict(gpu, dtype),
        "cluster": {"gpus": n_gpus, "gpus_per_node": min(gpus_per_node, n_gpus),
                    "nodes": math.ceil(n_gpus / gpus_per_node),
                    "usable_bytes_per_gpu": capacity, "headroom": headroom},
        "precision": {"name": precision, "optimizer": optimizer, "compute_dtype": dtype,
                      "bytes_per_param": model_state_bytes(1.0, precision, optimizer),
                      "activations": activations, "activations_formula": ACTIVATION_LABELS[activations]},
        "rule_of_thumb_fp32_adam": rule_of_thumb(shape.n_params),
    }
    if budget:
        plan["budget"] = budget
    batch = batch or micro_batch
    d = tokens if tokens is not None else chinchilla_tokens(shape.n_params, tokens_per_param)
    plan["formats"] = formats_table(shape, gpu=gpu, n_gpus=n_gpus, micro_batch=micro_batch, optimizer=optimizer,
                                    activations=activations, batch=batch, context=context, tokens=d, mfu=mfu)
    if p.training is None:
        inf = inference_bytes(shape, precision, batch, context)
        plan["inference"] = {**inf, "min_gpus": max(1, math.ceil(inf["total"] / capacity)),
                             "flops_per_token": 2 * shape.n_params}
        return plan

    best = recommend(shape, n_gpus=n_gpus, capacity=capacity, micro_batch=micro_batch, precision=precision,
                     optimizer=optimizer, activations=activations)
    if sharding_factor is None:  # show the HSDP group size we recommend, else one node
        if best is not None and best.strategy == "hsdp":
            sharding_factor = best.sharding_factor
        else:
            sharding_factor = gpus_per_node if 1 < gpus_per_node < n_gpus else max(1, n_gpus // 2)
    rows = table_rows(shape, n_gpus=n_gpus, sharding_factor=sharding_factor, micro_batch=micro_batch,
                      precision=precision, optimizer=optimizer, activations=activations, capacity=capacity)
    plan["memory"] = {"micro_batch": micro_batch, "seq_len": shape.seq_len, "rows": rows}
    if best is not None:
        settings = trainer_settings(best, precision)
        plan["recommendation"] = {
            **asdict(best), "settings": settings, "overrides": settings_overrides(settings),
            "yaml": settings_yaml(settings),
            "largest_micro_batch": largest_micro_batch(shape, best, n_gpus=n_gpus, capacity=capacity,
                                                       precision=precision, optimizer=optimizer,
                                                       activations=activations)}
    else:
        plan["recommendation"] = None

    flops = training_flops(shape.n_params, d)
    peak = gpu.peak(dtype)
    hours = gpu_hours(flops, peak, mfu)
    plan["data"] = {"tokens": d, "tokens_per_param": d / shape.n_params,
                    "chinchilla_tokens": chinchilla_tokens(shape.n_params, tokens_per_param),
                    "domain_fraction": domain_fraction, **{f"{k}_tokens": v for k, v in
                                                           domain_split(d, domain_fraction).items()}}
    plan["compute"] = {"flops": flops, "pfs_days": pfs_days(flops), "mfu": mfu, "mfu_source": mfu_source,
                       "peak_flops_per_gpu": peak, "gpu_hours": hours,
                       "wall_clock_days": wall_clock_days(flops, peak, mfu, n_gpus),
                       "usd": hours * usd_per_gpu_hour if usd_per_gpu_hour is not None else None}
    return plan


# ----------------------------------------------------------------------------- console

def _num(x: float) -> str:
    """Thousands separators for big numbers, three significant digits for small ones."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 1 or x == 0 else f"{x:.3g}"


def _gb(x: float) -> str:
    return f"{x / GB:,.1f}" if x == 0 or x >= 0.05 * GB else f"{x / GB:.2g}"


def _count(x: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:,.2f}{unit}"
    return f"{x:,.0f}"


def _yes(row: dict[str, Any]) -> str:
    return "yes" if row["fits"] else "no"


def _row_name(row: dict[str, Any]) -> str:
    return row["strategy"] + ("+offload" if row["cpu_offload"] else "")


def _header(plan: dict[str, Any]) -> list[str]:
    m, g, c, pr = plan["model"], plan["gpu"], plan["cluster"], plan["precision"]
    out = ["domainlm plan  (memory in GB = 1e9 bytes; GiB = 2^30 bytes)", ""]
    if "budget" in plan:
        b = plan["budget"]
        out.append(f"Budget     {b['flops']:.3g} FLOPs = {pfs_days(b['flops']):,.0f} petaflop/s-days "
                   f"({b['source']})")
        out.append(f"           compute-optimal N = {_count(b['n_params'])} params, "
                   f"D = {_count(b['tokens'])} tokens")
    out.append(f"Model      N = {_count(m['n_params'])} params ({m['n_params']:,.0f}) from {m['source']}")
    out.append(f"           {m['n_layer']} layers, d_model {m['d_model']}, {m['n_head']} heads, "
               f"vocab {m['vocab_size']}, seq_len {m['seq_len']}")
    out.append(f"Cluster    {c['gpus']} x {g['name']} ({c['nodes']} node(s) x {c['gpus_per_node']}): "
               f"{g['memory_gb']:.1f} GB = {g['memory_gib']:.1f} GiB each, "
               f"{_gb(c['usable_bytes_per_gpu'])} GB usable ({c['headroom']:.0%} headroom)")
    out.append(f"           {g['peak_flops'] / 1e12:,.1f} TFLOP/s dense {g['peak_dtype']} peak per GPU"
               + (f" ({g['note']})" if g["note"] else ""))
    bpp = pr["bytes_per_param"]
    out.append(f"Precision  {pr['name']} + {pr['optimizer']}: {bpp['weights']:g} B weights + "
               f"{bpp['gradients']:g} B grads + {bpp['optimizer']:g} B optimizer = "
               f"{sum(bpp.values()):g} B/param")
    out.append(f"           activations: {pr['activations_formula']}")
    r = plan["rule_of_thumb_fp32_adam"]
    out.append(f"Rule of thumb (fp32 Adam): {_gb(r['store'])} GB to store (4 B/param), "
               f"{_gb(r['states'])} GB of states (16 B/param),")
    out.append(f"           ~{_gb(r['train'])} GB to train (~24 B/param with ~8 B/param of activations)")
    return out + [""]


def _memory_table(plan: dict[str, Any]) -> list[str]:
    mem = plan["memory"]
    out = [f"Memory per GPU (GB), micro-batch {mem['micro_batch']} x {mem['seq_len']} tokens; "
           "AC = activation checkpointing; (ref) = not a trainer strategy"]
    head = (f"{'strategy':<20}{'shard':>6}{'weights':>9}{'grads':>8}{'optim':>8}{'gather':>8}"
            f"{'act':>8}{'total':>8} fit{'act+AC':>8}{'total':>8} fit{'cpu/GPU':>9}")
    out += [head, "-" * len(head)]
    rows = mem["rows"]
    for plain, ckpt in zip(rows[0::2], rows[1::2]):
        name = _row_name(plain) + ("" if plain["in_trainer"] else " (ref)")
        states = (f"{_gb(plain['weights']):>9}{_gb(plain['gradients']):>8}{_gb(plain['optimizer']):>8}"
                  f"{_gb(plain['gathered']):>8}")
        no_ac = f"{_gb(plain['activations']):>8}{_gb(plain['total']):>8} {_yes(plain):<3}"
        ac = f"{_gb(ckpt['activations']):>8}{_gb(ckpt['total']):>8} {_yes(ckpt):<3}"
        out.append(f"{name:<20}{plain['sharding_factor']:>6}{states}{no_ac}{ac}{_gb(plain['cpu_per_gpu']):>9}")
    return out + [""]


def _verdict(plan: dict[str, Any], config_path: str | None) -> list[str]:
    rows, c = plan["memory"]["rows"], plan["cluster"]
    usable = _gb(c["usable_bytes_per_gpu"])
    out = []
    for name, label in (("ddp", "DDP"), ("fsdp", "Full sharding (FSDP / ZeRO-3)")):
        plain, ckpt = [row for row in rows if row["strategy"] == name and not row["cpu_offload"]]
        if plain["fits"] or ckpt["fits"]:
            how, total = ("without", plain["total"]) if plain["fits"] else ("only with", ckpt["total"])
            out.append(f"{label} fits {how} activation checkpointing "
                       f"({_gb(total)} GB <= {usable} GB usable).")
        else:
            out.append(f"{label} does not fit: {_gb(ckpt['total'])} GB per GPU even with activation "
                       f"checkpointing > {usable} GB usable.")
    fitting = sorted({_row_name(row) for row in rows if row["fits"] and row["in_trainer"]})
    out.append(f"Trainer strategies that fit (with or without AC): {', '.join(fitting) or 'none'}")
    rec = plan["recommendation"]
    if rec is None:
        out.append("Nothing fits, not even FSDP + CPU offload + checkpointing at micro-batch 1: use more or "
                   "larger GPUs, a lower precision, or tensor/pipeline parallelism (not in this trainer).")
        return out + [""]
    what = STRATEGIES[rec["strategy"]] + (", states offloaded to CPU" if rec["cpu_offload"] else "")
    out.append(f"Cheapest that fits: {rec['settings']['train.strategy']} ({what}), "
               f"sharding_factor {rec['sharding_factor']}, activation_checkpointing "
               f"{_yaml_value(rec['activation_checkpointing'])}, micro_batch {rec['micro_batch']}")
    out.append(f"  -> {_gb(rec['total'])} GB per GPU; the largest micro-batch that fits this setting is "
               f"{rec['largest_micro_batch']}")
    nproc = min(c["gpus"], c["gpus_per_node"])
    out.append(f"  torchrun --nnodes {c['nodes']} --nproc-per-node {nproc} -m train.run "
               f"--config {config_path or 'FILE'} \\")
    out.append(f"      {rec['overrides']}")
    out += ["  " + line for line in rec["yaml"].splitlines()]
    return out + [""]


def _compute(plan: dict[str, Any]) -> list[str]:
    d, k, c = plan["data"], plan["compute"], plan["cluster"]
    chinchilla = d["chinchilla_tokens"]
    ratio = chinchilla / plan["model"]["n_params"]
    if "continued" in plan:  # the budget was given: say what share of a from-scratch run it is
        out = [f"Tokens     D = {_count(d['tokens'])} given, continued pretraining of {plan['continued']['name']} "
               f"({d['tokens_per_param']:.2f} x N;",
               f"           {d['tokens'] / chinchilla:.1%} of the {_count(chinchilla)} tokens of Chinchilla's "
               f"{ratio:g} x N from scratch)",
               f"           domain {d['domain_fraction']:.0%} = {_count(d['domain_tokens'])}, general (replay) "
               f"{1 - d['domain_fraction']:.0%} = {_count(d['general_tokens'])}"]
    else:
        out = [f"Tokens     D = {_count(d['tokens'])} ({d['tokens_per_param']:.1f} x N; Chinchilla "
               f"{ratio:g} x N = {_count(chinchilla)})",
               f"           domain {d['domain_fraction']:.0%} = {_count(d['domain_tokens'])}, "
               f"general {1 - d['domain_fraction']:.0%} = {_count(d['general_tokens'])}"]
    out += [f"Compute    6ND = {k['flops']:.3g} FLOPs = {_num(k['pfs_days'])} petaflop/s-days",
            f"Time       at {k['mfu']:.1%} MFU ({k['mfu_source']}) of {k['peak_flops_per_gpu'] / 1e12:,.1f} "
            f"TFLOP/s on {c['gpus']} GPUs: {_num(k['gpu_hours'])} GPU-hours = "
            f"{_num(k['wall_clock_days'])} days ({_num(k['wall_clock_days'] * 24)} hours)"]
    if k["usd"] is not None:
        out.append(f"Cost       ${_num(k['usd'])} at the given price per GPU-hour")
    return out


def _columns(head: list[str], rows: list[list[str]]) -> list[str]:
    """A header, a rule and the rows: the first column left-aligned, the others right-aligned, each as wide as
    its widest cell and two spaces apart, so a long cell (``1.27e-07`` days, ``1,122.4`` GB) never runs into its
    neighbour (fixed widths printed ``67.01.27e-07``)."""
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    first = line(head)
    return [first, "-" * len(first), *(line(row) for row in rows)]


def _formats(plan: dict[str, Any]) -> list[str]:
    """The side-by-side table: memory per number format for training and for inference."""
    f, g = plan["formats"], plan["gpu"]
    out = ["", "Number formats side by side (bit layouts, ranges and precision: docs/planning.md)",
           f"Training: one {g['name']} holding everything (DDP, no activation checkpointing), micro-batch "
           f"{f['micro_batch']} x {plan['model']['seq_len']} tokens, {plan['precision']['optimizer']}; "
           f"days = 6ND on {f['gpus']} GPUs at {f['mfu']:.0%} MFU"]
    rows = [[r["label"], r["matmul_bits"], f"{r['bytes_per_param']:g}", _gb(r["states"]), _gb(r["activations"]),
             _gb(r["total"]), f"{r['peak_flops'] / 1e12:,.1f}" if r["peak_flops"] else "-",
             _num(r["days"]) if r["days"] is not None else "-"] for r in f["training"]]
    out += _columns(["format", "matmul bits", "B/param", "states", "act", "total", "peak TFLOP/s", "days"], rows)
    out += ["", f"Inference: one replica, KV cache of {f['batch']} x {f['context']} tokens in the compute dtype "
                "(fp32 for fp32 weights, else 16-bit); scales are 16-bit"]
    rows = [[r["label"], str(r["bits"]), f"{r['weights'] / GB:,.2f}", f"{r['scales'] / GB:,.2f}",
             f"{r['kv_cache'] / GB:,.2f}", f"{r['total'] / GB:,.2f}"] for r in f["inference"]]
    out += _columns(["format", "bits", "weights", "scales", "KV cache", "total"], rows)
    return out


def format_plan(plan: dict[str, Any], config_path: str | None = None) -> str:
    """The human-readable report: header, memory table, verdict with trainer settings, compute, and the
    number formats side by side."""
    out = _header(plan)
    if "inference" in plan:
        i, g = plan["inference"], plan["gpu"]
        out.append(f"Inference  weights {_gb(i['weights'])} GB + scales {_gb(i['scales'])} GB + KV cache "
                   f"{_gb(i['kv_cache'])} GB (batch {i['batch']} x {i['context']} tokens) = {_gb(i['total'])} GB "
                   "per replica")
        out.append(f"           -> at least {i['min_gpus']} x {g['name']} (weights split evenly, e.g. tensor "
                   f"parallel); {i['flops_per_token']:.3g} FLOPs per generated token")
        return "\n".join(out + _formats(plan))
    out += _memory_table(plan) + _verdict(plan, config_path) + _compute(plan) + _formats(plan)
    return "\n".join(out)


# ----------------------------------------------------------------------------- CLI

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage block -> the project's one line, exit 2
        fail(f"train.plan: {message}")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m train.plan", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group(required=True)
    size.add_argument("--params", type=float, help="model size N in parameters, e.g. 1.3e9")
    size.add_argument("--model-config", help="a trainer YAML; its model: section gives the exact N and shape")
    size.add_argument("--budget-pfs-days", type=float, help="inverse: compute budget in petaflop/s-days")
    size.add_argument("--gpu-hours", type=float, help="inverse: budget in GPU-hours on --gpu at --mfu")
    size.add_argument("--init-from", metavar="DIR",
                      help="continued pretraining of the Hugging Face base in DIR (its config.json gives the exact "
                           "N and shape; model.init_from): needs --tokens")
    ap.add_argument("--n-layer", type=int, help="shape override for --params")
    ap.add_argument("--d-model", type=int, help="shape override for --params")
    ap.add_argument("--n-head", type=int, help="shape override for --params")
    ap.add_argument("--vocab-size", type=int, help=f"vocabulary for --params (default {DEFAULT_VOCAB})")
    ap.add_argument("--seq-len", type=int, help=f"tokens per sequence (default: config or {DEFAULT_SEQ_LEN})")
    ap.add_argument("--micro-batch", type=int, help="sequences per GPU per step (default: config or 1)")
    ap.add_argument("--gpu", default="a100-80gb", help=f"one of {sorted(GPUS)} or custom")
    ap.add_argument("--gpu-mem-gb", type=float, help="custom or override GPU memory, GB = 1e9 bytes")
    ap.add_argument("--gpu-tflops", type=float, help="custom or override dense peak TFLOP/s (compute dtype)")
    ap.add_argument("--gpus", type=int, help="total GPUs (default 8, or nodes x gpus-per-node)")
    ap.add_argument("--nodes", type=int, help="nodes (GPUs = nodes x --gpus-per-node)")
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--sharding-factor", type=int, help="HSDP group size shown in the table")
    ap.add_argument("--precision", default="bf16", choices=names("plan"),
                    help="a number format of train/precision.py FORMATS (docs/training.md): fp32 | bf16 (mixed: "
                         "fp32 master, ZeRO's K=12; alias bf16-mixed) | fp16 (mixed + loss scaling; alias "
                         "fp16-mixed) | fp8 (fp8 matmuls, bf16 memory) | bf16-pure (a what-if: no master copy) | "
                         "int8/int4 (inference)")
    ap.add_argument("--batch", type=int, help="inference: sequences in the KV cache (default: --micro-batch)")
    ap.add_argument("--context", type=int, help="inference: tokens per sequence in the KV cache (default: seq_len)")
    ap.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="adam8bit: 1 byte per moment")
    ap.add_argument("--compute-dtype", choices=("fp32", "tf32", "bf16", "fp8"),
                    help="dtype of the peak FLOP/s used (default: from --precision)")
    ap.add_argument("--activations", choices=ACTIVATION_FORMULAS,
                    help="korthikanti: Eq. 1 with the 5as/h score term (eager attention); korthikanti-flash: "
                         "without it; trainer: train/model.py's blocks as measured. Default: trainer for "
                         "--model-config and --init-from, korthikanti otherwise")
    ap.add_argument("--mfu", type=float, help=f"model FLOPs utilisation (default {DEFAULT_MFU})")
    ap.add_argument("--mfu-from", help="a trainer metrics.jsonl: use the median of its 'mfu' values")
    ap.add_argument("--tokens", type=float, help="training tokens D (default: tokens-per-param x N)")
    ap.add_argument("--tokens-per-param", type=float, default=TOKENS_PER_PARAM)
    ap.add_argument("--domain-fraction", type=float, default=DOMAIN_FRACTION)
    ap.add_argument("--headroom", type=float, default=HEADROOM, help="share of GPU memory kept free")
    ap.add_argument("--usd-per-gpu-hour", type=float, help="price, for a cost line")
    ap.add_argument("--json", action="store_true", help="print the plan as JSON")
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (ValueError, OSError) as e:  # bad flags, configs or paths: one line, not a traceback
        fail(f"train.plan: {e}")


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    refuse_unknown_options(parser._option_string_actions, argv)
    args = parser.parse_args(argv)
    dtype = args.compute_dtype or precision_format(args.precision).compute_dtype
    gpu = get_gpu(args.gpu, args.gpu_mem_gb, args.gpu_tflops, dtype)
    n_gpus = args.gpus or 8
    if args.nodes is not None:
        n_gpus = args.nodes * args.gpus_per_node
        if args.gpus is not None and args.gpus != n_gpus:
            raise ValueError(f"--gpus {args.gpus} != --nodes {args.nodes} x --gpus-per-node {args.gpus_per_node}")
    mfu = args.mfu if args.mfu is not None else DEFAULT_MFU
    mfu_source = "given" if args.mfu is not None else "assumed"
    if not 0 < mfu <= 1:
        raise ValueError(f"MFU must be in (0, 1], got {mfu}")

    train_section: dict[str, Any] = {}
    budget = base = None
    if args.init_from:
        if args.tokens is not None and args.tokens <= 0:
            raise ValueError(f"--tokens must be > 0, got {args.tokens:g}")
        if args.tokens is None and precision_format(args.precision).training is not None:
            raise ValueError("--init-from plans a continued run: give its token budget with --tokens "
                             "(20 x N is the budget of training from scratch)")
        shape, base = shape_from_base(args.init_from, args.seq_len)
    elif args.model_config:
        shape, train_section = shape_from_config(args.model_config, args.vocab_size)
        shape.seq_len = args.seq_len or shape.seq_len
    else:
        n_params = args.params
        if n_params is None:  # the inverse question: a budget -> compute-optimal N and D
            if args.budget_pfs_days is not None:
                flops, source = args.budget_pfs_days * PFS_DAY, f"{args.budget_pfs_days:g} petaflop/s-days"
            else:
                flops = args.gpu_hours * 3600 * gpu.peak(dtype) * mfu
                source = f"{args.gpu_hours:g} GPU-hours x {gpu.peak(dtype) / 1e12:g} TFLOP/s x {mfu:.1%} MFU"
            n_params, d_opt = compute_optimal(flops, args.tokens_per_param)
            budget = {"flops": flops, "source": source, "n_params": n_params, "tokens": d_opt}
        shape = infer_shape(n_params, args.vocab_size or DEFAULT_VOCAB, args.seq_len or DEFAULT_SEQ_LEN,
                            args.n_layer, args.d_model, args.n_head)
    if args.mfu_from:  # the trainer's MFU counts 6 (N_non_embedding + head) + attention; rescale to 6 N
        logged = mfu_from_log(args.mfu_from)
        mfu = logged * FLOPS_PER_PARAM_TOKEN * shape.n_params / trainer_flops_per_token(shape)
        mfu_source = f"median {logged:.1%} of {args.mfu_from}, on the 6N basis"
    activations = args.activations or ("trainer" if args.model_config or args.init_from else "korthikanti")
    micro_batch = args.micro_batch or int(train_section.get("micro_batch") or 1)
    plan = make_plan(shape, gpu=gpu, n_gpus=n_gpus, gpus_per_node=args.gpus_per_node,
                     precision=args.precision, optimizer=args.optimizer, micro_batch=micro_batch,
                     sharding_factor=args.sharding_factor, activations=activations, mfu=mfu,
                     mfu_source=mfu_source, tokens=args.tokens, tokens_per_param=args.tokens_per_param,
                     domain_fraction=args.domain_fraction, headroom=args.headroom,
                     compute_dtype=args.compute_dtype, usd_per_gpu_hour=args.usd_per_gpu_hour, budget=budget,
                     batch=args.batch, context=args.context)
    if base is not None:
        plan["continued"] = base
    if args.json:
        json.dump(plan, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_plan(plan, args.model_config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
