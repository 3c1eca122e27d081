"""The cost model of the Beam stages, said once: the README's "Cost model per stage" table and
``python -m run --dry-run`` both come from these constants.

CPU per document: measured under the DirectRunner on one core of the 2-core sandbox, documents of ~2 KB of
real-sentence text (``make bench-scale``, ``benchmarks/RESULTS.md``). vCPU-hours are an order of magnitude:
Dataflow's per-element overhead and its vCPUs differ from that machine, so run 10M documents first and
scale from that. Prices: Dataflow batch workers in us-central1, list prices when this was written
(https://cloud.google.com/dataflow/pricing); your region and discounts differ.
"""

from __future__ import annotations

from dataclasses import dataclass

BEAM_STAGES = ("clean", "filter", "dedup", "tokenize")  # the stages that are Beam jobs, in run order
BYTES_PER_DOC = 2_000  # the documents the CPU times were measured on: ~2 KB of text each
CPU_MS_PER_DOC = {"clean": 0.28, "filter": 1.5, "dedup": 0.31, "tokenize": 0.8}  # (tokenize: 8k-piece Unigram)
# What a stage sends through Dataflow Shuffle per document: dedup's packed fingerprint, exact key and 14 band
# values (~880 B), plus ~1.2 KB per candidate document, edges and labels: ~1 TB per 1B documents.
SHUFFLE_BYTES_PER_DOC = {"dedup": 1_000}
MACHINE_TYPE = {"clean": "n2-standard-4", "filter": "n2-standard-4", "dedup": "n2-highmem-4",
                "tokenize": "n2-standard-8"}  # the README's Dataflow commands
GB_PER_VCPU = {"n2-standard": 4.0, "n2-highmem": 8.0}
USD_PER_VCPU_HOUR = 0.056
USD_PER_GB_HOUR = 0.003557
USD_PER_SHUFFLE_GB = 0.011
# gzip / zstd JSON Lines hold this many times their size of text: 3.37 measured on the sample in data/
# (2.03 MB of .jsonl.gz, 6.82 MB uncompressed); used to size a compressed input before it is read.
COMPRESSED_TEXT_RATIO = 3.4
COMPRESSED_SUFFIXES = (".gz", ".zst")
README_DOCS = 1_000_000_000  # the README's table is for 1B documents (~2 TB of text)
README_WORKERS = 100  # ... on 100 x n2-standard-4 (4 vCPUs each)


@dataclass(frozen=True)
class StageCost:
    stage: str
    documents: float
    vcpu_hours: float
    shuffle_gb: float
    usd: float


def text_bytes(path: str, size: int) -> float:
    """The text a file of ``size`` bytes holds (compressed files: ``COMPRESSED_TEXT_RATIO`` times more)."""
    return size * COMPRESSED_TEXT_RATIO if path.endswith(COMPRESSED_SUFFIXES) else float(size)


def documents(text: float) -> float:
    """Documents of the cost model's size in ``text`` bytes."""
    return text / BYTES_PER_DOC


def vcpu_hours(stage: str, docs: float) -> float:
    return docs * CPU_MS_PER_DOC[stage] / 1000 / 3600


def stage_cost(stage: str, docs: float) -> StageCost:
    """vCPU-hours, shuffled GB and dollars of one stage over ``docs`` documents (memory billed at the
    stage's machine type's GB per vCPU)."""
    hours = vcpu_hours(stage, docs)
    family = MACHINE_TYPE[stage].rsplit("-", 1)[0]
    shuffle_gb = docs * SHUFFLE_BYTES_PER_DOC.get(stage, 0) / 1e9
    usd = hours * (USD_PER_VCPU_HOUR + GB_PER_VCPU[family] * USD_PER_GB_HOUR) + shuffle_gb * USD_PER_SHUFFLE_GB
    return StageCost(stage, docs, hours, shuffle_gb, usd)
