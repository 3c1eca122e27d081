"""DATASET_CARD.md for a run's mixture: its sources, what curation removed and why, the realized mix, known gaps.

    python -m run.dataset_card --work work/demo --config configs/runs/demo.yaml

Reads what the run wrote through ``core.workdir.read_run`` (the one reader of a work directory, which the
report shares); any file may be missing, and its section then says "not run"::

    WORK/clean/<source>/stats.json, WORK/filter/<source>/stats.json   per-source stages (pipelines/stats.py)
    WORK/filter/<source>/filter_config.json                          the languages the filter kept
    WORK/dedup/stats.json, WORK/tokens/stats.json                    every source, counted ``by_source``
    WORK/mix/manifest.json (or the run config's mixture:)            the mixer (mixtures/mix.py), typed

and returns Hugging Face dataset-card text: YAML front matter (``pretty_name``, ``language``, ``license``,
``task_categories``, ``size_categories``, ``tags``) and Markdown answering the datasheet questions
(Gebru et al. 2021, "Datasheets for Datasets") that the run's records can answer: sources, structure,
curation, tokens, mixture, known gaps. No ``configs``: the mixture's files are token shards, which
``datasets`` cannot load as text. Counts are documents unless a column says tokens or bytes. No local
path appears: free text from the records (mixer warnings) is rewritten relative to the work directory.

Imports nothing heavy (no Beam, no torch, no NumPy): the orchestrator calls :func:`write_dataset_card`
right after the mixer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from core.cli import fail, refuse_unknown_options
from core.config import read_yaml
from core.workdir import DATASET_CARD as CARD_FILE
from core.workdir import DOC_STAGES, PER_SOURCE, Manifest, RunRecords, read_run, stage_totals
from mixtures.recipe import DEFAULT_MAX_EPOCHS, SIDES

STAGES = DOC_STAGES  # the stages with a stats.json, in order; PER_SOURCE: WORK/<stage>/<source>/ (core/workdir.py)
NOT_RUN = "not run"

# What each stage does, for the reader who has not seen the code (the dedup line is completed from its stats).
STAGE_WHAT = {
    "clean": "reads the raw records, extracts the main content of HTML pages (trafilatura), repairs the Unicode "
             "(ftfy) and normalizes whitespace; drops records that cannot be read or are empty after cleaning",
    "filter": "language identification (fastText lid.176) and heuristic quality rules: Gopher quality and "
              "repetition (Rae et al. 2021), C4 (Raffel et al. 2020), FineWeb (Penedo et al. 2024), and any "
              "configured fastText quality classifier",
    "dedup": "exact duplicates, then near duplicates by MinHash LSH (Broder 1997); one document kept per cluster",
    "tokenize": "encodes every document with the run's tokenizer and appends end-of-text; drops documents whose "
                "encoding is empty or fails",
}

# Why a document was removed, by reason code (the codes of pipelines/*.py and filters/*.py).
REASONS = {
    # clean (and the readers every stage shares: pipelines/io.py, pipelines/splits.py)
    "blank_line": "an empty line in a JSON Lines file",
    "invalid_json": "the line is not valid JSON",
    "invalid_utf8": "the bytes are not valid UTF-8",
    "invalid_unicode": "the text holds characters that are not valid Unicode (lone surrogates)",
    "not_an_object": "the JSON value is not an object",
    "missing_text": "the record has no text",
    "missing_field": "the record lacks a required field",
    "text_not_string": "the text field is not a string",
    "oversized": "the text is larger than the stage's size limit",
    "unreadable_file": "the file could not be read",
    "unreadable_row_group": "a Parquet row group could not be read",
    "warc_http_error": "a WARC response other than HTTP 200",
    "warc_not_html": "a WARC response that is not HTML",
    "html_extraction_failed": "main-content extraction from HTML failed",
    "empty_after_html_extraction": "the page has no main content",
    "empty_after_clean": "no text left after normalization",
    # filter (filters/rules.py, gopher_quality.py, gopher_repetition.py, c4.py, fineweb.py)
    "empty_text": "empty text",
    "lang_not_allowed": "language ID: not one of the source's allowed languages",
    "lang_low_score": "language ID: confidence below the source's minimum score",
    "gopher_word_count": "Gopher: too few or too many words",
    "gopher_mean_word_length": "Gopher: mean word length out of range",
    "gopher_symbol_ratio": "Gopher: too many `#` or ellipses per word",
    "gopher_bullet_lines": "Gopher: too many lines start with a bullet",
    "gopher_ellipsis_lines": "Gopher: too many lines end with an ellipsis",
    "gopher_alpha_words": "Gopher: too few words contain a letter",
    "gopher_stop_words": "Gopher: too few English stop words (not running prose)",
    "gopher_dup_line_frac": "Gopher repetition: too many duplicated lines",
    "gopher_dup_line_char_frac": "Gopher repetition: too many characters in duplicated lines",
    "gopher_dup_para_frac": "Gopher repetition: too many duplicated paragraphs",
    "gopher_dup_para_char_frac": "Gopher repetition: too many characters in duplicated paragraphs",
    "c4_min_sentences": "C4: too few sentences",
    "c4_curly_bracket": "C4: a curly bracket (code or markup)",
    "c4_lorem_ipsum": "C4: placeholder text (lorem ipsum)",
    "fineweb_empty": "FineWeb: no non-blank line",
    "fineweb_punct_lines": "FineWeb: too few lines end in punctuation",
    "fineweb_short_lines": "FineWeb: too many short lines",
    "fineweb_dup_line_chars": "FineWeb: too many characters in duplicated lines",
    "fineweb_newline_ratio": "FineWeb: too many line breaks per word",
    # dedup (pipelines/dedup.py REASONS)
    "duplicate_id": "a second record with an id its source already has",
    "exact_duplicate": "the same text as a kept document",
    "near_duplicate": "a near copy of a kept document (MinHash)",
    # tokenize
    "empty_tokenization": "nothing but end-of-text after encoding",
}
REASON_PATTERNS = (  # codes with a parameter
    (re.compile(r"gopher_top_(\d+)gram$"), "Gopher repetition: the most frequent {0}-gram covers too many characters"),
    (re.compile(r"gopher_dup_(\d+)gram$"), "Gopher repetition: duplicated {0}-grams cover too many characters"),
    (re.compile(r"classifier_(.+)$"), "fastText classifier `{0}`: score below its threshold or outside its top "
                                      "fraction"),
    (re.compile(r"record_error:(.+)$"), "processing the record raised {0}"),
)

# Hugging Face Hub license identifiers (https://huggingface.co/docs/hub/repositories-licenses), the common ones:
# a source license spelled as one of these (any case, spaces for dashes) becomes the card's ``license``.
HUB_LICENSES = frozenset((
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "isc", "zlib", "unlicense",
    "wtfpl", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0",
    "cdla-permissive-2.0", "odc-by", "odbl", "pddl", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1",
    "lgpl-3.0", "agpl-3.0", "mpl-2.0", "epl-1.0", "epl-2.0", "eupl-1.1", "etalab-2.0", "ofl-1.1", "postgresql",
))
SOURCES_ANCHOR = "#sources"  # the "## Sources" heading: license_link of a mixture of licenses

# Hugging Face size_categories, by number of examples (documents): upper bounds and labels.
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                   (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"),
                   (1_000_000_000_000, "100B<n<1T"))


# ----------------------------------------------------------------------------- inputs

# ----------------------------------------------------------------------------- derived numbers

def stage_by_source(stage: str, found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{source: {"input", "output", "removed": Counter}}`` of one stage, from its ``by_source``.

    A per-source directory without ``by_source`` (runs from before it) counts for the source it is named
    after; a tokenize stage without it gives each source's tokenized documents (input unknown: None)."""
    out: dict[str, dict[str, Any]] = {}
    for where, stats in found.items():
        entries = stats.get("by_source") or ({where: stats} if where else {})
        for source, e in entries.items():
            acc = out.setdefault(source, {"input": 0, "output": 0, "removed": Counter()})
            acc["input"] += e.get("input", 0)
            acc["output"] += e.get("output", 0)
            acc["removed"].update(e.get("removed") or {})
    if not out and stage == "tokenize":
        for s in found.values():
            for key, entry in (s.get("sources") or {}).items():
                source = entry.get("source") or key.split("/")[-1]
                acc = out.setdefault(source, {"input": None, "output": 0, "removed": Counter()})
                acc["output"] += entry.get("docs", 0)
    return out


