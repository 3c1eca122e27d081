"""Export a DCP checkpoint to a Hugging Face Llama directory.

``python -m train.export --checkpoint OUT/checkpoints/step_00001000 --output hf/``

writes ``model.safetensors`` (consolidated weights), ``config.json`` (``LlamaForCausalLM``),
``generation_config.json``, the mixture's ``tokenizer.json`` with ``tokenizer_config.json`` and
``special_tokens_map.json`` (end-of-text, pad and unknown tokens as the tokenizer really has them),
``domainlm_config.json`` (our own config, for the record), ``README.md`` (model card with Hub
metadata, usage and the tokenizer) and ``LICENSE``, both from train/model_card.py, and the mixture's
``DATASET_CARD.md`` (run/dataset_card.py) when it has one, linked from the card. Every file is a
normal file (mode 0666 less the umask). ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(output)``
then load it, and the model gives the same logits as ``train.model.Transformer``: our rotary layout
already is HF's "rotate half", so the weights only need renaming (no q/k permutation), after the fused
``q|k|v`` and ``gate|up`` matrices are split back by rows (``train.model.unfused_state_dict``).

ALiBi models have no Llama equivalent: their weights and ``domainlm_config.json`` are
written, ``config.json`` is not.

A continued run (``model.init_from: DIR``, train/hf_import.py) goes back out in its base's format:
``config.json`` is the base's own (``DIR/config.json``: its class, e.g. ``Qwen2ForCausalLM`` with q/k/v
biases and an untied head, ``MistralForCausalLM``, or Llama with its ``rope_scaling``), with the exported
dtype; the q/k/v biases are written under their Hugging Face names; the base's tokenizer files
(``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``, ``generation_config.json``
and a slow tokenizer's files, when present) are copied as they are; and the model card names the base in
its ``base_model:`` front matter, with a "Continued-training data" part that links the mixture's dataset
card. The base directory must still be there and still describe the checkpoint (else exit 2).

``--dtype fp32|bf16|fp16`` (or their aliases ``float32|bfloat16|float16``; train/precision.py ``FORMATS``) casts
the weights; ``--dtype int8|int4|8da4w`` quantizes them after training with torchao (weight-only int8 / int4,
or int8 dynamic activations with int4 weights, the scheme ``train.qat`` trains for; ``--group-size`` weights
per int4 scale), through transformers' ``TorchAoConfig``, so ``AutoModelForCausalLM.from_pretrained`` loads
the directory with torchao installed (train/precision.py ``quantize_hf_dir``). The model card states the format.

Exit status: 0 done; 2 with one ``error:`` line (no traceback) for what the user must fix: a
missing or incomplete checkpoint, a bad option, an output path that is not a directory, or a
mixture whose tokenizer disagrees with its manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp

from core.cli import fail, refuse_unknown_options
from core.workdir import DATASET_CARD, read_manifest
from train.checkpoint import TensorOnlyLoadPlanner, latest_checkpoint, read_meta
from train.metrics import read_metrics
from train.model import ModelConfig, Transformer, unfused_state_dict
from train.model_card import LICENSE_FILE, BaseModel, TokenizerInfo, base_model_name, license_text, model_card
from train.precision import DEFAULT_GROUP_SIZE, TORCHAO_PIN, format_for, format_label, names, quantize_hf_dir

# The tokenizer's specials (mixtures/tokenizer.py: EOS, PAD, UNK), named here so that this
# module does not import the tokenizer trainer.
EOS, PAD = "<|endoftext|>", "<|pad|>"


class ExportError(ValueError):
    """Something the user must fix (bad option, inconsistent mixture); the CLI prints it and exits 2."""


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
    # Qwen2's q/k/v biases (a continued run of a Qwen2 base; from-scratch models have none)
    "layers.{i}.attention.wq.bias": "model.layers.{i}.self_attn.q_proj.bias",
    "layers.{i}.attention.wk.bias": "model.layers.{i}.self_attn.k_proj.bias",
    "layers.{i}.attention.wv.bias": "model.layers.{i}.self_attn.v_proj.bias",
}
# A continued run (model.init_from) exports in its base's class; Llama, Mistral and Qwen2 share the tensor names.
BASE_CLASSES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
# The base's tokenizer files, copied as they are when the base has them.
BASE_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                        "vocab.json", "merges.txt", "added_tokens.json")


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
              bos_id: int | None = None, pad_id: int | None = None) -> dict[str, Any]:
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
        "pad_token_id": pad_id,
        "use_cache": True,
        "torch_dtype": dtype,  # transformers < 5
        "dtype": dtype,        # transformers >= 5
    }


def base_hf_config(cfg: ModelConfig, dtype: str = "float32") -> tuple[dict[str, Any], BaseModel]:
    """``config.json`` of a continued run (``cfg.init_from``) and the base it names: the base's own
    ``config.json`` (its class, RoPE parameters and scaling, biases, head tying, token ids, context), with the
    exported ``dtype`` and without its local ``_name_or_path``. The base must still describe ``cfg`` (an
    ExportError names the first key that differs: the directory changed since training)."""
    from core.config import ConfigError
    from train.hf_import import ARCH_KEYS, model_config_from_hf, read_hf_config

    base_dir = Path(cfg.init_from)
    try:
        hf = read_hf_config(base_dir)
        again = model_config_from_hf(base_dir, {"seq_len": cfg.seq_len})
    except ConfigError as exc:
        raise ExportError(f"the run's base model (model.init_from): {exc}") from None
    for key in ARCH_KEYS:
        if getattr(again, key) != getattr(cfg, key):
            raise ExportError(f"the base model {base_dir} no longer matches the run: {key} is "
                              f"{getattr(again, key)!r} there, {getattr(cfg, key)!r} in the checkpoint")
    cls = next((a for a in hf.get("architectures") or [] if isinstance(a, str) and a.endswith("ForCausalLM")),
               BASE_CLASSES[hf["model_type"]])
    out = {k: v for k, v in hf.items() if k not in ("_name_or_path", "torch_dtype", "dtype", "quantization_config")}
    out.update({"architectures": [cls], "torch_dtype": dtype, "dtype": dtype})
    return out, BaseModel(base_model_name(hf, base_dir), cls, hf["model_type"])


def _base_token_ids(hf: dict[str, Any]) -> dict[str, int]:
    """``eos_id``/``bos_id``/``pad_id`` from a base's config.json (the first of a list, as Llama 3 gives eos)."""
    out = {}
    for role in ("eos", "bos", "pad"):
        v = hf.get(f"{role}_token_id")
        v = v[0] if isinstance(v, list) and v else v
        if isinstance(v, int):
            out[f"{role}_id"] = v
    return out


