"""The document record every stage reads and writes, and its Parquet schema.

A document is a dict with five string fields: ``id`` (unique within its source),
``text``, ``source``, ``domain`` (``"domain"`` or ``"general"``) and ``meta`` (a JSON
object serialized as a string on disk, so Parquet files keep one fixed schema whatever
each source puts in it). Stages may add columns; they never drop these five.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

DOMAINS = ("domain", "general")
DOC_FIELDS = ("id", "text", "source", "domain", "meta")
DOC_SCHEMA = pa.schema([(name, pa.string()) for name in DOC_FIELDS])


def meta_json(meta: Any) -> str:
    """Serialize a record's ``meta`` to the on-disk JSON string (sorted keys: stable bytes).

    Lone surrogates (``"\\ud800"`` in the input JSON) cannot be stored as UTF-8: such a meta is
    written with ASCII escapes instead, which is the same JSON value.
    """
    if meta is None or meta == "":
        return "{}"
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except (ValueError, RecursionError):
            meta = {"raw_meta": meta}
    if not isinstance(meta, dict):
        meta = {"raw_meta": meta}
    out = json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)
    return out if is_utf8_safe(out) else json.dumps(meta, ensure_ascii=True, sort_keys=True, default=str)


def document_type(meta: str | None) -> str:
    """What kind of document a record is, for kept rates by type (the filter's ``by_type``, the report):
    an EDGAR document is its filing's document type (``"EDGAR 10-K"``, ``"EDGAR EX-99.1"``: the clean
    stage's ``meta.type``), a page the clean stage extracted from HTML is ``"web page"``, anything else
    ``"text"``. ``meta`` is the on-disk JSON string; only records with a ``format`` in it are parsed."""
    if not meta or '"format"' not in meta:
        return "text"
    try:
        fields = json.loads(meta)
    except ValueError:
        return "text"
    fmt = fields.get("format") if isinstance(fields, dict) else None
    if fmt == "edgar":
        return f"EDGAR {fields.get('type') or fields.get('form_type') or 'document'}".strip()
    return "web page" if fmt == "html" else "text"


def is_utf8_safe(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def stage_row_problem(record: dict[str, Any]) -> str | None:
    """Why a row of a previous stage's Parquet cannot be processed (a reason code), or None.

    Its ``text`` must be a string; ``id`` and ``source``, when present, strings too.
    """
    text = record.get("text")
    if text is None:
        return "missing_text"
    if not isinstance(text, str):
        return "text_not_string"
    for name in ("id", "source"):
        if record.get(name) is not None and not isinstance(record[name], str):
            return f"{name}_not_string"
    return None


def schema_with(*extra: tuple[str, pa.DataType], base: pa.Schema = DOC_SCHEMA) -> pa.Schema:
    """``base`` plus extra columns (a column already in ``base`` keeps its position)."""
    fields = list(base)
    names = set(base.names)
    for name, dtype in extra:
        if name not in names:
            fields.append(pa.field(name, dtype))
            names.add(name)
    return pa.schema(fields)
