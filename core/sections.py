"""Markdown files written by several scripts, one ``## `` section each (benchmarks/RESULTS.md, docs/experiment.md).

A script replaces its own section and leaves the others as they are, so a rerun replaces, never appends.
"""

from __future__ import annotations

import os
from pathlib import Path


def _bounds(text: str, key: str, exact: bool = True) -> tuple[int, int] | None:
    """``(start, end)`` of the first section whose ``## `` heading line is ``key`` (``exact``) or starts with it."""
    start = 0
    for line in text.splitlines(keepends=True):
        heading = line.rstrip("\n")
        if heading == key or (not exact and heading.startswith(key)):
            end = text.find("\n## ", start + 1)
            return start, (end + 1 if end >= 0 else len(text))
        start += len(line)
    return None


def get_section(text: str, title: str, key: str | None = None) -> str | None:
    """The section headed ``title`` (or whose heading starts with ``key``), heading line included, up to the next
    ``## `` heading; ``None`` when there is none."""
    bounds = _bounds(text, title) if key is None else _bounds(text, key, exact=False)
    return text[bounds[0]:bounds[1]] if bounds else None


def replace_section(path: str | os.PathLike, title: str, body: str, header: str = "", key: str | None = None) -> None:
    """Write ``title`` + ``body`` as a section of the file ``path``, in place of every section headed ``title``
    (or, given ``key``, whose heading starts with ``key``), else at the end (a new file starts with ``header``).
    ``title`` is the heading line, e.g. ``## Trainer``; a ``key`` lets a script whose title varies (a result in it)
    find its section again, e.g. ``key="## Trainer throughput on GPUs"``."""
    exact = key is None
    key = title if key is None else key
    if not title.startswith("## ") or "\n" in title or not key.startswith("## ") or not title.startswith(key):
        raise ValueError(f"a section title is one '## ' line starting with its key, got {title!r} (key {key!r})")
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else header
    section = title + "\n\n" + body.strip("\n") + "\n\n"
    bounds = _bounds(text, key, exact)
    if bounds is None:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
    else:
        text = text[:bounds[0]] + section + text[bounds[1]:]
        while (more := _bounds(text[bounds[0] + len(section):], key, exact)) is not None:  # older copies: dropped
            cut = bounds[0] + len(section)
            text = text[:cut + more[0]] + text[cut + more[1]:]
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