def load_consolidated(checkpoint: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Full (unsharded) model weights from a DCP checkpoint, in one process, no process group.

    Returned in the unfused layout (``wq``/``wk``/``wv``, ``w1``/``w3``; ``train.model.unfused_state_dict``),
    the fused matrices split by rows exactly, with the config saying so: what Llama's names map to."""
    meta = read_meta(checkpoint)
    if meta is None:
        raise FileNotFoundError(f"{checkpoint} is not a complete checkpoint (no intact meta.json)")
    model_cfg = dict(meta["config"]["model"])
    for key in ("fused_qkv", "fused_mlp"):  # checkpoints from before fusion: unfused
        model_cfg.setdefault(key, False)
    cfg = ModelConfig.from_dict(model_cfg)
    model = Transformer(cfg)
    state = {"model": model.state_dict()}
    with warnings.catch_warnings():  # "no process group, loading in a single process": exactly the intent
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=str(checkpoint), planner=TensorOnlyLoadPlanner(), no_dist=True)
    cfg, weights = unfused_state_dict(cfg, state["model"])
    return cfg, weights, meta


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


def without_local_paths(config: dict[str, Any]) -> dict[str, Any]:
    """The run's config as published: an absolute path (the mixture, the run's output) keeps only its
    last component, so no directory of the training machine ships with the model."""
    return {section: {k: Path(v).name if isinstance(v, str) and os.path.isabs(v) else v for k, v in values.items()}
            if isinstance(values, dict) else values for section, values in config.items()}


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


