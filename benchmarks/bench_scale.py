"""Scale benchmark: peak RSS and documents per CPU-second of the stages at 10k, 100k and 1M documents.

    python benchmarks/bench_scale.py [--corpora ../shared/corpora] [--sizes 10000,100000,1000000]
        [--stages clean,filter,dedup,tokenize] [--workers 1,2] [--work work/bench_scale]
        [--beam-args "--direct_running_mode multi_processing --direct_num_workers 2"]
        [--json OUT] [--keep] [--generate-only] [--results benchmarks/RESULTS.md]

Corpus: deterministic (seeded) documents of ~2 KB made of real English sentences: the text of
``CORPORA/general/*.jsonl.gz`` and ``CORPORA/finance/*.jsonl.gz`` is split into sentences
(prose-like ones kept: no code, no markup), and each document is a random draw of sentences in a
few paragraphs separated by blank lines, so almost every document passes the quality filters and
no two are near-duplicates by chance. 3% of the documents are near-duplicate copies of an earlier
one (2-4 words changed) and 1% exact copies, so dedup has work. Files are UNCOMPRESSED JSON Lines,
50,000 documents each (``{"id", "text", "source", "meta"}``; 1M docs = 20 files of ~110 MB),
cached per size under ``WORK/corpus_<n>/`` (regenerated only when missing or made by an older
generator), written by streaming, one file per process.

Each stage runs as a user would run it, in a fresh process, under ``--runner DirectRunner``::

    python -m pipelines.clean --input 'CORPUS/*.jsonl' --output RUN/clean --domain general
    python -m pipelines.filter --input RUN/clean --output RUN/filter --config configs/filter/default.yaml
    python -m pipelines.dedup --input RUN/filter --output RUN/dedup
    python -m mixtures.tokenizer --config configs/tokenizer/demo.yaml --input RUN/dedup/<first part> \
        --output WORK/tokenizer                        (once, cached; not part of the table)
    python -m pipelines.tokenize --input RUN/dedup --output RUN/tokens --tokenizer WORK/tokenizer/tokenizer.json

plus ``--beam-args`` on every stage. Clean and filter also run under ``--direct_running_mode
multi_processing --direct_num_workers N`` for each N of ``--workers`` (on the same input, into a
throw-away directory), for the speed-up of 2 workers vs 1.

Measured per run: wall seconds; CPU seconds (user + sys) of the whole process tree, from
``os.wait4`` on the stage process (its own time plus every descendant it waited for) and, as a
check, from psutil samples of every process of the tree (the larger is reported, so workers that
are never waited for still count); peak RSS of the tree: the RSS of the stage process and all its
descendants summed every 0.2 s, the maximum reported (shared pages of forked processes count once
per process, so this is an upper bound of the tree's real footprint); documents in (``input`` of
the stage's ``stats.json``) and whether it balanced. Prints a markdown table (with ``--results``: this
script's section of benchmarks/RESULTS.md) and the RSS ratio 1M / 100k per stage when both sizes ran.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import gzip
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402

# this script's section of benchmarks/RESULTS.md
TITLE = "## Scale: memory flat in corpus size, no text through a shuffle (`make bench-scale`, issue 10)"
CORPORA = ROOT.parent / "shared" / "corpora"
STAGES = ("clean", "filter", "dedup", "tokenize")
MP_STAGES = ("clean", "filter")  # stages also run under multi_processing with --workers N
FILTER_CONFIG = "configs/filter/default.yaml"
TOKENIZER_CONFIG = "configs/tokenizer/demo.yaml"
DOCS_PER_FILE = 50_000
SEED = 20261130
GEN_VERSION = 1  # bump when the generator changes: cached corpora are then regenerated
EXACT_DUP_RATE = 0.01
NEAR_DUP_RATE = 0.03
MIN_ORIGINALS = 100  # the first documents are always originals (copies need something to copy)
SAMPLE_S = 0.2

# ------------------------------------------------------------------------------ corpus generation

_SPLIT = re.compile(r"(?<=[.!?])(?<!Mr\.)(?<!Mrs\.)(?<!Ms\.)(?<!Dr\.)(?<!St\.)[\"')\]]?\s+(?=[\"'(]?[A-Z])")
_SENTENCE_OK = re.compile(r"[\"'(]?[A-Z][^{}<>\[\]|\\#@_=*~^`]*[.!?][\"')]?")
_BANNED = re.compile(r"lorem|ipsum|javascript|cookie|privacy policy|terms of use|\.\.\.|http|www\.", re.I)
_NOT_PROSE = re.compile(r"(^|\n)([ \t]|[-*+#>|.]|\d+[.)] )|::|={3}|-{3}|\t")
_EDIT_WORDS = ("indeed", "reportedly", "however", "notably", "meanwhile", "also", "still", "often", "largely")
_POOL: list[str] = []  # the sentence pool, set in the parent before the generator processes fork


def sentence_pool(corpora: Path) -> list[str]:
    """Prose-like English sentences of the general and finance corpora, deduplicated, in file order."""
    files = sorted(glob.glob(str(corpora / "general" / "*.jsonl.gz"))) + \
        sorted(glob.glob(str(corpora / "finance" / "*.jsonl.gz")))
    if not files:
        sys.exit(f"{corpora}/general and finance/ hold no *.jsonl.gz: this benchmark needs ../shared/corpora "
                 "(or --corpora DIR) to build its documents")
    pool: dict[str, None] = {}
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if (record.get("meta") or {}).get("lang", "en") != "en":
                    continue
                for block in record["text"].split("\n\n"):
                    if _NOT_PROSE.search(block):  # code, tables, lists, markup: not running text
                        continue
                    for s in _SPLIT.split(" ".join(block.split())):
                        words = s.split(" ")
                        if (40 <= len(s) <= 300 and len(words) >= 7 and _SENTENCE_OK.fullmatch(s)
                                and not _BANNED.search(s)
                                and sum(any(c.isalpha() for c in w) for w in words) >= 0.9 * len(words)):
                            pool[s] = None
    return list(pool)


def _kind(seed: int, i: int) -> tuple[random.Random, str]:
    rng = random.Random(seed * 10_000_019 + i)
    u = rng.random()
    if i < MIN_ORIGINALS or u >= EXACT_DUP_RATE + NEAR_DUP_RATE:
        return rng, "original"
    return rng, "exact_dup" if u < EXACT_DUP_RATE else "near_dup"


def _original_text(rng: random.Random) -> str:
    pool = _POOL
    target = rng.randint(1700, 2300)
    paragraphs, para, size, per_para = [], [], 0, rng.randint(3, 6)
    while size < target:
        s = pool[rng.randrange(len(pool))]
        para.append(s)
        size += len(s) + 1
        if len(para) == per_para:
            paragraphs.append(" ".join(para))
            para, per_para = [], rng.randint(3, 6)
            size += 1
    if para:
        paragraphs.append(" ".join(para))
    return "\n\n".join(paragraphs)


def document(seed: int, i: int) -> tuple[str, str, int]:
    """Document ``i``: ``(text, kind, index of the copied original or -1)``; a pure function of (seed, i)."""
    rng, kind = _kind(seed, i)
    if kind == "original":
        return _original_text(rng), kind, -1
    while True:
        j = rng.randrange(i)
        rng_j, kind_j = _kind(seed, j)
        if kind_j == "original":
            break
    text = _original_text(rng_j)
    if kind == "near_dup":
        words = text.split(" ")
        plain = [k for k, w in enumerate(words) if w.isalpha()]
        for k in rng.sample(plain, rng.randint(2, 4)):
            words[k] = rng.choice(_EDIT_WORDS)
        text = " ".join(words)
    return text, kind, j


def _write_part(job: tuple[str, int, int, int, int]) -> dict:
    out_dir, part, start, stop, seed = job
    counts = {"original": 0, "near_dup": 0, "exact_dup": 0}
    n_bytes = 0
    tmp = f"{out_dir}/part-{part:05d}.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8", buffering=1 << 20) as f:
        for i in range(start, stop):
            text, kind, j = document(seed, i)
            counts[kind] += 1
            meta = {"lang": "en", "kind": kind}
            if j >= 0:
                meta["copy_of"] = f"scale-{j:08d}"
            line = json.dumps({"id": f"scale-{i:08d}", "text": text, "source": "scale", "meta": meta},
                              ensure_ascii=False) + "\n"
            n_bytes += len(text)
            f.write(line)
    os.replace(tmp, tmp[:-4])
    return {"part": part, "counts": counts, "text_chars": n_bytes}


def ensure_corpus(n: int, work: Path, corpora: Path, processes: int) -> dict:
    """The cached corpus of ``n`` documents (generated when missing); returns its manifest."""
    out = work / f"corpus_{n}"
    manifest_path = out / "corpus.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == GEN_VERSION and manifest.get("seed") == SEED and manifest.get("docs") == n:
            manifest["cached"] = True
            return manifest
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    global _POOL
    if not _POOL:
        _POOL = sentence_pool(corpora)
    t_pool = time.perf_counter() - t0
    jobs = [(str(out), p, start, min(start + DOCS_PER_FILE, n), SEED)
            for p, start in enumerate(range(0, n, DOCS_PER_FILE))]
    processes = max(1, min(processes, len(jobs)))
    if processes == 1:
        parts = [_write_part(job) for job in jobs]
    else:
        with mp.get_context("fork").Pool(processes) as pool:
            parts = list(pool.imap_unordered(_write_part, jobs))
    counts = {k: sum(p["counts"][k] for p in parts) for k in ("original", "near_dup", "exact_dup")}
    manifest = {"version": GEN_VERSION, "seed": SEED, "docs": n, "files": len(jobs), "counts": counts,
                "text_mb": round(sum(p["text_chars"] for p in parts) / 1e6, 1),
                "file_mb": round(sum(f.stat().st_size for f in out.glob("*.jsonl")) / 1e6, 1),
                "pool_sentences": len(_POOL), "pool_seconds": round(t_pool, 1),
                "seconds": round(time.perf_counter() - t0, 1), "processes": processes}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    manifest["cached"] = False
    return manifest


# ------------------------------------------------------------------------------ measurement

def measured(cmd: list[str], log_path: Path) -> dict:
    """Run ``cmd`` (cwd = repo root, output to ``log_path``); wall/CPU seconds and peak tree RSS."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    cpu_seen: dict[tuple[int, float], float] = {}  # (pid, create time) -> last user+sys seen
    peak_tree = peak_root = 0
    max_procs = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            procs = [root]
        tree = 0
        for p in procs:
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    cpu = p.cpu_times()
                    key = (p.pid, p.create_time())
            except psutil.Error:
                continue
            tree += rss
            cpu_seen[key] = cpu.user + cpu.system
            if p.pid == proc.pid:
                peak_root = max(peak_root, rss)
        peak_tree = max(peak_tree, tree)
        max_procs = max(max_procs, len(procs))
        time.sleep(SAMPLE_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    cpu_wait = usage.ru_utime + usage.ru_stime
    cpu_sampled = sum(cpu_seen.values())
    return {"cmd": shlex.join(cmd), "rc": proc.returncode, "wall_s": wall, "cpu_s": max(cpu_wait, cpu_sampled),
            "cpu_wait4_s": cpu_wait, "cpu_sampled_s": cpu_sampled, "peak_rss_tree_gb": peak_tree / 2**30,
            "peak_rss_main_gb": peak_root / 2**30, "maxrss_largest_gb": usage.ru_maxrss / 2**20,
            "max_processes": max_procs, "log": str(log_path)}


def run_checked(cmd: list[str], log_path: Path) -> dict:
    r = measured(cmd, log_path)
    if r["rc"] != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        sys.exit(f"failed (exit {r['rc']}): {r['cmd']}\n--- {log_path} (tail) ---\n{tail}")
    return r


def stage_command(stage: str, run: Path, corpus: Path, tokenizer: Path, out: Path, extra: list[str]) -> list[str]:
    py = [sys.executable, "-m", f"pipelines.{stage}"]
    beam = ["--runner", "DirectRunner", *extra]
    if stage == "clean":
        return [*py, "--input", str(corpus / "*.jsonl"), "--output", str(out), "--domain", "general", *beam]
    if stage == "filter":
        return [*py, "--input", str(run / "clean"), "--output", str(out), "--config", FILTER_CONFIG, *beam]
    if stage == "dedup":
        return [*py, "--input", str(run / "filter"), "--output", str(out), *beam]
    return [*py, "--input", str(run / "dedup"), "--output", str(out), "--tokenizer", str(tokenizer), *beam]


def ensure_tokenizer(work: Path, run: Path, logs: Path) -> dict | None:
    """Train the tokenizer once (on the first dedup shard of the first size that needs it); cached."""
    out = work / "tokenizer"
    if (out / "tokenizer.json").exists():
        return None
    first = sorted(glob.glob(str(run / "dedup" / "train-*.parquet")))[0]
    cmd = [sys.executable, "-m", "mixtures.tokenizer", "--config", TOKENIZER_CONFIG, "--input", first,
           "--output", str(out)]
    print(f"$ {shlex.join(cmd)}", flush=True)
    return run_checked(cmd, logs / "tokenizer.log")


# ------------------------------------------------------------------------------ reporting

def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import apache_beam

    return (f"{model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, apache-beam {apache_beam.__version__}")


def size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def table(rows: list[dict]) -> str:
    lines = ["| size | stage | workers | docs | wall s | CPU s | docs/CPU-s | peak RSS GB | balanced |",
             "|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {size_label(r['size'])} | {r['stage']} | {r['workers']} | {r['docs']:,} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['docs'] / max(r['cpu_s'], 1e-9):,.0f} | {r['peak_rss_tree_gb']:.2f} | "
                     f"{str(r['balanced']).lower()} |")
    return "\n".join(lines)


def notes(rows: list[dict], sizes: list[int]) -> list[str]:
    out = []
    by = {(r["size"], r["stage"], r["workers"]): r for r in rows}
    for n in sizes:
        for stage in MP_STAGES:
            base, one, two = by.get((n, stage, "1 in-mem")), by.get((n, stage, "1 mp")), by.get((n, stage, "2 mp"))
            if two and (one or base):
                parts = []
                if one:
                    parts.append(f"x{one['wall_s'] / two['wall_s']:.2f} vs 1 mp worker")
                if base:
                    parts.append(f"x{base['wall_s'] / two['wall_s']:.2f} vs in-memory")
                out.append(f"- {size_label(n)} {stage}: 2 multi_processing workers, wall-time speed-up "
                           + ", ".join(parts))
        dedup = next((r for r in rows if r["size"] == n and r["stage"] == "dedup"), None)
        if dedup and dedup.get("planted_copies") is not None:
            out.append(f"- {size_label(n)} dedup: removed {dedup['removed_total']:,} documents "
                       f"({dedup['removed']}); planted copies {dedup['planted_copies']:,} "
                       f"(exact {dedup['planted_exact']:,}, near {dedup['planted_near']:,})")
    if 100_000 in sizes and 1_000_000 in sizes:
        for (n, stage, workers), r in by.items():
            small = by.get((100_000, stage, workers))
            if n == 1_000_000 and small:
                out.append(f"- peak RSS 1M / 100k, {stage} ({workers}): "
                           f"{r['peak_rss_tree_gb'] / small['peak_rss_tree_gb']:.2f}")
    return out


# ------------------------------------------------------------------------------ driver

def csv_ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(CORPORA), help="shared corpora (general/ and finance/ are read)")
    parser.add_argument("--sizes", type=csv_ints, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    parser.add_argument("--workers", type=csv_ints, default=[1, 2],
                        help="clean and filter also run with --direct_running_mode multi_processing "
                             "--direct_num_workers N for each N (empty: skip)")
    parser.add_argument("--work", default=str(ROOT / "work" / "bench_scale"),
                        help="cached corpora, stage outputs, logs (default work/bench_scale in the repo)")
    parser.add_argument("--beam-args", default="", help="extra Beam options for every stage run, one string")
    parser.add_argument("--gen-processes", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes writing the corpus files (default min(2, cores))")
    parser.add_argument("--json", help="write the results here (machine-readable)")
    parser.add_argument("--keep", action="store_true", help="keep stage outputs (default: deleted once measured)")
    parser.add_argument("--generate-only", action="store_true", help="build (or check) the cached corpora and stop")
    parser.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                        "without it the table is only printed")
    args = parser.parse_args()
    provenance.check_results(args.results)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := [s for s in stages if s not in STAGES]:
        parser.error(f"unknown stage(s) {unknown}: choose from {','.join(STAGES)}")
    corpora = Path(args.corpora)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    beam_args = shlex.split(args.beam_args)

    needs_pool = any(not (work / f"corpus_{n}" / "corpus.json").exists() for n in args.sizes)
    if needs_pool and not corpora.exists():
        sys.exit(f"{corpora} not found: this benchmark needs ../shared/corpora (general/ and finance/) "
                 "to build its documents (or --corpora DIR)")
    generation = {}
    for n in args.sizes:
        m = ensure_corpus(n, work, corpora, args.gen_processes)
        generation[n] = m
        state = "cached" if m["cached"] else f"generated in {m['seconds']:.1f} s ({m['processes']} processes)"
        print(f"corpus {size_label(n)}: {m['files']} files, {m['file_mb']:,.0f} MB, {m['counts']}, {state}",
              flush=True)
    if args.generate_only:
        return

    # first stage in the chain whose input must exist: the earlier stages run as prerequisites
    order = list(STAGES)
    last = max(order.index(s) for s in stages)
    rows, extra_runs = [], []
    # the default DirectRunner runs one in-memory worker, unless --beam-args says otherwise
    custom = any(a.startswith(("--direct_running_mode", "--direct_num_workers")) for a in beam_args)
    base_label = "beam-args" if custom else "1 in-mem"
    tokenizer = work / "tokenizer" / "tokenizer.json"
    for n in args.sizes:
        corpus = work / f"corpus_{n}"
        run = work / f"run_{n}"
        logs = work / "logs" / str(n)
        logs.mkdir(parents=True, exist_ok=True)
        for stage in order[:last + 1]:
            out = run / stage
            if stage not in stages and (out / "stats.json").exists():
                continue  # a kept output of an earlier run serves as input
            if stage == "tokenize":
                trained = ensure_tokenizer(work, run, logs)
                if trained:
                    extra_runs.append({"size": n, "what": "tokenizer training (once, cached)", **trained})
                    print(f"  tokenizer trained in {trained['wall_s']:.1f} s", flush=True)
            variants = [(base_label, out, [])]
            if stage in stages and stage in MP_STAGES:
                variants += [(f"{w} mp", run / f"{stage}_mp{w}",
                              ["--direct_running_mode", "multi_processing", "--direct_num_workers", str(w)])
                             for w in args.workers]
            for label, dest, mode in variants:
                cmd = stage_command(stage, run, corpus, tokenizer, dest, beam_args + mode)
                print(f"$ {shlex.join(cmd)}", flush=True)
                r = run_checked(cmd, logs / f"{dest.name}.log")
                stats = json.loads((dest / "stats.json").read_text())
                row = {"size": n, "stage": stage, "workers": label, "docs": stats["input"],
                       "output": stats["output"], "balanced": bool(stats.get("balanced")), **r}
                if stage == "dedup":
                    m = generation[n]["counts"]
                    row.update(removed=stats["removed"], removed_total=sum(stats["removed"].values()),
                               planted_copies=m["near_dup"] + m["exact_dup"], planted_exact=m["exact_dup"],
                               planted_near=m["near_dup"])
                print(f"  {stage} [{label}]: {row['docs']:,} docs in, {row['output']:,} out, "
                      f"wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s (wait4 {r['cpu_wait4_s']:.1f}, sampled "
                      f"{r['cpu_sampled_s']:.1f}), peak RSS tree {r['peak_rss_tree_gb']:.2f} GB "
                      f"({r['max_processes']} processes), balanced {row['balanced']}", flush=True)
                if stage in stages:
                    rows.append(row)
                else:
                    extra_runs.append({"what": "prerequisite", **row})
                if dest != out:
                    base = next((x for x in rows if x["size"] == n and x["stage"] == stage
                                 and x["workers"] == base_label), None)
                    if base and base["output"] != row["output"]:
                        print(f"  warning: {stage} [{label}] wrote {row['output']:,} documents, in-memory "
                              f"{base['output']:,}", file=sys.stderr)
                    if not args.keep:
                        shutil.rmtree(dest, ignore_errors=True)
            if not args.keep and stage != "clean":
                prev = order[order.index(stage) - 1]
                shutil.rmtree(run / prev, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(run, ignore_errors=True)

    header = (f"Date {datetime.date.today().isoformat()}; machine: {machine()}. "
              f"Beam DirectRunner, extra Beam args: {args.beam_args or 'none'}.")
    md = ["", header, "", table(rows)]
    if extra := notes(rows, args.sizes):
        md += ["", *extra]
    print("\n".join(md))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
             "args": vars(args) | {"sizes": args.sizes, "workers": args.workers},
             "generation": {str(k): v for k, v in generation.items()}, "runs": rows, "other_runs": extra_runs,
             "markdown": "\n".join(md)}, indent=2) + "\n")
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-scale", provenance.method(__doc__), header,
                                                          table(rows), "\n".join(notes(rows, args.sizes))),
                        header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