def tokens_by_source(tokenize: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{source: {"docs", "tokens", "bytes"}}`` from the tokenize stats' ``sources`` (summed over sides)."""
    out: dict[str, dict[str, int]] = {}
    for key, entry in (tokenize.get("sources") or {}).items():  # key: "<domain>/<source>"
        acc = out.setdefault(entry.get("source") or key.split("/")[-1], {"docs": 0, "tokens": 0, "bytes": 0})
        for k in acc:
            acc[k] += entry.get(k, 0)
    return out


def reason_text(code: str) -> str:
    if code in REASONS:
        return REASONS[code]
    for pattern, text in REASON_PATTERNS:
        m = pattern.match(code)
        if m:
            return text.format(*m.groups())
    return "–"


def kept_languages(filter_configs: dict[str, dict[str, Any]], names: list[str]) -> list[str]:
    """Languages the filter stage let through, over the sources ``names`` (from each filter_config.json).

    Empty (unknown) as soon as one filtered source enforced no language list (annotate-only, language ID off,
    or any language allowed): the card then claims no language rather than too few."""
    langs: set[str] = set()
    for name in names:
        doc = filter_configs.get(name)
        if doc is None:  # not filtered (yet): it has no documents past the filter
            continue
        langid = (doc.get("config") or {}).get("langid") or {}
        rule = langid.get("default") or {}  # (the source's own: its override is in its filter_config.json)
        if doc.get("annotate_only") or not langid.get("enabled", True) or not rule.get("languages"):
            return []
        langs.update(rule["languages"])
    return sorted(langs)


def license_metadata(sources: list[dict[str, Any]]) -> dict[str, str]:
    """``license`` (a Hub id when every source declares the same one), else ``other`` with a
    ``license_name``/``license_link`` pointing at the per-source table; ``unknown`` when none declares one."""
    declared = {re.sub(r"[^a-z0-9.]+", "-", (s.get("license") or "").lower()).strip("-") for s in sources}
    if declared in (set(), {""}):
        return {"license": "unknown"}
    if len(declared) == 1:  # the same license, however spelled ("CC BY-SA 3.0" = "cc-by-sa-3.0")
        (slug,) = declared
        if slug in HUB_LICENSES:
            return {"license": slug}
        return {"license": "other", "license_name": slug, "license_link": SOURCES_ANCHOR}
    return {"license": "other", "license_name": "per-source-licenses", "license_link": SOURCES_ANCHOR}


def size_category(n: int | None) -> str | None:
    if n is None:
        return None
    return next((label for bound, label in SIZE_CATEGORIES if n < bound), "n>1T")


# ----------------------------------------------------------------------------- formatting

def _n(x: Any) -> str:
    """A count with thousands separators; "–" when not recorded."""
    if x is None:
        return "–"
    return f"{round(x):,}" if isinstance(x, (int, float)) else str(x)


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _cell(text: Any) -> str:
    """Table-safe text: no pipe, no line break."""
    return "–" if text in (None, "") else str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]], right: set[int] = frozenset()) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows), ""]


