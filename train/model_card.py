"""The model card (README.md in the Hugging Face model-card format) and LICENSE, filled from the run's records.

Sections follow Mitchell et al. 2019 ("Model Cards for Model Reporting") as adopted by the
Hugging Face template: YAML metadata on top (Hub fields, ``license: other`` pointing at LICENSE,
a ``model-index`` of the evaluations), then model details, how to use, tokenizer, uses, bias/risks/
limitations, training details and evaluation. Every number comes from a file the run wrote
(checkpoint ``meta.json``, ``summary.json``, ``metrics.jsonl``), the mixture's ``manifest.json`` or
the exported tokenizer; nothing is typed in by hand. A value the run did not record is left out of
the text, or shown as "–" in a table; no local path appears (the tokenizer is named by its type,
the run's ``out_dir`` and path-valued options are left out).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.model_config import ModelConfig, flops_per_token, param_counts

# The weights derive from the training sources, whose terms differ (see data/README.md), so the card
# says ``license: other`` and points at the LICENSE file written next to it.
LICENSE_NAME = "training-data-terms"
LICENSE_FILE = "LICENSE"


@dataclass
class TokenizerInfo:
    """What the exported tokenizer declares. ``pieces``/``ids`` by role (``eos``, ``bos``, ``pad``, ``unk``);
    a role is absent when the tokenizer has no such token. Without a tokenizer file only ``ids`` are known."""

    file: Path | None
    kind: str                       # "Unigram with byte fallback", "byte-level BPE", ...
    vocab_size: int | None
    pieces: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    pad_is_eos: bool = False


@dataclass
class BaseModel:
    """The open model a continued run started from (``model.init_from``; train/hf_import.py)."""

    name: str           # the card's ``base_model``: a Hub id, else the base's directory name
    architecture: str   # its transformers class, e.g. ``Qwen2ForCausalLM``
    model_type: str     # ``llama``, ``mistral``, ``qwen2``


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def base_model_name(hf_config: dict[str, Any], model_dir: str | os.PathLike) -> str:
    """What ``base_model:`` names: the Hub id of the base when its ``config.json`` records one
    (``_name_or_path`` of the form ``owner/name``, not a local path), else the id of a Hugging Face cache
    snapshot (``.../models--owner--name/snapshots/<revision>``), else the directory's own name."""
    given = hf_config.get("_name_or_path")
    if isinstance(given, str) and HUB_ID.fullmatch(given) and not given.startswith((".", "/")):
        return given
    path = Path(model_dir).resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        owner_name = path.parent.parent.name[len("models--"):].split("--", 1)
        if len(owner_name) == 2 and all(owner_name):
            return "/".join(owner_name)
    return path.name


def _known(x: Any) -> bool:
    return x is not None and x != "" and not (isinstance(x, float) and math.isnan(x))


def _fmt(x: Any, digits: int = 4) -> str:
    if not _known(x):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _opt(template: str, *xs: Any) -> str:
    """``template`` filled with the formatted ``xs``, or "" if any of them was not recorded."""
    return template.format(*map(_fmt, xs)) if all(map(_known, xs)) else ""


def _join(sep: str, *parts: str) -> str:
    return sep.join(p for p in parts if p)


