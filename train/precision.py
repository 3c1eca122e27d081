"""Number formats and what lower precision costs: bit layouts, bytes per parameter, and the tools that
use them (fp16 loss scaling, fp8 training, quantization-aware training, post-training quantization).

Two halves, read top to bottom:

1. **Formats, no torch** (the planner, the config check and the run config's check import this part):
   ``FLOAT_FORMATS`` with each element type's bit layout and the range and precision that follow from it,
   ``INT_FORMATS`` for quantized weights, ``FORMATS``, the one table of the project's number formats (what
   ``train.dtype``, ``train.plan --precision`` and ``train.export --dtype`` each mean by a name, and the
   aliases, resolved by ``resolve``), and ``QATSettings``.
2. **Torch and torchao, imported lazily** (the trainer and the export): ``loss_scaler`` (fp16),
   ``apply_float8_training`` (fp8 matmuls, torchao.float8), ``prepare_qat`` / ``set_fake_quant``
   (torchao QAT), ``quantize_hf_dir`` (torchao post-training quantization of an exported Hugging Face
   directory, written so that ``AutoModelForCausalLM.from_pretrained`` loads it).

A floating-point number is ``(-1)^s x 1.m x 2^(e - bias)``: the exponent bits set the *range* (largest
and smallest magnitudes), the mantissa bits the *precision* (the gap between 1 and the next number,
``2^-mantissa``). An integer format is ``scale x q`` with ``q`` in ``[-2^(b-1), 2^(b-1) - 1]``: one
scale per row or per group of weights sets the range, and ``2^b`` evenly spaced levels the precision.
docs/planning.md has the table this module computes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from core.config import check_keys

# ----------------------------------------------------------------------------- torchao import noise

class _TorchaoKernelFilter(logging.Filter):
    """Drops torchao's ``Failed to load .../torchao/_C_mxfp8....so`` lines (and the other ``_C*.so``).

    ``import torchao`` tries every compiled kernel library it ships and logs one WARNING per library that does
    not load: the MX-fp8 and CUTLASS sm90 kernels are built for CUDA and for one Python version, so on a CPU
    machine, or under another Python, every import (the trainer's, the export's, transformers' when it loads a
    quantized export) prints them. The project uses none of them: float8 training goes through
    ``torch._scaled_mm``, int8/int4 through torchao's Python quantizers. Only these records of the ``torchao``
    logger are dropped; every other warning, torchao's included, still prints."""

    PATTERN = re.compile(r"^Failed to load \S*torchao[/\\]_C[^/\\\s]*\.so\b")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.PATTERN.match(record.getMessage())


def quiet_torchao_kernel_warnings() -> None:
    """Install ``_TorchaoKernelFilter`` on the ``torchao`` logger (idempotent; before torchao is imported)."""
    logger = logging.getLogger("torchao")
    if not any(isinstance(f, _TorchaoKernelFilter) for f in logger.filters):
        logger.addFilter(_TorchaoKernelFilter())


quiet_torchao_kernel_warnings()  # at import: train.export, the trainer and the benchmarks import this module first


# ----------------------------------------------------------------------------- float formats


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: 1 sign bit, ``exponent`` bits, ``mantissa`` (fraction) bits.

    ``finite_only``: the OCP fp8 E4M3 variant ("fn"; Micikevicius et al. 2022, "FP8 Formats for Deep
    Learning"), which has no infinities and spends the all-ones exponent on numbers, keeping only
    S.1111.111 for NaN. Every other format here follows IEEE 754 (all-ones exponent = inf/NaN).
    """

    name: str
    exponent: int
    mantissa: int
    finite_only: bool = False
    use: str = ""

    @property
    def bits(self) -> int:
        return 1 + self.exponent + self.mantissa

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent - 1) - 1

    @property
    def max(self) -> float:
        """Largest finite value."""
        if self.finite_only:  # all-ones exponent is usable; mantissa all-ones is NaN
            return (2 - 2.0 ** (1 - self.mantissa)) * 2.0 ** (2**self.exponent - 1 - self.bias)
        return (2 - 2.0**-self.mantissa) * 2.0 ** (2**self.exponent - 2 - self.bias)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value; below it precision degrades (subnormals) down to ``min_subnormal``."""
        return 2.0 ** (1 - self.bias)

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.mantissa)

    @property
    def epsilon(self) -> float:
        """Gap between 1.0 and the next representable number: relative rounding error <= epsilon / 2."""
        return 2.0**-self.mantissa

    @property
    def decimal_digits(self) -> float:
        """Significant decimal digits, ``(mantissa + 1) x log10(2)`` (the implicit leading 1 counts)."""
        return (self.mantissa + 1) * math.log10(2)


