"""The layout of a run's work directory and of each stage's output directory: the names every package agrees on,
and the work directory's paths, local or remote.

A document stage's kept rows are ``OUTPUT/train-<file>-<split>-<roll>.parquet``. "train" is the split keyword by
which Hugging Face ``datasets`` finds a directory's data files, so ``load_dataset("parquet", data_dir=OUTPUT)``
loads exactly these, not stats.json, rejected/, removed/ or duplicates/ (named ``part-*``).

The work directory may be remote (``work_dir: gs://bucket/run``, any scheme of Beam's filesystems, issue 23):
:func:`work_path` gives a :class:`pathlib.Path` for a local directory (every local run stays byte-identical) and a
:class:`RemotePath` otherwise, a small ``Path``-like whose every read, write, listing and delete goes through
``apache_beam.io.filesystems.FileSystems``. Code that needs a local file (tokenizer training, numpy memmaps of
shards, torch) stages it with :func:`download` and copies its results back with :func:`upload`.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DOCS_PREFIX = "train"
DOCS_GLOB = f"{DOCS_PREFIX}-*.parquet"
DATASET_CARD = "DATASET_CARD.md"  # the mixture's dataset card: MIX/DATASET_CARD.md (run/dataset_card.py)
CHECKSUMS = "SHA256SUMS"  # the mixture's files and their sha256 (``sha256sum -c`` format), beside manifest.json


def _fs() -> Any:
    from apache_beam.io.filesystems import FileSystems  # (lazily: the ground floor imports Beam only when used)

    return FileSystems


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a file of a non-local Beam filesystem (``gs://...``; not a local path)."""
    return isinstance(path, RemotePath) or (isinstance(path, str) and "://" in path
                                             and _fs().get_scheme(path) not in (None, "file"))


