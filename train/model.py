"""A decoder-only transformer you can read in one sitting (nanoGPT-sized, Llama-shaped).

Default architecture (Llama, Touvron et al. 2023): pre-norm RMSNorm, rotary position
embeddings, SwiGLU MLP, no biases, grouped-query attention when ``n_kv_head < n_head``,
``scaled_dot_product_attention`` with a causal mask. ``pos="alibi"`` swaps rotary for
ALiBi linear biases (Press et al. 2022), the choice of BloombergGPT (Wu et al. 2023).

Speed without changing the function (each a ``ModelConfig`` switch; equal to fp32 rounding,
pinned by tests/test_train_throughput.py):

- ``fused_qkv`` / ``fused_mlp``: one ``(q|k|v)`` and one ``(gate|up)`` matmul per block instead
  of three and two (fewer, larger GEMMs). Initialization draws the same numbers slice by slice,
  and ``unfused_state_dict`` splits the weights back exactly for the Hugging Face export.
- ``attention``: the kernel. ``sdpa`` = PyTorch's own choice (FlashAttention-2 on GPUs for
  head dim <= 256); ``cudnn`` = cuDNN attention first (faster than FA2 on Hopper), with
  PyTorch's fallbacks when it cannot run a shape; ``flex`` = FlexAttention with a block-sparse
  causal mask, and ALiBi as a ``score_mod`` (a float ``(H, T, T)`` mask rules out the flash
  kernels; FlexAttention trains on CUDA only and wants ``torch.compile``). ``auto``: ``cudnn``
  on Hopper or newer, ``sdpa`` on other GPUs and on CPU, ``flex`` for ALiBi on GPUs.
  Grouped-query attention shares K/V heads inside the kernel (``enable_gqa``), no copies.
- ``Transformer(cfg, fused_loss=True)``: the output head and the cross-entropy in chunks of
  tokens (train/loss.py), so the fp32 ``(tokens, vocab)`` logits never exist at once.

The model knows nothing of FSDP, DDP, compile or checkpointing: ``train/parallel.py``
applies those to a plain ``Transformer``, torchtitan-style.

``ModelConfig``, parameter counting and the FLOP estimate live in ``core/model_config.py``
(pure arithmetic, no torch) so the mixer and the planner size runs without importing torch.

Rotary convention: the "rotate half" layout of Hugging Face ``LlamaForCausalLM`` (the
first and second halves of each head are the two rotation coordinates), so exported
``q_proj``/``k_proj`` weights need no permutation.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from core.model_config import (  # noqa: F401
    ModelConfig,
    flops_per_token,
    flops_per_token_parts,
    llama_ffn_hidden,
    param_counts,
)
from train.loss import linear_cross_entropy

# cuDNN attention first, then PyTorch's usual order: a shape cuDNN cannot run falls through
# (torchtitan's ScaledDotProductAttention does the same with set_priority=True).
CUDNN_FIRST = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
               SDPBackend.MATH]


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


def llama3_inv_freq(inv_freq: torch.Tensor, scaling: dict) -> torch.Tensor:
    """Llama 3's frequency scaling (Meta's ``apply_scaling``; HF ``_compute_llama3_parameters``): wavelengths
    longer than ``original_max_position_embeddings / low_freq_factor`` tokens are divided by ``factor``,
    shorter than ``... / high_freq_factor`` kept, and those between interpolated smoothly."""
    factor, low, high = float(scaling["factor"]), float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    old_len = float(scaling["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(medium, smoothed, scaled)


def rope_cos_sin(head_dim: int, seq_len: int, theta: float,
                 scaling: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(seq_len, head_dim)`` cos and sin tables in the HF "rotate half" layout (fp32); ``scaling``: a
    ``rope_type: llama3`` mapping (the only scaling ModelConfig accepts) or ``None``."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if scaling is not None:
        inv_freq = llama3_inv_freq(inv_freq, scaling)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` of shape ``(B, H, T, hd)`` by position; math in fp32, result in ``x.dtype``.

    The tables reach here in fp32 under FSDP too: ``train/parallel.py`` turns off FSDP2's
    ``cast_forward_inputs`` on the blocks, which would otherwise round them to bf16 (an angle
    error of up to ~0.4% at the last positions of a 2,048 context)."""
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


def attention_kernel(choice: str, pos: str, device: torch.device) -> str:
    """The kernel ``choice`` stands for on ``device``: ``auto`` resolved, everything else as given."""
    if choice != "auto":
        return choice
    if device.type != "cuda":
        return "sdpa"
    if pos == "alibi":
        return "flex"
    return "cudnn" if torch.cuda.get_device_capability(device) >= (9, 0) else "sdpa"