def _top_sources(by: Counter, k: int = 6) -> str:
    ranked = by.most_common()
    text = ", ".join(f"{name} {n:,}" for name, n in ranked[:k])
    return text + (f", {len(ranked) - k} more" if len(ranked) > k else "")


def without_local_paths(text: str, work: Path) -> str:
    """``text`` with the work directory's own prefix dropped (paths become relative to it), and any other
    absolute path cut to its last component."""
    for prefix in sorted({str(work.resolve()), os.path.abspath(work), str(work)}, key=len, reverse=True):
        if prefix not in ("", "."):
            text = text.replace(prefix.rstrip("/") + "/", "")
    return re.sub(r"(?<![\w.:/~-])/(?:[^\s/'\",;()\[\]]+/)*([^\s/'\",;()\[\]]*)", r"\1", text)


# ----------------------------------------------------------------------------- sections

def _sources_section(sources: list[dict[str, Any]]) -> list[str]:
    L = ["## Sources", ""]
    if not sources:
        return L + ["No source recorded in the run config.", ""]
    rows = [[s["name"], s.get("domain"), s.get("license") or "not declared",
             f"<{s['url']}>" if s.get("url") else None, s.get("description")] for s in sources]
    return L + _table(["source", "side", "license", "link", "description"], rows) + [
        "*side*: `domain` sources make up the domain share of the training stream, `general` the rest. The licenses "
        "are the terms each source is distributed under, as declared in the run config; they apply to the "
        "documents of that source in this mixture.", ""]