def _sources(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(domain, general) source names of the mixture, each sorted."""
    src = manifest.get("sources") or {}
    domain = sorted(n for n, s in src.items() if s.get("domain") in (True, "domain"))
    return domain, sorted(n for n in src if n not in domain)


def card_metadata(manifest: dict[str, Any], language: list[str] | None = None,
                  datasets: list[str] | None = None) -> dict[str, Any]:
    """Hub fields: language (given, else the manifest's, else ``en``: the filter stage's default keep list),
    datasets (given, else the mixture's source names) and the ``license: other`` pair."""
    lang = language or manifest.get("languages") or manifest.get("language") or ["en"]
    out: dict[str, Any] = {"language": [lang] if isinstance(lang, str) else list(lang)}
    names = list(datasets or sum(_sources(manifest), []))
    if names:
        out["datasets"] = names
    return {**out, "license": "other", "license_name": LICENSE_NAME, "license_link": LICENSE_FILE}


def license_text(manifest: dict[str, Any]) -> str:
    names = ", ".join(sum(_sources(manifest), [])) or "not recorded"
    return ("These weights were trained on the sources listed in README.md (Training data: " + names + ").\n"
            "No license is granted by this file: the terms of each training source may apply to the weights.\n"
            "Whoever publishes the model replaces this file, and the license fields at the top of README.md,\n"
            "with the terms under which it is released.\n")


def _usage_section(cfg: ModelConfig, tok: TokenizerInfo, requires: str | None = None) -> list[str]:
    L = ["## How to use", ""]
    if requires:
        L += [f"The weights are quantized with torchao: loading needs `pip install {requires}` besides `transformers` "
              "(the `quantization_config` in `config.json` tells `from_pretrained` how to rebuild them).", ""]
    if cfg.pos != "rope":
        return L + ["Transformers has no ALiBi Llama, so this export has no `config.json`: load `model.safetensors` "
                    "(Hugging Face Llama tensor names) into domainlm's `train.model.Transformer` built from "
                    "`domainlm_config.json`.", ""]
    L += ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer" if tok.file else
          "import torch\nfrom transformers import AutoModelForCausalLM", "",
          'model_id = "<namespace>/<model-name>"  # or the directory of this export',
          "model = AutoModelForCausalLM.from_pretrained(model_id)"]
    if tok.file:
        L += ["tokenizer = AutoTokenizer.from_pretrained(model_id)",
              'batch = tokenizer(["The company reported", "In the third quarter, revenue"], padding=True, '
              'return_tensors="pt")',
              "out = model.generate(**batch, max_new_tokens=20, do_sample=True, top_p=0.9)",
              "print(tokenizer.batch_decode(out, skip_special_tokens=True))"]
    else:
        L += [f"out = model.generate(torch.tensor([[{tok.ids.get('eos', 0)}]]), max_new_tokens=20, do_sample=True)",
              "print(out)"]
    return L + ["```", "", f"The context is {cfg.seq_len:,} tokens: keep prompt and new tokens within it.", "",
                "Where torchao 0.18 is installed, transformers imports it while loading any model, and torchao logs "
                "`Failed to load .../torchao/_C_*.so` for the kernels its wheel builds for another Python or for "
                "CUDA: harmless (the model does not use them); `logging.getLogger(\"torchao\").setLevel(logging."
                "ERROR)` before the import hides these lines.", ""]


def _tokenizer_section(cfg: ModelConfig, tok: TokenizerInfo) -> list[str]:
    if tok.file is None:
        return ["## Tokenizer", "", "The mixture recorded no tokenizer file, so none ships with this model and "
                "`AutoTokenizer` cannot load it: inputs are token ids" +
                (f" (end of text = id {tok.ids['eos']})." if "eos" in tok.ids else "."), ""]

    def spec(role: str) -> str:
        return f"`{tok.pieces[role]}` (id {tok.ids.get(role)})"

    L = ["## Tokenizer", "",
         f"- Type: {tok.kind} (`tokenizer.json`, with `tokenizer_config.json` and `special_tokens_map.json` for "
         "`transformers`)",
         f"- Vocabulary: {tok.vocab_size:,} tokens (the model's embedding has {cfg.vocab_size:,} rows)"]
    if "eos" in tok.pieces:
        L.append(f"- End of text (eos): {spec('eos')}, appended to every training document")
    if "bos" in tok.pieces:
        L.append(f"- Beginning of text (bos): {spec('bos')}" +
                 (", the same token: documents are separated by eos only, and no bos is added when encoding"
                  if tok.pieces.get("bos") == tok.pieces.get("eos") else ""))
    if "pad" in tok.pieces:
        L.append(f"- Padding (pad): {spec('pad')}" +
                 (", the eos token: the tokenizer has no pad piece, so eos doubles as pad, as is customary "
                  "(padded positions are masked by the attention mask)" if tok.pad_is_eos else "") +
                 "; padding is on the left, for batched generation")
    if "unk" in tok.pieces:
        L.append(f"- Unknown (unk): {spec('unk')}" +
                 (", never produced: unseen characters are spelled with byte pieces" if "byte fallback" in tok.kind
                  else ""))
    else:
        L.append("- Unknown (unk): none" + (", every byte has a token" if tok.kind.startswith("byte-level") else ""))
    return L + [""]


def _data_line(m: dict[str, Any], tok: TokenizerInfo) -> str:
    """Domain share, mixture size and tokenizer, from the manifest ``m``."""
    share = _join(", ", _opt("target {}", m.get("domain_share_target")),
                  _opt("actual {}", m.get("domain_share_actual")))
    extra = _join(", ", _opt("target {}", m.get("target_tokens")),
                  _opt("{} tokens per parameter", m.get("tokens_per_param")))
    mixture = _opt("Mixture tokens: {}", m.get("train_tokens"))
    return _join(" ", share and f"Domain share: {share}.", mixture and mixture + (extra and f" ({extra})") + ".",
                 f"Tokenizer: {tok.kind if tok.file else 'none recorded'} (see Tokenizer above).")


def _hardware_line(cfg: ModelConfig, meta: dict[str, Any], summary: dict[str, Any]) -> str:
    """Tokens seen (and per parameter), training time and where, last throughput."""
    seen, secs, last = meta.get("tokens_seen"), meta.get("train_time_s"), summary.get("last_train") or {}
    where = (f"on {summary['world_size']} x {summary['device_name']}"
             if summary.get("world_size") and summary.get("device_name") else "")
    tokens = _join(" ", f"tokens seen: {_fmt(seen)}", _opt("in {} steps", meta.get("step")),
                   f"({seen / param_counts(cfg)['total']:.4g} tokens per parameter)") if _known(seen) else ""
    time = _join(" ", f"training time {_fmt(secs / 3600, 3)} h", where,
                 _opt("({})", meta.get("strategy"))) if _known(secs) else ""
    speed = _join(", ", _opt("{} tokens/s", last.get("tokens_per_s")), _opt("MFU {}", last.get("mfu")))
    text = _join("; ", tokens, time, speed and f"last throughput {speed}")
    return text[:1].upper() + text[1:] + "." if text else ""


def _hyperparameters(meta: dict[str, Any]) -> dict[str, Any]:
    """The run's optimizer and train options, without its output directory or any path-valued option."""
    run = meta.get("config") or {}
    train = run.get("train")
    if isinstance(train, dict):
        train = {k: "<local path>" if isinstance(v, str) and ("/" in v or os.sep in v) else v
                 for k, v in train.items() if k != "out_dir"}
    return {"optim": run.get("optim"), "train": train}


def model_card(cfg: ModelConfig, meta: dict[str, Any], manifest: dict[str, Any], summary: dict[str, Any],
               evals: dict[str, Any], tok: TokenizerInfo, language: list[str] | None = None,
               datasets: list[str] | None = None, data_card: str | None = None, weights: str = "fp32",
               requires: str | None = None, base: BaseModel | None = None) -> str:
    """README.md text: YAML front matter and Markdown. ``evals``: the last eval record per split;
    ``tok``: the exported tokenizer; ``language``/``datasets``: see :func:`card_metadata`; ``data_card``:
    the file name of the mixture's dataset card shipped beside this one (linked), None if there is none;
    ``weights``: the number format of the exported weights (``train.precision.format_label``);
    ``requires``: the package a quantized export needs to load (e.g. ``torchao==0.18.0``), else None;
    ``base``: the base model of a continued run (``base_model:`` front matter, its architecture, and a
    "Continued-training data" part), None for a model trained from scratch (whose card this leaves as it was)."""
    counts = param_counts(cfg)
    src = manifest.get("sources") or {}
    domain, general = _sources(manifest)
    rope = cfg.pos == "rope"
    front = {**card_metadata(manifest, language, datasets),
             "library_name": "transformers", "pipeline_tag": "text-generation",
             "tags": ["domainlm", "causal-lm", base.model_type if base else "llama" if rope else "alibi",
                      "domain-adaptation", *(["continued-pretraining"] if base else [])],
             "model-index": [{"name": "domainlm", "results": [
                 {"task": {"type": "text-generation"},
                  "dataset": {"name": split, "type": split},
                  "metrics": [{"type": "perplexity", "value": round(r["ppl"], 4)},
                              *([{"type": "bits_per_byte", "value": round(r["bpb"], 4)}] if r.get("bpb") else [])]}
                 for split, r in sorted(evals.items())]}]}
    if base is not None:  # the Hub's model tree: this model is the base trained further
        front = {"base_model": base.name, "base_model_relation": "finetune", **front}
    hardware = _hardware_line(cfg, meta, summary)
    L = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
         "# domainlm causal language model", "",
         (f"`{base.name}` ({base.architecture}) trained further on a mixture of domain text "
          f"({', '.join(domain) or 'see manifest'}) and general text ({', '.join(general) or 'see manifest'}): "
          "continued, domain-adaptive pretraining (Gururangan et al. 2020) from its published weights, "
          "in its own architecture and with its own tokenizer." if base else
          f"A decoder-only transformer pretrained from scratch on a mixture of domain text "
          f"({', '.join(domain) or 'see manifest'}) and general text ({', '.join(general) or 'see manifest'}), "
          "in the manner of BloombergGPT (Wu et al. 2023)."), "",
         "## Model details", "",
         "| | |", "| --- | --- |",
         (f"| Architecture | {base.architecture} (that of `{base.name}`): RMSNorm, rotary positions"
          f"{' with Llama 3 frequency scaling' if cfg.rope_scaling else ''} (theta {cfg.rope_theta:g}), SwiGLU MLP, "
          f"{'q/k/v biases' if cfg.qkv_bias else 'no biases'} |" if base else
          f"| Architecture | {'Llama-style' if rope else 'ALiBi'} decoder: RMSNorm, "
          f"{'rotary positions' if rope else 'ALiBi biases'}, SwiGLU MLP, no biases |"),
         f"| Layers / heads / KV heads / width / MLP width | {cfg.n_layer} / {cfg.n_head} / {cfg.n_kv_head} / "
         f"{cfg.d_model} / {cfg.ffn_hidden} |",
         f"| Context length | {cfg.seq_len} tokens |",
         f"| Vocabulary | {cfg.vocab_size} |",
         f"| Parameters | {_fmt(counts['total'])} total, {_fmt(counts['non_embedding'])} non-embedding, "
         f"{_fmt(counts['embedding'])} embedding ({'tied' if cfg.tie_embeddings else 'untied'} input/output) |",
         f"| Training FLOPs per token | {_fmt(flops_per_token(cfg))} |",
         f"| Weights | {weights} |",
         f"| Checkpoint | step {meta.get('step', '–')} |", "",
         *_usage_section(cfg, tok, requires),
         *_tokenizer_section(cfg, tok),
         "## Uses", "",
         "### Intended use", "",
         "Research on domain-adaptive pretraining: a base model for further fine-tuning, and for scoring or "
         "completing text similar to its training sources. It is a base language model, not an instruction-"
         "following assistant.", "",
         "### Out-of-scope use", "",
         "Financial, legal or medical advice or any decision about people; factual question answering without "
         "verification; generation in languages or domains absent from the training mixture; any use where "
         "fluent but false text causes harm.", "",
         "## Bias, risks and limitations", "",
         f"Domain sources: {', '.join(domain) or 'none recorded'}. General sources: "
         f"{', '.join(general) or 'none recorded'}. "
         "The model knows only what these corpora contain, up to their collection dates; it has not seen "
         "other domains, recent events, or (unless listed) languages other than those of these sources. "
         "News and filings over-represent large companies and English-speaking markets; encyclopedic and "
         "literary text carries the biases of its authors and eras. The model can produce plausible but "
         "wrong numbers and facts and can reproduce memorized text, more so for sources repeated over "
         "several epochs (see below)." + (f" It also keeps what `{base.name}` learned from its own, "
                                          "different pretraining data, with that data's biases: see the base "
                                          "model's card." if base else ""), "",
         "## Training details", ""]
    if base is not None:
        L += ["### Continued-training data", "",
              f"Starting point: the published weights of `{base.name}` (a Hugging Face checkpoint loaded with "
              "domainlm's `model.init_from`), with its tokenizer unchanged. What follows describes only the data "
              "and the run of the continued training; how the base itself was trained is in its own card.",
              "", (f"The mixture's data card, [{data_card}]({data_card}), lists the continued-training sources "
                   "and their licenses, what each curation stage removed and why, and tokens and epochs per "
                   "source." if data_card else
                   "The mixture had no dataset card, so none ships with this model; its sources are listed "
                   "below."), ""]
    L += ["### Training data", ""]
    if src:
        L += ["| source | side | available tokens | sampled tokens | epochs |", "| --- | --- | ---: | ---: | ---: |"]
        L += [f"| {name} | {'domain' if name in domain else 'general'} | {_fmt(src[name].get('available_tokens'))} "
              f"| {_fmt(src[name].get('sampled_tokens'))} | {_fmt(src[name].get('epochs'))} |"
              for name in domain + general]
        L.append("")
    L += [_data_line(manifest, tok), ""]
    if data_card:
        L += [f"The full data card (sources and their licenses, what each curation stage removed and why, "
              f"tokens and epochs per source, known gaps) is in [{data_card}]({data_card}).", ""]
    L += ["### Hyperparameters", "", "```yaml", yaml.safe_dump(_hyperparameters(meta), sort_keys=False).strip(),
          "```", "",
          "### Hardware and time", "", *([hardware, ""] if hardware else []),
          "## Evaluation", "",
          "Held-out documents of the mixture (never trained on). Bits per byte = loss / ln 2 x tokens / UTF-8 "
          "bytes, comparable across tokenizers." + ("" if weights == "fp32" else
          f" Measured during training, before the weights were converted to {weights.split(' (')[0]}: "
          "`make bench-precision` measures what each format changes."), "",
          "| split | step | loss (nats/token) | perplexity | bits per byte | tokens |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]
    L += [f"| {split} | {r['step']} | {_fmt(r['loss'])} | {_fmt(r['ppl'])} | {_fmt(r.get('bpb'))} "
          f"| {_fmt(r.get('tokens'))} |" for split, r in sorted(evals.items())]
    if not evals:
        L.append("| (no evaluation recorded) | | | | | |")
    return "\n".join(L) + "\n"
