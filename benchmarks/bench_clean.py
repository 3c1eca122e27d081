"""Clean stage throughput: the Beam stage on one worker vs the same functions in a plain loop.

The plain loop (the limit) reads every file with the same reader, validates and cleans each record
with the same functions and writes one Parquet file; the Beam stage does the same work under
DirectRunner with one in-memory worker, one fused map per input split (no shuffle of documents).
Reports documents/s and MB/s (UTF-8 input text) per core and the ratio Beam / loop. "Per core"
rates divide by the process's CPU seconds (the in-memory DirectRunner runs its worker threads in
this process), so other load on a shared machine does not distort them; wall times are printed too.

    python benchmarks/bench_clean.py [--corpora ../shared/corpora] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import functools
import glob
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TITLE = "## Clean stage throughput"  # this script's section of benchmarks/RESULTS.md

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402
from filters.html import DEFAULT_EXTRACTOR  # noqa: E402
from pipelines import clean  # noqa: E402
from pipelines.io import DEFAULT_MAX_TEXT_BYTES, Rejected, iter_file_records, write_parquet_file  # noqa: E402


def plain_loop(files: list[str], out: str) -> tuple[int, int, float]:
    convert = functools.partial(clean.read_and_clean, source=None, domain="general", text_format="auto",
                                extractor=DEFAULT_EXTRACTOR, max_text_bytes=DEFAULT_MAX_TEXT_BYTES)
    t0 = time.process_time()
    docs, n_bytes = [], 0
    for path in files:
        for line, record in iter_file_records(path):
            if isinstance(record, Rejected):
                continue
            if isinstance(record.get("text"), str):
                n_bytes += len(record["text"].encode("utf-8", "surrogatepass"))
            doc = convert(record, path, line)
            if not isinstance(doc, Rejected):
                docs.append(doc)
    write_parquet_file(f"{out}/loop.parquet", docs)
    return len(docs), n_bytes, time.process_time() - t0


def beam_stage(files: list[str], out: str) -> tuple[int, float]:
    t0 = time.process_time()
    stats = clean.main(["--input", *files, "--output", out, "--domain", "general",
                        "--runner", "DirectRunner", "--direct_num_workers", "1"])
    return stats["output"], time.process_time() - t0


def bench(name: str, files: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        n_loop, n_bytes, t_loop = plain_loop(files, tmp)
        n_beam, t_beam = beam_stage(files, f"{tmp}/beam")
    assert n_loop == n_beam, (n_loop, n_beam)
    mb = n_bytes / 1e6
    return (f"| {name} | {n_loop:,} | {mb:.1f} | {n_loop / t_loop:,.0f} | {mb / t_loop:.2f} | "
            f"{n_beam / t_beam:,.0f} | {mb / t_beam:.2f} | {t_loop / t_beam:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                        "without it the table is only printed")
    args = parser.parse_args()
    provenance.check_results(args.results)
    rows = [bench("embedded sample (data/, incl. 18 HTML pages)", sorted(glob.glob(str(ROOT / "data/*/*.jsonl.gz"))))]
    general = sorted(glob.glob(f"{args.corpora}/general/*.jsonl.gz"))
    if general:
        rows.append(bench("shared corpora general/ (7 files)", general))
    else:
        print(f"note: {args.corpora}/general not found: only the embedded sample was measured", file=sys.stderr)
    table = "\n".join(["Per core (CPU seconds):", "",
                       "| input | docs | MB | loop docs/s | loop MB/s | Beam docs/s | Beam MB/s | Beam / loop |",
                       "|---|---:|---:|---:|---:|---:|---:|---:|", *rows])
    print("\n" + table)
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-clean", provenance.method(__doc__), table),
                        header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
