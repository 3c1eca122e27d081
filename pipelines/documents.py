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
    """Serialize a record's ``meta`` to the on-disk JSON string (sorted keys: stable bytes)."""
    if meta is None or meta == "":
        return "{}"
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return json.dumps({"raw_meta": meta}, ensure_ascii=False)
    if not isinstance(meta, dict):
        meta = {"raw_meta": meta}
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)


def schema_with(*extra: tuple[str, pa.DataType], base: pa.Schema = DOC_SCHEMA) -> pa.Schema:
    """``base`` plus extra columns (a column already in ``base`` keeps its position)."""
    fields = list(base)
    names = set(base.names)
    for name, dtype in extra:
        if name not in names:
            fields.append(pa.field(name, dtype))
            names.add(name)
    return pa.schema(fields)
