"""Reading configs: every YAML file and section is a mapping whose keys are checked (a typo must never silently
run something other than what was asked), and every mistake is a ``ConfigError`` raised where the config is read.
One implementation for every config reader of the project.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or key that cannot be used as written: raised where the config is READ (never where a
    value is first used), so that every command refuses it before any work, as one ``error:`` line, exit 2.
    ``problems`` holds each mistake found (one line each); the message joins them with "; "."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


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
