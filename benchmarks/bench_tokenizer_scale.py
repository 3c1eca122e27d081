"""Unigram tokenizer training at scale: today's trainer vs split-and-merge, 8 / 32 / 128 MB samples.

    python benchmarks/bench_tokenizer_scale.py [--runs new:8 today:8 new:32 new:128 new:32:1 today:32]
        [--vocab 16384] [--chunk-mb MB] [--work work/bench_tokenizer_scale] [--corpora DIR] [--table-only]
        [--results benchmarks/RESULTS.md]

Corpus: ``../shared/corpora`` finance (domain) and general (general) documents. Held out first, by
a hash of the document id: ~20% of the finance documents and 1 MB of general ones, never trained
on; bytes per token is measured on them (UTF-8 bytes / tokens, higher = shorter sequences). The rest
is written as two curated stage directories (``train-*.parquet``) that the trainer draws from as
``make tokenizer`` does (half domain asked; finance holds ~1 MB, so the draw fills the domain side
from the general one and says so). The general corpus holds ~44 MB: a larger sample needs more
text, so the general pool is extended with *word-shuffled copies* (copy k: in every run of letters
and spaces, the words are permuted by a seeded RNG, spacing kept, ids ``copyK-<id>``): real English
words and characters, new multi-word chunks, so the trainers see about as many distinct chunks per
MB as in new text. Two copies for 128 MB; the pool is made once for the largest size and reused,
and every sample is drawn from it by the seeded hash, so the 8, 32 and 128 MB samples are all
~1/3 original general text, ~2/3 shuffled copies, plus the ~1 MB of finance text (stated in the
results).

Trainers (each a fresh ``python -m mixtures.tokenizer`` process, ``--vocab-size``/``--sample-bytes``
set, the same sample for both):

- ``today``: the trainer before split-and-merge: HF's Unigram trainer on the whole sample in one
  process with sentencepiece's settings (shrinking_factor 0.75, 2 EM sub-iterations), i.e.
  ``configs/tokenizer/unigram.yaml`` with those two keys and chunk_bytes above the sample size;
- ``new``: ``configs/tokenizer/unigram.yaml`` as it is (split-and-merge), ``--workers`` from the run
  spec (``new:32:1`` = 32 MB on 1 worker; default 2).

Measured per run: wall seconds, CPU seconds of the whole process tree (``os.wait4``: the trainer
and every worker it waited for), peak RSS of the tree (RSS of all its processes summed every
0.5 s), bytes per token on the held-out domain and general text, and the 1-minute load average
before and after (the machine is shared: a load above the core count means the run got less than
its cores). Results are appended to ``WORK/results.jsonl`` (one line per run) and printed as a
markdown table, with the 1 -> 2 worker speed-up where both ran; ``--results`` writes that table as this
script's section of benchmarks/RESULTS.md (with ``--table-only``: the table of every run in WORK/results.jsonl).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import os
import platform
import random
import re
import shlex
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from core.documents import DOC_SCHEMA  # noqa: E402
from core.sections import replace_section  # noqa: E402
from mixtures.tokenizer import TokenizerConfig, bytes_per_token  # noqa: E402
from pipelines.io import write_parquet_file  # noqa: E402

# this script's section of benchmarks/RESULTS.md
TITLE = ("## Unigram tokenizer training at scale: split-and-merge vs the trainer before "
         "(`make bench-tokenizer-scale`, issue 16)")

CORPORA = ROOT.parent / "shared" / "corpora"
CONFIG = ROOT / "configs" / "tokenizer" / "unigram.yaml"
HELD_OUT_DOMAIN_SHARE = 0.2   # of the finance documents (~0.24 MB)
HELD_OUT_GENERAL_BYTES = 1_000_000
ROWS_PER_FILE = 20_000
SAMPLE_S = 0.5
RUN = re.compile(r"^(today|new):(\d+(?:\.\d+)?)(?::(\d+))?$")
LETTER_RUN = re.compile(r"[ A-Za-z]+")


def read(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _hash(doc_id: str) -> str:
    return hashlib.sha1(doc_id.encode("utf-8")).hexdigest()


def shuffle_words(text: str, rng: random.Random) -> str:
    """Permute the words inside every run of letters and spaces (a BloombergGPT chunk), keeping
    the spaces where they were: same words and characters, new multi-word chunks."""
    def one(m: re.Match) -> str:
        parts = re.split(r"( +)", m.group(0))
        words = [p for p in parts if p and not p.startswith(" ")]
        if len(words) < 2:
            return m.group(0)
        rng.shuffle(words)
        it = iter(words)
        return "".join(p if (not p or p.startswith(" ")) else next(it) for p in parts)
    return LETTER_RUN.sub(one, text)


def build_corpus(work: Path, corpora: Path, max_mb: float) -> tuple[dict[str, list[str]], dict]:
    """Write WORK/corpus/{domain,general}/train-*.parquet (cached) and return the held-out texts."""
    docs = {side: [d for p in sorted((corpora / folder).glob("*.jsonl.gz")) for d in read(p)]
            for side, folder in (("domain", "finance"), ("general", "general"))}
    for side in docs:
        docs[side].sort(key=lambda d: _hash(d["id"]))
    n_domain_held = round(len(docs["domain"]) * HELD_OUT_DOMAIN_SHARE)
    held = {"domain": [d["text"] for d in docs["domain"][:n_domain_held]], "general": []}
    pool = {"domain": docs["domain"][n_domain_held:], "general": []}
    total = 0
    for d in docs["general"]:
        if total < HELD_OUT_GENERAL_BYTES:
            held["general"].append(d["text"])
            total += len(d["text"].encode("utf-8"))
        else:
            pool["general"].append(d)
    pool_bytes = {side: sum(len(d["text"].encode("utf-8")) for d in ds) for side, ds in pool.items()}
    # Enough general text for the largest sample: the domain side is short, the draw fills from here.
    copies = 0
    while pool_bytes["general"] * (copies + 1) + pool_bytes["domain"] < max_mb * 1e6 * 1.02:
        copies += 1
    info = {"pool_mb": {k: round(v / 1e6, 2) for k, v in pool_bytes.items()}, "shuffled_copies": copies,
            "held_out_mb": {k: round(sum(len(t.encode()) for t in v) / 1e6, 2) for k, v in held.items()}}
    stamp = work / "corpus" / "corpus.json"
    if stamp.exists():  # reuse a corpus made for a larger sample: every run then draws from the same pool
        old = json.loads(stamp.read_text())
        if old["shuffled_copies"] >= copies and {**old, "shuffled_copies": copies} == info:
            return held, old
    for side, ds in pool.items():
        rows = [{"id": d["id"], "text": d["text"], "source": d["source"], "domain": side, "meta": "{}"} for d in ds]
        if side == "general":
            for k in range(1, copies + 1):
                rng = random.Random(k)
                rows += [{"id": f"copy{k}-{d['id']}", "text": shuffle_words(d["text"], rng),
                          "source": d["source"], "domain": side, "meta": "{}"} for d in ds]
        out = work / "corpus" / side
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("train-*.parquet"):
            old.unlink()
        for i in range(0, len(rows), ROWS_PER_FILE):
            write_parquet_file(str(out / f"train-{i // ROWS_PER_FILE:05d}.parquet"), rows[i:i + ROWS_PER_FILE],
                               DOC_SCHEMA)
    stamp.write_text(json.dumps(info))
    return held, info


def measured(cmd: list[str], log_path: Path) -> dict:
    """Run ``cmd`` (cwd = repo root, output to ``log_path``) under bench_scale's process-tree sampler:
    wall and CPU seconds of the tree, its peak RSS, and the machine's load before and after."""
    from bench_scale import measured as measured_tree  # this script's folder is on sys.path

    load_before = os.getloadavg()[0]
    r = measured_tree(cmd, log_path)
    return {"rc": r["rc"], "wall_s": round(r["wall_s"], 1), "cpu_s": round(r["cpu_s"], 1),
            "peak_rss_gb": round(r["peak_rss_tree_gb"], 2), "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def config_file(work: Path, name: str, **changes: object) -> Path:
    """configs/tokenizer/unigram.yaml with ``changes``, as WORK/NAME.yaml."""
    import yaml

    doc = yaml.safe_load(CONFIG.read_text())
    doc.update(changes)
    TokenizerConfig.from_dict(doc)  # fails here if the keys are wrong
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_one(kind: str, mb: float, workers: int, vocab: int, work: Path, held: dict[str, list[str]],
            chunk_mb: float | None = None) -> dict:
    from tokenizers import Tokenizer

    name = f"{kind}-{mb:g}mb-w{workers}" + (f"-chunk{chunk_mb:g}mb" if chunk_mb and kind == "new" else "")
    out = work / "runs" / name
    out.mkdir(parents=True, exist_ok=True)
    if kind == "today":  # the trainer as it was: one piece, sentencepiece's EM settings
        config = config_file(work, "today", shrinking_factor=0.75, n_sub_iterations=2, chunk_bytes=10**12,
                             seed_size=1_000_000)
    elif chunk_mb:
        config = config_file(work, name, chunk_bytes=int(chunk_mb * 1e6))
    else:
        config = CONFIG
    cmd = [sys.executable, "-m", "mixtures.tokenizer", "--config", str(config),
           "--input", str(work / "corpus" / "domain"), "--input", str(work / "corpus" / "general"),
           "--output", str(out), "--vocab-size", str(vocab), "--sample-bytes", str(int(mb * 1e6)),
           "--workers", str(workers)]
    print(f"$ {shlex.join(cmd)}", flush=True)
    r = measured(cmd, out / "train.log")
    r.update(kind=kind, sample_mb=mb, workers=workers, vocab=vocab, log=str(out / "train.log"), chunk_mb=chunk_mb,
             date=datetime.date.today().isoformat())
    if r["rc"] != 0:
        print((out / "train.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        return r
    info = json.loads((out / "training.json").read_text())
    r["drawn_mb"] = round(sum(s["sample_bytes"] for s in info["sample"].values()) / 1e6, 2)
    r["domain_mb"] = round(info["sample"]["domain"]["sample_bytes"] / 1e6, 2)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    r["vocab_out"] = tok.get_vocab_size()
    r["bpt_domain"] = round(bytes_per_token(tok, held["domain"]), 4)
    r["bpt_general"] = round(bytes_per_token(tok, held["general"]), 4)
    return r


def machine() -> str:
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"


def _label(r: dict) -> str:
    """The trainer's name in the table; ``variant`` marks a result of an earlier version of the code."""
    return (r["kind"] + (f" ({r['chunk_mb']:g} MB chunks)" if r.get("chunk_mb") else "")
            + (f" [{r['variant']}]" if r.get("variant") else ""))


def table(results: list[dict]) -> str:
    lines = ["| trainer | sample MB (domain) | workers | wall s | CPU s | peak RSS GB | domain bytes/token "
             "| general bytes/token | load 1-min before/after |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(results, key=lambda r: (r["sample_mb"], r["kind"] != "today", -r["workers"])):
        label = _label(r)
        if r.get("rc") != 0:
            lines.append(f"| {label} | {r['sample_mb']:g} | {r['workers']} | failed (exit {r.get('rc')}) "
                         "| | | | | |")
            continue
        lines.append(f"| {label} | {r['drawn_mb']:.1f} ({r['domain_mb']:.2f}) | {r['workers']} "
                     f"| {r['wall_s']:,.0f} | {r['cpu_s']:,.0f} | {r['peak_rss_gb']:.2f} "
                     f"| {r['bpt_domain']:.3f} | {r['bpt_general']:.3f} "
                     f"| {r['load_before']:.1f} / {r['load_after']:.1f} |")
    by = {(_label(r), r["sample_mb"], r["workers"]): r for r in results if r.get("rc") == 0}
    notes = []
    for (kind, mb, w), r in sorted(by.items()):
        if kind.startswith("new") and w == 2 and (kind, mb, 1) in by:
            one = by[(kind, mb, 1)]
            notes.append(f"{mb:g} MB ({kind}): 1 -> 2 workers {one['wall_s'] / r['wall_s']:.2f}x wall "
                         f"(1 worker: {one['wall_s']:.0f} s, load {one['load_before']:.1f}/{one['load_after']:.1f})")
        t = by.get(("today", mb, 2))
        if kind.startswith("new") and t:
            notes.append(f"{mb:g} MB, {kind}, {w} worker(s): {t['wall_s'] / r['wall_s']:.2f}x wall, "
                         f"{t['cpu_s'] / r['cpu_s']:.2f}x CPU vs today; bytes/token "
                         f"{100 * (r['bpt_domain'] / t['bpt_domain'] - 1):+.2f}% domain, "
                         f"{100 * (r['bpt_general'] / t['bpt_general'] - 1):+.2f}% general")
    return "\n".join(lines + [""] + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["new:8", "today:8", "new:32", "new:128", "new:32:1", "today:32"],
                        help="KIND:MB[:WORKERS], KIND today|new (default workers 2), run in this order")
    parser.add_argument("--vocab", type=int, default=16384, help="vocabulary (the issue's measurement: 16,384)")
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "bench_tokenizer_scale")
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--chunk-mb", type=float, help="chunk_bytes of the new trainer in MB (default: the config's)")
    parser.add_argument("--table-only", action="store_true", help="print the table of WORK/results.jsonl and stop")
    parser.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                        "without it the table is only printed")
    args = parser.parse_args()
    provenance.check_results(args.results)
    results_path = args.work / "results.jsonl"
    if args.table_only:
        done = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
        report(done, args.results, f"Every run recorded in {os.path.relpath(results_path, ROOT)} (each with its "
               "corpus and load there).")
        return
    runs = []
    for spec in args.runs:
        m = RUN.match(spec)
        if not m:
            parser.error(f"--runs: {spec!r} is not KIND:MB[:WORKERS]")
        runs.append((m.group(1), float(m.group(2)), int(m.group(3) or 2)))
    if not args.corpora.is_dir():
        sys.exit(f"{args.corpora} is missing: this benchmark needs the shared corpora (finance, general); "
                 "nothing was measured")
    args.work.mkdir(parents=True, exist_ok=True)
    held, info = build_corpus(args.work, args.corpora, max(mb for _, mb, _ in runs))
    print(f"machine: {machine()}; corpus: {info}", flush=True)
    done = []
    for kind, mb, workers in runs:
        r = run_one(kind, mb, workers, args.vocab, args.work, held, args.chunk_mb)
        r["corpus"] = info
        with open(results_path, "a") as f:
            f.write(json.dumps(r) + "\n")
        done.append(r)
        print(json.dumps(r), flush=True)
    report(done, args.results, f"Machine details: {machine()}; corpus: {info}.")


def report(done: list[dict], results: str | None, about: str) -> None:
    """Print the table of ``done`` and, given ``results``, write it as this script's section of that file."""
    print(table(done))
    if results:
        replace_section(results, TITLE, provenance.body("bench-tokenizer-scale", provenance.method(__doc__), about,
                                                        table(done)), header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {results}")


if __name__ == "__main__":
    main()
