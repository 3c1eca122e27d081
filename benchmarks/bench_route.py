"""Domain harvesting quality: precision and recall of what the filter stage routes to the domain side.

    python benchmarks/bench_route.py [--corpora ../shared/corpora] [--threshold 0.9] [--seed 0]
        [--work work/bench_route] [--install] [--results benchmarks/RESULTS.md]

1. The finance classifier: ``filters.quality.train`` on ``CORPORA/finance/*`` (positives) vs
   ``CORPORA/general/*`` (negatives), 20% of the documents held out by a seeded hash of their id, and
   every document of the repository's ``data/`` sample left out of both (so the demo, which reads
   ``data/``, routes documents the model never saw).
2. The held-out mix: every held-out document of both sides, written as one "crawl" source labelled
   ``general`` (a web crawl with finance pages inside), truth = the side it came from.
3. The real stages on it: ``pipelines.clean`` (DirectRunner) then ``pipelines.filter`` with every rule
   off and ``route: [{name: finance, threshold: T}]``; a document is predicted finance when the stage
   moved it to the domain side (``meta.routed_by``). Precision and recall of that, then of the same
   scores (the stage writes ``finance_score`` for every general document) at other thresholds.
4. ``--install`` copies the model to ``filters/models/finance.ftz`` (what ``configs/runs/demo.yaml``
   routes with) and rewrites its line in ``filters/models/SHA256SUMS``.

The corpora are needed (the ``data/`` sample is what the model must not see); without them the script
says so and exits 2.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from filters.quality import is_holdout, iter_jsonl, precision_recall, train  # noqa: E402

RESULTS_DATE = "2026-11-30"
MACHINE = "2-core x86_64 sandbox, no GPU"
HOLDOUT = 0.2
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
MODEL_NAME = "finance.ftz"


def demo_ids() -> set[str]:
    return {str(r["id"]) for r in iter_jsonl([str(ROOT / "data" / "*" / "*.jsonl.gz")])}


def held_out_mix(corpora: Path, exclude: set[str], seed: int, path: Path) -> dict[str, bool]:
    """Write the held-out documents of both sides as one general "crawl" file; id -> is finance."""
    truth = {}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for side in ("finance", "general"):
            for rec in iter_jsonl([str(corpora / side / "*.jsonl.gz")]):
                doc_id = str(rec["id"])
                if doc_id in exclude or not is_holdout(doc_id, HOLDOUT, seed):
                    continue
                truth[doc_id] = side == "finance"
                f.write(json.dumps({"id": doc_id, "text": rec["text"], "source": "crawl",
                                    "meta": {"origin": rec.get("source")}}) + "\n")
    return truth


def run_stages(mix: Path, model: Path, threshold: float, work: Path) -> tuple[list[dict], dict, float]:
    """clean -> filter (rules off, one route) on the mix; the filter's output rows and stats."""
    import pyarrow.parquet as pq

    from pipelines import clean, filter as filter_stage

    beam = ["--runner", "DirectRunner"]
    clean.main(["--input", str(mix), "--output", str(work / "clean"), "--source", "crawl", "--domain", "general",
                "--no-pii", *beam])
    config = work / "route.yaml"
    config.write_text("langid: {enabled: false}\ngopher_repetition: {enabled: false}\n"
                      "gopher_quality: {enabled: false}\nc4: {enabled: false}\nfineweb: {enabled: false}\n"
                      f"route:\n  - {{name: finance, path: {model}, threshold: {threshold}, to: domain}}\n",
                      encoding="utf-8")
    t0 = time.perf_counter()
    stats = filter_stage.main(["--input", str(work / "clean"), "--output", str(work / "filter"),
                               "--config", str(config), *beam])
    seconds = time.perf_counter() - t0
    rows = [r for p in sorted(glob.glob(str(work / "filter" / "train-*.parquet")))
            for r in pq.read_table(p, columns=["id", "domain", "meta", "finance_score"]).to_pylist()]
    return rows, stats, seconds


