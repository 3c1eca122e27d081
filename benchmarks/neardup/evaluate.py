"""Score the dedup stage's clusters (and datatrove's) against the near-duplicate labels.

    python benchmarks/neardup/evaluate.py --data work/neardup [--thresholds 0.7 0.8 0.9]
        [--num-perm 112] [--verify] [--datatrove-python work/peers/dtvenv/bin/python] [--append-results]

Truth at threshold t: a base and its variants whose labelled Jaccard is >= t form one
cluster; every other document (variants below t, hard negatives) is a singleton. Variants
with |Jaccard - t| < 0.05 are a grey zone (a MinHash estimate cannot be sharper than
that) and are left out of the scores, so "positive" means Jaccard >= t + 0.05 and
"negative" <= t - 0.05. Scores are pairwise: a pair of scored documents is predicted
positive when both are in one output cluster (the kept document and the duplicates/ rows
naming it). ``hard_neg_merged`` counts hard negatives put in a cluster with anything else.

Both tools run on one core (``taskset -c 0`` when available); our wall time is the whole
``python -m pipelines.dedup`` process (Beam start-up included), datatrove's the sum of its
four stages as its harness reports them (interpreter start-up excluded).
"""

from __future__ import annotations

import argparse
import glob
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.provenance import body, check_results  # noqa: E402
from core.sections import replace_section  # noqa: E402

TITLE = "## Near-duplicate quality vs labels, and datatrove 0.10.1 side by side (`make bench-neardup`)"
PEERS = ROOT.parent / "shared" / "peers"
GREY = 0.05
PY = sys.executable


def load_labels(data: Path) -> dict[str, dict]:
    with open(data / "labels.jsonl") as f:
        return {row["id"]: row for row in map(json.loads, f)}


def truth_cluster(row: dict, t: float) -> str | None:
    """The doc's true cluster at threshold t, or None when it is in the grey zone."""
    if row["role"] == "variant":
        if abs(row["jaccard"] - t) < GREY:
            return None
        return row["group"] if row["jaccard"] >= t else row["id"]
    return row["group"]  # base: its group; hard negative: its own id


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(labels: dict[str, dict], predicted: dict[str, str], t: float) -> dict:
    """Pairwise precision/recall/F1 of predicted clusters (doc -> cluster key) at threshold t."""
    truth = {doc: truth_cluster(row, t) for doc, row in labels.items()}
    scored = [doc for doc, c in truth.items() if c is not None]
    pred_sizes = Counter(predicted.get(d, d) for d in scored)
    true_sizes = Counter(truth[d] for d in scored)
    joint = Counter((predicted.get(d, d), truth[d]) for d in scored)
    tp = sum(pairs(n) for n in joint.values())
    pp, tt = sum(pairs(n) for n in pred_sizes.values()), sum(pairs(n) for n in true_sizes.values())
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    all_sizes = Counter(predicted.get(d, d) for d in labels)
    hard = sum(1 for d, row in labels.items()
               if row["role"] == "hard_negative" and all_sizes[predicted.get(d, d)] > 1)
    return {"precision": precision, "recall": recall, "f1": f1, "hard_neg_merged": hard,
            "scored_docs": len(scored), "true_pairs": tt, "predicted_pairs": pp}


def recall_by_level(labels: dict[str, dict], predicted: dict[str, str]) -> dict[str, float]:
    """Fraction of variants of each target level found in their base's cluster."""
    hit, total = defaultdict(int), defaultdict(int)
    for doc, row in labels.items():
        if row["role"] != "variant":
            continue
        level = doc.rsplit("-v", 1)[1]
        total[level] += 1
        base = f"{row['group']}-base"
        hit[level] += predicted.get(doc, doc) == predicted.get(base, base)
    return {f"{int(k) / 100:.2f}": round(hit[k] / total[k], 3) for k in sorted(total)}