def causal_mask(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
    """FlexAttention ``mask_mod``: a query sees keys at its own and earlier positions."""
    return q_idx >= kv_idx


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.sizes = [cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim]
        bias = cfg.qkv_bias  # Qwen2's q/k/v biases; o_proj never has one
        if cfg.fused_qkv:
            self.wqkv = nn.Linear(cfg.d_model, sum(self.sizes), bias=bias)
        else:
            self.wq = nn.Linear(cfg.d_model, self.sizes[0], bias=bias)
            self.wk = nn.Linear(cfg.d_model, self.sizes[1], bias=bias)
            self.wv = nn.Linear(cfg.d_model, self.sizes[2], bias=bias)
        self.wo = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=False)
        if cfg.pos == "alibi":  # for FlexAttention's score_mod (the sdpa path gets a ready-made bias)
            self.register_buffer("alibi", alibi_slopes(cfg.n_head), persistent=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                mask: torch.Tensor | BlockMask | None, kernel: str) -> torch.Tensor:
        B, T, _ = x.shape
        if hasattr(self, "wqkv"):
            q, k, v = self.wqkv(x).split(self.sizes, dim=-1)
            v = v.contiguous()  # else v, saved for backward, would keep the whole q|k|v buffer alive
        else:
            q, k, v = self.wq(x), self.wk(x), self.wv(x)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        gqa = self.n_kv_head != self.n_head  # grouped-query attention: the kernel shares each k/v head
        if kernel == "flex":
            score_mod = None
            if hasattr(self, "alibi"):
                slopes = self.alibi

                def score_mod(score, b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202 - FlexAttention's signature
                    return score - slopes[h] * (q_idx - kv_idx)
            y = flex_attention(q, k, v, score_mod=score_mod, block_mask=mask, enable_gqa=gqa)
        elif kernel == "cudnn" and x.device.type == "cuda":
            with sdpa_kernel(CUDNN_FIRST, set_priority=True):
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=gqa)
        else:  # causal, or the ALiBi additive mask (it carries both the distance penalty and causality)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=gqa)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)`` (Shazeer 2020)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.fused_mlp:
            self.w13 = nn.Linear(cfg.d_model, 2 * cfg.ffn_hidden, bias=False)  # rows: gate (w1), then up (w3)
        else:
            self.w1 = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
            self.w3 = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "w13"):
            gate, up = self.w13(x).chunk(2, dim=-1)
        else:
            gate, up = self.w1(x), self.w3(x)
        return self.w2(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                mask: torch.Tensor | BlockMask | None, kernel: str) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, mask, kernel)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    """Token ids ``(B, T)`` -> logits ``(B, T, vocab)`` (or the mean cross-entropy with ``targets``).

    ``fused_loss``: with ``targets``, compute the head and the loss chunk by chunk (train/loss.py)
    instead of materializing the logits; the same loss and gradients to fp32 rounding."""

    def __init__(self, cfg: ModelConfig, fused_loss: bool = False):
        super().__init__()
        self.cfg, self.fused_loss = cfg, fused_loss
        self._block_masks: dict[tuple[int, str], BlockMask] = {}
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # A ModuleDict with string keys keeps parameter names stable ("layers.3.attention.wq")
        # whatever wrapping (FSDP, activation checkpointing, compile) is applied per block.
        self.layers = nn.ModuleDict({str(i): Block(cfg) for i in range(cfg.n_layer)})
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        # Position tables are recomputed from the config, never saved (persistent=False).
        for name, table in self.position_tables().items():
            self.register_buffer(name, table, persistent=False)
        self.init_weights()

    def position_tables(self) -> dict[str, torch.Tensor]:
        """The model's own non-parameter buffers, from the config alone: RoPE's ``rope_cos``/``rope_sin``, or
        the ALiBi slopes ``alibi`` (each ``Attention`` of an ALiBi model holds a copy too)."""
        cfg = self.cfg
        if cfg.pos == "rope":
            cos, sin = rope_cos_sin(cfg.head_dim, cfg.seq_len, cfg.rope_theta, cfg.rope_scaling)
            return {"rope_cos": cos, "rope_sin": sin}
        return {"alibi": alibi_slopes(cfg.n_head)}

    def init_buffers(self, device: torch.device | str) -> None:
        """Recompute every buffer on ``device``: a model built on the ``meta`` device and materialized with
        ``to_empty`` (train/trainer.py ``build_model``) has parameters to load but buffers of garbage, and the
        position tables are not in any checkpoint. Raises ``RuntimeError`` if the model holds a buffer this
        method does not know (it would stay uninitialized)."""
        done = set()
        for name, table in self.position_tables().items():
            setattr(self, name, table.to(device))
            done.add(name)
        for mod_name, module in self.named_modules():
            if isinstance(module, Attention) and hasattr(module, "alibi"):
                module.alibi = alibi_slopes(self.cfg.n_head).to(device)
                done.add(f"{mod_name}.alibi")
        unknown = [n for n, _ in self.named_buffers() if n not in done]
        if unknown:
            raise RuntimeError(f"init_buffers does not know the buffers {unknown}")

    def init_weights(self) -> None:
        """Normal(0, init_std) everywhere; residual output projections scaled by 1/sqrt(2 n_layer)
        (GPT-2, Radford et al. 2019) so the residual stream's variance does not grow with depth.

        A fused matrix is drawn slice by slice (q, k, v; gate, up) in the order of the unfused
        parameters, so fused and unfused models of one seed hold the same numbers."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.endswith(".bias"):  # q/k/v biases start at zero (Qwen2 trains them from there)
                nn.init.zeros_(p)
            elif p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * self.cfg.n_layer))
            else:
                for part in p.split(fused_rows(self.cfg, name) or [p.shape[0]]):
                    nn.init.normal_(part, mean=0.0, std=std)

    def alibi_bias(self, T: int, device: torch.device) -> torch.Tensor:
        """``(n_head, T, T)`` additive mask: ``-slope * (i - j)`` for ``j <= i``, ``-inf`` above."""
        pos = torch.arange(T, device=device)
        dist = (pos[:, None] - pos[None, :]).float()
        bias = -self.alibi.to(device)[:, None, None] * dist
        return bias.masked_fill(dist < 0, float("-inf"))

    def block_mask(self, T: int, device: torch.device) -> BlockMask:
        """FlexAttention's causal block mask for ``T`` tokens (built once per length and device)."""
        key = (T, str(device))
        if key not in self._block_masks:
            self._block_masks[key] = create_block_mask(causal_mask, None, None, T, T, device=device)
        return self._block_masks[key]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        T = idx.shape[1]
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than seq_len={self.cfg.seq_len}")
        kernel = attention_kernel(self.cfg.attention, self.cfg.pos, idx.device)
        if kernel == "flex" and idx.device.type != "cuda" and torch.is_grad_enabled():
            raise ValueError("model.attention=flex trains on CUDA only (FlexAttention has no CPU backward)")
        x = self.tok_embeddings(idx)
        cos = sin = mask = None
        if self.cfg.pos == "rope":
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # fp32: apply_rope rotates in fp32
        elif kernel != "flex":  # flex applies ALiBi as a score_mod, and causality through the block mask
            mask = self.alibi_bias(T, idx.device).to(x.dtype)  # cast once here, not in every block
        if kernel == "flex":
            mask = self.block_mask(T, idx.device)
        for block in self.layers.values():
            x = block(x, cos, sin, mask, kernel)
        h = self.norm(x)
        if targets is None:
            return self.output(h)
        if self.fused_loss:
            return linear_cross_entropy(h.reshape(-1, h.size(-1)), self.output.weight, targets.reshape(-1))
        logits = self.output(h)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


