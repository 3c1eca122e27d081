"""Benchmark the filter stage against datatrove 0.10.1 on the same documents, in one run.

    python benchmarks/bench_filter.py [--corpus ../shared/corpora/general] [--workdir work/bench_filter]
        [--dt-venv work/peers/dtvenv] [--limit N] [--results benchmarks/RESULTS.md]

1. (untimed) the clean stage turns the corpus into Parquet; the same cleaned documents are
   exported as JSON Lines for datatrove;
2. our filter stage (``python -m pipelines.filter``, DirectRunner, one worker: one core) with
   configs/filter/default.yaml = language ID + Gopher repetition + Gopher quality + C4 + FineWeb;
3. datatrove's equivalent pipeline on one worker (``../shared/peers/datatrove_bench.py``:
   GopherRepetition, GopherQuality, C4Quality(filter_no_terminal_punct=False), FineWebQuality,
   LanguageFilter(en, 0.65) with the same lid.176.ftz);
4. documents/s per core of both, their ratio, and the share of documents on which both make the
   same keep/remove decision.

Without the datatrove venv (make it with ``make peer-venv``) or the corpus, it says so and reports our numbers only.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter

import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402

# this script's section of benchmarks/RESULTS.md
TITLE = "## Filter stage throughput and agreement vs datatrove 0.10.1 (`make bench-filter`)"
PEERS = os.path.join(os.path.dirname(ROOT), "shared", "peers")
LID_MODEL = os.path.join(ROOT, "filters", "models", "lid.176.ftz")


def run(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, cpu, proc


def parquet_rows(directory: str, columns: list[str]) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "train-*.parquet"))):
        rows += pq.read_table(path, columns=columns).to_pylist()
    return rows


def prepare(corpus: str, workdir: str, limit: int | None) -> tuple[str, str, list[dict]]:
    """Clean the corpus (untimed) and export it as JSON Lines; returns (clean dir, jsonl, docs)."""
    clean = os.path.join(workdir, "clean")
    if not os.path.exists(os.path.join(clean, "stats.json")):
        run(
            [
                sys.executable,
                "-m",
                "pipelines.clean",
                "--input",
                os.path.join(corpus, "*.jsonl.gz"),
                "--output",
                clean,
                "--domain",
                "general",
            ],
            cwd=ROOT,
        )
    docs = parquet_rows(clean, ["id", "source", "text"])
    docs.sort(key=lambda d: (d["source"], d["id"]))
    if limit:
        docs = docs[:: max(1, len(docs) // limit)][:limit]
        clean = os.path.join(workdir, f"clean_{limit}")
        os.makedirs(clean, exist_ok=True)
        import pyarrow as pa

        full = parquet_rows(os.path.join(workdir, "clean"), ["id", "text", "source", "domain", "meta"])
        keep = {(d["source"], d["id"]) for d in docs}
        pq.write_table(
            pa.Table.from_pylist([d for d in full if (d["source"], d["id"]) in keep]),
            os.path.join(clean, "train-00000-of-00001.parquet"),
        )
    jsonl = os.path.join(workdir, "input.jsonl.gz")
    with gzip.open(jsonl, "wt", encoding="utf-8", compresslevel=1) as f:
        for d in docs:
            f.write(json.dumps({"id": f"{d['source']}\x1f{d['id']}", "text": d["text"]}) + "\n")
    return clean, jsonl, docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(ROOT), "shared", "corpora", "general"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "work", "bench_filter"))
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "filter", "default.yaml"))
    ap.add_argument("--dt-venv", default=os.path.join(ROOT, "work", "peers", "dtvenv"),
                    help="datatrove venv (make peer-venv)")
    ap.add_argument("--limit", type=int, help="benchmark on this many documents (evenly sampled)")
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the numbers are only printed (and written to WORKDIR/result.json)")
    args = ap.parse_args()
    provenance.check_results(args.results)

    if not glob.glob(os.path.join(args.corpus, "*.jsonl.gz")):
        raise SystemExit(
            f"corpus not found: {args.corpus} (expected ../shared/corpora/general/*.jsonl.gz); "
            "nothing to benchmark"
        )
    os.makedirs(args.workdir, exist_ok=True)
    clean, jsonl, docs = prepare(args.corpus, args.workdir, args.limit)
    n = len(docs)
    chars = sum(len(d["text"]) for d in docs)
    print(f"input: {n} cleaned documents, {chars / 1e6:.1f} M characters ({args.corpus})", flush=True)

    ours_dir = os.path.join(args.workdir, "ours")
    wall, cpu, _ = run(
        [
            sys.executable,
            "-m",
            "pipelines.filter",
            "--input",
            clean,
            "--output",
            ours_dir,
            "--config",
            args.config,
        ],
        cwd=ROOT,
    )
    kept_ours = {f"{d['source']}\x1f{d['id']}" for d in parquet_rows(ours_dir, ["id", "source"])}
    stats = json.load(open(os.path.join(ours_dir, "stats.json")))
    ours = {"wall_s": wall, "cpu_s": cpu, "docs_per_s": n / wall, "kept": len(kept_ours)}
    print(
        f"ours: {wall:.1f} s wall, {cpu:.1f} s CPU, {n / wall:.1f} documents/s on one worker, "
        f"kept {len(kept_ours)} (stats balanced: {stats['balanced']})",
        flush=True,
    )

    peer = None
    dt_python = os.path.join(args.dt_venv, "bin", "python")
    if not os.path.exists(dt_python):
        print(
            f"datatrove venv not found at {args.dt_venv}: peer not run (create it with "
            "make peer-venv)"
        )
    else:
        dt_work = os.path.join(args.workdir, "datatrove")
        dwall, dcpu, proc = run(
            [
                dt_python,
                os.path.join(PEERS, "datatrove_bench.py"),
                "--input",
                jsonl,
                "--workdir",
                dt_work,
                "--lid-model",
                LID_MODEL,
                "--stage",
                "filter",
                "--filter-workers",
                "1",
            ]
        )
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        runinfo = summary["runs"][0]
        kept_dt = set()
        for path in glob.glob(os.path.join(dt_work, "filter_w1", "output", "*")):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                kept_dt.update(json.loads(line)["id"] for line in f if line.strip())
        ids = [f"{d['source']}\x1f{d['id']}" for d in docs]
        same = sum((i in kept_ours) == (i in kept_dt) for i in ids)
        by_source = Counter()
        for i in ids:
            if (i in kept_ours) != (i in kept_dt):
                by_source[i.split("\x1f")[0]] += 1
        peer = {
            "wall_s": runinfo["wall_s"],
            "docs_per_s": runinfo["docs_per_s"],
            "kept": len(kept_dt),
            "cpu_s": runinfo.get("tree_cpu_s"),
            "foreign_cpu_frac": runinfo.get("foreign_cpu_frac_of_wall"),
            "agreement": same / n,
            "only_ours": len(kept_ours - kept_dt),
            "only_dt": len(kept_dt - kept_ours),
            "disagree_by_source": dict(by_source),
            "steps": runinfo.get("steps"),
        }
        print(
            f"datatrove: {runinfo['wall_s']:.1f} s wall, "
            f"{runinfo['docs_per_s']:.1f} documents/s on one worker, "
            f"kept {len(kept_dt)}"
        )
        if peer["cpu_s"]:
            print(
                f"per CPU-second: ours {n / cpu:.1f}, datatrove {n / peer['cpu_s']:.1f} documents "
                f"({peer['cpu_s'] / cpu:.1f}x); other processes used {peer['foreign_cpu_frac']} of a core "
                "during the datatrove run"
            )
        print(
            f"speed-up (documents/s per core): {ours['docs_per_s'] / runinfo['docs_per_s']:.1f}x; "
            f"same decision on {same}/{n} = {same / n:.2%} of documents "
            f"(kept only by us {peer['only_ours']}, only by datatrove {peer['only_dt']}; "
            f"by source {dict(by_source)})"
        )
    result = {"docs": n, "chars": chars, "ours": ours, "datatrove": peer, "removed": stats["removed"]}
    with open(os.path.join(args.workdir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-filter", provenance.method(__doc__),
                                                             section(result, args.corpus)), header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


def section(r: dict, corpus: str) -> str:
    """The measured part of this script's RESULTS.md section."""
    o, p = r["ours"], r["datatrove"]
    lines = [
        f"{r['docs']} cleaned documents of {os.path.relpath(corpus, ROOT)} ({r['chars'] / 1e6:.1f} M characters), "
        "one worker each (DirectRunner / LocalPipelineExecutor workers=1).\n",
        "| | wall s | documents/s per core | kept |",
        "|---|---:|---:|---:|",
        f"| ours (pipelines.filter, default.yaml) | {o['wall_s']:.1f} | {o['docs_per_s']:.1f} "
        f"| {o['kept']} |",
    ]
    if p:
        lines.append(f"| datatrove 0.10.1 | {p['wall_s']:.1f} | {p['docs_per_s']:.1f} | {p['kept']} |")
        if p.get("cpu_s"):
            lines.append(
                f"\nCPU seconds: ours {o['cpu_s']:.1f}, datatrove {p['cpu_s']:.1f} "
                f"({p['cpu_s'] / o['cpu_s']:.1f}x)."
            )
        lines.append(
            f"\nSpeed-up {o['docs_per_s'] / p['docs_per_s']:.1f}x; same keep/remove decision on "
            f"{p['agreement']:.2%} of documents (kept only by us: {p['only_ours']}, only by datatrove: "
            f"{p['only_dt']}).\n"
        )
    else:
        lines.append("\n(datatrove venv absent: peer not run.)\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
