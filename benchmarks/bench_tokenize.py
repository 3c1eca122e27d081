"""Throughput of the tokenize stage against its limit, a plain ``encode_batch`` loop, per core.

    python benchmarks/bench_tokenize.py [--tokenizer work/demo/tokenizer/tokenizer.json] [--mb 12]
        [--results benchmarks/RESULTS.md]

Both sides tokenize the same curated documents (real text from ../shared/corpora, or the
embedded sample when that is absent) with one core: ``TOKENIZERS_PARALLELISM=false`` makes
``encode_batch`` sequential, and the stage runs on the in-process DirectRunner with one
worker. *Per core* numbers divide by the process CPU time (``time.process_time``, all
threads), which stays meaningful on a machine shared with other jobs; wall times are shown
beside. The limit is the loop ``encode_documents`` (``encode_batch`` + EOS) over texts already
in memory; the stage also reads Parquet, shuffles token ids into shards and writes them.
Target: stage >= 0.8 x the limit.
"""

from __future__ import annotations

import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # before tokenizers is imported: one core
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from core.documents import DOC_SCHEMA  # noqa: E402
from core.sections import replace_section  # noqa: E402
from mixtures.tokenizer import TokenizerConfig, encode_documents, eos_id, save_tokenizer, train_tokenizer  # noqa: E402
from pipelines.io import write_parquet_file  # noqa: E402

TITLE = "## Tokenize stage throughput (`make bench-tokenize`)"  # this script's section of benchmarks/RESULTS.md

CORPORA = ROOT.parent / "shared" / "corpora"
FILES = [("finance", "domain", n) for n in ("bbc_business", "reuters_finance", "sec_10q_aapl")] + \
        [("general", "general", n) for n in ("bbc_nonbusiness", "wikipedia_en", "austen", "speeches", "lee_news")]


def load_documents(limit_bytes: int) -> list[dict]:
    """Real documents, round-robin over the files until ``limit_bytes`` of text."""
    per_file = []
    for folder, domain, name in FILES:
        path = CORPORA / folder / f"{name}.jsonl.gz"
        if not path.exists():
            path = ROOT / "data" / folder / f"{name}.jsonl.gz"
        if not path.exists():
            continue
        with gzip.open(path, "rt", encoding="utf-8") as f:
            per_file.append([{"id": r["id"], "text": r["text"], "source": r["source"], "domain": domain,
                              "meta": "{}"} for r in map(json.loads, f)])
    docs, total, i = [], 0, 0
    while total < limit_bytes and any(per_file):
        f = per_file[i % len(per_file)]
        if f:
            d = f.pop(0)
            docs.append(d)
            total += len(d["text"].encode("utf-8"))
        i += 1
    return docs


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default=str(ROOT / "work/demo/tokenizer/tokenizer.json"))
    parser.add_argument("--mb", type=float, default=12.0, help="MB of UTF-8 text to tokenize")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each side")
    parser.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                        "without it the table is only printed")
    args = parser.parse_args()
    provenance.check_results(args.results)
    docs = load_documents(int(args.mb * 1e6))
    texts = [d["text"] for d in docs]
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    work = Path(tempfile.mkdtemp(prefix="bench_tokenize_"))
    tok_path = Path(args.tokenizer)
    if not tok_path.exists():  # no demo tokenizer yet: a BPE on the first MB (fast to train)
        cfg = TokenizerConfig(type="bpe", vocab_size=8192)
        tok_path = save_tokenizer(train_tokenizer(texts[:400], cfg), work / "tok", cfg)
        print(f"(no {args.tokenizer}: trained a bpe 8192 tokenizer on the first 400 documents)")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    eos, dtype = eos_id(tok), np.dtype(np.uint16 if tok.get_vocab_size() <= 65536 else np.uint32)
    kind = json.loads(tok_path.read_text())["model"]["type"]

    def limit() -> int:
        n = 0
        for i in range(0, len(texts), args.batch_size):
            n += sum(a.size for a in encode_documents(tok, texts[i:i + args.batch_size], eos, dtype))
        return n

    rows = sorted(docs, key=lambda d: d["id"])
    shards = 4
    for k in range(shards):
        write_parquet_file(str(work / "in" / f"train-{k:05d}-of-{shards:05d}.parquet"), rows[k::shards], DOC_SCHEMA)
    from pipelines import tokenize

    def stage() -> int:
        stats = tokenize.main(["--input", str(work / "in"), "--output", str(work / "out"), "--tokenizer",
                               str(tok_path), "--batch-size", str(args.batch_size)])
        return stats["counts"]["tokens"]

    write_parquet_file(str(work / "tiny" / "train-00000-of-00001.parquet"), rows[:8], DOC_SCHEMA)

    def fixed() -> int:  # the stage's start-up cost: pipeline construction, runner, stats (8 documents)
        return tokenize.main(["--input", str(work / "tiny"), "--output", str(work / "tiny_out"), "--tokenizer",
                              str(tok_path)])["counts"]["tokens"]

    results = {}
    for name, fn in (("encode_batch loop (limit)", limit), ("tokenize stage", stage), ("stage start-up", fixed)):
        runs = [timed(fn) for _ in range(args.repeats)]
        results[name] = min(runs, key=lambda r: r[2])
    out = [f"{len(texts):,} documents, {n_bytes / 1e6:.2f} MB UTF-8, tokenizer {kind} "
           f"vocab {tok.get_vocab_size():,}, batch {args.batch_size}, 1 core, best of {args.repeats}", "",
           "| run | tokens | wall s | CPU s | tokens/s per core | MB/s per core | vs limit |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    limit_tokens, _, limit_cpu = results["encode_batch loop (limit)"]
    for name in ("encode_batch loop (limit)", "tokenize stage"):
        tokens, wall, cpu = results[name]
        out.append(f"| {name} | {tokens:,} | {wall:.1f} | {cpu:.1f} | {tokens / cpu:,.0f} | "
                   f"{n_bytes / 1e6 / cpu:.2f} | {limit_cpu / cpu:.2f} |")
    _, fwall, fcpu = results["stage start-up"]
    out += ["", f"Stage start-up (same stage on 8 documents): {fcpu:.1f} s CPU, {fwall:.1f} s wall; "
            "the rest of the gap to the limit is per document (Parquet read, shuffle, shard writes)."]
    print("\n" + "\n".join(out))
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-tokenize", provenance.method(__doc__),
                                                             "\n".join(out)), header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