# ----------------------------------------------------------------------------- fused layout

# Fused parameter -> (its unfused parts, in row order). The Hugging Face export and anything else
# that wants the Llama layout goes through unfused_state_dict.
FUSED = {"attention.wqkv.weight": ("attention.wq.weight", "attention.wk.weight", "attention.wv.weight"),
         "attention.wqkv.bias": ("attention.wq.bias", "attention.wk.bias", "attention.wv.bias"),
         "feed_forward.w13.weight": ("feed_forward.w1.weight", "feed_forward.w3.weight")}


def fused_rows(cfg: ModelConfig, name: str) -> list[int] | None:
    """Rows of each unfused part of the fused parameter ``name`` (``None`` if it is not fused)."""
    kv = cfg.n_kv_head * cfg.head_dim
    if name.endswith(("attention.wqkv.weight", "attention.wqkv.bias")):
        return [cfg.n_head * cfg.head_dim, kv, kv]
    if name.endswith("feed_forward.w13.weight"):
        return [cfg.ffn_hidden, cfg.ffn_hidden]
    return None


def unfused_state_dict(cfg: ModelConfig, state: dict[str, torch.Tensor]) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """``(cfg, state)`` in the unfused layout (``wq``/``wk``/``wv``, ``w1``/``w3``): the fused matrices
    split by rows, bit for bit. An unfused state comes back unchanged."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        suffix = next((f for f in FUSED if name.endswith(f)), None)
        if suffix is None:
            out[name] = t
            continue
        prefix = name[: -len(suffix)]
        for part, rows in zip(FUSED[suffix], t.split(fused_rows(cfg, name))):
            out[prefix + part] = rows
    return dataclasses.replace(cfg, fused_qkv=False, fused_mlp=False), out