FLOAT_FORMATS: dict[str, FloatFormat] = {
    # IEEE 754 binary32.
    "fp32": FloatFormat("fp32", 8, 23, use="master weights, optimizer states, reductions"),
    # NVIDIA TF32 (A100 whitepaper 2020): fp32's range, fp16's mantissa; a matmul input mode, never stored.
    "tf32": FloatFormat("tf32", 8, 10, use="fp32 matmuls on tensor cores (inputs rounded)"),
    # Google brain float (Kalamkar et al. 2019): fp32's exponent, so fp32's range; 3 significant digits.
    "bf16": FloatFormat("bf16", 8, 7, use="mixed-precision training, inference"),
    # IEEE 754 binary16: more precision than bf16, but max 65504 and min normal 6.1e-5: needs loss scaling.
    "fp16": FloatFormat("fp16", 5, 10, use="inference; training with loss scaling"),
    # OCP FP8 (Micikevicius et al. 2022): E4M3 for weights and activations, E5M2 for gradients.
    "fp8-e4m3": FloatFormat("fp8-e4m3", 4, 3, finite_only=True, use="fp8 matmul inputs (forward)"),
    "fp8-e5m2": FloatFormat("fp8-e5m2", 5, 2, use="fp8 gradients (backward)"),
}


@dataclass(frozen=True)
class IntFormat:
    """A signed integer code ``q`` in ``[-2^(bits-1), 2^(bits-1) - 1]``; the value is ``scale x q``.
    Symmetric quantization maps the group's ``max |w|`` to ``2^(bits-1) - 1``, so the step (the
    precision) is ``max |w| / (2^(bits-1) - 1)``."""

    name: str
    bits: int

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1))

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @property
    def levels(self) -> int:
        return 2**self.bits


INT_FORMATS = {"int8": IntFormat("int8", 8), "int4": IntFormat("int4", 4)}


# ----------------------------------------------------------------------------- weights at inference

SCALE_BYTES = 2        # one 16-bit (fp16/bf16) scale per row or group: GPTQ, AWQ and llama.cpp's Q4_0 / Q8_0
DEFAULT_GROUP_SIZE = 32  # weights per int4 scale: llama.cpp Q4_0 and torchao's 8da4w QAT recipe use 32


@dataclass(frozen=True)
class WeightFormat:
    """How an inference replica stores its weights and its KV cache.

    ``weight_bytes`` per parameter; ``group_size``: weights sharing one ``SCALE_BYTES`` scale (``0`` = one
    scale per output row, ``None`` = no scales); ``kv_bytes`` per cached key/value element: the dtype
    the model computes in (fp32 for an fp32 model, 16-bit otherwise: weight-only quantization
    dequantizes to 16-bit activations).
    """

    weight_bytes: float
    group_size: int | None
    kv_bytes: int
    label: str

    def scale_bytes(self, n_params: float, d_in: int) -> float:
        """Bytes of quantization scales for ``n_params`` weights whose rows have ``d_in`` inputs."""
        if self.group_size is None:
            return 0.0
        per = self.group_size or d_in
        return n_params / per * SCALE_BYTES


# ----------------------------------------------------------------------------- the number formats

@dataclass(frozen=True)
class TrainingBytes:
    """The planner's bytes per parameter of each model state while training, and how activations scale.

    ``master``: the fp32 copy of mixed precision; ``moments``: bytes of each of Adam's two moments;
    ``act_scale`` multiplies Korthikanti's 16-bit activation bytes (2.0 for fp32 training)."""

    weights: float
    grads: float
    master: float
    moments: float
    act_scale: float

    def optimizer(self, optimizer: str = "adam") -> float:
        """Optimizer bytes per parameter: master copy + two moments (8-bit Adam, Dettmers et al. 2022: one
        byte per moment; its block-wise scales are ~0.1%)."""
        moment = 1.0 if optimizer == "adam8bit" else self.moments
        return self.master + 2 * moment


