"""Continued pretraining from an open checkpoint: a Hugging Face model directory -> ``ModelConfig`` and weights.

``model.init_from: DIR`` reads ``DIR/config.json`` (architecture, vocabulary, RoPE, GQA, biases, norm epsilon,
tied head) and ``DIR/model.safetensors`` or ``DIR/model.safetensors.index.json`` (several shards).

Supported (``SUPPORTED``): the Llama family (Llama 2/3, SmolLM; Llama 3 ``rope_type: llama3`` scaling), Mistral
without sliding windows (``sliding_window`` null or >= ``seq_len``), Qwen2 (q/k/v biases, untied head). Everything
else is refused with one ``ConfigError`` line naming what is unsupported: other ``model_type`` (MoE, multimodal,
...), ``attention_bias`` on Llama, ``mlp_bias``, sliding windows in use, other RoPE scalings, activations other
than SiLU, a ``head_dim`` other than ``hidden_size / num_attention_heads``.

Memory: weights are streamed tensor by tensor with ``safetensors.safe_open`` (memory-mapped), each copied
into the model's parameter (or its slice of a fused ``wqkv`` / ``w13``) and dropped, so the host holds the
model plus about one tensor, never a whole shard's state dict. Only the shards that hold a wanted tensor are
opened. Under FSDP2 (fsdp, hsdp, cpu_offload; train/parallel.py) ``train/trainer.build_model`` builds the
model on the ``meta`` device, applies ``fully_shard``, materializes each rank's shards with ``to_empty`` and
loads *then*: each parameter is a ``DTensor`` sharded on dim 0, and each rank reads only the rows of its own
slice (``get_slice``), about 1/world of the base, so the base never exists whole on a rank. DDP and ``none``
load into the plain model before wrapping (every rank holds the whole model anyway).

The config part has no torch import (train/config.py reads it); torch and safetensors load lazily.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.config import ConfigError
from core.model_config import ModelConfig

SUPPORTED = ("llama", "mistral", "qwen2")
# ModelConfig keys that init_from decides; giving one beside it is an error. Not listed (so the user's):
# seq_len (up to max_position_embeddings), init_std (unused when loading), attention, fused_qkv, fused_mlp.
ARCH_KEYS = ("vocab_size", "n_layer", "n_head", "d_model", "n_kv_head", "ffn_hidden", "multiple_of",
             "tie_embeddings", "pos", "rope_theta", "norm_eps", "rope_scaling", "qkv_bias")
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def read_hf_config(model_dir: str | os.PathLike) -> dict[str, Any]:
    """``DIR/config.json`` as a dict (a ``ConfigError`` when absent or not JSON)."""
    path = Path(model_dir) / "config.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"model.init_from: {path} not found (a Hugging Face model directory is wanted)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.init_from: {path} is not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"model.init_from: {path} is not a JSON object")
    return doc


def _rope(hf: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """``(rope_theta, llama3 scaling or None)`` from transformers 5's ``rope_parameters`` or 4's
    ``rope_theta`` + ``rope_scaling``."""
    params = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    merged = {**scaling, **params}
    kind = merged.get("rope_type", merged.get("type", "default"))
    if kind == "default":
        return float(theta), None
    if kind != "llama3":
        raise ConfigError(f"model.init_from: unsupported RoPE scaling rope_type={kind!r} (supported: default, llama3)")
    missing = [k for k in LLAMA3_KEYS if k not in merged]
    if missing:
        raise ConfigError(f"model.init_from: llama3 RoPE scaling lacks {missing}")
    return float(theta), {"rope_type": "llama3", **{k: merged[k] for k in LLAMA3_KEYS}}


def unsupported(hf: dict[str, Any], seq_len: int) -> str | None:
    """The first feature of ``hf`` (a config.json) this project cannot reproduce exactly, or ``None``."""
    kind = hf.get("model_type")
    if kind not in SUPPORTED:
        return f"model_type {kind!r} (supported: {', '.join(SUPPORTED)})"
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if hf.get(key):
            return f"mixture of experts ({key}={hf[key]})"
    if hf.get("hidden_act", "silu") != "silu":
        return f"hidden_act {hf['hidden_act']!r} (only silu / SwiGLU)"
    if kind in ("llama", "mistral") and hf.get("attention_bias"):
        return f"attention_bias on {kind}"
    if hf.get("mlp_bias"):
        return "mlp_bias"
    heads = hf.get("num_attention_heads") or 0
    if hf.get("head_dim") not in (None, hf.get("hidden_size", 0) // max(heads, 1)):
        return f"head_dim {hf['head_dim']} != hidden_size / num_attention_heads"
    if kind == "mistral" and hf.get("sliding_window") is not None and hf["sliding_window"] < seq_len:
        return f"sliding-window attention (sliding_window={hf['sliding_window']} < seq_len={seq_len})"
    if kind == "qwen2" and hf.get("use_sliding_window"):
        return "sliding-window attention (use_sliding_window: true)"
    if hf.get("layer_types") and any(t != "full_attention" for t in hf["layer_types"]):
        return "sliding-window attention (layer_types)"
    return None


def model_config_from_hf(model_dir: str | os.PathLike, user: dict[str, Any] | None = None) -> ModelConfig:
    """The ``ModelConfig`` of the base in ``model_dir``; ``user``: the rest of the ``model:`` section (seq_len,
    kernels). A ``ConfigError`` (one line) for an unsupported base or an architecture key given beside it."""
    user = dict(user or {})
    clash = sorted(k for k in user if k in ARCH_KEYS)
    if clash:
        raise ConfigError(f"model.init_from decides {clash}: remove them (only seq_len, attention, fused_qkv, "
                          "fused_mlp, init_std may be given beside it)")
    hf = read_hf_config(model_dir)
    max_pos = int(hf.get("max_position_embeddings") or 0)
    seq_len = int(user.pop("seq_len", min(ModelConfig.seq_len, max_pos) if max_pos else ModelConfig.seq_len))
    if max_pos and seq_len > max_pos:
        raise ConfigError(f"model.seq_len={seq_len} is longer than the base's max_position_embeddings={max_pos}")
    why = unsupported(hf, seq_len)
    if why:
        raise ConfigError(f"model.init_from: {model_dir}: unsupported: {why}")
    theta, scaling = _rope(hf)
    try:
        return ModelConfig.from_dict({
            **user, "seq_len": seq_len, "init_from": str(model_dir),
            "vocab_size": int(hf["vocab_size"]), "n_layer": int(hf["num_hidden_layers"]),
            "n_head": int(hf["num_attention_heads"]), "d_model": int(hf["hidden_size"]),
            "n_kv_head": int(hf.get("num_key_value_heads") or hf["num_attention_heads"]),
            "ffn_hidden": int(hf["intermediate_size"]), "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
            "pos": "rope", "rope_theta": theta, "rope_scaling": scaling,
            "norm_eps": float(hf.get("rms_norm_eps", 1e-6)), "qkv_bias": hf["model_type"] == "qwen2"})
    except KeyError as exc:
        raise ConfigError(f"model.init_from: {model_dir}/config.json lacks {exc.args[0]!r}") from None
    except ValueError as exc:
        raise ConfigError(f"model.init_from: {model_dir}: {exc}") from None


def resolve_model_section(section: dict[str, Any]) -> dict[str, Any]:
    """A ``model:`` section with ``init_from`` -> the full section (what ``ModelConfig.from_dict`` takes).
    Sections without it come back unchanged. A resolved section (``vocab_size`` etc. present, as in a
    checkpoint's saved config) is re-read from the directory and must agree with it."""
    if not section.get("init_from"):
        return section
    user = {k: v for k, v in section.items() if k != "init_from"}
    return model_config_from_hf(section["init_from"], user).to_dict()


# ----------------------------------------------------------------------------- weights (torch from here)

def hf_names(cfg: ModelConfig) -> dict[str, tuple[str, int, int]]:
    """HF tensor name -> ``(project parameter, first row, rows)``: where each tensor goes, fused slices
    included (``wqkv`` rows q|k|v, ``w13`` rows gate|up; train/model.py ``fused_rows``)."""
    q, kv, h = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim, cfg.ffn_hidden
    out: dict[str, tuple[str, int, int]] = {"model.embed_tokens.weight": ("tok_embeddings.weight", 0, cfg.vocab_size),
                                            "model.norm.weight": ("norm.weight", 0, cfg.d_model)}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = ("output.weight", 0, cfg.vocab_size)
    for i in range(cfg.n_layer):
        hf, me = f"model.layers.{i}.", f"layers.{i}."
        out[hf + "input_layernorm.weight"] = (me + "attention_norm.weight", 0, cfg.d_model)
        out[hf + "post_attention_layernorm.weight"] = (me + "ffn_norm.weight", 0, cfg.d_model)
        out[hf + "self_attn.o_proj.weight"] = (me + "attention.wo.weight", 0, cfg.d_model)
        out[hf + "mlp.down_proj.weight"] = (me + "feed_forward.w2.weight", 0, cfg.d_model)
        for kind in ("weight", "bias") if cfg.qkv_bias else ("weight",):
            for j, (proj, rows) in enumerate((("q", q), ("k", kv), ("v", kv))):
                start = (0, q, q + kv)[j]
                out[f"{hf}self_attn.{proj}_proj.{kind}"] = (
                    (me + f"attention.wqkv.{kind}", start, rows) if cfg.fused_qkv
                    else (me + f"attention.w{proj}.{kind}", 0, rows))
        for j, (proj, mine) in enumerate((("gate", "w1"), ("up", "w3"))):
            out[f"{hf}mlp.{proj}_proj.weight"] = ((me + "feed_forward.w13.weight", j * h, h) if cfg.fused_mlp
                                                  else (me + f"feed_forward.{mine}.weight", 0, h))
    return out


def shard_map(model_dir: str | os.PathLike) -> dict[str, str]:
    """HF tensor name -> the safetensors file holding it (``model.safetensors.index.json`` or one file)."""
    d = Path(model_dir)
    index = d / "model.safetensors.index.json"
    if index.exists():
        return {name: str(d / f) for name, f in json.loads(index.read_text(encoding="utf-8"))["weight_map"].items()}
    single = d / "model.safetensors"
    if not single.exists():
        raise ConfigError(f"model.init_from: {d} has neither model.safetensors nor model.safetensors.index.json")
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as f:
        return {name: str(single) for name in f.keys()}


def _local_rows(p: Any) -> tuple[Any, int]:
    """``(the tensor this rank writes, its first global row)``: a plain parameter is all its rows; an FSDP2
    ``DTensor`` sharded on dim 0 (fsdp, hsdp, cpu_offload) is this rank's rows only."""
    from torch.distributed.tensor import DTensor

    if not isinstance(p, DTensor):
        return p, 0
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    return p.to_local(), int(offset[0]) if len(offset) else 0


def load_into(model: Any, model_dir: str | os.PathLike, only: set[str] | None = None) -> int:
    """Copy the base's weights into ``model`` (a ``Transformer`` of ``model_config_from_hf(model_dir)``, plain
    or already sharded in place by FSDP2), shard by shard and tensor by tensor; ``only``: the project parameter
    names wanted (None = all). A sharded parameter gets only this rank's rows, read as a slice
    (``safe_open(...).get_slice``): a rank reads about 1/world of the weights. Returns the number of
    (tensor, parameter) copies made. Every wanted row must be covered exactly once, else a ``ConfigError``
    names the first missing or mismatched tensor."""
    import torch
    from safetensors import safe_open

    cfg = model.cfg
    # Activation checkpointing and compile wrap blocks; the wrapped parameter keeps its name after the prefix.
    params = {n.replace("_checkpoint_wrapped_module.", "").replace("_orig_mod.", ""): p
              for n, p in model.named_parameters()}
    where = hf_names(cfg)
    files = shard_map(model_dir)
    missing = sorted(n for n, (p, _, _) in where.items() if n not in files and (only is None or p in only))
    if missing:
        raise ConfigError(f"model.init_from: {model_dir} lacks tensor {missing[0]} ({len(missing)} missing)")
    by_file: dict[str, list[str]] = {}
    for name in where:
        if only is None or where[name][0] in only:
            by_file.setdefault(files[name], []).append(name)
    local = {target: _local_rows(p) for target, p in params.items()}
    covered: dict[str, int] = {}
    count = 0
    with torch.no_grad():
        for path in sorted(by_file):  # one shard open at a time; only the wanted tensors (rows) are read
            with safe_open(path, framework="pt", device="cpu") as f:
                for name in by_file[path]:
                    target, start, rows = where[name]
                    dest, offset = local[target]
                    stored = f.get_slice(name)
                    want = (rows, *params[target].shape[1:])
                    if tuple(stored.get_shape()) != want:
                        raise ConfigError(f"model.init_from: {name} has shape {tuple(stored.get_shape())}, "
                                          f"the model wants {want}")
                    lo, hi = max(start, offset), min(start + rows, offset + dest.shape[0])
                    if lo >= hi:  # none of this tensor's rows live on this rank
                        continue
                    part = stored[lo - start:hi - start]
                    dest.narrow(0, lo - offset, hi - lo).copy_(part.to(dest.dtype))
                    covered[target] = covered.get(target, 0) + hi - lo
                    count += 1
                    del part
    for target, (dest, _) in local.items():
        if (only is None or target in only) and covered.get(target, 0) != dest.shape[0]:
            raise ConfigError(f"model.init_from: {target} not fully loaded from {model_dir}")
    return count