def one_core() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[str, float, float]:
    """Run a command; (stdout, wall seconds, CPU seconds of the child)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - timed.cpu_before
    timed.cpu_before = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out[-3000:]}\n{err[-3000:]}")
    return out, wall, cpu


timed.cpu_before = 0.0


def run_ours(data: Path, out: Path, t: float, extra: list[str]) -> tuple[dict[str, str], float, dict]:
    cmd = one_core() + [PY, "-m", "pipelines.dedup", "--input", str(data / "stage"), "--output", str(out),
                        "--threshold", str(t), "--direct_num_workers", "1", *extra]
    _, wall, cpu = timed(cmd, ROOT)
    predicted = {}
    for path in glob.glob(str(out / "duplicates" / "*.parquet")):
        for row in pq.read_table(path).to_pylist():
            predicted[row["id"]] = row["cluster"]
    for kept in set(predicted.values()):
        predicted.setdefault(kept, kept)
    with open(out / "stats.json") as f:
        return predicted, wall, {**json.load(f), "cpu_s": cpu}


def run_datatrove(data: Path, work: Path, python: str) -> tuple[dict[str, str], float, dict]:
    lid = work / "lid.176.ftz"  # unused by the minhash stage, but the harness wants the flag only for filter
    cmd = one_core() + [python, str(PEERS / "datatrove_bench.py"), "--input", str(data / "docs.jsonl.gz"),
                        "--workdir", str(work), "--stage", "minhash", "--write-clusters"]
    del lid
    out, _, cpu = timed(cmd)
    run = {**json.loads(out.strip().splitlines()[-1])["runs"][0], "cpu_s": cpu}
    predicted = {}
    with open(work / "minhash" / "clusters.jsonl") as f:
        for row in map(json.loads, f):
            predicted[row["removed"]] = row["kept"]
    for kept in set(predicted.values()):
        predicted.setdefault(kept, kept)
    return predicted, run["wall_s"], run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="output of benchmarks/neardup/build.py")
    parser.add_argument("--work", default=None, help="scratch directory (default DATA/runs)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.8, 0.9])
    parser.add_argument("--configs", nargs="+", default=["default", "no-verify", "p112"],
                        help="our configurations: default (128 perms, exact verification), no-verify "
                             "(LSH candidates only), p112 (112 perms: datatrove's count)")
    parser.add_argument("--datatrove-python", default=None,
                        help="python of a datatrove 0.10.1 venv (shared/peers/setup_datatrove_venv.sh)")
    parser.add_argument("--timing-repeats", type=int, default=3,
                        help="interleaved repeats of ours (112 perms, t=0.8) and datatrove for the speed ratio")
    parser.add_argument("--results", help="write (replace) this script's section of this file (benchmarks/RESULTS.md)")
    args = parser.parse_args()
    check_results(args.results)
    data = Path(args.data)
    work = Path(args.work or data / "runs")
    work.mkdir(parents=True, exist_ok=True)
    labels = load_labels(data)
    flags = {"default": [], "no-verify": ["--no-verify"], "p112": ["--num-perm", "112"],
             "p112-no-verify": ["--num-perm", "112", "--no-verify"]}

    rows, levels = [], {}
    for config in args.configs:
        for t in args.thresholds:
            predicted, wall, stats = run_ours(data, work / f"ours-{config}-{t}", t, flags[config])
            m = score(labels, predicted, t)
            mh = stats["minhash"]
            rows.append({"tool": "ours", "config": f"{config} ({mh['num_perm']} perms = {mh['bands']}x{mh['rows']})",
                         "threshold": t, **m, "wall_s": wall, "removed": sum(stats["removed"].values()),
                         "cc_residual": stats.get("counts", {}).get("cc_residual_edges")})
            if t == 0.8:
                levels[f"ours {config}"] = recall_by_level(labels, predicted)
            print(json.dumps(rows[-1]), flush=True)
    if args.datatrove_python:
        predicted, wall, run = run_datatrove(data, work / "datatrove", args.datatrove_python)
        for t in args.thresholds:
            rows.append({"tool": "datatrove 0.10.1", "config": "default (112 perms = 14x8)", "threshold": t,
                         **score(labels, predicted, t), "wall_s": wall,
                         "removed": run["docs_in"] - run["docs_out"], "cc_residual": None})
            print(json.dumps(rows[-1]), flush=True)
        levels["datatrove"] = recall_by_level(labels, predicted)

    timing = []
    if args.datatrove_python:
        for _ in range(args.timing_repeats):  # interleaved, so both see the same machine load
            _, ours_wall, ours_stats = run_ours(data, work / "timing-ours", 0.8, flags["p112"])
            _, dt_wall, dt_run = run_datatrove(data, work / "timing-datatrove", args.datatrove_python)
            timing.append((ours_wall, ours_stats["cpu_s"], dt_wall, dt_run["cpu_s"]))
            print(json.dumps({"timing": timing[-1]}), flush=True)

    roles = Counter(r["role"] for r in labels.values())
    lines = [f"Benchmark: {len(labels):,} documents ({roles['base']} bases, {roles['variant']} variants, "
             f"{roles['hard_negative']} hard negatives); one core; grey zone |J - t| < {GREY} not scored.", "",
             "| tool | config | t | precision | recall | F1 | hard neg. merged | removed | wall s | docs/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['config']} | {r['threshold']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['f1']:.3f} | {r['hard_neg_merged']} | {r['removed']} | {r['wall_s']:.1f} | "
                     f"{len(labels) / r['wall_s']:.0f} |")
    if levels:
        keys = sorted({k for v in levels.values() for k in v})
        lines += ["", "Recall of variants by labelled Jaccard level (found in their base's cluster), t = 0.8:", "",
                  "| run | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        for name, v in levels.items():
            lines.append(f"| {name} | " + " | ".join(f"{v.get(k, 0):.3f}" for k in keys) + " |")
    if timing:
        med = [statistics.median(t[i] for t in timing) for i in range(4)]
        best = [min(t[i] for t in timing) for i in range(4)]
        lines += ["", f"Speed at equal num_perm (112), t = 0.8, {len(timing)} interleaved runs each, one core "
                  "(`taskset -c 0`); ours = whole `python -m pipelines.dedup` process, datatrove = its four "
                  "stages:", "",
                  "| | ours wall s | ours CPU s | datatrove wall s | datatrove CPU s | wall ratio | CPU ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|",
                  f"| median | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.1f} | {med[3]:.1f} | {med[0] / med[2]:.2f} | "
                  f"{med[1] / med[3]:.2f} |",
                  f"| best | {best[0]:.1f} | {best[1]:.1f} | {best[2]:.1f} | {best[3]:.1f} | {best[0] / best[2]:.2f} | "
                  f"{best[1] / best[3]:.2f} |"]
    table = "\n".join(lines)
    print(table)
    with open(work / "results.md", "w") as f:
        f.write(table + "\n")
    if args.results:
        replace_section(args.results, TITLE, body("bench-neardup", table))


if __name__ == "__main__":
    main()
