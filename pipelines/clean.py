"""The clean stage: raw files -> normalized documents, with every bad record accounted for.

    python -m pipelines.clean --input 'data/raw/*.jsonl.gz' --output work/clean/finance \
        --source bbc_business --domain domain [--format auto|html|text|edgar] [Beam options]
    python -m pipelines.clean --input 'filings/*.htm' 'filings/*.txt' --output work/clean/sec \
        --source sec_filings --domain domain            # EDGAR filings: auto-detected, or --format edgar
    python -m pipelines.clean --hf-dataset DIR_OR_HUB_NAME [--hf-split train] --output ... --domain general
    python -m pipelines.clean --input 'news/*.jsonl' --text-field article.body --id-field article.uid ...
    python -m pipelines.clean --sources sources.yaml [Beam options]   # several sources, one Beam job

``--text-field``/``--id-field`` name the text and id fields of JSON Lines and Parquet records (and HF
datasets), dotted paths for nested JSON. Before any work, the first records of the first such file are
sampled: if none has the text field, the stage stops (exit 2) with ``0 of 100 records have "text";
fields seen: id, body, title`` instead of dropping every document as ``missing_text``.

Per document: HTML pages (``--format html``, or text that looks like a page) become their
main-content text; then Unicode repair (ftfy), NFC, control characters removed and
whitespace normalized (``filters/normalize.py``). A page whose main content is empty or tiny
next to its visible text falls back to the full text (``html_fulltext_fallback`` in stats.json).

SEC EDGAR filings (``--format edgar``, or with ``auto`` an HTML page that ``filters/edgar.py``
recognizes as a filing, and every full-submission ``.txt``, whose ``<DOCUMENT>``s are records of
their own) keep all their text, tables one row per line, with the filing's form type, company,
CIK, period, filing date and accession number in ``meta``. ``--max-text-bytes`` applies to their
extracted text; a longer filing becomes parts cut at Item boundaries (``meta.part`` of
``meta.parts``, ids ``<id>#<part>``), each part counted as one more input (``edgar_extra_parts``)
so that stats.json balances. Outputs: ``OUTPUT/train-*.parquet``
(id, text, source, domain, meta), ``OUTPUT/rejected/`` (records that could not be read
or are empty after cleaning, with ``reason``, file, line and up to 1 KB of the raw
record), ``OUTPUT/stats.json``.

``--sources FILE`` runs several sources as one Beam job: a YAML/JSON list of mappings whose keys are
this command's options (``input``, ``output``, ``source``, ``domain``, ``format``, ``text_field``, ...),
each checked as its own command line would be before any work; one branch per source (labels
``clean[<name>]``, Beam counters in the namespace ``clean/<name>``) writes the same directory, byte for
byte, as that source's own command.

One fused map per input split (``pipelines/splits.py``): read, clean, write
``train-<split>-<roll>.parquet`` in input order. No document crosses a shuffle, so memory is
flat in the corpus size and the bytes are the same on any runner or worker count.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from core.documents import DOMAINS, document_type, meta_json
from filters.edgar import document_text, filing_meta, looks_like_filing, split_parts
from filters.html import DEFAULT_EXTRACTOR, EXTRACTORS, extract_text_info, looks_like_html
from filters.normalize import clean_text
from filters.pii import KINDS as PII_KINDS
from filters.pii import redact
from pipelines.io import (
    DEFAULT_MAX_TEXT_BYTES,
    InputError,
    Rejected,
    check_text_field,
    has_fields,
    map_fields,
    prepare_output_dir,
    sample_hf_fields,
    snippet,
    to_document,
)
from pipelines.options import (
    add_sources_flag,
    fail,
    parse,
    parse_sources,
    read_sources,
    run_stage,
    sources_argv,
    stage_inputs,
    stage_parser,
    writes_output,
)
from pipelines.options import run_sources as options_run_sources
from pipelines.splits import (
    JsonlPart,
    ParquetParts,
    Progress,
    ReadSplits,
    SplitCounts,
    accepted,
    auto_split_mb,
    describe_inputs,
    read_split,
    reject_bad_rows,
)
from pipelines.stats import WriteStats

STAGE = "clean"
log = logging.getLogger(__name__)


PII_COUNTS = "_pii"  # a cleaned document's spans redacted per kind, taken off by CleanSplit for stats.json
FALLBACK = "_html_fallback"  # set on a page that fell back to full-text extraction, taken off by CleanSplit
FORMATS = ("auto", "html", "text", "edgar")
FILING_RAW_LIMIT = 64  # an EDGAR document may be this many times --max-text-bytes of raw HTML (a 10-K: 2-10 MB)


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    """A document's ``meta`` as a dict (on disk it is a JSON object string: core/documents.py)."""
    return json.loads(doc["meta"]) if doc.get("meta") else {}