# ----------------------------------------------------------------------------- tokenizer

def _mentions(node: Any, type_name: str) -> bool:
    """Whether a tokenizer.json component (possibly a Sequence) contains a part of type ``type_name``."""
    if isinstance(node, dict):
        return node.get("type") == type_name or any(_mentions(v, type_name) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, type_name) for v in node)
    return False


def tokenizer_info(path: Path | None, manifest: dict[str, Any]) -> TokenizerInfo:
    """The special tokens ``path`` (a tokenizer.json) really has, checked against the mixture's manifest.

    eos: the manifest's ``eos_token``/``eos_id`` (mixtures/tokenizer.py: ``<|endoftext|>``). bos: the
    manifest's ``bos_id``, else eos (documents are separated by eos only; GPT-2's convention). pad: the
    manifest's ``pad_id``, else ``<|pad|>``, else eos (padded positions are masked anyway). unk: the
    model's own unknown piece (Unigram's ``unk_id``, BPE's ``unk_token``), none for byte-level BPE.
    """
    eos_id, bos_id, pad_id = manifest.get("eos_id"), manifest.get("bos_id"), manifest.get("pad_id")
    if path is None:
        ids = {}
        if eos_id is not None:
            ids = {"eos": eos_id, "bos": bos_id if bos_id is not None else eos_id,
                   "pad": pad_id if pad_id is not None else eos_id}
        return TokenizerInfo(None, "none", manifest.get("vocab_size"), ids=ids,
                             pad_is_eos=pad_id is None and eos_id is not None)
    from tokenizers import Tokenizer

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"cannot read the mixture's tokenizer {path}: {first}") from None
    model = doc.get("model") or {}
    kind = model.get("type") or "unknown"
    if _mentions(doc.get("pre_tokenizer"), "ByteLevel") or _mentions(doc.get("decoder"), "ByteLevel"):
        kind = f"byte-level {kind}"
    if model.get("byte_fallback"):
        kind += " with byte fallback"

    def piece(i: int | None) -> str | None:
        return None if i is None else tok.id_to_token(i)

    pieces: dict[str, str] = {}
    eos = manifest.get("eos_token") or piece(eos_id) or EOS
    if tok.token_to_id(eos) is not None:
        pieces["eos"] = eos
    elif manifest.get("eos_token") or eos_id is not None:
        raise ExportError(f"the mixture's tokenizer {path.name} has no end-of-text token {eos!r}")
    bos = piece(bos_id) or pieces.get("eos")
    if bos is not None:
        pieces["bos"] = bos
    pad = piece(pad_id) or (PAD if tok.token_to_id(PAD) is not None else None)
    pad_is_eos = pad is None and "eos" in pieces
    if pad is not None or pad_is_eos:
        pieces["pad"] = pad or pieces["eos"]
    if model.get("type") == "Unigram" and model.get("unk_id") is not None:
        pieces["unk"] = model["vocab"][model["unk_id"]][0]
    elif model.get("unk_token") and tok.token_to_id(model["unk_token"]) is not None:
        pieces["unk"] = model["unk_token"]
    ids = {role: tok.token_to_id(p) for role, p in pieces.items()}
    for role, want in (("eos", eos_id), ("bos", bos_id), ("pad", pad_id)):
        if want is not None and ids.get(role) != want:
            raise ExportError(f"the mixture's manifest says {role}_id {want}, but its tokenizer {path.name} has "
                              f"{pieces.get(role)!r} = {ids.get(role)}")
    return TokenizerInfo(path, kind, tok.get_vocab_size(with_added_tokens=True), pieces, ids, pad_is_eos)