@dataclass(frozen=True)
class NumberFormat:
    """One number format of the project, with what each consumer needs (``FORMATS``).

    - the trainer (``train.dtype``): ``trainable``, and ``param_dtype``, the torch dtype it computes in
      (FSDP2's ``param_dtype`` / autocast; ``None`` = fp32 throughout, no cast); master weights and
      optimizer states stay fp32 in every trainable format;
    - the planner (``train.plan --precision``): ``training`` bytes (None = inference only),
      ``compute_dtype`` (the key of train/gpus.py's dense peaks), ``matmul`` (the ``FLOAT_FORMATS`` the
      matmuls multiply in), ``train_label`` (its row of the side-by-side table), ``runs_as`` (the
      ``train.dtype`` a plan prints: a what-if prints the nearest the trainer has), ``inference``
      (one replica's bytes; None = not planned at inference), ``priced_as`` (the format whose inference
      bytes price it, when it has none of its own);
    - the export (``train.export --dtype``, the run config's ``export.dtype``): ``export_dtype`` (torch dtype
      name of the written tensors; a quantized export starts from fp32), ``export_label`` (the model card's
      line, ``{g}`` = group size), ``quantized`` (torchao post-training quantization).

    ``aliases`` are other spellings of the same format, accepted wherever the format is (``resolve``);
    ``what_if`` says why a format is planned but not trained.
    """

    name: str
    aliases: tuple[str, ...] = ()
    trainable: bool = False
    param_dtype: str | None = None
    training: TrainingBytes | None = None
    compute_dtype: str = "bf16"
    matmul: str | None = None
    train_label: str | None = None
    runs_as: str | None = None
    inference: WeightFormat | None = None
    priced_as: str | None = None
    export_dtype: str | None = None
    export_label: str | None = None
    quantized: bool = False
    what_if: str = ""

    def used_by(self, consumer: str) -> bool:
        """Whether ``consumer`` (one of ``CONSUMERS``) accepts this format."""
        if consumer == "train":
            return self.trainable
        if consumer == "plan":
            return self.training is not None or self.inference is not None
        if consumer == "export":
            return self.export_dtype is not None
        raise ValueError(f"unknown consumer {consumer!r}; known: {CONSUMERS}")