def _redacted(text: str, pii_kinds: tuple[str, ...]) -> tuple[str, dict[str, int]]:
    """``text`` with the PII of ``pii_kinds`` replaced, and the spans replaced per kind."""
    return redact(text, pii_kinds) if pii_kinds else (text, {})


def clean_document(doc: dict[str, Any], text_format: str = "auto", extractor: str = DEFAULT_EXTRACTOR,
                   pii_kinds: tuple[str, ...] = PII_KINDS) -> dict[str, Any] | str:
    """Clean one document's text and redact its PII (``filters/pii.py``, the kinds in ``pii_kinds``);
    returns the document, or a removal reason code."""
    text = doc["text"]
    fell_back = False
    if text_format == "html" or (text_format == "auto" and looks_like_html(text)):
        try:
            text, fell_back = extract_text_info(text, extractor)
        except Exception:  # a page the extractor cannot parse is removed, not a crash
            log.warning("HTML extraction failed for %s/%s", doc["source"], doc["id"], exc_info=True)
            return "html_extraction_failed"
        if not text.strip():
            return "empty_after_html_extraction"
        doc = {**doc, "meta": meta_json({**_meta(doc), "format": "html"})}  # a web page (document_type)
    text = clean_text(text)
    if not text:
        return "empty_after_clean"
    text, replaced = _redacted(text, pii_kinds)
    return {**doc, "text": text, **({PII_COUNTS: replaced} if replaced else {}),
            **({FALLBACK: True} if fell_back else {})}


def is_filing(record: dict[str, Any], path: str, text_format: str) -> bool:
    """Whether a record is read as an EDGAR filing: ``--format edgar``, or ``auto`` and a document of a
    full-submission file, or an HTML page (``.htm``/``.html`` file or page-like text) that
    ``filters/edgar.py`` recognizes as a filing."""
    if text_format == "edgar":
        return True
    if text_format != "auto":
        return False
    meta = record.get("meta")
    if isinstance(meta, dict) and meta.get("format") == "edgar":
        return True
    text = record.get("text")
    if not isinstance(text, str):
        return False
    html_file = path.lower().endswith((".html", ".htm", ".txt"))
    return (html_file or looks_like_html(text)) and "<" in text[:4096] and looks_like_filing(text)


def clean_filing(doc: dict[str, Any], max_text_bytes: int,
                 pii_kinds: tuple[str, ...] = PII_KINDS) -> list[dict[str, Any]] | str:
    """One EDGAR document -> its cleaned text as one document, or parts of at most ``max_text_bytes``
    cut at Item boundaries (``filters/edgar.py``); meta gains what the filing says about itself."""
    try:
        text, was_html = document_text(doc["text"])
    except Exception:  # a page lxml cannot parse is removed, not a crash
        log.warning("EDGAR extraction failed for %s/%s", doc["source"], doc["id"], exc_info=True)
        return "html_extraction_failed"
    meta = _meta(doc)
    found = filing_meta(doc["text"], text, str(meta.get("file", "")) + " " + doc["id"]) if was_html else {}
    meta = {**found, **{k: v for k, v in meta.items() if v not in (None, "")}, "format": "edgar"}
    text = clean_text(text)
    if not text:
        return "empty_after_html_extraction" if was_html else "empty_after_clean"
    text, replaced = _redacted(text, pii_kinds)
    parts = split_parts(text, max_text_bytes)
    out = []
    for k, part in enumerate(parts, start=1):
        part_meta = {**meta, "part": k, "parts": len(parts)} if len(parts) > 1 else meta
        out.append({**doc, "id": f"{doc['id']}#{k}" if len(parts) > 1 else doc["id"], "text": part,
                    "meta": meta_json(part_meta)})
    if replaced:
        out[0][PII_COUNTS] = replaced
    return out


