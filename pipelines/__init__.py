"""Beam pipelines: one module per stage (``python -m pipelines.<stage>``), thin DoFns around ``filters/``.

This file holds the conventions every command shares and imports nothing heavy (no Beam), so
``mixtures``, ``train`` and ``filters.quality`` use the same ones.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

# A document stage's kept rows are OUTPUT/train-<file>-<split>-<roll>.parquet. "train" is the split keyword
# by which Hugging Face ``datasets`` finds a directory's data files, so ``load_dataset("parquet",
# data_dir=OUTPUT)`` loads exactly these, not stats.json, rejected/, removed/ or duplicates/ (named part-*).
DOCS_PREFIX = "train"
DOCS_GLOB = f"{DOCS_PREFIX}-*.parquet"

# Exit status of every command (pipelines.*, mixtures.*, train.*, filters.quality): 0 done, 2 unusable
# input from the user (paths, options, configs; one ``error:`` line, no traceback; argparse's own errors
# are 2 too), 3 a stage's counts do not balance. Anything else is a bug or a crash, with its traceback.
EXIT_USAGE = 2
EXIT_UNBALANCED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a Ctrl-C'd command (train.run)


class ConfigError(ValueError):
    """A config value or key that cannot be used as written: raised where the config is READ (never where a
    value is first used), so that every command refuses it before any work, as one ``error:`` line, exit 2.
    ``problems`` holds each mistake found (one line each); the message joins them with "; "."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def fail(message: str) -> NoReturn:
    """Exit with status 2 and a clear one-line error (bad paths, options, configs)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def refuse_unknown_options(known: Iterable[str], argv: Iterable[str] | None) -> None:
    """Exit 2 with ``error: unknown option --treshold (did you mean --threshold?)`` for a ``--flag``
    (with or without ``=value``) not in ``known``, before argparse runs (which would report a missing
    required flag instead, or, in a Beam stage, let Beam discard it and run with the defaults)."""
    import difflib

    known = [k for k in known if k.startswith("--")]
    for token in sys.argv[1:] if argv is None else argv:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if name.startswith("--") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            fail(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))


# Configs: every YAML file and section is a mapping whose keys are checked (a typo must never
# silently run something other than what was asked). One implementation for every config reader.

def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known word (difflib's ratio >= 0.6), else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(mapping: dict[str, Any], known: Iterable[str], where: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the unknown keys of ``mapping`` and the closest known key (else the known ones)."""
    known = set(known)
    unknown = sorted(set(mapping) - known, key=str)
    if unknown:
        hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""  # the closest key, else all of them
        raise error(f"unknown {where} keys {unknown}{hint or f'; known: {sorted(known, key=str)}'}")


def from_dict(cls: type[T], mapping: Any, where: str, error: type[Exception] = ValueError) -> T:
    """The dataclass ``cls`` built from a mapping with only its fields (``where`` names it in errors)."""
    if not isinstance(mapping, dict):
        raise error(f"{where} must be a mapping, got {type(mapping).__name__}")
    check_keys(mapping, {f.name for f in dataclasses.fields(cls)}, where, error)
    return cls(**mapping)


def read_yaml(path: str | os.PathLike, error: type[Exception] = ValueError) -> dict[str, Any]:
    """A YAML file holding a mapping (an empty file is ``{}``); unreadable or invalid files raise ``error``."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{path}: expected a mapping, got {type(doc).__name__}")
    return doc