def _structure_section(manifest: Manifest | None) -> list[str]:
    L = ["## Dataset structure", "",
         "The mixture directory, written by the mixer (`mixtures/mix.py`):", "",
         "```",
         "train/part-NNNNN.tokens.npy      token ids (uint16 for vocabularies up to 65,536, else uint32); every",
         "                                 document ends with the end-of-text token",
         "train/part-NNNNN.docs.npy        int64 document boundaries (documents + 1)",
         "train/part-NNNNN.index.parquet   one row per document: source, id (the curated document's), UTF-8 bytes",
         "val_domain/  val_general/        held-out documents of each side, same format, each document once",
         "tokenizer.json                   the tokenizer (Hugging Face tokenizers)",
         "manifest.json                    sizes, shares, epochs, seed, warnings",
         "```", "",
         "The shards are token ids, not text: read them with `numpy.load(path, mmap_mode=\"r\")` or "
         "`mixtures.shards.TokenStream(directory)`; the text of a document is in the dedup stage's Parquet files, "
         "found by its `source` and `id`. The training stream interleaves the sources at document granularity, "
         "each source spread evenly over the whole stream; held-out documents never enter it.", ""]
    if manifest is None:
        return L + ["Splits: the mixer was " + NOT_RUN + ".", ""]
    splits = manifest.splits or {}
    rows = []
    for name in ("train", *(f"val_{side}" for side in SIDES)):
        sp = splits.get(name) or {}
        per = sp["bytes"] / sp["tokens"] if sp.get("tokens") and sp.get("bytes") else None
        rows.append([f"`{name}`", _n(sp.get("docs")), _n(sp.get("tokens")), _n(sp.get("shards")),
                     _n(sp.get("bytes")), None if per is None else f"{per:.2f}"])
    return L + _table(["split", "documents", "tokens", "shards", "UTF-8 bytes", "bytes per token"], rows,
                      {1, 2, 3, 4, 5}) + ["Training documents count every repeat (see epochs below).", ""]


def _stage_line(stage: str, found: dict[str, dict[str, Any]]) -> str:
    what = STAGE_WHAT[stage]
    if stage == "dedup":
        p = next(iter(found.values())).get("minhash") or {}
        if p:
            what += (f" (word {p.get('ngram')}-grams, {p.get('num_perm')} permutations in {p.get('bands')} bands "
                     f"of {p.get('rows')}, Jaccard >= {p.get('threshold')}"
                     f"{', verified exactly' if p.get('verify') else ''}; "
                     f"{'across sources' if p.get('cross_source') else 'within each source'}, "
                     f"the copy of the higher-priority source kept)")
    return what


