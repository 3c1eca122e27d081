"""Accounting: every record a stage reads is either output or removed with a reason.

Stages turn each PCollection that matters into ``(key, count)`` pairs with :func:`tally`
(``"input"``, ``"output"``, ``"removed/<reason>"``), flatten them and apply
:class:`WriteStats`, which sums them in the pipeline (so it works on any runner) and
writes ``stats.json``::

    {"stage": "clean", "input": N, "output": M, "removed": {"<reason>": k, ...},
     "balanced": true, ...extra}

The same numbers go to Beam ``Metrics`` counters (namespace = stage name; in a job of several sources,
``--sources``, each source's in ``<stage>/<source>``, checked against its own stats.json).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from core.workdir import DOCS_GLOB
from pipelines.io import read_json, write_json

log = logging.getLogger(__name__)
REMOVED = "removed/"
# Count keys folded into nested stats: "by_source" {source: {"input", "output", "removed": {reason: n}}}
# (one source's funnel through the stages), "languages" {code: documents judged} (filter) and "by_type"
# {document type: {"input", "output", "removed"}} (clean: what came out; filter: kept rates by document type).
SOURCE_KEY = "by_source\x1f"  # + source + "\x1f" + "input" | "output" | "removed/<reason>"
LANG_KEY = "lang\x1f"         # + language code
TYPE_KEY = "by_type\x1f"      # + document type (documents.document_type) + "\x1f" + "input" | "output" | "removed"


def _count_key(stage: str, key_fn: Callable[[Any], str] | str, weight_fn: Callable[[Any], int] | None):
    counters: dict[str, Any] = {}

    def to_pair(element: Any) -> tuple[str, int]:
        key = key_fn if isinstance(key_fn, str) else key_fn(element)
        n = 1 if weight_fn is None else int(weight_fn(element))
        counter = counters.get(key)
        if counter is None:
            counter = counters[key] = Metrics.counter(stage, key)
        counter.inc(n)
        return key, n

    return to_pair


def tally(pcoll: beam.PCollection, stage: str, key: Callable[[Any], str] | str,
          weight: Callable[[Any], int] | None = None, label: str | None = None) -> beam.PCollection:
    """``(key, n)`` per element (n = 1 unless ``weight`` says otherwise), also counted in Metrics."""
    name = label or f"Tally {key if isinstance(key, str) else 'reasons'}"
    return pcoll | name >> beam.Map(_count_key(stage, key, weight))


def removed_reason(record: dict[str, Any]) -> str:
    return REMOVED + record["reason"]


def build_stats(stage: str, counts: dict[str, int], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    removed = {k[len(REMOVED):]: v for k, v in sorted(counts.items()) if k.startswith(REMOVED)}
    stats: dict[str, Any] = {
        "stage": stage,
        "input": counts.get("input", 0),
        "output": counts.get("output", 0),
        "removed": removed,
    }
    stats["balanced"] = stats["input"] == stats["output"] + sum(removed.values())
    for k, v in sorted(counts.items()):
        if k.startswith(SOURCE_KEY):
            source, what = k[len(SOURCE_KEY):].rsplit("\x1f", 1)
            entry = stats.setdefault("by_source", {}).setdefault(source, {"input": 0, "output": 0, "removed": {}})
            if what.startswith(REMOVED):
                entry["removed"][what[len(REMOVED):]] = v
            else:
                entry[what] = v
        elif k.startswith(LANG_KEY):
            stats.setdefault("languages", {})[k[len(LANG_KEY):]] = v
        elif k.startswith(TYPE_KEY):
            doc_type, what = k[len(TYPE_KEY):].rsplit("\x1f", 1)
            stats.setdefault("by_type", {}).setdefault(doc_type, {})[what] = v
        elif k not in ("input", "output") and not k.startswith(REMOVED):
            stats.setdefault("counts", {})[k] = v
    stats.update(sorted((extra or {}).items()))  # extras arrive in any order (ToDict): sort for stable bytes
    return stats


class WriteStats(beam.PTransform):
    """Sum ``(key, n)`` pairs and write ``OUTPUT/stats.json`` (one small file, any runner).

    ``extra`` maps stats keys to singleton PCollections (e.g. a cluster-size histogram)
    merged into the file as side inputs.
    """

    def __init__(self, stage: str, output_dir: str, extra: dict[str, beam.PCollection] | None = None):
        super().__init__()
        self.stage, self.output_dir, self.extra = stage, output_dir, extra or {}

    def expand(self, pairs: beam.PCollection) -> beam.PCollection:
        stage, path = self.stage, f"{self.output_dir.rstrip('/')}/stats.json"

        def write(counts, extra):
            stats = build_stats(stage, dict(counts), extra)
            if not stats["balanced"]:
                log.error("%s: stats do not balance: %s", stage, json.dumps(stats))
            write_json(path, stats)
            return stats

        totals = (pairs
                  | "Sum" >> beam.CombinePerKey(sum)
                  | "Gather" >> beam.combiners.ToList())
        if not self.extra:
            return totals | "Write stats.json" >> beam.Map(write, {})
        named = [pc | f"Name {name}" >> beam.Map(lambda v, name=name: (name, v))
                 for name, pc in sorted(self.extra.items())]
        extra = named | "Merge extras" >> beam.Flatten() | "Extras" >> beam.combiners.ToDict()
        return totals | "Write stats.json" >> beam.Map(write, beam.pvalue.AsSingleton(extra))


DOCUMENT_STAGES = ("clean", "filter", "dedup")  # stages whose output is documents in train-*.parquet
SIDE_FOLDERS = {"clean": ["rejected"], "filter": ["removed", "rejected"], "dedup": ["duplicates", "rejected"]}


def dataset_card(stats: dict[str, Any]) -> str:
    """``README.md`` of a document stage directory: Hugging Face dataset-card front matter whose
    ``configs`` name the kept parts, so ``datasets.load_dataset(DIR)`` gives the kept documents only
    (not ``duplicates/``, ``removed/`` or ``rejected/``), and the stage's counts."""
    stage = stats["stage"]
    removed = "".join(f"| {reason} | {n:,} |\n"
                      for reason, n in sorted(stats["removed"].items(), key=lambda kv: -kv[1]))
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
        f"    path: \"{DOCS_GLOB}\"\n---\n\n"
        f"# {stage} stage output\n\n"
        f"Kept documents: `{DOCS_GLOB}` ({stats['output']:,} of {stats['input']:,} read). "
        f"Load them with `datasets.load_dataset(\"<this directory>\", split=\"train\")` or "
        f"`datasets.load_dataset(\"parquet\", data_dir=\"<this directory>\", split=\"train\")`. "
        f"What left, with a reason per record: {', '.join(f'`{d}/`' for d in SIDE_FOLDERS.get(stage, []))}; "
        "every count: `stats.json`.\n\n"
        + ("| removed | documents |\n|---|---:|\n" + removed if removed else "Nothing was removed.\n")
    )


def write_dataset_card(output_dir: str, stats: dict[str, Any]) -> None:
    if stats.get("stage") in DOCUMENT_STAGES:
        with FileSystems.create(f"{output_dir.rstrip('/')}/README.md") as f:
            f.write(dataset_card(stats).encode("utf-8"))


def load_stats(output_dir: str) -> dict[str, Any]:
    return read_json(f"{output_dir.rstrip('/')}/stats.json")


def format_stats(stats: dict[str, Any]) -> str:
    """One human line per number, the removal reasons sorted by count."""
    lines = [f"{stats['stage']}: input {stats['input']:,} -> output {stats['output']:,}"
             f" ({'balanced' if stats['balanced'] else 'NOT BALANCED'})"]
    for reason, n in sorted(stats["removed"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  removed {reason}: {n:,}")
    return "\n".join(lines)