def install(model: Path) -> None:
    target = ROOT / "filters" / "models" / MODEL_NAME
    shutil.copyfile(model, target)
    os.chmod(target, 0o644)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    sums = ROOT / "filters" / "models" / "SHA256SUMS"
    name = f"filters/models/{MODEL_NAME}"  # as `sha256sum -c filters/models/SHA256SUMS` reads it from the repo root
    lines = [ln for ln in sums.read_text().splitlines() if not ln.endswith(f"  {name}")]
    sums.write_text("\n".join(lines + [f"{digest}  {name}"]) + "\n")
    print(f"installed {target.relative_to(ROOT)} (sha256 {digest[:16]}...)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--threshold", type=float, default=0.9, help="the route's threshold run through the stage")
    ap.add_argument("--seed", type=int, default=0, help="held-out split seed")
    ap.add_argument("--work", default=str(ROOT / "work" / "bench_route"))
    ap.add_argument("--install", action="store_true", help="copy the model to filters/models/finance.ftz")
    ap.add_argument("--results", help="append a markdown section to this file (e.g. benchmarks/RESULTS.md)")
    args = ap.parse_args()
    corpora = Path(args.corpora)
    if not (corpora / "finance").is_dir() or not (corpora / "general").is_dir():
        print(f"error: {corpora} has no finance/ and general/ corpora: this benchmark needs ../shared/corpora "
              "(the repository's data/ sample is what the model must not see)", file=sys.stderr)
        sys.exit(2)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t_start = time.perf_counter()
    exclude = demo_ids()
    model = work / MODEL_NAME
    fit = train([str(corpora / "finance" / "*.jsonl.gz")], [str(corpora / "general" / "*.jsonl.gz")], str(model),
                holdout=HOLDOUT, seed=args.seed, exclude_ids=exclude)
    truth = held_out_mix(corpora, exclude, args.seed, work / "heldout.jsonl.gz")
    rows, stats, seconds = run_stages(work / "heldout.jsonl.gz", model, args.threshold, work)
    assert stats["balanced"] and stats["output"] == len(truth) == len(rows), "every held-out document is output"
    routed = {r["id"] for r in rows if r["domain"] == "domain" and "routed_by" in json.loads(r["meta"])}
    assert len(routed) == stats["counts"].get("routed", 0)
    ids = [r["id"] for r in rows]
    stage = precision_recall([truth[i] for i in ids], [i in routed for i in ids])
    score = {r["id"]: r["finance_score"] for r in rows}
    origin = {}
    for rec in iter_jsonl([str(work / "heldout.jsonl.gz")]):
        origin[rec["id"]] = rec["meta"]["origin"]
    false_pos = Counter(origin[i] for i in routed if not truth[i])
    missed = Counter(origin[i] for i in ids if truth[i] and i not in routed)

    out = ["## Domain harvesting: what the filter stage routes to the domain side (`make bench-route`)", "",
           f"Classifier: fastText (`filters.quality.train`, defaults: dim 32, word bigrams, 10 epochs, quantized) on "
           f"{os.path.relpath(corpora, ROOT)}/finance vs general, {fit['train_pos']} + {fit['train_neg']} training "
           f"documents; {len(exclude)} documents of `data/` (the demo's) left out of training and evaluation; "
           f"model {fit['bytes'] / 1024:.0f} KB.",
           f"Held-out mix ({HOLDOUT:.0%} of the rest, seed {args.seed}): {sum(truth.values())} finance + "
           f"{sum(not t for t in truth.values())} general documents, all given to the stages as one general source "
           f"\"crawl\"; `pipelines.clean` then `pipelines.filter` (rules off, one route) on the DirectRunner, "
           f"filter {seconds:.1f} s.", "",
           f"Through the stage at threshold {args.threshold}: routed {len(routed)}, "
           f"precision **{stage['precision']:.3f}**, "
           f"recall **{stage['recall']:.3f}**, F1 {stage['f1']:.3f} (TP {stage['tp']}, FP {stage['fp']}, "
           f"FN {stage['fn']}); stats.json balanced ({stats['input']} in = {stats['output']} out, "
           f"{stats['counts'].get('routed', 0)} routed, nothing removed).",
           f"False positives by origin: {dict(false_pos) or 'none'}; "
           f"missed finance by origin: {dict(missed) or 'none'}.",
           "", "The same scores (the stage's `finance_score` column) at other thresholds:", "",
           "| threshold | routed | precision | recall | F1 |", "|---:|---:|---:|---:|---:|"]
    for t in THRESHOLDS:
        pr = precision_recall([truth[i] for i in ids], [score[i] >= t for i in ids])
        out.append(f"| {t} | {pr['tp'] + pr['fp']} | {pr['precision']:.3f} | {pr['recall']:.3f} | {pr['f1']:.3f} |")
    out += ["", f"Whole benchmark: {time.perf_counter() - t_start:.1f} s."]
    print("\n".join(out), flush=True)
    if args.install:
        install(model)
    if args.results:
        cmd = "python benchmarks/bench_route.py " + " ".join(a for a in sys.argv[1:])
        header = [f"\n{out[0]}", "", f"`benchmarks/bench_route.py`, {RESULTS_DATE}, {MACHINE}, Python "
                  f"{platform.python_version()}. Command: `{cmd}`.", ""]
        with open(args.results, "a", encoding="utf-8") as f:
            f.write("\n".join(header + out[2:]) + "\n")
        print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