def read_and_clean(record: dict[str, Any], path: str, line: int, *, source: str | None, domain: str,
                   text_format: str, extractor: str, max_text_bytes: int,
                   pii_kinds: tuple[str, ...] = PII_KINDS, text_field: str = "text",
                   id_field: str = "id") -> dict[str, Any] | list[dict[str, Any]] | Rejected:
    """Validate a raw record and clean it: the whole per-record work of the stage, fused with the read.
    An EDGAR filing over ``max_text_bytes`` of text gives a list: its parts. ``text_field``/``id_field``
    (keys or dotted paths) map a JSON Lines or Parquet record's fields to ``text``/``id``."""
    if (text_field != "text" or id_field != "id") and has_fields(path):
        record = map_fields(record, text_field, id_field)
    if is_filing(record, path, text_format):
        doc = to_document(record, path=path, line=line, source=source, domain=domain,
                          max_text_bytes=max_text_bytes * FILING_RAW_LIMIT)
        if isinstance(doc, Rejected):
            return doc
        cleaned = clean_filing(doc, max_text_bytes, pii_kinds)
        if isinstance(cleaned, str):
            return Rejected(cleaned, path, line, snippet(doc["text"]), source=doc["source"])
        return cleaned[0] if len(cleaned) == 1 else cleaned
    html_file = path.lower().endswith((".html", ".htm", ".warc", ".warc.gz"))
    fmt = "html" if html_file and text_format in ("auto", "edgar") else text_format
    doc = to_document(record, path=path, line=line, source=source, domain=domain, max_text_bytes=max_text_bytes)
    if isinstance(doc, Rejected):
        return doc
    cleaned = clean_document(doc, fmt, extractor, pii_kinds)
    if isinstance(cleaned, str):
        return Rejected(cleaned, path, line, snippet(doc["text"]), source=doc["source"])
    return cleaned


def build_parser():
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--input", action="extend", nargs="+", default=[],
                        help="file globs (several, or repeat --input): .jsonl[.gz|.zst], .parquet, .txt, .html, "
                             ".warc[.gz]; local or gs://")
    parser.add_argument("--hf-dataset", help="Hugging Face dataset: a local directory (load_from_disk or "
                                             "data files) or a hub name (downloads: only when you name one)")
    parser.add_argument("--hf-config", help="dataset configuration name")
    parser.add_argument("--hf-split", default="train")
    parser.add_argument("--text-field", help="field holding the text in JSON Lines/Parquet records and HF "
                                             "datasets; a dotted path reads nested JSON (article.body) "
                                             "(default: text)")
    parser.add_argument("--id-field", help="field holding the document id, dotted paths too (default: id; "
                                           "records without it get <file>:<line>)")
    parser.add_argument("--hf-text-field", help="the same as --text-field (kept for existing commands)")
    parser.add_argument("--hf-id-field", help="the same as --id-field (kept for existing commands)")
    parser.add_argument("--hf-shards", type=int, default=4, help="parallel read shards of the dataset")
    parser.add_argument("--source", help="source name for every document (default: each record's own "
                                         "`source`, else the file name)")
    parser.add_argument("--domain", required=True, choices=DOMAINS, help="domain label of this source")
    parser.add_argument("--format", default="auto", choices=FORMATS,
                        help="auto: extract HTML where the text is an HTML page, and read SEC filings (HTML/iXBRL "
                             "pages that are filings, EDGAR full-submission .txt files) as edgar (default); "
                             "edgar: every record is a filing document")
    parser.add_argument("--html-extractor", default=DEFAULT_EXTRACTOR, choices=EXTRACTORS)
    parser.add_argument("--max-text-bytes", type=int, default=DEFAULT_MAX_TEXT_BYTES,
                        help="documents with more UTF-8 text are rejected as `oversized` (default 1 MB); EDGAR "
                             "filings: the limit of extracted text, a longer filing is split into parts")
    parser.add_argument("--pii-kinds", default=",".join(PII_KINDS),
                        help=f"PII redacted with typed placeholders, comma-separated (default: all of "
                             f"{','.join(PII_KINDS)}; filters/pii.py); '' or --no-pii: none")
    parser.add_argument("--no-pii", dest="pii_kinds", action="store_const", const="", help="redact no PII")
    add_sources_flag(parser)
    return parser


class CleanSplit(beam.DoFn):
    """One input split -> its cleaned documents (``train-<split>-*.parquet``) and its rejections;
    yields the split's ``(count key, n)`` pairs."""

    def __init__(self, output: str, convert, part_mb: float, source: str | None = None, namespace: str = STAGE):
        self.output, self.convert, self.part_mb, self.source = output, convert, part_mb, source
        self.namespace = namespace  # of the Beam counters: the stage, or clean/<source> in a job of several

    def setup(self):
        self.progress = Progress(STAGE)

    def process(self, split):
        counts = SplitCounts(self.namespace)
        rejected = JsonlPart(self.output, split, "rejected")
        docs = ParquetParts(self.output, split, part_mb=self.part_mb,
                            on_bad_row=reject_bad_rows(split, counts, rejected))
        for line, result in accepted(read_split(split, self.convert, STAGE), counts, rejected, self.source):
            if isinstance(result, list):  # an EDGAR filing split into parts: each part is one more input
                counts.add("input", len(result) - 1)
                counts.add("edgar_extra_parts", len(result) - 1)
                counts.add_source(result[0]["source"], "input", len(result))
            for doc in result if isinstance(result, list) else [result]:
                replaced = doc.pop(PII_COUNTS, None)
                if replaced:
                    counts.add("pii_documents")
                    for kind, n in replaced.items():
                        counts.add(f"pii_spans/{kind}", n)
                if doc.pop(FALLBACK, False):
                    counts.add("html_fulltext_fallback")
                counts.add_type(document_type(doc.get("meta")), "output")
                docs.write(doc, line)
        counts.add("output", docs.close())
        for source, n in docs.by_source.items():
            counts.add_source(source, "output", n)
        rejected.close()
        self.progress.done(split, counts.counts["input"])
        yield from counts.pairs()


