"""Number formats and what lower precision costs: bit layouts, bytes per parameter, and the tools that
use them (fp16 loss scaling, fp8 training, quantization-aware training, post-training quantization).

Two halves, read top to bottom:

1. **Formats, no torch** (the planner imports this part): ``FLOAT_FORMATS`` with each format's bit
   layout and the range and precision that follow from it, ``INT_FORMATS`` for quantized weights,
   ``WEIGHT_FORMATS`` (bytes per parameter and per scale at inference) and ``QATSettings``.
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

from pipelines import check_keys

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

    name: str
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


WEIGHT_FORMATS: dict[str, WeightFormat] = {
    "fp32": WeightFormat("fp32", 4, None, 4, "fp32"),
    "bf16": WeightFormat("bf16", 2, None, 2, "bf16"),
    "fp16": WeightFormat("fp16", 2, None, 2, "fp16"),
    # LLM.int8 / torchao Int8WeightOnly: per-output-row (per-channel) scales (Dettmers et al. 2022).
    "int8": WeightFormat("int8", 1, 0, 2, "int8 weight-only, a scale per row"),
    # GPTQ / AWQ / Q4_0-style: 4-bit codes, a scale per group of 32 (Frantar et al. 2023; Lin et al. 2024).
    "int4": WeightFormat("int4", 0.5, DEFAULT_GROUP_SIZE, 2, f"int4 weight-only, a scale per {DEFAULT_GROUP_SIZE}"),
}


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
    """A dynamic loss scaler for fp16 training, or None for other dtypes.

    fp16's smallest normal number is 6.1e-5 and its largest 65504 (``FLOAT_FORMATS["fp16"]``): small
    gradients underflow to zero unless the loss is multiplied by a large scale before backward
    (Micikevicius et al. 2018, "Mixed Precision Training"). The scaler unscales the gradients before
    clipping and the optimizer step, skips the step if any gradient is inf/NaN and halves the scale,
    and doubles it after ``growth_interval`` clean steps. ``ShardedGradScaler`` all-reduces the
    overflow flag, so under FSDP every rank skips the same steps (a plain GradScaler would let the
    rank whose shard overflowed skip alone); under DDP the gradients are identical anyway.
    """
    if dtype != "fp16":
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

# export --dtype -> (what the card says, torch dtype name of the unquantized tensors)
EXPORT_FORMATS = {
    "fp32": ("fp32", "float32"),
    "bf16": ("bf16", "bfloat16"),
    "fp16": ("fp16", "float16"),
    "int8": ("int8 weight-only (torchao Int8WeightOnlyConfig, one scale per row)", "float32"),
    "int4": ("int4 weight-only (torchao IntxWeightOnlyConfig, symmetric, one scale per group of {g})", "float32"),
    "8da4w": ("int8 dynamic per-token activations + int4 weights (torchao Int8DynamicActivationIntxWeightConfig, "
              "one scale per group of {g})", "float32"),
}
QUANTIZED = ("int8", "int4", "8da4w")
TORCHAO_PIN = "torchao==0.18.0"  # pyproject.toml's train extra; the quantized export needs it to load
# The HF Llama module names every quantized format covers: the blocks' seven projections.
HF_BLOCK_LINEARS = r"re:model\.layers\.\d+\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj"


def format_label(dtype: str, group_size: int = DEFAULT_GROUP_SIZE) -> str:
    """One line for the model card: what the exported weights are."""
    return EXPORT_FORMATS[dtype][0].format(g=group_size)


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
        raise ValueError(f"not a quantized format: {dtype!r}; known: {QUANTIZED}")
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