_INT4_LABEL = f"int4 weight-only, a scale per {DEFAULT_GROUP_SIZE}"
# THE table: every number format once, in the order the planner's side-by-side table and the export list them.
FORMATS: dict[str, NumberFormat] = {f.name: f for f in (
    # IEEE fp32 everywhere: 4 + 4 + (4 + 4) = 16 B/param to train.
    NumberFormat("fp32", ("float32",), trainable=True, param_dtype=None,
                 training=TrainingBytes(4, 4, 0, 4, 2.0), compute_dtype="fp32", matmul="fp32", train_label="fp32",
                 runs_as="fp32", inference=WeightFormat(4, None, 4, "fp32"),
                 export_dtype="float32", export_label="fp32"),
    # bf16 mixed precision, as ZeRO counts it (Rajbhandari et al. 2020, Sec. 3.1): bf16 weights and gradients,
    # K = 12 (4 fp32 master + 4 + 4). The trainer: FSDP2 MixedPrecisionPolicy(bf16) / DDP autocast(bf16).
    NumberFormat("bf16", ("bf16-mixed", "bfloat16"), trainable=True, param_dtype="bfloat16",
                 training=TrainingBytes(2, 2, 4, 4, 1.0), matmul="bf16", train_label="bf16 mixed (fp32 master)",
                 runs_as="bf16", inference=WeightFormat(2, None, 2, "bf16"),
                 export_dtype="bfloat16", export_label="bf16"),
    # Pure bf16 (weights, gradients and moments in bf16, no master copy): 2 + 2 + 4 = 8 B/param.
    NumberFormat("bf16-pure", training=TrainingBytes(2, 2, 0, 2, 1.0), matmul="bf16", runs_as="bf16",
                 what_if="planned only: the trainer keeps fp32 master weights (its plans print train.dtype=bf16)"),
    # fp16 mixed precision + dynamic loss scaling (Micikevicius et al. 2018): bf16's bytes; fp16 tensor cores
    # run at the bf16 rate on A100/H100 (and the V100 "bf16" entry of train/gpus.py is its fp16 peak).
    NumberFormat("fp16", ("fp16-mixed", "float16"), trainable=True, param_dtype="float16",
                 training=TrainingBytes(2, 2, 4, 4, 1.0), matmul="fp16", train_label="fp16 mixed + loss scaling",
                 runs_as="fp16", inference=WeightFormat(2, None, 2, "fp16"),
                 export_dtype="float16", export_label="fp16"),
    # fp8 matmuls (torchao.float8, Micikevicius et al. 2022) in the blocks, bf16 elsewhere: weights, gradients
    # and optimizer states as bf16's; each matmul casts its inputs to fp8 on the fly and autograd keeps the
    # bf16 inputs (torchao/float8/float8_linear.py saves input_hp, weight_hp_t), so activations are bf16's too.
    NumberFormat("fp8", trainable=True, param_dtype="bfloat16", training=TrainingBytes(2, 2, 4, 4, 1.0),
                 compute_dtype="fp8", matmul="fp8-e4m3", train_label="fp8 matmuls (torchao)", runs_as="fp8"),
    # Inference: LLM.int8 / torchao Int8WeightOnly, per-output-row scales (Dettmers et al. 2022); 16-bit KV cache.
    NumberFormat("int8", inference=WeightFormat(1, 0, 2, "int8 weight-only, a scale per row"),
                 export_dtype="float32", quantized=True,
                 export_label="int8 weight-only (torchao Int8WeightOnlyConfig, one scale per row)"),
    # GPTQ / AWQ / Q4_0-style: 4-bit codes, a scale per group of 32 (Frantar et al. 2023; Lin et al. 2024).
    NumberFormat("int4", inference=WeightFormat(0.5, DEFAULT_GROUP_SIZE, 2, _INT4_LABEL),
                 export_dtype="float32", quantized=True,
                 export_label="int4 weight-only (torchao IntxWeightOnlyConfig, symmetric, one scale per group of {g})"),
    # int8 dynamic per-token activations + int4 weights: what train.qat's 8da4w scheme trains for. Its stored
    # weights are int4's (the activations are quantized on the fly, never stored).
    NumberFormat("8da4w", priced_as="int4", export_dtype="float32", quantized=True,
                 export_label="int8 dynamic per-token activations + int4 weights (torchao "
                              "Int8DynamicActivationIntxWeightConfig, one scale per group of {g})"),
)}
CONSUMERS = ("train", "plan", "export")
AUTO = "auto"  # train.dtype only: bf16 on a GPU, fp32 on CPU (trainer_format)


def resolve(name: str) -> NumberFormat:
    """The format a name or alias means (the one place aliases are resolved); ValueError if none."""
    for f in FORMATS.values():
        if name == f.name or name in f.aliases:
            return f
    raise ValueError(f"unknown number format {name!r}; known: {', '.join(names())}")


def names(consumer: str | None = None) -> list[str]:
    """The names ``consumer`` accepts (all formats when None): the formats' names in table order, then their
    aliases; ``train`` also accepts ``auto``."""
    fmts = [f for f in FORMATS.values() if consumer is None or f.used_by(consumer)]
    return [*([AUTO] if consumer == "train" else []), *(f.name for f in fmts), *(a for f in fmts for a in f.aliases)]


def format_for(consumer: str, name: str) -> NumberFormat:
    """``resolve(name)``, checked to be a format ``consumer`` accepts (ValueError listing what it accepts)."""
    try:
        f = resolve(name)
    except ValueError:
        f = None
    if f is None or not f.used_by(consumer):
        raise ValueError(f"{name!r} is not a number format {consumer} accepts; one of: {', '.join(names(consumer))}")
    return f


def trainer_format(name: str, device_type: str) -> NumberFormat:
    """What ``train.dtype`` = ``name`` trains in on ``device_type``: ``auto`` is bf16 on CUDA, else fp32."""
    if name == AUTO:
        return FORMATS["bf16" if device_type == "cuda" else "fp32"]
    return format_for("train", name)


# ----------------------------------------------------------------------------- QAT settings