def _curation_section(rec: RunRecords, names: list[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The stage table, the documents of each source after each stage, and the removals by reason.
    Also returns ``{stage: by_source}`` for the gaps."""
    L = ["## Curation: what each stage removed and why", "",
         "Every document a stage reads is either kept or removed with one reason code (the first rule it "
         "failed), so a stage's counts balance: input = output + removed (*balanced* says whether they did).", ""]
    rows, per_stage = [], {}
    stats, totals = rec.by_stage(), stage_totals(rec.stages)
    for stage in STAGES:
        found = stats.get(stage)
        if not found:
            rows.append([f"`{stage}`", NOT_RUN, None, None, None, None, STAGE_WHAT[stage]])
            continue
        t = totals[stage]
        per_stage[stage] = stage_by_source(stage, found)
        removed = t["removed"]
        rows.append([f"`{stage}`", _n(t["input"]), _n(t["output"]), _n(removed),
                     _pct(removed / t["input"], 1) if t["input"] else None,
                     "yes" if t["balanced"] else "**no**", _stage_line(stage, found)])
    L += ["### Stages", ""]
    L += _table(["stage", "input", "output", "removed", "removed %", "balanced", "what it does"], rows,
                {1, 2, 3, 4})

    L += ["### Documents of each source after each stage", ""]
    if not per_stage:
        L += ["No curation stage has run.", ""]
    else:
        extra = sorted({s for by in per_stage.values() for s in by} - set(names))
        rows = []
        for name in names + extra:
            clean = per_stage.get("clean", {}).get(name)
            row = [name + (" (not in the run config)" if name in extra else ""),
                   _n(clean["input"]) if clean else NOT_RUN]
            for stage in STAGES:
                by = per_stage.get(stage)
                if by is None:
                    row.append(NOT_RUN)
                elif name in by:
                    row.append(_n(by[name]["output"]))
                elif stage in PER_SOURCE:  # no directory of this source: the stage did not run for it
                    row.append(NOT_RUN)
                else:  # counted per source, without this one: none of its documents reached the stage
                    row.append("0" if by else "–")
            rows.append(row)
        L += _table(["source", "read", "after clean", "after filter", "after dedup", "tokenized"], rows,
                    {1, 2, 3, 4, 5})

    L += ["### Removed documents by reason", ""]
    for stage in STAGES:
        if stage not in stats:
            L += [f"`{stage}`: {NOT_RUN}.", ""]
            continue
        reasons = totals[stage]["reasons"]
        if not reasons:
            L += [f"`{stage}`: removed nothing.", ""]
            continue
        by_reason: dict[str, Counter] = {}
        for source, e in per_stage[stage].items():
            for reason, n in e["removed"].items():
                by_reason.setdefault(reason, Counter())[source] += n
        rows = [[f"`{reason}`", _n(n), _top_sources(by_reason[reason]) if reason in by_reason else "–",
                 reason_text(reason)] for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
        L += [f"`{stage}`:", ""] + _table(["reason", "documents", "by source", "why"], rows, {1})
    return L, per_stage


def _tokens_section(rec: RunRecords, names: list[str]) -> list[str]:
    L = ["## Tokens per source", ""]
    found = rec.by_stage().get("tokenize")
    if not found:
        return L + ["The tokenize stage was " + NOT_RUN + ".", ""]
    stats = next(iter(found.values()))
    tok = tokens_by_source(stats)
    if not tok:
        return L + ["The tokenize stage recorded no per-source counts.", ""]
    rows = []
    for name in names + sorted(set(tok) - set(names)):
        t = tok.get(name)
        rows.append([name, _n(t["docs"]) if t else "0", _n(t["tokens"]) if t else "0",
                     _n(t["bytes"]) if t else "0",
                     f"{t['bytes'] / t['tokens']:.2f}" if t and t["tokens"] and t["bytes"] else "–"])
    total = (stats.get("counts") or {}).get("tokens", sum(t["tokens"] for t in tok.values()))
    return L + _table(["source", "documents", "tokens", "UTF-8 bytes", "bytes per token"], rows, {1, 2, 3, 4}) + [
        f"{_n(total)} tokens in all (end-of-text included), before the mixer holds out validation documents and "
        "samples the training stream.", ""]


def _mixture_section(manifest: Manifest | None, names: list[str]) -> list[str]:
    L = ["## Mixture", ""]
    if manifest is None:
        return L + ["The mixer was " + NOT_RUN + ".", ""]
    m = manifest
    target, actual = m.domain_share_target, m.domain_share_actual
    sized = (f"{_n(m.params)} parameters x {m.tokens_per_param} tokens per parameter"
             if m.params and m.tokens_per_param else "")
    L += [f"- Training stream: {_n(m.train_tokens)} tokens (target {_n(m.target_tokens)}"
          + (f": {sized}" if sized else "") + ").",
          f"- Domain share: realized {_pct(actual)} vs target {_pct(target)} "
          f"({_n(m.domain_tokens)} domain tokens, {_n(m.general_tokens)} general tokens).",
          f"- Tokenizer: vocabulary {_n(m.vocab_size)}, token dtype {m.dtype or '–'}, sha256 "
          f"`{m.tokenizer_sha256 or '–'}`; seed {'–' if m.seed is None else m.seed}.", ""]
    src = m.sources or {}
    train = m.train_tokens or 0
    rows = []
    for name in [n for n in names if n in src] + sorted(set(src) - set(names)):
        s = src[name]
        ep = s.get("epochs")
        side = s.get("domain")
        rows.append([name, "domain" if side in (True, "domain") else "general" if side is not None else None,
                     _n(s.get("total_tokens")), _n(s.get("val_tokens")),
                     _n(s.get("available_tokens")), _n(s.get("sampled_tokens")),
                     _pct(s["sampled_tokens"] / train) if train and s.get("sampled_tokens") is not None else None,
                     None if ep is None else f"{ep:.2f}",
                     None if s.get("max_epochs") is None else f"{s['max_epochs']:g}",
                     _n(s.get("train_docs")), _n(s.get("train_unique_docs"))])
    L += _table(["source", "side", "tokens", "held out", "available", "sampled", "share of stream", "epochs",
                 "max epochs", "training docs", "unique docs"], rows, set(range(2, 11)))
    L += ["*held out*: tokens of the source's validation documents; *available* = tokens - held out; *epochs* = "
          "sampled / available: above 1 the source is upsampled (whole passes, then a random part of one more, "
          "each pass reshuffled), below 1 subsampled. *unique docs*: distinct documents among the training "
          "documents.", ""]
    return L


def _source_lost(name: str, per_stage: dict[str, dict[str, Any]]) -> str | None:
    """Why source ``name`` reached no further than some stage: a per-source stage that did not run for it,
    or the first stage that left it no document. None while it has documents everywhere it was counted."""
    for stage in STAGES:
        by = per_stage.get(stage)
        if not by:  # not run, or not counted per source (runs from before by_source)
            continue
        if stage in PER_SOURCE and name not in by:
            return f"`{name}`: the `{stage}` stage was {NOT_RUN} for it."
        e = by.get(name)
        if e is None or e["output"] == 0:
            read = per_stage.get("clean", {}).get(name, {}).get("input")
            why = _top_sources(e["removed"], 3) if e and e["removed"] else ""
            return (f"`{name}`: emptied by the `{stage}` stage"
                    + (f" ({_n(read)} documents read)" if read else " (no document read)" if read == 0 else "")
                    + (f"; removed for {why}" if why else "") + ": it contributes nothing.")
    return None


def _gaps(rec: RunRecords, sources: list[dict[str, Any]], per_stage: dict[str, dict[str, Any]],
          work: Path) -> list[str]:
    gaps = [f"{p}." for p in rec.problems]
    totals = stage_totals(rec.stages)
    gaps += [f"The `{stage}` stage was {NOT_RUN}." for stage in STAGES if stage not in totals]
    if rec.manifest is None:
        gaps.append(f"The mixer was {NOT_RUN}: there is no training stream.")
    gaps += [f"The `{stage}` stage's counts do not balance (input != output + removed)."
             for stage, t in totals.items() if not t["balanced"]]
    m = rec.manifest or Manifest()
    mixed = m.sources or {}
    for s in sources:
        name = s["name"]
        lost = _source_lost(name, per_stage)
        if lost:
            gaps.append(lost)
        elif rec.manifest is not None and name not in mixed:
            gaps.append(f"`{name}`: not in the mixture (see the mixer's warnings).")
        entry = mixed.get(name) or {}
        if entry and not entry.get("sampled_tokens"):
            gaps.append(f"`{name}`: in the mixture but with no training tokens.")
        if (entry.get("epochs") or 0) > DEFAULT_MAX_EPOCHS:
            gaps.append(f"`{name}`: repeated {entry['epochs']:.2f} epochs, beyond the ~{DEFAULT_MAX_EPOCHS:g} after "
                        "which repeats are worth less than new data (Muennighoff et al. 2023).")
    short = m.shortfall
    if short:
        missing = ", ".join(f"{side} {_n(n)} tokens" for side, n in (short.get("missing_tokens") or {}).items()
                            if n and n > 0)
        gaps.append(f"Shortfall: the sources could not supply the target of {_n(short.get('target_tokens'))} tokens "
                    f"within their max epochs (missing: {missing or '–'}); the total was lowered to "
                    f"{_n(short.get('reduced_target_tokens'))} tokens, keeping the domain share.")
    target, actual = (m.domain_share_target, m.domain_share_actual) if rec.manifest is not None else (None, None)
    if target is not None and actual is not None and abs(actual - target) > 0.005:
        gaps.append(f"The realized domain share {_pct(actual)} is off the target {_pct(target)} by "
                    f"{100 * abs(actual - target):.2f} points.")
    gaps += [f"Mixer warning: {without_local_paths(str(w), work)}" for w in m.warnings or []]
    return ["## Known gaps", "", *([f"- {g}" for g in gaps] or ["None recorded."]), ""]


# ----------------------------------------------------------------------------- the card

def _recipe_origin(work: Path, manifest: Manifest | dict[str, Any] | None) -> list[str]:
    """Which recipe the mixture used and why: the mixture search's recommendation (``WORK/sweep/sweep.json``,
    ``python -m mixtures.sweep``) when the manifest's domain share and source weights are the recommended ones,
    else the run config's recipe (and a word on a search that recommends something else)."""
    if manifest is None:
        return []
    if isinstance(manifest, dict):  # (a manifest's fields as a mapping: read as the mixer's)
        manifest = Manifest.from_dict(manifest)
    share = manifest.domain_share_target
    L = ["## Recipe", ""]
    try:
        sweep = json.loads((work / "sweep" / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sweep = None
    rec = (sweep or {}).get("recommendation") if isinstance(sweep, dict) else None
    srcs = manifest.sources or {}
    same = bool(rec) and share is not None and abs(share - rec["domain_share"]) < 1e-6 and all(
        abs((srcs.get(n) or {}).get("weight", -1.0) - w) < 1e-4 for n, w in rec["weights"].items() if w > 0)
    if same:
        fit, conf = sweep.get("fit") or {}, (sweep.get("confirmation") or {}).get("verdict")
        L.append(f"- **From the mixture search** (`python -m mixtures.sweep --config {sweep.get('run_config')}`, "
                 f"`sweep/sweep.json`): domain share {share:g} and the sources' weights were chosen by the "
                 f"`{fit.get('chosen')}` mixing law fitted on {len(sweep.get('proxies') or [])} proxy models, as "
                 f"the lowest predicted domain loss with predicted general loss within "
                 f"{100 * sweep.get('general_tolerance', 0):.0f}% of general-only proxies'.")
        if conf:
            L.append(f"- Confirmed at the target's size against 51/49: the recommendation "
                     f"{'beats' if conf.get('beats') else 'does not beat'} it (domain loss "
                     f"{conf['val_domain']['recommended']:.4f} vs {conf['val_domain']['51_49']:.4f}, seed spread "
                     f"{conf['val_domain']['spread']:.4f}; general loss {conf['val_general']['recommended']:.4f} vs "
                     f"{conf['val_general']['51_49']:.4f}).")
    else:
        L.append(f"- The run config's recipe (`mix:`): domain share {_pct(share)}"
                 + (" (BloombergGPT's 51/49 split of FinPile and general text)." if share == 0.51 else "."))
        if rec:
            L.append(f"- A mixture search in `sweep/` recommends domain share {rec['domain_share']:g} "
                     f"(`sweep/recommended_recipe.yaml`); this mixture does not use it.")
    return L + [""]


def dataset_card(work_dir: str | os.PathLike, sources: list[dict[str, Any]], *, pretty_name: str | None = None,
                 language: list[str] | None = None) -> str:
    """``DATASET_CARD.md`` text for the run in ``work_dir`` whose config lists ``sources`` (dicts with
    ``name``, ``domain`` and optionally ``license``, ``url``, ``description``). ``language``: the card's
    language codes (default: those the filter stage kept)."""
    work = Path(work_dir)
    rec = read_run(work)
    names = [s["name"] for s in sources]
    pretty = pretty_name or f"domainlm {work.resolve().name} pretraining mixture"
    langs = list(language or kept_languages(rec.filter_configs, names))
    m = rec.manifest
    if m is not None:
        n_docs = sum((sp or {}).get("docs", 0) for sp in (m.splits or {}).values())
    else:
        totals = stage_totals(rec.stages)
        n_docs = next((totals[st]["output"] for st in ("tokenize", "dedup") if st in totals), None)
    front: dict[str, Any] = {"pretty_name": pretty}
    if langs:
        front["language"] = langs
        front["multilinguality"] = "monolingual" if len(langs) == 1 else "multilingual"
    front.update(license_metadata(sources))
    front.update({"task_categories": ["text-generation"], "task_ids": ["language-modeling"],
                  "language_creators": ["found"], "annotations_creators": ["no-annotation"]})
    if size_category(n_docs):
        front["size_categories"] = [size_category(n_docs)]
    front["tags"] = ["domainlm", "pretraining", "domain-adaptation", "tokenized"]

    domain = [s["name"] for s in sources if s.get("domain") == "domain"]
    general = [s["name"] for s in sources if s.get("domain") != "domain"]
    share = (f" The training stream holds {_n(m.train_tokens)} tokens, {_pct(m.domain_share_actual)} "
             f"of them domain text (target {_pct(m.domain_share_target)})." if m is not None else
             " The mixer has not run yet.")
    curation, per_stage = _curation_section(rec, names)
    L = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
         f"# {pretty}", "",
         f"A pretraining mixture of {len(domain)} domain source{'s' * (len(domain) != 1)} "
         f"({', '.join(domain) or 'none'}) and {len(general)} general source{'s' * (len(general) != 1)} "
         f"({', '.join(general) or 'none'}), built by domainlm: clean -> filter -> dedup -> tokenize -> mix, "
         f"in the manner of BloombergGPT (Wu et al. 2023)." + share
         + (f" Language{'s' * (len(langs) > 1)}: {', '.join(langs)}." if langs else ""), "",
         *_sources_section(sources),
         *_structure_section(m),
         *curation,
         *_tokens_section(rec, names),
         *_mixture_section(m, names),
         *_recipe_origin(work, m),
         *_gaps(rec, sources, per_stage, work),
         "## Provenance", "",
         "Written by `run/dataset_card.py` from the run's `stats.json` files and `mix/manifest.json`; "
         "every number is one of theirs. The removed documents themselves, each with its reason, are kept in "
         "the run's work directory, in the output directory of the stage that removed them (`rejected/`, "
         "`removed/` or `duplicates/`).", ""]
    return "\n".join(L)


def write_dataset_card(work_dir: str | os.PathLike, sources: list[dict[str, Any]], **kwargs: Any) -> Path:
    """Write :func:`dataset_card` to ``<work_dir>/mix/DATASET_CARD.md``; returns its path."""
    path = Path(work_dir) / "mix" / CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dataset_card(work_dir, sources, **kwargs), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m run.dataset_card", description=__doc__.splitlines()[0],
                                allow_abbrev=False)
    p.add_argument("--work", required=True, help="the run's work directory")
    p.add_argument("--config", required=True, help="the run config (YAML) whose `sources` the card lists")
    p.add_argument("--language", action="append", help="language code, repeatable (default: the filter's)")
    refuse_unknown_options(p._option_string_actions, argv)
    a = p.parse_args(argv)
    try:
        sources = read_yaml(a.config).get("sources") or []
        path = write_dataset_card(a.work, sources, language=a.language)
    except (ValueError, OSError) as exc:
        fail(f"run.dataset_card: {exc}")
    print(path)
    return path


if __name__ == "__main__":
    main()