class RemotePath:
    """A path on a remote Beam filesystem with the few ``pathlib.Path`` methods a run uses, each through
    ``FileSystems`` (a "directory" is a prefix: it exists when a file is under it)."""

    def __init__(self, path: str):
        self.path = path.rstrip("/") if not path.endswith("://") else path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"RemotePath({self.path!r})"

    def __fspath__(self) -> str:  # (so that a library given one fails loudly on open: no local "gs:" directory)
        raise TypeError(f"{self.path} is not a local path: stage it (core.workdir.download)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __truediv__(self, name: str | os.PathLike) -> RemotePath:
        return RemotePath(_fs().join(self.path, str(name)))

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.split("://", 1)[1])

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.path.rsplit("/", 1)[0])

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> RemotePath:
        return self.parent / (posixpath.splitext(self.name)[0] + suffix)

    # ---- what is there
    def is_file(self) -> bool:
        return bool(_fs().exists(self.path)) and not self.is_dir()

    def is_dir(self) -> bool:
        return bool(self.files())

    def exists(self) -> bool:
        return bool(_fs().exists(self.path)) or self.is_dir()

    def files(self) -> list[str]:
        """Every file under this prefix (recursively), sorted."""
        fs = _fs()
        found = fs.match([fs.join(self.path, "**")])[0].metadata_list
        return sorted(m.path for m in found)

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        fs = _fs()
        for m in sorted(fs.match([fs.join(self.path, pattern)])[0].metadata_list, key=lambda m: m.path):
            yield RemotePath(m.path)

    # ---- reads and writes
    def read_bytes(self) -> bytes:
        from apache_beam.io.filesystem import CompressionTypes

        with _fs().open(self.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        from apache_beam.io.filesystem import CompressionTypes

        with _fs().create(self.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        try:
            _fs().mkdirs(self.path)
        except OSError:  # (Beam: "already exists")
            if not exist_ok:
                raise

    def unlink(self, missing_ok: bool = False) -> None:
        if missing_ok and not _fs().exists(self.path):
            return
        _fs().delete([self.path])

    def replace(self, target: RemotePath) -> RemotePath:
        if _fs().exists(target.path):
            _fs().delete([target.path])
        _fs().rename([self.path], [target.path])
        return target

    def rename(self, target: RemotePath) -> RemotePath:
        """A file, or every file under this prefix, moved to ``target``."""
        files = self.files()
        if not files:
            return self.replace(target)
        _fs().rename(files, [target.path + f[len(self.path):] for f in files])
        return target


def work_path(path: str | os.PathLike) -> Path | RemotePath:
    """A work-directory path: a ``Path`` when local, a :class:`RemotePath` on any other Beam filesystem."""
    if isinstance(path, RemotePath):
        return path
    return RemotePath(str(path)) if is_remote(str(path)) else Path(path)


def rmtree(path: Path | RemotePath) -> None:
    """Delete a directory (every file under a remote prefix) or a file; nothing when it is not there."""
    if isinstance(path, RemotePath):
        files = path.files()
        if files:
            _fs().delete(files)
        if _fs().exists(path.path):
            _fs().delete([path.path])
    elif path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def download(source: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Copy every file under ``source`` (a directory, local or remote) to the local directory ``dest``, keeping
    their relative paths; returns those paths, sorted."""
    src, dest = work_path(source), Path(dest)
    if isinstance(src, Path):
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    rels = []
    for f in src.files():
        rel = f[len(src.path):].lstrip("/")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(RemotePath(f).read_bytes())
        rels.append(rel)
    return rels


def upload(source: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Copy every file under the local directory ``source`` to ``dest`` (remote or local), keeping their
    relative paths; returns those paths, sorted."""
    src, out = Path(source), work_path(dest)
    rels = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    for rel in rels:
        if isinstance(out, RemotePath):
            (out / rel).write_bytes((src / rel).read_bytes())
        else:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, out / rel)
    return rels


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(directory: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Write ``directory/SHA256SUMS``: the sha256 of every file under the local ``directory`` but itself and the
    top-level files named in ``skip`` (the mixer's manifest.json, which names the mixture's own path)."""
    d = Path(directory)
    sums = {str(p.relative_to(d)): sha256_file(p) for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != CHECKSUMS and str(p.relative_to(d)) not in skip}
    (d / CHECKSUMS).write_text("".join(f"{h}  {rel}\n" for rel, h in sums.items()), encoding="utf-8")
    return sums


def read_checksums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, rel = line.split(None, 1)
            out[rel.strip().lstrip("*")] = digest
    return out


class ChecksumError(OSError):
    """A staged copy of a mixture whose files do not match the checksums its mixer recorded."""


def stage_mixture(mixture: str | os.PathLike, cache: str | os.PathLike, also: tuple[str, ...] = ("manifest.json",)
                  ) -> Path:
    """A verified local copy of a (remote) mixture: ``cache`` is filled from ``mixture`` unless it already holds
    every file with the sha256 that ``mixture/SHA256SUMS`` records (then it is re-used as it is). A file whose
    copy does not match raises :class:`ChecksumError`. The files named in ``also`` (the manifest) are copied
    each time, as they are."""
    src, local = work_path(mixture), Path(cache)
    sums_text = (src / CHECKSUMS).read_text(encoding="utf-8")
    sums = read_checksums(sums_text)

    def bad() -> list[str]:
        return [rel for rel, digest in sums.items()
                if not (local / rel).is_file() or sha256_file(local / rel) != digest]

    def copy_also() -> None:
        for rel in also:
            (local / rel).write_bytes((src / rel).read_bytes())

    if (local / CHECKSUMS).is_file() and (local / CHECKSUMS).read_text(encoding="utf-8") == sums_text and not bad():
        copy_also()
        return local
    if local.exists():
        shutil.rmtree(local)
    local.mkdir(parents=True)
    for rel in sums:
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes((src / rel).read_bytes())
    wrong = bad()
    if wrong:
        raise ChecksumError(f"the staged copy of {mixture} in {local} does not match the sha256 of {CHECKSUMS}: "
                            f"{', '.join(wrong[:5])}")
    copy_also()
    (local / CHECKSUMS).write_text(sums_text, encoding="utf-8")
    return local


# ----------------------------------------------------------------------------- the work directory's readers

# The run's stages in order (``python -m run --until/--force``), and those that write a documents-or-tokens
# ``stats.json`` the report and the dataset card read (WORK/<stage>/[<source>/]stats.json).
STAGES = ("clean", "filter", "dedup", "tokenizer", "tokenize", "mix", "train", "export", "report")
DOC_STAGES = ("clean", "filter", "dedup", "tokenize")
MANIFEST = "manifest.json"  # the mixer's, in the mixture directory (mixtures/mix.py writes it)
METRICS = "metrics.jsonl"  # the trainer's, in its output directory (train/metrics.py writes it)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a ``metrics.jsonl`` (local or remote). A torn last line, left by a writer that was killed,
    is skipped; a line before it that is not JSON raises ``ValueError`` (the file is not a metrics log)."""
    p = work_path(path)
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines() if isinstance(p, Path) else \
        p.read_bytes().decode("utf-8", errors="replace").splitlines()
    out = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == last:
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON") from None
    return out


@dataclass
class Manifest:
    """The mixer's ``manifest.json``, typed: :func:`read_manifest` reads it, ``mixtures/mix.py`` builds it, and
    :meth:`to_json` writes exactly the bytes it always had (``bos_id`` and ``phases`` only when present). Every
    field has a default: a hand-made mixture's manifest may give only some (:meth:`as_read`: those it gave)."""

    params: Any = None
    tokens_per_param: Any = None
    model_config: str | None = None
    target_tokens: int = 0
    train_tokens: int = 0
    domain_share_target: float = 0.0
    domain_share_actual: float = 0.0
    domain_tokens: int = 0
    general_tokens: int = 0
    seed: int | None = None
    tokenizer: str | None = None
    tokenizer_sha256: str | None = None
    vocab_size: int = 0
    eos_id: int | None = None
    eos_token: str | None = None
    pad_id: int | None = None
    bos_id: int | None = None  # (absent for the project's tokenizers)
    dtype: str = "uint16"  # shard token dtype; a manifest without it is uint16
    splits: dict[str, Any] = field(default_factory=dict)
    val_bytes_per_token: dict[str, float | None] = field(default_factory=dict)
    shortfall: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    phases: list[dict[str, Any]] | None = None  # (a mixture without phases: no key)
    recipe: dict[str, Any] = field(default_factory=dict)

    OPTIONAL = ("bos_id", "phases")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not (f.name in self.OPTIONAL and getattr(self, f.name) is None)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        """A manifest from its JSON object; ``ValueError`` when it is not one the mixer writes."""
        if not isinstance(doc, dict):
            raise ValueError(f"a manifest is a JSON object, got {type(doc).__name__}")
        vocab = doc.get("vocab_size", 0)
        if not isinstance(vocab, int) or isinstance(vocab, bool):
            raise ValueError(f"not a mixer manifest: vocab_size must be a number, got {vocab!r}")
        names = {f.name for f in fields(cls)}
        manifest = cls(**{k: v for k, v in doc.items() if k in names})
        manifest.given = tuple(k for k in doc if k in names)
        return manifest

    def as_read(self) -> dict[str, Any]:
        """The fields the file gave, as a mapping (a hand-made mixture's manifest may give only some)."""
        given = getattr(self, "given", None)
        return {k: getattr(self, k) for k in given} if given is not None else self.to_dict()

    def model_vocab_size(self, model_vocab_size: int) -> int:
        """The vocabulary a model config means: its own, or (``vocab_size: 0``) the mixture's. The trainer, the
        planner and the run-config validation all ask this (the rule is said here only)."""
        return int(self.vocab_size) if takes_mixture_vocab(model_vocab_size) else model_vocab_size


def takes_mixture_vocab(model_vocab_size: int) -> bool:
    """Whether a model config's ``vocab_size`` means "the mixture's" (0): :meth:`Manifest.model_vocab_size`."""
    return model_vocab_size <= 0


def read_manifest(mix_dir: str | os.PathLike) -> Manifest | None:
    """``MIX/manifest.json`` (local or remote) as a :class:`Manifest`; None when the mixture has none.
    A file that is not a mixer manifest raises ``ValueError``."""
    path = work_path(mix_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    try:
        return Manifest.from_dict(doc)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


# ----------------------------------------------------------------------------- the one run reader

# Where each document stage writes in a run's work directory (the orchestrator's layout): clean and filter one
# directory per source (WORK/clean/<source>/), dedup and tokenize one for every source.
STAGE_DIRS = {"clean": "clean", "filter": "filter", "dedup": "dedup", "tokenize": "tokens"}
PER_SOURCE = ("clean", "filter")
STATS = "stats.json"
FILTER_CONFIG = "filter_config.json"  # the filter stage's config as run, beside its stats.json
RUN_CONFIG = "run.yaml"  # the run config as run (python -m run writes it)
TOKENIZER_RECORD = ("tokenizer", "training.json")  # the tokenizer step's record (mixtures/tokenizer.py)
SWEEP = ("sweep", "sweep.json")  # the mixture search's results (python -m mixtures.sweep)
MIX_DIR, TRAIN_DIR = "mix", "train"
# Every file name the run reader reads: a local view of a remote work directory copies these and nothing else.
RECORD_FILES = (STATS, FILTER_CONFIG, RUN_CONFIG, TOKENIZER_RECORD[1], SWEEP[1], MANIFEST, METRICS)


@dataclass
class StageStats:
    """One stage directory's ``stats.json`` (``{"stage", "input", "output", "removed", "balanced", ...}``)."""

    where: str             # its directory, relative to the work directory ("filter/wiki", "dedup")
    stats: dict[str, Any]

    @property
    def name(self) -> str:
        return self.stats["stage"]

    @property
    def source(self) -> str:
        """The source a per-source directory is named after (``filter/wiki`` -> ``wiki``); "" for one over all."""
        parts = self.where.split("/")
        return parts[1] if len(parts) == 2 else ""

    @property
    def removed(self) -> int:
        return sum((self.stats.get("removed") or {}).values())


@dataclass
class RunRecords:
    """Everything a run's work directory says about the run, read once by :func:`read_run` (the report, the
    dataset card and the orchestrator read through it). What a stage that has not run would have written is
    simply absent; what is there but cannot be read is named in ``problems``."""

    work: Path
    stages: list[StageStats] = field(default_factory=list)  # WORK/<dir>/[<source>/]stats.json, in stage order
    elsewhere: list[str] = field(default_factory=list)      # stats.json deeper in the tree: not the run's
    filter_configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # source -> its filter_config.json
    tokenizer: dict[str, Any] | None = None                 # WORK/tokenizer/training.json
    manifest: Manifest | None = None
    manifest_path: Path | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    run_config: dict[str, Any] | None = None                # WORK/run.yaml
    sweep: dict[str, Any] | None = None                     # WORK/sweep/sweep.json
    problems: list[str] = field(default_factory=list)      # unreadable records

    def by_stage(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{stage: {source: stats}}`` in stage order (source "" for a stage over every source)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for s in self.stages:
            out.setdefault(s.name, {})[s.source] = s.stats
        return out


def stage_totals(stages: list[StageStats]) -> dict[str, dict[str, Any]]:
    """Per stage, summed over its directories: ``input``, ``output``, ``removed`` (documents), ``reasons``
    (``{reason: documents}``) and ``balanced`` (every directory's counts balance)."""
    from collections import Counter

    totals: dict[str, dict[str, Any]] = {}
    for s in stages:
        t = totals.setdefault(s.name, {"input": 0, "output": 0, "removed": 0, "reasons": Counter(),
                                       "balanced": True})
        t["input"] += s.stats.get("input", 0)
        t["output"] += s.stats.get("output", 0)
        t["removed"] += s.removed
        t["reasons"].update(s.stats.get("removed") or {})
        t["balanced"] = t["balanced"] and bool(s.stats.get("balanced", True))
    return totals


def _rel(path: Path, work: Path) -> str:
    return path.relative_to(work).as_posix() if path.is_relative_to(work) else str(path)


def _object(path: Path, work: Path, problems: list[str]) -> dict[str, Any] | None:
    """A JSON (``.yaml``: YAML) record that must be an object; None and a line in ``problems`` when it cannot
    be read or is something else."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".yaml":
            import yaml

            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(str(exc)) from exc
        else:
            doc = json.loads(text)
    except (OSError, ValueError) as exc:
        problems.append(f"{_rel(path, work)} could not be read ({exc.__class__.__name__})")
        return None
    if not isinstance(doc, dict):
        problems.append(f"{_rel(path, work)} is not a JSON object")
        return None
    return doc


def _shallowest(work: Path, name: str) -> list[Path]:
    return sorted(work.rglob(name), key=lambda p: (len(p.relative_to(work).parts), str(p)))


def read_run(work_dir: str | os.PathLike) -> RunRecords:
    """Read a run's work directory (local; a remote one through a local view of its :data:`RECORD_FILES`):

    - the document stages' ``stats.json`` at ``WORK/<dir>/`` or ``WORK/<dir>/<source>/``, in stage order
      (:data:`DOC_STAGES`), then by directory; deeper ones (benchmarks that write under the work directory) are
      listed in ``elsewhere``, not counted; a ``stats.json`` without ``stage`` and ``input`` is not a stage's;
    - each filtered source's ``filter_config.json``, the tokenizer's ``training.json``, ``run.yaml``,
      ``sweep/sweep.json``;
    - the mixture's manifest: the run config's ``mixture:`` directory, else ``WORK/mix/``, else (a work directory
      of several mixtures, e.g. ``make experiment``'s ``mix/<arm>/``) the shallowest mixer manifest under
      ``WORK/mix/`` (never a mixture search's proxies, ``sweep/mix/``);
    - the trainer's ``metrics.jsonl``: ``WORK/train/``, else the shallowest under it (a torn last line skipped).
    """
    work = Path(work_dir)
    rec = RunRecords(work)
    order = {s: i for i, s in enumerate(DOC_STAGES)}
    for path in sorted(work.rglob(STATS)):
        stats = _object(path, work, rec.problems)
        if not (isinstance(stats, dict) and "stage" in stats and "input" in stats):
            continue
        where = path.parent.relative_to(work).as_posix()
        if len(path.relative_to(work).parts) <= 3:
            rec.stages.append(StageStats(where, stats))
        else:
            rec.elsewhere.append(where)
    rec.stages.sort(key=lambda s: (order.get(s.name, 99), s.where))
    for path in sorted((work / STAGE_DIRS["filter"]).glob(f"*/{FILTER_CONFIG}")):
        if (doc := _object(path, work, rec.problems)) is not None:
            rec.filter_configs[path.parent.name] = doc
    for attr, parts in (("tokenizer", TOKENIZER_RECORD), ("sweep", SWEEP), ("run_config", (RUN_CONFIG,))):
        path = work.joinpath(*parts)
        if path.is_file():
            setattr(rec, attr, _object(path, work, rec.problems))
    _read_mixture(rec)
    metrics = [work / TRAIN_DIR / METRICS] if (work / TRAIN_DIR / METRICS).is_file() else \
        _shallowest(work, METRICS)[:1]
    for path in metrics:
        try:  # (the one metrics reader: a run killed mid-write leaves half a last line, skipped)
            rec.metrics += [record for record in read_metrics(path) if isinstance(record, dict)]
        except (OSError, ValueError) as exc:
            rec.problems.append(f"{_rel(path, work)} could not be read ({exc})")
    return rec


def _read_mixture(rec: RunRecords) -> None:
    work = rec.work
    mixture = (rec.run_config or {}).get("mixture")
    layout = [Path(mixture)] if isinstance(mixture, str) and mixture else [work / MIX_DIR]
    candidates = [d for d in layout if (d / MANIFEST).is_file()] or \
        [p.parent for p in _shallowest(work / MIX_DIR, MANIFEST)]  # (mixtures in mix/, not the sweep's proxies')
    for directory in candidates:
        try:
            manifest = read_manifest(directory)
        except ValueError as exc:
            if directory in layout:  # the run's own mixture: say it is broken; elsewhere: not a mixer's
                rec.problems.append(f"{_rel(directory / MANIFEST, work)} could not be read "
                                    f"({exc.__class__.__name__})")
            continue
        if manifest is not None and (directory in layout or "train_tokens" in manifest.as_read()):
            rec.manifest, rec.manifest_path = manifest, directory / MANIFEST
            return