QAT_SCHEMES = {
    # scheme -> (what is fake-quantized in training, the export --dtype that matches it)
    "8da4w": ("int8 per-token dynamic activations + int4 per-group symmetric weights", "8da4w"),
    "4w": ("int4 per-group symmetric weights", "int4"),
}


@dataclass
class QATSettings:
    """``train.qat``: quantization-aware training for the last part of a run (torchao QAT).

    From step ``round(start_fraction x steps)`` on, every linear layer of the blocks computes with
    fake-quantized weights (and, for ``8da4w``, activations): rounded to the integer grid in the
    forward, the rounding treated as identity in the backward (straight-through estimator; Jacob et
    al. 2018, Bengio et al. 2013), so the weights learn to sit where rounding costs little. Scales
    are recomputed from the weights at every step (dynamic), not learned parameters. The
    embedding and the output head stay in full precision during training.
    """

    scheme: str = "8da4w"
    start_fraction: float = 0.8
    group_size: int = DEFAULT_GROUP_SIZE

    @classmethod
    def from_config(cls, value: Any) -> QATSettings:
        """From ``train.qat`` (a mapping); raises ValueError naming the bad key or value."""
        if not isinstance(value, dict):
            raise ValueError(f"train.qat must be a mapping like {{scheme: 8da4w, start_fraction: 0.8}}, got {value!r}")
        check_keys(value, {f.name for f in fields(cls)}, "train.qat")
        s = cls(**value)
        if s.scheme not in QAT_SCHEMES:
            raise ValueError(f"train.qat.scheme must be one of {sorted(QAT_SCHEMES)}, got {s.scheme!r}")
        if isinstance(s.start_fraction, bool) or not isinstance(s.start_fraction, (int, float)) \
                or not 0 <= s.start_fraction < 1:
            raise ValueError(f"train.qat.start_fraction must be in [0, 1), got {s.start_fraction!r}")
        if isinstance(s.group_size, bool) or not isinstance(s.group_size, int) or s.group_size < 1:
            raise ValueError(f"train.qat.group_size must be a positive integer, got {s.group_size!r}")
        return s

    def start_step(self, total_steps: int) -> int:
        """The first optimizer step (0-based) trained with fake quantization."""
        return int(round(self.start_fraction * total_steps))

    @property
    def export_dtype(self) -> str:
        return QAT_SCHEMES[self.scheme][1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- fp16 loss scaling

DEFAULT_LOSS_SCALE = 2.0**16  # torch.amp.GradScaler's init_scale; halved on overflow, doubled every 2000 clean steps


def loss_scaler(dtype: str, device_type: str, init_scale: float = DEFAULT_LOSS_SCALE):  # noqa: ANN201
    """A dynamic loss scaler for fp16 training (``dtype``: a ``train.dtype`` name or alias), or None for others.

    fp16's smallest normal number is 6.1e-5 and its largest 65504 (``FLOAT_FORMATS["fp16"]``): small
    gradients underflow to zero unless the loss is multiplied by a large scale before backward
    (Micikevicius et al. 2018, "Mixed Precision Training"). The scaler unscales the gradients before
    clipping and the optimizer step, skips the step if any gradient is inf/NaN and halves the scale,
    and doubles it after ``growth_interval`` clean steps. ``ShardedGradScaler`` all-reduces the
    overflow flag, so under FSDP every rank skips the same steps (a plain GradScaler would let the
    rank whose shard overflowed skip alone); under DDP the gradients are identical anyway.
    """
    if dtype == AUTO or resolve(dtype).name != "fp16":
        return None
    import warnings

    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

    # The overflow flag is a 1-element tensor next to FSDP2's DTensor gradients; DTensor replicates it, as meant.
    warnings.filterwarnings("ignore", message="Found a non-scalar tensor with numel=1")
    return ShardedGradScaler(device_type, init_scale=init_scale)


# ----------------------------------------------------------------------------- fp8 training

# fp8 tensor cores: Ada Lovelace (sm_89: L4, L40, RTX 4090) and Hopper (sm_90: H100, H200) and later
# (NVIDIA Hopper architecture whitepaper 2022; torchao.float8 README: "SM89 or later").
FP8_MIN_CAPABILITY = (8, 9)
FP8_MULTIPLE = 16  # torch._scaled_mm needs both matrix dimensions divisible by 16


def fp8_unsupported(device) -> str | None:  # noqa: ANN001 - torch.device, not imported here
    """Why fp8 training cannot run on ``device`` (a sentence), or None if it can."""
    import torch

    if device.type != "cuda":
        return (f"train.dtype=fp8 needs a CUDA GPU with fp8 tensor cores (compute capability >= "
                f"{FP8_MIN_CAPABILITY[0]}.{FP8_MIN_CAPABILITY[1]}: L4, L40, H100, H200 or newer); this run is on "
                f"{device.type}: use bf16 or fp32")
    cap = torch.cuda.get_device_capability(device)
    if cap < FP8_MIN_CAPABILITY:
        return (f"train.dtype=fp8 needs compute capability >= {FP8_MIN_CAPABILITY[0]}.{FP8_MIN_CAPABILITY[1]} "
                f"(fp8 tensor cores); {torch.cuda.get_device_name(device)} is {cap[0]}.{cap[1]}: use bf16")
    return None


def fp8_linear_filter(module, fqn: str) -> bool:  # noqa: ANN001
    """Which linears compute in fp8: those of the blocks whose sizes ``_scaled_mm`` accepts. The
    output head stays in bf16 (torchtitan's default: the logits are the most rounding-sensitive matmul,
    and the fused loss reads its weight directly)."""
    import torch

    return (isinstance(module, torch.nn.Linear) and fqn.startswith("layers.")
            and module.in_features % FP8_MULTIPLE == 0 and module.out_features % FP8_MULTIPLE == 0)


def apply_float8_training(model) -> list[str]:  # noqa: ANN001
    """Swap the blocks' ``nn.Linear`` for torchao ``Float8Linear`` (dynamic tensorwise scaling: inputs
    and weights cast to fp8 E4M3 per matmul, gradients to E5M2), before FSDP wraps the model. Weights,
    gradients and optimizer states keep their dtypes, so memory is that of bf16 mixed precision; the
    matmuls run at the fp8 peak. Returns the converted module names."""
    from torchao.float8 import convert_to_float8_training

    names = [n for n, m in model.named_modules() if fp8_linear_filter(m, n)]
    convert_to_float8_training(model, module_filter_fn=fp8_linear_filter)
    return names


# ----------------------------------------------------------------------------- QAT

def _qat_configs(settings: QATSettings):  # noqa: ANN202
    import torch
    from torchao.quantization.qat import IntxFakeQuantizeConfig

    weight = IntxFakeQuantizeConfig(torch.int4, group_size=settings.group_size, is_symmetric=True)
    act = IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False) if settings.scheme == "8da4w" else None
    return act, weight


