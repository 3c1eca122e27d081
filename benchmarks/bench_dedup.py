"""Dedup throughput and memory: signatures and the whole stage, at growing corpus sizes.

    python benchmarks/bench_dedup.py [--signature-sizes 10000 100000 1000000]
        [--stage-sizes 10000 100000] [--work work/bench_dedup] [--results benchmarks/RESULTS.md]

Documents are synthetic but made of real text: each is 8-20 sentences drawn at random from
the English corpora in ../shared/corpora (news, Wikipedia, speeches, novels, docs), and 5%
of them are edited copies of another (a few words changed), so the graph steps have work.
Every measurement runs in a fresh process pinned to one core (``taskset -c 0`` when
available) and reports wall time, CPU time and that process's peak RSS:

* signatures: ``MinHashConfig.fingerprint`` (exact key + shingles + MinHash + band keys) per
  document, streamed (constant memory), and datasketch's ``MinHash.update_batch`` on the same
  shingles for comparison (on the first 2,000 documents: it is the slow path);
* stage: ``python -m pipelines.dedup --direct_num_workers 1`` on a Parquet stage directory;
* shuffle bytes per document: the Beam-encoded size of every element each document sends
  through a GroupByKey (id key, exact key, band keys; shingles only for candidates; never the
  text), measured on the first 2,000 documents; the basis of the 1B-document estimate in
  docs/dedup.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TITLE = "## Dedup throughput and memory (`make bench-dedup`)"  # this script's section of benchmarks/RESULTS.md
CORPORA = ROOT.parent / "shared" / "corpora"
SOURCES = ["finance/bbc_business", "finance/reuters_finance", "general/bbc_nonbusiness", "general/lee_news",
           "general/speeches", "general/wikipedia_en", "general/austen", "general/python_docs"]
NEAR_DUP_RATE = 0.05
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentence_pool() -> list[str]:
    pool = []
    for name in SOURCES:
        with gzip.open(CORPORA / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                for s in _SENTENCE.split(json.loads(line)["text"]):
                    s = " ".join(s.split())
                    if 30 <= len(s) <= 400:
                        pool.append(s)
    return pool


def synthetic_docs(n: int, seed: int = 0):
    """``n`` documents of 8-20 real sentences; 5% are lightly edited copies of an earlier one."""
    rng = random.Random(seed)
    pool = sentence_pool()
    recent: list[str] = []
    for i in range(n):
        if recent and rng.random() < NEAR_DUP_RATE:
            words = rng.choice(recent).split(" ")
            for _ in range(max(1, len(words) // 60)):
                words[rng.randrange(len(words))] = rng.choice(("indeed", "reportedly", "however"))
            text = " ".join(words)
        else:
            text = " ".join(rng.choice(pool) for _ in range(rng.randint(8, 20)))
            recent = (recent + [text])[-1000:]
        yield {"id": f"syn-{i:08d}", "text": text, "source": "synthetic", "domain": "general", "meta": "{}"}


def one_core() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def measured(cmd: list[str], cwd: Path = ROOT) -> dict:
    """Run a command, return wall and CPU seconds and its peak RSS (this child only)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out[-2000:]}\n{err[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "stdout": out}


# ---------------------------------------------------------------------------- child modes

def child_signatures(n: int) -> None:
    from filters.minhash import MinHashConfig, permutations, signature_datasketch, word_char_table

    cfg = MinHashConfig().resolved()
    word_char_table()
    permutations(cfg.num_perm, cfg.seed)
    docs = synthetic_docs(n)
    t_gen = t_sig = 0.0
    words = 0
    sample = []
    while True:
        t0 = time.perf_counter()
        batch = [d["text"] for _, d in zip(range(1000), docs)]
        t_gen += time.perf_counter() - t0
        if not batch:
            break
        t0 = time.perf_counter()
        for text in batch:
            cfg.fingerprint(text)
        t_sig += time.perf_counter() - t0
        words += sum(len(t.split()) for t in batch)
        if len(sample) < 2000:
            sample += batch[:2000 - len(sample)]
    from filters.minhash import text_shingles

    shingles = [text_shingles(t) for t in sample]
    t0 = time.perf_counter()
    for s in shingles:
        signature_datasketch(s, cfg.num_perm)
    t_ds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in shingles:
        from filters.minhash import signature
        signature(s, cfg.num_perm)
    t_np = time.perf_counter() - t0
    print(json.dumps({"docs": n, "signature_s": t_sig, "generate_s": t_gen, "words_per_doc": words / n,
                      "minhash_only_numpy_docs_per_s": len(shingles) / t_np,
                      "minhash_only_datasketch_docs_per_s": len(shingles) / t_ds}))


def child_write_stage(n: int, out: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.documents import DOC_SCHEMA

    os.makedirs(out, exist_ok=True)
    docs = synthetic_docs(n)
    part = 0
    while True:
        rows = [d for _, d in zip(range(50_000), docs)]
        if not rows:
            break
        pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), f"{out}/train-{part:05d}.parquet",
                       compression="zstd")
        part += 1


