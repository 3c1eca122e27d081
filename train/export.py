"""Export a DCP checkpoint to a Hugging Face Llama directory.

``python -m train.export --checkpoint OUT/checkpoints/step_00001000 --output hf/``

writes ``model.safetensors`` (consolidated weights), ``config.json`` (``LlamaForCausalLM``),
``generation_config.json``, the tokenizer files of the mixture, ``domainlm_config.json``
(our own config, for the record) and ``README.md`` (model card, see train/model_card.py).
``transformers.LlamaForCausalLM.from_pretrained(output)`` then gives the same logits as
``train.model.Transformer``: our rotary layout already is HF's "rotate half", so the
weights only need renaming (no q/k permutation).

ALiBi models have no Llama equivalent: their weights and ``domainlm_config.json`` are
written, ``config.json`` is not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp

from train.checkpoint import TensorOnlyLoadPlanner, latest_checkpoint, read_meta
from train.metrics import read_metrics
from train.model import ModelConfig, Transformer
from train.model_card import model_card

# Our parameter names -> Hugging Face Llama names ({i} = layer index).
HF_NAMES = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "layers.{i}.attention_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "layers.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "layers.{i}.attention.wq.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "layers.{i}.attention.wk.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "layers.{i}.attention.wv.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "layers.{i}.attention.wo.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "layers.{i}.feed_forward.w1.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "layers.{i}.feed_forward.w3.weight": "model.layers.{i}.mlp.up_proj.weight",
    "layers.{i}.feed_forward.w2.weight": "model.layers.{i}.mlp.down_proj.weight",
}


def hf_name(name: str) -> str:
    """Map one of our parameter names to its Hugging Face Llama name."""
    parts = name.split(".")
    if parts[0] == "layers":
        key = ".".join(["layers", "{i}", *parts[2:]])
        return HF_NAMES[key].format(i=parts[1])
    return HF_NAMES[name]


def to_hf_state_dict(cfg: ModelConfig, state: dict[str, torch.Tensor],
                     dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Renamed, contiguous copies; the tied output head is dropped (HF ties it from the config)."""
    out = {}
    for name, t in state.items():
        if cfg.tie_embeddings and name == "output.weight":
            continue
        out[hf_name(name)] = t.detach().to(dtype).contiguous().clone()
    return out


def hf_config(cfg: ModelConfig, dtype: str = "float32", eos_id: int | None = None,
              bos_id: int | None = None) -> dict[str, Any]:
    """``config.json`` for ``LlamaForCausalLM`` describing exactly ``Transformer(cfg)``."""
    if cfg.pos != "rope":
        raise ValueError("Hugging Face Llama has rotary positions only; an ALiBi model has no Llama config")
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,  # transformers < 5
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},  # transformers >= 5
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "use_cache": True,
        "torch_dtype": dtype,  # transformers < 5
        "dtype": dtype,        # transformers >= 5
    }


def load_consolidated(checkpoint: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Full (unsharded) model weights from a DCP checkpoint, in one process, no process group."""
    meta = read_meta(checkpoint)
    if meta is None:
        raise FileNotFoundError(f"{checkpoint} is not a complete checkpoint (no intact meta.json)")
    cfg = ModelConfig.from_dict(meta["config"]["model"])
    model = Transformer(cfg)
    state = {"model": model.state_dict()}
    with warnings.catch_warnings():  # "no process group, loading in a single process": exactly the intent
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=str(checkpoint), planner=TensorOnlyLoadPlanner(), no_dist=True)
    return cfg, state["model"], meta


def _run_records(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary.json, last eval per split up to the checkpoint's step) of the run that wrote it."""
    run_dir = checkpoint.parent.parent
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    evals: dict[str, Any] = {}
    step = read_meta(checkpoint)["step"]
    if (run_dir / "metrics.jsonl").is_file():
        for r in read_metrics(run_dir / "metrics.jsonl"):
            if r.get("kind") == "eval" and r["step"] <= step:
                evals[r["split"]] = r
    return summary, evals


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint dir as given, or the newest intact one under a run dir or its ``checkpoints/``."""
    path = Path(path)
    if read_meta(path) is not None:
        return path
    for root in (path / "checkpoints", path):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    raise FileNotFoundError(f"no complete checkpoint at or under {path}")


def export(checkpoint: str | os.PathLike, output: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write the Hugging Face directory; returns its path."""
    from safetensors.torch import save_file

    checkpoint, output = resolve_checkpoint(checkpoint), Path(output)
    cfg, state, meta = load_consolidated(checkpoint)
    data_dir = Path(meta["config"]["data"]["dir"])
    manifest = json.loads((data_dir / "manifest.json").read_text()) if (data_dir / "manifest.json").is_file() else {}
    output.mkdir(parents=True, exist_ok=True)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    save_file(to_hf_state_dict(cfg, state, torch_dtype), str(output / "model.safetensors"), metadata={"format": "pt"})
    (output / "domainlm_config.json").write_text(json.dumps(meta["config"], indent=1), encoding="utf-8")
    eos, bos = manifest.get("eos_id"), manifest.get("bos_id")
    if cfg.pos == "rope":
        (output / "config.json").write_text(json.dumps(hf_config(cfg, dtype, eos, bos), indent=1), encoding="utf-8")
        (output / "generation_config.json").write_text(
            json.dumps({"bos_token_id": bos, "eos_token_id": eos}, indent=1), encoding="utf-8")
    tok = manifest.get("tokenizer")
    if tok and Path(tok).is_file():
        shutil.copyfile(tok, output / "tokenizer.json")
        tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.seq_len}
        if manifest.get("eos_token"):
            tok_cfg["eos_token"] = manifest["eos_token"]
        (output / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1), encoding="utf-8")
    summary, evals = _run_records(checkpoint)
    (output / "README.md").write_text(model_card(cfg, meta, manifest, summary, evals), encoding="utf-8")
    return output


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint dir (OUT/checkpoints/step_N), or a run dir OUT for its newest")
    p.add_argument("--output", required=True, help="directory for the Hugging Face files")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    a = p.parse_args(argv)
    print(export(a.checkpoint, a.output, a.dtype))


if __name__ == "__main__":
    main()