def prepare_qat(model, settings: QATSettings) -> list[str]:  # noqa: ANN001
    """Swap every ``nn.Linear`` of ``model.layers`` for torchao's ``FakeQuantizedLinear`` (same
    parameters and state-dict keys), with fake quantization *off*; ``set_fake_quant`` turns it on
    when the QAT phase starts. Done before FSDP/DDP wrap the model, so the wrappers see the final
    modules. Raises ValueError if a layer's input size is not a multiple of ``group_size``."""
    import torch
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    linears = [(n, m) for n, m in model.layers.named_modules() if isinstance(m, torch.nn.Linear)]
    bad = sorted({m.in_features for _, m in linears if m.in_features % settings.group_size})
    if bad:
        raise ValueError(f"train.qat.group_size={settings.group_size} does not divide the input size of every "
                         f"linear layer (sizes {bad})")
    act, weight = _qat_configs(settings)
    quantize_(model.layers, QATConfig(activation_config=act, weight_config=weight, step="prepare"))
    set_fake_quant(model, False)
    return [f"layers.{n}" for n, _ in linears]


def set_fake_quant(model, enabled: bool) -> int:  # noqa: ANN001
    """Turn the fake quantizers of every ``FakeQuantizedLinear`` on or off; returns how many layers."""
    from torchao.quantization.qat import FakeQuantizedLinear

    n = 0
    for m in model.modules():
        if isinstance(m, FakeQuantizedLinear):
            for q in (m.activation_fake_quantizer, m.weight_fake_quantizer):
                if q is not None:
                    q.enabled = enabled
            n += 1
    return n


# ----------------------------------------------------------------------------- post-training quantization