def shuffle_bytes(n: int = 2000) -> dict:
    """Beam-encoded bytes each document sends through the stage's GroupByKeys (default settings).

    Every document: its packed fingerprint (id shuffle), its band keys + node (exact shuffle) and
    one 14-byte value per band (coarse LSH buckets). Only documents in a candidate pair also send
    their location and (node, shingle set); only removed ones a label. No text in any shuffle.
    """
    import struct

    from apache_beam.coders import FastPrimitivesCoder

    from filters.minhash import MinHashConfig
    from pipelines.dedup import (
        BUCKET_PREFIX,
        HANDLE,
        exact_value,
        handle_of,
        make_node,
        pack_fingerprint,
        verification_set,
    )

    coder = FastPrimitivesCoder()
    cfg = MinHashConfig(verify=True).resolved()
    sizes = {"id_key": 0, "exact_key": 0, "band_keys": 0, "candidate_info": 0, "text_utf8": 0}
    for i, doc in enumerate(synthetic_docs(n)):
        h = handle_of(f"00000-{i // 10_000:04d}", i + 1)
        node = make_node(1, doc["source"], doc["id"], h)
        exact, shingles, keys = cfg.fingerprint(doc["text"])
        scope = doc["source"]
        sizes["id_key"] += len(coder.encode(((doc["source"], doc["id"]), pack_fingerprint(h, 1, exact, keys))))
        sizes["exact_key"] += len(coder.encode(((scope, exact), exact_value(b"".join(keys), node))))
        packed = struct.pack(HANDLE, h)
        sizes["band_keys"] += sum(len(coder.encode(((scope, b, k[:BUCKET_PREFIX]), k[BUCKET_PREFIX:] + packed)))
                                  for b, k in enumerate(keys))
        sizes["candidate_info"] += len(coder.encode((h, ("s", (node, verification_set(shingles))))))
        sizes["text_utf8"] += len(doc["text"].encode())
    other = make_node(1, "synthetic", "syn-00000042", handle_of("00001-0002", 1234))
    return {**{k: round(v / n) for k, v in sizes.items()}, "edge": len(coder.encode((2**40 + 7, 2**41 + 9))),
            "node_edge": len(coder.encode((node, other))),
            "label": len(coder.encode(("00003-0012", (12345, other, "near")))),
            "bands": cfg.bands, "rows": cfg.rows}


# ---------------------------------------------------------------------------- driver

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signature-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--stage-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--work", default=str(ROOT / "work" / "bench_dedup"))
    parser.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                        "without it the tables are only printed (and written to WORK/results.md)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from benchmarks import provenance

    provenance.check_results(args.results)
    if args.child:
        mode, n = args.child[0], int(args.child[1])
        if mode == "signatures":
            child_signatures(n)
        else:
            child_write_stage(n, args.child[2])
        return
    if not CORPORA.exists():
        sys.exit(f"{CORPORA} not found: this benchmark needs ../shared/corpora")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]

    sig_rows, stage_rows = [], []
    for n in args.signature_sizes:
        r = measured(one_core() + me + ["--child", "signatures", str(n)])
        info = json.loads(r["stdout"].strip().splitlines()[-1])
        sig_rows.append({"docs": n, "docs_per_s": n / info["signature_s"], "rss": r["peak_rss_mb"], **info})
        print(json.dumps(sig_rows[-1]), flush=True)
    for n in args.stage_sizes:
        data, out = work / f"in_{n}", work / f"out_{n}"
        if not (data / "train-00000.parquet").exists():
            measured(me + ["--child", "write", str(n), str(data)])
        r = measured(one_core() + [sys.executable, "-m", "pipelines.dedup", "--input", str(data),
                                   "--output", str(out), "--direct_num_workers", "1"])
        stats = json.loads((out / "stats.json").read_text())
        stage_rows.append({"docs": n, "wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "rss": r["peak_rss_mb"],
                           "removed": stats["removed"], "clusters": stats.get("clusters"),
                           "residual": stats.get("counts", {}).get("cc_residual_edges")})
        print(json.dumps(stage_rows[-1]), flush=True)
    sb = shuffle_bytes()
    print(json.dumps({"shuffle_bytes_per_doc": sb}))

    lines = ["Signatures (exact key + 5-gram shingles + 128-perm MinHash + band keys), one core, streamed:", "",
             "| documents | words/doc | docs/s (1 core) | peak RSS MB | MinHash step only: numpy vs datasketch "
             "update_batch, docs/s |", "|---:|---:|---:|---:|---|"]
    for r in sig_rows:
        lines.append(f"| {r['docs']:,} | {r['words_per_doc']:.0f} | {r['docs_per_s']:,.0f} | {r['rss']:.0f} | "
                     f"{r['minhash_only_numpy_docs_per_s']:,.0f} vs {r['minhash_only_datasketch_docs_per_s']:,.0f} |")
    lines += ["", "Whole stage (`python -m pipelines.dedup --direct_num_workers 1`, default settings: verify on), "
              "one core, Beam start-up included:", "",
              "| documents | wall s | CPU s | docs/s (wall) | docs per CPU-s | peak RSS MB | removed "
              "| residual edges |",
              "|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in stage_rows:
        lines.append(f"| {r['docs']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['docs'] / r['wall_s']:,.0f} | "
                     f"{r['docs'] / r['cpu_s']:,.0f} | {r['rss']:.0f} | {json.dumps(r['removed'])} | "
                     f"{r['residual']} |")
    lines += ["", f"Shuffle bytes per document (Beam-encoded, default settings, {sb['bands']} bands x "
              f"{sb['rows']} rows): " + ", ".join(f"{k} {v}" for k, v in sb.items() if k not in ("bands", "rows"))]
    table = "\n".join(lines)
    print(table)
    (work / "results.md").write_text(table + "\n")
    if args.results:
        from core.sections import replace_section

        replace_section(args.results, TITLE, provenance.body("bench-dedup", provenance.method(__doc__), table),
                        header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