def build(pipeline: beam.Pipeline | beam.pvalue.PBegin, args, files: list[str],
          namespace: str = STAGE) -> beam.PCollection:
    """The stage's transforms from ``pipeline`` (or a branch's ``PBegin``); returns the written stats."""
    convert = functools.partial(read_and_clean, source=args.source, domain=args.domain, text_format=args.format,
                                extractor=args.html_extractor, max_text_bytes=args.max_text_bytes,
                                pii_kinds=args.pii_kinds, text_field=args.text_field, id_field=args.id_field)
    hf = None
    if args.hf_dataset:
        hf = {"name": args.hf_dataset, "split": args.hf_split, "config": args.hf_config, "shards": args.hf_shards,
              "text_field": args.text_field, "id_field": args.id_field}
    return (pipeline
            | "Splits" >> ReadSplits(files, args.split_mb, hf)
            | "Clean splits" >> beam.ParDo(CleanSplit(args.output, convert, args.part_mb, args.source, namespace))
            | "Stats" >> WriteStats(STAGE, args.output))


def check_args(args, options, error) -> list[str]:
    """Everything the single-source command checks before any work (``error(message)`` exits): the inputs
    match files and hold the text field, the PII kinds are known. Returns the input files. Writes nothing."""
    if not args.input and not args.hf_dataset:
        error("give at least one --input GLOB or --hf-dataset")
    if args.hf_dataset and not args.source:
        error("--hf-dataset needs --source NAME")
    if isinstance(args.pii_kinds, str):
        args.pii_kinds = tuple(k for k in args.pii_kinds.split(",") if k)
    unknown = sorted(set(args.pii_kinds) - set(PII_KINDS))
    if unknown:
        error(f"--pii-kinds: unknown {unknown}; known: {','.join(PII_KINDS)}")
    # --text-field wins over its older spelling --hf-text-field (run.orchestrator may pass both)
    args.text_field = args.text_field or args.hf_text_field or "text"
    args.id_field = args.id_field or args.hf_id_field or "id"
    try:
        files = stage_inputs(args.input, options) if args.input else []
        if args.hf_dataset and os.path.isdir(args.hf_dataset) and writes_output(options):  # local: cheap to open
            check_text_field([], args.text_field, sample_hf_fields(args.hf_dataset, args.hf_split, args.hf_config,
                                                                   args.text_field))
        if files and writes_output(options):
            check_text_field(files, args.text_field)
    except InputError as exc:
        error(str(exc))
    return files


def prepare(args, options, files: list[str]) -> None:
    """After every check: the input size (and from it the split size), and a cleared output directory."""
    if not writes_output(options):
        return
    try:
        if files:
            args.split_mb = auto_split_mb(args.split_mb, describe_inputs(STAGE, files))
        prepare_output_dir(args.output, ["rejected"])
    except InputError as exc:
        fail(str(exc))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    if sources_argv(argv):
        return main_sources(argv)
    parser = build_parser()
    args, options = parse(parser, argv)
    files = check_args(args, options, parser.error)
    prepare(args, options, files)
    return run_stage(STAGE, lambda p: build(p, args, files), options, args.output)


def main_sources(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``--sources FILE`` [Beam options]: one job for every source of the file (docs/runs.md)."""
    path, options = parse_sources(build_parser(), argv)
    return run_sources(read_sources(path), options, where=path)


def run_sources(entries: list[dict[str, Any]], options: PipelineOptions, where: str = "--sources") -> dict[str, Any]:
    """One Beam job over several sources (``pipelines.options.run_sources``): each entry is a mapping of this
    stage's options (input, output, source, domain, format, text_field, ...), checked as its own command line
    would be; each source's directory is written as its own command would, byte for byte. Returns
    ``{"stage", "sources": {name: stats}}``; exit 3 names unbalanced sources."""
    stats, _ = options_run_sources(STAGE, entries, options, where, parser=build_parser, check=check_args,
                                   prepare=prepare, build=build)
    return {"stage": STAGE, "sources": stats, **({"dry_run": True} if not writes_output(options) else {})}


if __name__ == "__main__":
    main()
