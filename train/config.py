"""Training configuration: one YAML file with sections ``model``, ``data``, ``optim``, ``train``,
plus ``key=value`` overrides with dotted keys (``optim.lr=3e-4 train.strategy=fsdp``).

Every key is documented in docs/training.md. Unknown keys are errors: a typo must never
silently train something other than what was asked.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from pipelines import check_keys, read_yaml
from train.model_config import ModelConfig


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
    dtype: str = "auto"                 # "auto" (bf16 on GPU, fp32 on CPU) | "bf16" | "fp16" | "fp32" | "fp8"
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


class ConfigError(ValueError):
    """A configuration (file, overrides, or what it points at) that cannot be trained: the user's to fix.
    ``train.run`` prints it as one ``error:`` line and exits 2."""


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "train": RunConfig}


def apply_overrides(doc: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``section.key=value`` pairs in ``doc``; values are parsed as YAML (``3e-4``, ``true``, ``[a, b]``)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise ValueError(f"override key {key!r} must be <section>.<key>, section one of {list(SECTIONS)}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            raise ValueError(f"override {item!r}: the value is not valid YAML") from None
        doc.setdefault(parts[0], {})[parts[1]] = value
    return doc


def _coerce(cls: type, section: dict[str, Any], name: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    check_keys(section, known, name)
    out = dict(section)
    for k, v in out.items():  # YAML's "3e-4" string, or an int where a float is wanted
        if known[k].type in ("float", float) and isinstance(v, (int, str)) and not isinstance(v, bool):
            out[k] = float(v)
    return cls.from_dict(out) if cls is ModelConfig else cls(**out)


def config_from_dict(doc: dict[str, Any]) -> Config:
    check_keys(doc, SECTIONS, "config section")
    return Config(**{name: _coerce(cls, doc.get(name) or {}, name) for name, cls in SECTIONS.items()})


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> Config:
    """YAML file (optional) + overrides -> validated ``Config``."""
    doc: dict[str, Any] = {}
    try:
        if path:
            doc = read_yaml(path)
        return config_from_dict(apply_overrides(doc, overrides or []))
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:  # TypeError: a section that is not a mapping
        where = f"{path}: " if path and str(path) not in str(exc) else ""
        raise ConfigError(f"{where}{exc}".replace("\n", " ")) from exc
