"""The model's shape and its arithmetic, without torch: ``ModelConfig``, exact parameter counts
and training FLOPs per token.

The mixer (20 tokens per parameter) and the planner size runs from these without building a
model or importing torch; ``train/model.py`` builds the ``Transformer`` a config describes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from core.config import from_dict, read_yaml

ATTENTION_KERNELS = ("auto", "sdpa", "cudnn", "flex")


@dataclass
class ModelConfig:
    """Shape of the transformer. Every size is a count (tokens, layers, heads, channels).

    ``ffn_hidden=None`` applies the Llama rule: ``multiple_of * ceil((8/3 * d_model) / multiple_of)``
    (SwiGLU has three matrices, so 2/3 of the 4x MLP width keeps the parameter count of a
    4x GELU MLP; Shazeer 2020, Touvron et al. 2023). ``n_kv_head=None`` means ``n_head``
    (plain multi-head attention).
    """

    vocab_size: int = 32000
    seq_len: int = 2048
    n_layer: int = 12
    n_head: int = 12
    d_model: int = 768
    n_kv_head: int | None = None
    ffn_hidden: int | None = None
    multiple_of: int = 256
    tie_embeddings: bool = True
    pos: str = "rope"                 # "rope" | "alibi"
    rope_theta: float = 10000.0       # Llama 1/2 base frequency
    norm_eps: float = 1e-5            # Llama 2 RMSNorm epsilon
    rope_scaling: dict[str, Any] | None = None  # Llama 3 frequency scaling {rope_type: llama3, factor, ...}
    qkv_bias: bool = False            # biases on the q/k/v projections (Qwen2)
    init_from: str | None = None      # a Hugging Face model directory the weights come from (train/hf_import.py)
    init_std: float = 0.02            # GPT-2 / nanoGPT initializer range
    # Kernels and layout: the same function (to fp32 rounding), different speed. Exports are unfused.
    attention: str = "auto"           # "auto" | "sdpa" | "cudnn" | "flex" (see train/model.py)
    fused_qkv: bool = True            # one (q|k|v) projection matmul instead of three
    fused_mlp: bool = True            # one (gate|up) matmul instead of two

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.ffn_hidden is None:
            self.ffn_hidden = llama_ffn_hidden(self.d_model, self.multiple_of)
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}")
        if self.pos not in ("rope", "alibi"):
            raise ValueError(f"pos must be 'rope' or 'alibi', got {self.pos!r}")
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, got {self.attention!r}")
        if self.rope_scaling is not None and (self.pos != "rope" or self.rope_scaling.get("rope_type") != "llama3"):
            raise ValueError(f"rope_scaling supports rope_type llama3 with pos=rope only, got {self.rope_scaling!r}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, got {self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a mapping; unknown keys are an error (a typo must not train a different model)."""
        return from_dict(cls, d, "model config")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ModelConfig:
        """Read the ``model:`` section of a YAML file (or its top level when there is none)."""
        doc = read_yaml(path)
        return cls.from_dict(doc.get("model", doc))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def llama_ffn_hidden(d_model: int, multiple_of: int = 256) -> int:
    """SwiGLU hidden width: 8/3 * d_model rounded up to ``multiple_of`` (Llama ``FeedForward``)."""
    hidden = int(8 * d_model / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Exact parameter counts of ``Transformer(cfg)``, by arithmetic (no torch needed).

    ``embedding`` counts the vocabulary matrices: the token embedding, plus the output
    head when it is untied (Kaplan et al. 2020 exclude both from N). ``non_embedding``
    is everything else (attention, MLP, norms); ``total`` is what the module holds,
    shared weights counted once (Chinchilla's N, used by the mixer's 20x sizing).
    """
    d, h, kv = cfg.d_model, cfg.ffn_hidden, cfg.n_kv_head * cfg.head_dim
    attn = d * d + 2 * d * kv + d * d          # wq, wk, wv, wo
    attn += (d + 2 * kv) if cfg.qkv_bias else 0  # q/k/v biases (Qwen2)
    mlp = 3 * d * h                            # w1 (gate), w3 (up), w2 (down)
    norms = 2 * d                              # attention_norm, ffn_norm
    non_embedding = cfg.n_layer * (attn + mlp + norms) + d  # + final norm
    embedding = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
    return {"total": non_embedding + embedding, "non_embedding": non_embedding, "embedding": embedding}


def flops_per_token_parts(cfg: ModelConfig) -> dict[str, int]:
    """Training FLOPs per token (forward + backward = 3 x forward), by part, for MFU.

    - ``matmul``: ``6 * N_non_embedding``: every weight matrix of the blocks is one multiply-add
      (2 FLOPs) per token forward and two in backward (Kaplan et al. 2020, Eq. 2.2).
    - ``attention``: ``12 * n_layer * d_model * seq_len``: the ``QK^T`` and ``AV`` matmuls at full
      context, not halved for the causal mask (PaLM, Chowdhery et al. 2022, App. B; nanoGPT
      ``estimate_mfu``; torchtitan).
    - ``head``: ``6 * vocab_size * d_model``: the output projection is a matmul whatever its
      weights are tied to (nanoGPT and torchtitan count it; the embedding lookup is not a matmul
      and is not counted). It is 5.4% of the total at 1.1B (configs/train/llama1b.yaml) and 24% at
      125M (gpt125m.yaml): leaving it out, as this function did before, under-stated MFU by a factor
      1.057 and 1.31.

    Norms, activations, softmax and the loss are not matmuls and are left out, as are the
    recomputed forwards of activation checkpointing (model FLOPs, not hardware FLOPs).
    """
    return {"matmul": 6 * param_counts(cfg)["non_embedding"],
            "attention": 12 * cfg.n_layer * cfg.d_model * cfg.seq_len,
            "head": 6 * cfg.vocab_size * cfg.d_model}


def flops_per_token(cfg: ModelConfig) -> int:
    """Training FLOPs per token for MFU: the sum of :func:`flops_per_token_parts` (head included)."""
    return sum(flops_per_token_parts(cfg).values())
