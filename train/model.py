"""A decoder-only transformer you can read in one sitting (nanoGPT-sized, Llama-shaped).

Default architecture (Llama, Touvron et al. 2023): pre-norm RMSNorm, rotary position
embeddings, SwiGLU MLP, no biases, grouped-query attention when ``n_kv_head < n_head``,
``scaled_dot_product_attention`` with a causal mask. ``pos="alibi"`` swaps rotary for
ALiBi linear biases (Press et al. 2022), the choice of BloombergGPT (Wu et al. 2023).

The model knows nothing of FSDP, DDP, compile or checkpointing: ``train/parallel.py``
applies those to a plain ``Transformer``, torchtitan-style.

``ModelConfig``, parameter counting and the FLOP estimate live in ``train/model_config.py``
(pure arithmetic, no torch) so the mixer and the planner size runs without importing torch.

Rotary convention: the "rotate half" layout of Hugging Face ``LlamaForCausalLM`` (the
first and second halves of each head are the two rotation coordinates), so exported
``q_proj``/``k_proj`` weights need no permutation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from train.model_config import ModelConfig, flops_per_token, llama_ffn_hidden, param_counts  # noqa: F401


# ----------------------------------------------------------------------------- modules

class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich 2019), computed in fp32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rope_cos_sin(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(seq_len, head_dim)`` cos and sin tables in the HF "rotate half" layout (fp32)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` of shape ``(B, H, T, hd)`` by position; math in fp32, result in ``x.dtype``."""
    xf = x.float()
    half = xf.shape[-1] // 2
    rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
    return (xf * cos + rotated * sin).type_as(x)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Per-head ALiBi slopes: the geometric sequence of Press et al. 2022 (``2^(-8i/n)``),
    with the paper's interleaving rule when ``n_head`` is not a power of two."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        slopes = power_of_two(n_head)
    else:
        closest = 2 ** math.floor(math.log2(n_head))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(slopes, dtype=torch.float32)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.wq = nn.Linear(cfg.d_model, cfg.n_head * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                bias: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv_head != self.n_head:  # grouped-query attention: share each k/v head
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if bias is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # ALiBi: the additive mask carries both the distance penalty and causality
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)`` (Shazeer 2020)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, bias)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    """Token ids ``(B, T)`` -> logits ``(B, T, vocab)`` (or the mean cross-entropy with ``targets``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # A ModuleDict with string keys keeps parameter names stable ("layers.3.attention.wq")
        # whatever wrapping (FSDP, activation checkpointing, compile) is applied per block.
        self.layers = nn.ModuleDict({str(i): Block(cfg) for i in range(cfg.n_layer)})
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        # Position tables are recomputed from the config, never saved (persistent=False).
        if cfg.pos == "rope":
            cos, sin = rope_cos_sin(cfg.head_dim, cfg.seq_len, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            self.register_buffer("alibi", alibi_slopes(cfg.n_head), persistent=False)
        self.init_weights()

    def init_weights(self) -> None:
        """Normal(0, init_std) everywhere; residual output projections scaled by 1/sqrt(2 n_layer)
        (GPT-2, Radford et al. 2019) so the residual stream's variance does not grow with depth."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * self.cfg.n_layer))
            else:
                nn.init.normal_(p, mean=0.0, std=std)

    def alibi_bias(self, T: int, device: torch.device) -> torch.Tensor:
        """``(n_head, T, T)`` additive mask: ``-slope * (i - j)`` for ``j <= i``, ``-inf`` above."""
        pos = torch.arange(T, device=device)
        dist = (pos[:, None] - pos[None, :]).float()
        bias = -self.alibi.to(device)[:, None, None] * dist
        return bias.masked_fill(dist < 0, float("-inf"))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        T = idx.shape[1]
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than seq_len={self.cfg.seq_len}")
        cos = sin = bias = None
        if self.cfg.pos == "rope":
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        else:
            bias = self.alibi_bias(T, idx.device)
        x = self.tok_embeddings(idx)
        for block in self.layers.values():
            x = block(x, cos, sin, bias)
        logits = self.output(self.norm(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