def tokenizer_side_files(tok: TokenizerInfo, seq_len: int) -> dict[str, dict[str, Any]]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` for ``PreTrainedTokenizerFast``.

    Padding is on the left: the card's use is batched generation, where right padding would put pad
    tokens between each prompt and its continuation."""
    specials = {f"{role}_token": tok.pieces[role] for role in ("bos", "eos", "unk", "pad") if role in tok.pieces}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": seq_len, "padding_side": "left",
              "clean_up_tokenization_spaces": False, **specials}
    return {"tokenizer_config.json": config, "special_tokens_map.json": specials}


def _tokenizer_file(manifest: dict[str, Any], data_dir: Path) -> Path | None:
    """The mixture's tokenizer.json (the mixer copies it into the mixture directory), or None if it has none."""
    name = manifest.get("tokenizer")
    if not name:
        return None
    for candidate in (Path(name), data_dir / Path(name).name):
        if candidate.is_file():
            return candidate
    raise ExportError(f"the mixture's tokenizer {name} is missing (named by {data_dir / 'manifest.json'})")


# ----------------------------------------------------------------------------- export

def _file_mode() -> int:
    """The mode a newly created file gets: 0o666 less the umask (safetensors creates its file 0600)."""
    umask = os.umask(0o022)  # reading the umask means setting it; put back at once
    os.umask(umask)
    return 0o666 & ~umask


def export(checkpoint: str | os.PathLike, output: str | os.PathLike, dtype: str = "fp32",
           language: list[str] | None = None, datasets: list[str] | None = None,
           group_size: int | None = None) -> Path:
    """Write the Hugging Face directory; returns its path. ``language``/``datasets``: the card's metadata
    (default: see ``train.model_card.card_metadata``). ``dtype``: an export format of train/precision.py
    ``FORMATS`` or its alias (``names("export")``); for int4 and
    8da4w, ``group_size`` weights share a scale (default: the run's ``train.qat.group_size``, else 32).
    Raises ExportError or OSError for what the user must fix."""
    from safetensors.torch import save_file

    if dtype not in names("export"):
        raise ExportError(f"dtype must be one of {', '.join(names('export'))}, got {dtype!r}")
    fmt = format_for("export", dtype)
    quantized = fmt.name if fmt.quantized else None
    dtype = fmt.export_dtype  # the torch dtype written: float32 / bfloat16 / float16 (quantization starts from fp32)
    checkpoint, output = resolve_checkpoint(checkpoint), Path(output)
    if output.exists() and not output.is_dir():
        raise ExportError(f"output {output} exists and is not a directory")
    cfg, state, meta = load_consolidated(checkpoint)
    if quantized and cfg.pos != "rope":
        raise ExportError(f"--dtype {quantized} goes through transformers' Llama, which has no ALiBi model")
    qat = (meta["config"].get("train") or {}).get("qat") or {}
    group_size = group_size or qat.get("group_size") or DEFAULT_GROUP_SIZE
    data_dir = Path(meta["config"]["data"]["dir"])
    found = read_manifest(data_dir)  # (core/workdir.py: the one manifest reader)
    manifest = found.as_read() if found is not None else {}
    if not manifest:
        print(f"warning: train.export: no manifest.json in the run's data dir {data_dir}: no tokenizer, token ids "
              "or training data in the export", file=sys.stderr)
    base_dir, base_config, base = None, None, None
    if cfg.init_from:  # continued pretraining: back out in the base's class, config and tokenizer
        if cfg.pos != "rope":
            raise ExportError("a continued run's model has rotary positions; this checkpoint says ALiBi")
        base_dir = Path(cfg.init_from)
        base_config, base = base_hf_config(cfg, dtype)
        tok_file = base_dir / "tokenizer.json"
        tok = tokenizer_info(tok_file if tok_file.is_file() else _tokenizer_file(manifest, data_dir),
                             {**_base_token_ids(base_config), **manifest})
    else:
        tok = tokenizer_info(_tokenizer_file(manifest, data_dir), manifest)
    if tok.file is not None and tok.vocab_size > cfg.vocab_size:
        raise ExportError(f"the mixture's tokenizer has {tok.vocab_size} tokens, the model only {cfg.vocab_size}")
    output.mkdir(parents=True, exist_ok=True)
    written = [output / "model.safetensors"]
    save_file(to_hf_state_dict(cfg, state, getattr(torch, dtype)), str(written[0]), metadata={"format": "pt"})

    def write(name: str, text: str) -> None:
        (output / name).write_text(text, encoding="utf-8")
        written.append(output / name)

    # the model section as the exported weights are laid out (unfused), the rest as trained
    write("domainlm_config.json", json.dumps(without_local_paths({**meta["config"], "model": cfg.to_dict()}), indent=1))
    eos, bos, pad = tok.ids.get("eos"), tok.ids.get("bos"), tok.ids.get("pad")
    copied = []
    if base_dir is not None:
        write("config.json", json.dumps(base_config, indent=1))
        copied = [name for name in (*BASE_TOKENIZER_FILES, "generation_config.json") if (base_dir / name).is_file()]
        for name in copied:
            shutil.copyfile(base_dir / name, output / name)
            written.append(output / name)
        if "generation_config.json" not in copied:
            write("generation_config.json", json.dumps({"bos_token_id": bos, "eos_token_id": eos,
                                                        "pad_token_id": pad}, indent=1))
    elif cfg.pos == "rope":
        write("config.json", json.dumps(hf_config(cfg, dtype, eos, bos, pad), indent=1))
        write("generation_config.json", json.dumps({"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad},
                                                   indent=1))
    if quantized:  # model.safetensors and config.json become transformers' TorchAoConfig serialization
        try:
            quantize_hf_dir(output, quantized, group_size)
        except (ValueError, ImportError) as exc:
            raise ExportError(f"--dtype {quantized}: {exc}") from exc
    if tok.file is not None:
        if "tokenizer.json" not in copied:
            shutil.copyfile(tok.file, output / "tokenizer.json")
            written.append(output / "tokenizer.json")
        for name, obj in tokenizer_side_files(tok, cfg.seq_len).items():
            if name not in copied:  # the base's own, when it has them
                write(name, json.dumps(obj, indent=1))
    data_card = data_dir / DATASET_CARD
    if data_card.is_file():  # the data's own card ships with the model, so the model card's link resolves
        shutil.copyfile(data_card, output / DATASET_CARD)
        written.append(output / DATASET_CARD)
    summary, evals = _run_records(checkpoint)
    write(LICENSE_FILE, license_text(manifest))
    write("README.md", model_card(cfg, meta, manifest, summary, evals, tok, language, datasets,
                                  data_card=DATASET_CARD if data_card.is_file() else None,
                                  weights=format_label(fmt.name, group_size),
                                  requires=TORCHAO_PIN if quantized else None, base=base))
    mode = _file_mode()
    for path in written:
        os.chmod(path, mode)
    return output


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage block -> the project's one line, exit 2
        fail(f"train.export: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m train.export", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint dir (OUT/checkpoints/step_N), or a run dir OUT for its newest")
    p.add_argument("--output", required=True, help="directory for the Hugging Face files")
    p.add_argument("--dtype", default="fp32", choices=names("export"),
                   help="fp32/bf16/fp16 (aliases float32, bfloat16/bf16-mixed, float16/fp16-mixed: train/precision.py "
                        "FORMATS), or post-training quantization with torchao: "
                        "int8 / int4 weight-only, 8da4w (int8 dynamic activations + int4 weights)")
    p.add_argument("--group-size", type=int,
                   help="int4/8da4w: weights per scale (default: the run's train.qat.group_size, else 32)")
    p.add_argument("--language", action="append",
                   help="language code for the card's metadata, repeatable (default: the manifest's, else en)")
    p.add_argument("--dataset", action="append", dest="datasets",
                   help="dataset name or Hub id for the card's metadata, repeatable "
                        "(default: the mixture's source names)")
    return p


def main(argv: list[str] | None = None) -> None:
    p = build_parser()
    refuse_unknown_options(p._option_string_actions, argv)
    a = p.parse_args(argv)
    try:
        out = export(a.checkpoint, a.output, a.dtype, a.language, a.datasets, a.group_size)
    except (ExportError, OSError) as exc:
        fail(f"train.export: {exc}")
    print(out)


if __name__ == "__main__":
    main()
