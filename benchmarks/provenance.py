"""When, on what and by which command a benchmarks/RESULTS.md section was measured: the line each one starts with.

The sections are written by ``core.sections.replace_section`` (the one writer: a rerun replaces its section and
leaves the others); this module only says where a number came from, the same way in every section.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Benchmark results\n"  # a RESULTS file that does not exist yet starts with this
_ITEM = re.compile(r"\n(?=(?:\d+\.|[-*]) )")  # a line of a paragraph that starts a numbered or bulleted item


def _arg(arg: str) -> str:
    """``arg`` as the repository sees it: an absolute path becomes relative to the checkout (no machine path)."""
    if os.path.isabs(arg):
        arg = os.path.relpath(arg, ROOT)
    return shlex.quote(arg)


def command(make_target: str | None = None) -> str:
    """The command line that ran this script, relative paths only; with the make target when make ran it."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    line = " ".join(["python", script, *(_arg(a) for a in sys.argv[1:])])
    return f"`make {make_target}` (`{line}`)" if make_target and os.environ.get("MAKELEVEL") else f"`{line}`"


def machine(device: str = "") -> str:
    """Cores, architecture and Python of this machine, plus ``device`` (e.g. the GPUs) when given."""
    parts = [f"{os.cpu_count()}-core {platform.machine()}", device, f"Python {platform.python_version()}"]
    return ", ".join(p for p in parts if p)


def line(make_target: str | None = None, device: str = "") -> str:
    """``Date: ... Machine: ... Command: ...`` for the top of a section."""
    return (f"Date: {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC. Machine: {machine(device)}. "
            f"Command: {command(make_target)}.")


def check_results(path: str | None) -> None:
    """Before any work: a ``--results`` file must be a markdown file in an existing folder (``error:`` line, exit 2)."""
    if path is None:
        return
    p = Path(path)
    if p.suffix != ".md" or not p.parent.is_dir() or p.is_dir():
        print(f"error: --results {path}: expected a .md file in an existing folder (e.g. benchmarks/RESULTS.md)",
              file=sys.stderr)
        sys.exit(2)


def method(doc: str) -> str:
    """What a script measures, from its docstring: every paragraph but the usage lines (indented), rewrapped."""
    paragraphs = [p for p in doc.strip("\n").split("\n\n") if p.strip() and not p.startswith("    ")]
    paragraphs = [p.rstrip()[:-1] if p.rstrip().endswith("::") else p for p in paragraphs]  # rst literal marks
    return "\n\n".join("\n".join(_fill(item) for item in _ITEM.split(p) if item.strip()) for p in paragraphs)


def _fill(item: str) -> str:
    """One paragraph or list item on lines of at most 115 characters (a list item's next lines indented)."""
    item = " ".join(item.split())
    indent = " " * (item.index(" ") + 1) if re.match(r"(?:\d+\.|[-*]) ", item) else ""
    return textwrap.fill(item, width=115, subsequent_indent=indent)


def body(make_target: str | None, *paragraphs: str, device: str = "") -> str:
    """A section's body: the provenance line, then ``paragraphs`` (method, tables, notes) separated by blank lines."""
    return "\n\n".join([line(make_target, device), *(p.strip("\n") for p in paragraphs if p.strip())])