TORCHAO_PIN = "torchao==0.18.0"  # pyproject.toml's train extra; the quantized export needs it to load
# The HF Llama module names every quantized format covers: the blocks' seven projections.
HF_BLOCK_LINEARS = r"re:model\.layers\.\d+\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj"


def format_label(dtype: str, group_size: int = DEFAULT_GROUP_SIZE) -> str:
    """One line for the model card: what the exported weights are (``dtype``: an export format or alias)."""
    return format_for("export", dtype).export_label.format(g=group_size)


def torchao_config(dtype: str, group_size: int = DEFAULT_GROUP_SIZE):  # noqa: ANN201
    """torchao's ``FqnToConfig`` for a quantized export of a Llama: the blocks' projections and the
    output head in ``dtype``, the token embedding weight-only at the same bit width (an embedding
    has no activations to quantize). Every weight matrix is quantized, as the planner counts."""
    import torch
    from torchao.quantization import (
        FqnToConfig,
        Int8DynamicActivationIntxWeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
        PerAxis,
        PerGroup,
    )

    if dtype == "int8":
        linear = Int8WeightOnlyConfig()
        embedding = IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
    elif dtype == "int4":
        linear = embedding = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(group_size))
    elif dtype == "8da4w":
        linear = Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(group_size))
        embedding = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(group_size))
    else:
        quantized = [f.name for f in FORMATS.values() if f.quantized]
        raise ValueError(f"not a quantized format: {dtype!r}; known: {quantized}")
    return FqnToConfig({"model.embed_tokens": embedding, "lm_head": linear, HF_BLOCK_LINEARS: linear})


def _untied_copy(hf_dir: Path, out: Path) -> None:
    """``hf_dir``'s config and weights with the output head as its own tensor. transformers 5.23 cannot
    re-tie a quantized embedding to the head (``torch.equal`` is not defined on torchao's tensors), so a
    tied model is quantized as two matrices: the embedding and the head each get their own codes."""
    from safetensors.torch import load_file, save_file

    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    weights = load_file(str(hf_dir / "model.safetensors"))
    if config.get("tie_word_embeddings"):
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"].clone()
        config["tie_word_embeddings"] = False
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")


def quantize_hf_dir(hf_dir: str | os.PathLike, dtype: str, group_size: int = DEFAULT_GROUP_SIZE) -> dict[str, Any]:
    """Quantize the fp32 Hugging Face Llama in ``hf_dir`` in place (torchao, weight-only post-training
    quantization, or 8da4w): ``model.safetensors`` and ``config.json`` are replaced by what transformers'
    ``TorchAoConfig`` integration saves, with the ``quantization_config`` that
    ``AutoModelForCausalLM.from_pretrained(hf_dir)`` needs to rebuild torchao's tensors (torchao
    installed). The tokenizer and card files are left alone. Returns a summary (format, group size,
    tensors quantized). Raises ValueError when ``group_size`` does not divide the layers' input sizes."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, TorchAoConfig

    hf_dir = Path(hf_dir)
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    if dtype in ("int4", "8da4w"):
        sizes = {config["hidden_size"], config["intermediate_size"]}
        if any(s % group_size for s in sizes):
            raise ValueError(f"--group-size {group_size} must divide hidden_size and intermediate_size {sorted(sizes)}")
    verbosity, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # the load report and progress bars are not for the user here
    transformers.logging.disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory(dir=hf_dir.parent) as tmp:
            untied, quantized = Path(tmp) / "untied", Path(tmp) / "quantized"
            untied.mkdir()
            _untied_copy(hf_dir, untied)
            qc = TorchAoConfig(quant_type=torchao_config(dtype, group_size), include_input_output_embeddings=True)
            model = AutoModelForCausalLM.from_pretrained(str(untied), quantization_config=qc, dtype="float32")
            kinds = {n: type(p).__name__ for n, p in model.named_parameters() if type(p) is not torch.nn.Parameter}
            model.save_pretrained(str(quantized))
            for name in ("model.safetensors", "config.json"):
                shutil.move(str(quantized / name), str(hf_dir / name))
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()
    return {"dtype": dtype, "group_size": group_size if dtype != "int8" else None, "quantized_tensors": len(kinds),
            "tensor_types": sorted(set(kinds.values()))}
