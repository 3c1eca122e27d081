"""Training configuration: one YAML file with sections ``model``, ``data``, ``optim``, ``train``,
plus ``key=value`` overrides with dotted keys (``optim.lr=3e-4 train.strategy=fsdp``).

Every key is documented in docs/training.md. Unknown keys are errors: a typo must never
silently train something other than what was asked.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from core.config import ConfigError, check_keys, read_yaml
from core.model_config import ModelConfig
from train import precision
from train.hf_import import resolve_model_section

# The accepted values of the keys whose value picks code, checked when the config is read (validate_config)
# so that a typo is one ``error:`` line before any work, not a traceback on every rank when it is first used.
# train/schedule.py, train/parallel.py and train/trainer.py use these sets (tests/test_train_config.py pins it).
SCHEDULES = ("cosine", "wsd", "constant")
STRATEGIES = ("ddp", "fsdp", "hsdp", "cpu_offload", "none")
DTYPES = tuple(precision.names("train"))  # auto + the trainable formats of train/precision.py FORMATS, with aliases
DEVICES = ("auto", "cuda", "cpu")


@dataclass
class DataConfig:
    dir: str = ""                       # mixture directory: train/, val_domain/, val_general/, manifest.json
    train_split: str = "train"          # sub-directory of ``dir`` holding the training shards
    val_splits: list[str] = field(default_factory=lambda: ["val_domain", "val_general"])
    seed: int = 1234                    # data order = f(seed, step): same seed, same batches


@dataclass
class OptimConfig:
    lr: float = 3e-4                    # peak learning rate
    min_lr_ratio: float = 0.1           # final lr / peak lr (Chinchilla decays 10x; Hoffmann et al. 2022)
    schedule: str = "cosine"            # "cosine" | "wsd" | "constant"
    warmup_steps: int = 100
    decay_fraction: float = 0.2         # wsd: share of steps in the final decay (Hägele et al. 2024)
    decay_shape: str = "linear"         # wsd: linear | cosine | sqrt (1 - sqrt; Hägele et al. 2024)
    decay_on_last_phase: bool = False   # wsd + a phased mixture: decay over exactly the last phase (Parmar et al.)
    weight_decay: float = 0.1           # decoupled (AdamW; Loshchilov & Hutter 2019), on matrices only
    beta1: float = 0.9
    beta2: float = 0.95                 # GPT-3 / Llama
    eps: float = 1e-8
    grad_clip: float = 1.0              # max global L2 norm of the gradients (0 = off)


@dataclass
class RunConfig:
    out_dir: str = "runs/default"
    steps: int = 1000                   # optimizer steps
    global_batch_tokens: int = 524288   # tokens per optimizer step, all ranks together
    micro_batch: int = 8                # sequences per rank per forward/backward
    strategy: str = "fsdp"              # "ddp" | "fsdp" | "hsdp" | "cpu_offload" | "none" (one process, no wrapper)
    sharding_factor: int | None = None  # hsdp: ranks per shard group (None = world size)
    device: str = "auto"                # "auto" | "cuda" | "cpu"
    dtype: str = "auto"                 # "auto" (bf16 on GPU, fp32 on CPU) | "bf16" | "fp16" | "fp32" | "fp8" (DTYPES)
    loss_scale: float = 65536.0         # fp16: initial dynamic loss scale (torch GradScaler's 2**16)
    qat: dict[str, Any] | None = None   # {scheme: 8da4w|4w, start_fraction: 0.8, group_size: 32}: QAT phase
    compile: bool = False
    activation_checkpointing: bool = False
    seed: int = 0                       # model init and torch RNG
    ckpt_every: int = 500               # steps between checkpoints (0 = only at the end, -1 = never)
    keep_checkpoints: int = 3           # newest complete checkpoints kept (0 = all)
    resume: str = "auto"                # "auto" (newest complete in out_dir) | "none" | a checkpoint dir
    eval_every: int = 500               # steps between evaluations (0 = only at the end)
    eval_tokens: int = 1048576          # validation tokens per split per evaluation
    log_every: int = 10                 # steps between metrics lines
    tensorboard: bool = True
    progress: bool = True               # tqdm bar on rank 0's console
    cpu_threads: int = 0                # intra-op threads on CPU (0 = torch's default; torchrun sets 1 per rank)
    timeout_s: float = 600.0            # collective timeout
    peak_tflops: float | None = None    # device peak for MFU when the GPU is not in train/gpus.py's table
    fused_loss: bool = True             # head + cross-entropy in chunks (train/loss.py): no full logits in memory
    reshard_after_forward: bool | None = None  # fsdp/hsdp: re-gather blocks in backward (None = when world > 1)
    prefetch: bool = True               # read step s+1 in a thread (pinned on CUDA) while step s trains
    async_checkpoint: bool | None = None  # dcp.async_save, training goes on while it writes (None = on CUDA only)


@dataclass
class Config:
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    train: RunConfig

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "data": asdict(self.data),
                "optim": asdict(self.optim), "train": asdict(self.train)}


# ConfigError (core/config.py): a configuration (file, overrides, or what it points at) that cannot be
# trained: the user's to fix. ``train.run`` prints it as one ``error:`` line and exits 2.
__all__ = ["ConfigError", "Config", "load_config", "config_from_dict", "config_problems"]

SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "train": RunConfig}


def apply_overrides(doc: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``section.key=value`` pairs in ``doc``; values are parsed as YAML (``3e-4``, ``true``, ``[a, b]``)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in SECTIONS:
            close = difflib.get_close_matches(parts[0], list(SECTIONS), n=1) if len(parts) == 2 else []
            hint = f" (did you mean {close[0]}.{parts[1]}?)" if close else ""
            raise ValueError(f"override key {key!r} must be <section>.<key>, section one of {list(SECTIONS)}{hint}")
        known = {f.name for f in fields(SECTIONS[parts[0]])}
        if parts[1] not in known:  # refused here, with the closest key, not later among the file's keys
            close = difflib.get_close_matches(parts[1], sorted(known), n=1)
            if close:
                raise ValueError(f"unknown option {key.strip()} (did you mean {parts[0]}.{close[0]}?)")
            raise ValueError(f"unknown option {key.strip()}: unknown {parts[0]} keys [{parts[1]!r}]; "
                             f"known: {sorted(known)}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            raise ValueError(f"override {item!r}: the value is not valid YAML") from None
        doc.setdefault(parts[0], {})[parts[1]] = value
    return doc


def _type_ok(value: Any, annotation: str) -> bool:
    """Whether ``value`` (parsed YAML) fits a field annotation such as ``int``, ``float | None``, ``list[str]``."""
    for kind in (a.strip() for a in str(annotation).split("|")):
        if (kind == "None" and value is None) or (kind == "bool" and isinstance(value, bool)) or (
                kind == "int" and isinstance(value, int) and not isinstance(value, bool)) or (
                kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool)) or (
                kind == "str" and isinstance(value, str)) or (kind.startswith("dict") and isinstance(value, dict)) or (
                kind.startswith("list") and isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return True
    return False


def _coerce(cls: type, section: dict[str, Any], name: str) -> Any:
    if not isinstance(section, dict):
        raise ConfigError(f"{name} must be a mapping, got {type(section).__name__}")
    known = {f.name: f for f in fields(cls)}
    check_keys(section, known, name)
    out = dict(section)
    for k, v in out.items():  # YAML's "3e-4" string, or an int where a float is wanted
        if known[k].type in ("float", float) and isinstance(v, (int, str)) and not isinstance(v, bool):
            try:
                out[k] = float(v)
            except ValueError:
                raise ConfigError(f"{name}.{k} must be a number, got {v!r}") from None
        if not _type_ok(out[k], known[k].type):
            raise ConfigError(f"{name}.{k} must be {known[k].type}, got {v!r}")
    return cls.from_dict(out) if cls is ModelConfig else cls(**out)


def config_problems(cfg: Config) -> list[str]:
    """Every value of ``cfg`` that cannot be trained, one message each (empty: the config is usable).
    Choices and ranges only; what needs the data or the hardware (the mixture, fp8 support) is checked there."""
    o, t, m = cfg.optim, cfg.train, cfg.model
    checks = [
        (o.schedule in SCHEDULES, f"optim.schedule must be one of {list(SCHEDULES)}, got {o.schedule!r}"),
        (t.strategy in STRATEGIES, f"train.strategy must be one of {list(STRATEGIES)}, got {t.strategy!r}"),
        (t.dtype in DTYPES, f"train.dtype must be one of {list(DTYPES)}, got {t.dtype!r}"),
        (t.device in DEVICES, f"train.device must be one of {list(DEVICES)}, got {t.device!r}"),
        (o.lr >= 0, f"optim.lr must be >= 0 (0: a run that only loads, evaluates and exports), got {o.lr}"),
        (0 <= o.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {o.min_lr_ratio}"),
        (o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}"),
        (0 < o.decay_fraction <= 1, f"optim.decay_fraction must be in (0, 1], got {o.decay_fraction}"),
        (o.decay_shape in ("linear", "cosine", "sqrt"),
         f"optim.decay_shape must be one of linear, cosine, sqrt, got {o.decay_shape!r}"),
        (not o.decay_on_last_phase or o.schedule == "wsd",
         f"optim.decay_on_last_phase needs optim.schedule=wsd (the decay it places), got {o.schedule!r}"),
        (o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}"),
        (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1, f"optim.beta1 and beta2 must be in [0, 1), got {o.beta1}, {o.beta2}"),
        (o.eps > 0, f"optim.eps must be > 0, got {o.eps}"),
        (o.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0 = off), got {o.grad_clip}"),
        (t.steps >= 0, f"train.steps must be >= 0 (0 = one pass over the mixture, or over each phase), got {t.steps}"),
        (t.global_batch_tokens > 0, f"train.global_batch_tokens must be > 0, got {t.global_batch_tokens}"),
        (t.micro_batch >= 1, f"train.micro_batch must be >= 1, got {t.micro_batch}"),
        (t.sharding_factor is None or t.sharding_factor >= 1,
         f"train.sharding_factor must be >= 1 or null, got {t.sharding_factor}"),
        (t.loss_scale > 0, f"train.loss_scale must be > 0, got {t.loss_scale}"),
        (t.ckpt_every >= -1, f"train.ckpt_every must be >= -1 (0 = at the end, -1 = never), got {t.ckpt_every}"),
        (t.keep_checkpoints >= 0, f"train.keep_checkpoints must be >= 0 (0 = all), got {t.keep_checkpoints}"),
        (t.eval_every >= 0, f"train.eval_every must be >= 0 (0 = at the end), got {t.eval_every}"),
        (t.eval_tokens >= 0, f"train.eval_tokens must be >= 0, got {t.eval_tokens}"),
        (t.log_every >= 1, f"train.log_every must be >= 1, got {t.log_every}"),
        (t.cpu_threads >= 0, f"train.cpu_threads must be >= 0, got {t.cpu_threads}"),
        (t.timeout_s > 0, f"train.timeout_s must be > 0, got {t.timeout_s}"),
        (t.peak_tflops is None or t.peak_tflops > 0, f"train.peak_tflops must be > 0 or null, got {t.peak_tflops}"),
        (t.global_batch_tokens % m.seq_len == 0 if m.seq_len > 0 else True,
         f"train.global_batch_tokens={t.global_batch_tokens} is not a multiple of model.seq_len={m.seq_len}"),
    ]
    return [message for ok, message in checks if not ok]


def config_from_dict(doc: dict[str, Any]) -> Config:
    """Build and validate a ``Config``; every unusable value is a :class:`ConfigError` (all of them, "; ")."""
    check_keys(doc, SECTIONS, "config section")
    if isinstance(doc.get("model"), dict) and doc["model"].get("init_from"):  # a Hugging Face base decides the shape
        doc = {**doc, "model": resolve_model_section(doc["model"])}
    cfg = Config(**{name: _coerce(cls, doc.get(name) or {}, name) for name, cls in SECTIONS.items()})
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(*problems)
    return cfg


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> Config:
    """YAML file (optional) + overrides -> validated ``Config`` (a :class:`ConfigError` names what is wrong)."""
    doc: dict[str, Any] = {}
    try:
        if path:
            doc = read_yaml(path)
        return config_from_dict(apply_overrides(doc, overrides or []))
    except (ValueError, TypeError) as exc:  # TypeError: a section that is not a mapping
        problems = getattr(exc, "problems", None) or [str(exc)]
        raise ConfigError(*[(f"{path}: " if path and str(path) not in p else "") + p.replace("\n", " ")
                            for p in problems]) from exc
