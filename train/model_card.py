"""The model card (README.md in the Hugging Face model-card format), filled from the run's own records.

Sections follow Mitchell et al. 2019 ("Model Cards for Model Reporting") as adopted by
the Hugging Face template: YAML metadata on top, then model details, uses, bias/risks/
limitations, training details and evaluation. Every number comes from a file the run
wrote (checkpoint ``meta.json``, ``summary.json``, ``metrics.jsonl``) or from the mixture's
``manifest.json``; nothing is typed in by hand.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from train.model import ModelConfig, flops_per_token, param_counts


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _sources(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    src = manifest.get("sources") or {}
    domain = sorted(n for n, s in src.items() if s.get("domain") in (True, "domain"))
    general = sorted(n for n in src if n not in domain)
    return domain, general


def model_card(cfg: ModelConfig, meta: dict[str, Any], manifest: dict[str, Any], summary: dict[str, Any],
               evals: dict[str, Any]) -> str:
    """Markdown text of the card."""
    counts = param_counts(cfg)
    run = meta.get("config", {})
    domain, general = _sources(manifest)
    front = {"library_name": "transformers", "pipeline_tag": "text-generation",
             "tags": ["domainlm", "causal-lm", "llama" if cfg.pos == "rope" else "alibi", "domain-adaptation"],
             "license": "other",
             "model-index": [{"name": "domainlm", "results": [
                 {"task": {"type": "text-generation"},
                  "dataset": {"name": split, "type": split},
                  "metrics": [{"type": "perplexity", "value": round(r["ppl"], 4)},
                              *([{"type": "bits_per_byte", "value": round(r["bpb"], 4)}] if r.get("bpb") else [])]}
                 for split, r in sorted(evals.items())]}]}
    L = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
         "# domainlm causal language model", "",
         f"A decoder-only transformer pretrained from scratch on a mixture of domain text "
         f"({', '.join(domain) or 'see manifest'}) and general text ({', '.join(general) or 'see manifest'}), "
         "in the manner of BloombergGPT (Wu et al. 2023).", "",
         "## Model details", "",
         "| | |", "| --- | --- |",
         f"| Architecture | {'Llama-style' if cfg.pos == 'rope' else 'ALiBi'} decoder: RMSNorm, "
         f"{'rotary positions' if cfg.pos == 'rope' else 'ALiBi biases'}, SwiGLU MLP, no biases |",
         f"| Layers / heads / KV heads / width / MLP width | {cfg.n_layer} / {cfg.n_head} / {cfg.n_kv_head} / "
         f"{cfg.d_model} / {cfg.ffn_hidden} |",
         f"| Context length | {cfg.seq_len} tokens |",
         f"| Vocabulary | {cfg.vocab_size} |",
         f"| Parameters | {_fmt(counts['total'])} total, {_fmt(counts['non_embedding'])} non-embedding, "
         f"{_fmt(counts['embedding'])} embedding ({'tied' if cfg.tie_embeddings else 'untied'} input/output) |",
         f"| Training FLOPs per token | {_fmt(flops_per_token(cfg))} |",
         f"| Checkpoint | step {meta.get('step')} |", "",
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
         f"Domain sources: {', '.join(domain) or 'n/a'}. General sources: {', '.join(general) or 'n/a'}. "
         "The model knows only what these corpora contain, up to their collection dates; it has not seen "
         "other domains, recent events, or (unless listed) languages other than those of these sources. "
         "News and filings over-represent large companies and English-speaking markets; encyclopedic and "
         "literary text carries the biases of its authors and eras. The model can produce plausible but "
         "wrong numbers and facts and can reproduce memorized text, more so for sources repeated over "
         "several epochs (see below).", "",
         "## Training details", "",
         "### Training data", ""]
    src = manifest.get("sources") or {}
    if src:
        L += ["| source | side | available tokens | sampled tokens | epochs |", "| --- | --- | ---: | ---: | ---: |"]
        for name in domain + general:
            s = src[name]
            L.append(f"| {name} | {'domain' if name in domain else 'general'} | {_fmt(s.get('available_tokens'))} "
                     f"| {_fmt(s.get('sampled_tokens'))} | {_fmt(s.get('epochs'))} |")
        L.append("")
    L += [f"Domain share: target {_fmt(manifest.get('domain_share_target'))}, actual "
          f"{_fmt(manifest.get('domain_share_actual'))}. Mixture tokens: {_fmt(manifest.get('train_tokens'))} "
          f"(target {_fmt(manifest.get('target_tokens'))}, {_fmt(manifest.get('tokens_per_param'))} tokens per "
          f"parameter). Tokenizer: {manifest.get('tokenizer') or 'byte-level (UTF-8 bytes + EOS)'}.", "",
          "### Hyperparameters", "", "```yaml",
          yaml.safe_dump({k: run.get(k) for k in ("optim", "train")}, sort_keys=False).strip(), "```", "",
          "### Hardware and time", "",
          f"Tokens seen: {_fmt(meta.get('tokens_seen'))} in {_fmt(meta.get('step'))} steps; "
          f"training time {_fmt((meta.get('train_time_s') or 0) / 3600, 3)} h on {summary.get('world_size', 'n/a')} "
          f"x {summary.get('device_name', 'n/a')} ({meta.get('strategy')}); last throughput "
          f"{_fmt((summary.get('last_train') or {}).get('tokens_per_s'))} tokens/s, "
          f"MFU {_fmt((summary.get('last_train') or {}).get('mfu'))}.", "",
          "## Evaluation", "",
          "Held-out documents of the mixture (never trained on). Bits per byte = loss / ln 2 x tokens / UTF-8 "
          "bytes, comparable across tokenizers.", "",
          "| split | step | loss (nats/token) | perplexity | bits per byte | tokens |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for split, r in sorted(evals.items()):
        L.append(f"| {split} | {r['step']} | {_fmt(r['loss'])} | {_fmt(r['ppl'])} | {_fmt(r.get('bpb'))} "
                 f"| {_fmt(r.get('tokens'))} |")
    if not evals:
        L.append("| (no evaluation recorded) | | | | | |")
    return "\n".join(L) + "\n"
