"""Domain harvesting: does ``--route finance`` find finance anywhere, and only finance?

    python benchmarks/bench_route.py [--realworld ../shared/realworld] [--corpora ../shared/corpora]
        [--train-dir work/finance_train] [--retrain --install] [--results benchmarks/RESULTS.md]

1. The threshold, on the classifier's OWN held-out data. ``--train-dir`` is the set built by
   ``benchmarks/build_finance_train.py`` (public repositories + ../shared/corpora; provenance in
   ``filters/models/README.md``); 20% of it is held out by a seeded hash of each document's ``group`` (a whole
   filing, call or article). The shipped threshold (``filters.quality.BUNDLED``) is the one that maximizes
   F0.5 on that held-out part (precision counts twice: a general page on the domain side dilutes the 51% domain
   share, a missed finance page stays in the general share). ``--retrain`` trains the model first (fastText,
   ~1 min), ``--install`` copies it to ``filters/models/finance.ftz`` and updates ``SHA256SUMS``.
2. The held-out documents of ../shared/corpora (finance vs general), fed as one general source through
   ``pipelines.clean`` and ``pipelines.filter`` with every rule off and the route on: the numbers of the
   benchmark before issue 20, kept for comparison.
3. ../shared/realworld, measured only (never trained or tuned on): every ``fin_*`` file (earnings calls, annual
   report excerpts with tables, tables alone, SEC filing excerpts) plus ``web_news_aeb`` (web articles with a hand
   topic label), all given to the stages as ONE general crawl: ``pipelines.clean`` (defaults) then
   ``pipelines.filter --route finance`` (default rules). Recall is over the finance documents the rules keep;
   precision over the routed documents whose label is finance or general. ``ambiguous_business`` pages (business
   topics, not finance) count on neither side and are reported apart; ``non_english`` pages are removed by
   language ID before routing (the model is English) and are reported apart.

Without --train-dir data (a fresh clone: the training set is built from mirrors, see the README) step 1 is
skipped and the bundled model is measured at its shipped threshold.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from benchmarks.build_finance_train import LEAK_BOILERPLATE_GROUPS  # noqa: E402
from core.sections import replace_section  # noqa: E402
from filters.quality import (  # noqa: E402
    BUNDLED,
    FastTextScorer,
    is_holdout,
    iter_jsonl,
    pick_threshold,
    precision_recall,
    split_key,
    train,
)

HOLDOUT = 0.2
SEED = 0
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MODEL_NAME = "finance.ftz"
TITLE = "## Domain harvesting: what `--route finance` moves to the domain side (`make bench-route`)"
RULES_OFF = ("langid: {enabled: false}\ngopher_repetition: {enabled: false}\ngopher_quality: {enabled: false}\n"
             "c4: {enabled: false}\nfineweb: {enabled: false}\n")
# realworld file -> document type (the five types; web_news_aeb's finance pages are "finance news")
REALWORLD_TYPES = {"fin_earnings_call": "earnings call", "fin_tatqa_report": "annual report",
                   "fin_tatqa_table": "table", "fin_sec_filing": "SEC excerpt"}


def demo_ids() -> set[str]:
    """Documents of the repository's data/ sample: left out of training so the demo routes unseen text."""
    return {str(r["id"]) for r in iter_jsonl([str(ROOT / "data" / "*" / "*.jsonl.gz")])}


def heldout_scores(train_dir: Path, model: Path, exclude: set[str]) -> list[tuple[bool, float, str]]:
    """(is finance, score, source) of every held-out document of the training set."""
    scorer = FastTextScorer(str(model))
    out = []
    for side in ("pos", "neg"):
        recs = [r for r in iter_jsonl([str(train_dir / side / "*.jsonl.gz")])
                if str(r["id"]) not in exclude and is_holdout(split_key(r), HOLDOUT, SEED)]
        scores = scorer.score_batch([r["text"] for r in recs])
        out += [(side == "pos", s, r.get("source", "?")) for r, s in zip(recs, scores)]
    return out


def sweep_rows(truth: list[bool], scores: list[float]) -> list[str]:
    rows = ["| threshold | routed | precision | recall | F1 |", "|---:|---:|---:|---:|---:|"]
    for t in THRESHOLDS:
        pr = precision_recall(truth, [s >= t for s in scores])
        rows.append(f"| {t} | {pr['tp'] + pr['fp']} | {pr['precision']:.3f} | {pr['recall']:.3f} | {pr['f1']:.3f} |")
    return rows


def run_stages(crawl: Path, work: Path, filter_args: list[str], no_pii: bool = False) -> tuple[dict, list[dict], dict]:
    """clean -> filter on one crawl file; (clean stats, filter output rows, filter stats)."""
    import pyarrow.parquet as pq

    from pipelines import clean
    from pipelines import filter as filter_stage

    beam = ["--runner", "DirectRunner"]
    clean_stats = clean.main(["--input", str(crawl), "--output", str(work / "clean"), "--source", "crawl",
                              "--domain", "general", *(["--no-pii"] if no_pii else []), *beam])
    stats = filter_stage.main(["--input", str(work / "clean"), "--output", str(work / "filter"), *filter_args, *beam])
    rows = [r for p in sorted(glob.glob(str(work / "filter" / "train-*.parquet")))
            for r in pq.read_table(p, columns=["id", "domain", "meta", "finance_score"]).to_pylist()]
    return clean_stats, rows, stats


def route_args(model: Path, threshold: float, work: Path, rules_off: bool) -> list[str]:
    """Filter flags: ``--route finance`` for the bundled model at its shipped threshold, else a config."""
    bundled = BUNDLED["finance"]
    is_bundled = model.resolve() == (ROOT / bundled.path).resolve() and threshold == bundled.threshold
    if is_bundled and not rules_off:
        return ["--route", "finance"]
    config = work / "route.yaml"
    route = "route: finance\n" if is_bundled else \
        f"route:\n  - {{name: finance, path: {model}, threshold: {threshold}}}\n"
    config.write_text((RULES_OFF if rules_off else "") + route, encoding="utf-8")
    return ["--config", str(config)]


def corpora_heldout(corpora: Path, exclude: set[str], model: Path, threshold: float, work: Path) -> list[str]:
    """Step 2: held-out ../shared/corpora documents through clean + filter (rules off, the route on)."""
    truth, origin = {}, {}
    work.mkdir(parents=True, exist_ok=True)
    crawl = work / "heldout.jsonl.gz"
    with gzip.open(crawl, "wt", encoding="utf-8") as f:
        for side in ("finance", "general"):
            for rec in iter_jsonl([str(corpora / side / "*.jsonl.gz")]):
                doc_id = str(rec["id"])
                if doc_id in exclude or not is_holdout(doc_id, HOLDOUT, SEED):
                    continue
                truth[doc_id], origin[doc_id] = side == "finance", rec.get("source")
                f.write(json.dumps({"id": doc_id, "text": rec["text"]}) + "\n")
    _, rows, stats = run_stages(crawl, work, route_args(model, threshold, work, rules_off=True), no_pii=True)
    ids = [r["id"] for r in rows]
    routed = {r["id"] for r in rows if "routed_by" in (r["meta"] or "")}
    pr = precision_recall([truth[i] for i in ids], [i in routed for i in ids])
    score = {r["id"]: r["finance_score"] or 0.0 for r in rows}
    fp = Counter(origin[i] for i in routed if not truth[i])
    fn = Counter(origin[i] for i in ids if truth[i] and i not in routed)
    return [f"Held-out ../shared/corpora ({sum(truth.values())} finance + {sum(not t for t in truth.values())} "
            f"general documents, the split the model was trained without; rules off, route on): routed {len(routed)}, "
            f"precision **{pr['precision']:.3f}**, recall **{pr['recall']:.3f}** "
            f"(FP {pr['fp']}: {dict(sorted(fp.items())) or 'none'}; "
            f"FN {pr['fn']}: {dict(sorted(fn.items())) or 'none'}); "
            f"stats.json balanced: {stats['balanced']}. Before issue 20 "
            "(a model trained on ../shared/corpora alone, threshold 0.9): precision 0.971, recall 0.739.", "",
            *sweep_rows([truth[i] for i in ids], [score[i] for i in ids])]


def realworld_crawl(realworld: Path, path: Path) -> dict[str, dict]:
    """Step 3's crawl file; id -> {type, label} (label: finance, general, ambiguous_business, non_english)."""
    info = {}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for name, kind in (*REALWORLD_TYPES.items(), ("web_news_aeb", None)):
            for rec in iter_jsonl([str(realworld / f"{name}.jsonl.gz")]):
                label = "finance" if kind else rec["meta"].get("topic_label", "general")
                info[str(rec["id"])] = {"type": kind or ("finance news" if label == "finance" else f"web {label}"),
                                        "label": label}
                f.write(json.dumps({"id": str(rec["id"]), "text": rec["text"]}) + "\n")
    return info


def realworld_run(realworld: Path, model: Path, threshold: float, work: Path) -> list[str]:
    work.mkdir(parents=True, exist_ok=True)
    info = realworld_crawl(realworld, work / "realworld.jsonl.gz")
    t0 = time.perf_counter()
    clean_stats, rows, stats = run_stages(work / "realworld.jsonl.gz", work,
                                          route_args(model, threshold, work, rules_off=False))
    seconds = time.perf_counter() - t0
    # a split document (id#k) counts once: routed when any kept part was routed, scored by its best part
    kept, score = defaultdict(bool), defaultdict(float)
    for r in rows:
        base = r["id"].split("#")[0]
        kept[base] |= "routed_by" in (r["meta"] or "")
        score[base] = max(score[base], r["finance_score"] or 0.0)
    by_type: dict[str, Counter] = defaultdict(Counter)
    for doc_id, meta in info.items():
        c = by_type[meta["type"]]
        c["docs"] += 1
        if doc_id in kept:
            c["kept"] += 1
            c["routed"] += kept[doc_id]
    # the model alone on every cleaned document, whatever the rules decide (the rules are another stage's
    # business, and they change: issue 20 item 3), so each type has a recall even where the rules keep none
    import pyarrow.parquet as pq

    cleaned = [r for p in sorted(glob.glob(str(work / "clean" / "train-*.parquet")))
               for r in pq.read_table(p, columns=["id", "text"]).to_pylist()]
    model_score: dict[str, float] = defaultdict(float)
    for r, s in zip(cleaned, FastTextScorer(str(model)).score_batch([r["text"] for r in cleaned])):
        base = r["id"].split("#")[0]
        model_score[base] = max(model_score[base], s)
    scored = [(info[i]["label"], kept[i], score[i]) for i in kept if info[i]["label"] in ("finance", "general")]
    truth = [lab == "finance" for lab, _, _ in scored]
    pr = precision_recall(truth, [routed for _, routed, _ in scored])
    amb = by_type.get("web ambiguous_business", Counter())
    non_en = by_type.get("web non_english", Counter())
    out = [f"../shared/realworld as one general crawl ({len(info)} documents: the four `fin_*` files + "
           f"`web_news_aeb`), `pipelines.clean` (defaults: {clean_stats['output']} documents out) then "
           f"`pipelines.filter --route finance` (default rules; {stats['input']} in, {stats['output']} kept, "
           f"{stats['counts'].get('routed', 0)} routed, balanced: {stats['balanced']}), clean + filter "
           f"{seconds:.0f} s.",
           "",
           f"Routed at the shipped threshold {threshold}: precision **{pr['precision']:.3f}** "
           f"(TP {pr['tp']}, FP {pr['fp']}), recall **{pr['recall']:.3f}** of the finance documents the rules keep "
           f"(FN {pr['fn']}).", "",
           "| type | documents | kept by the rules | routed | routed / kept | model alone: score >= threshold, "
           "every document |", "|---|---:|---:|---:|---:|---:|"]
    for kind in (*REALWORLD_TYPES.values(), "finance news", "web general", "web ambiguous_business",
                 "web non_english"):
        c = by_type.get(kind, Counter())
        rate = f"{c['routed'] / c['kept']:.3f}" if c["kept"] else "-"
        if not kind.startswith("web "):
            rate = f"**{rate}**"
        ids = [i for i, m in info.items() if m["type"] == kind and i in model_score]
        alone = sum(model_score[i] >= threshold for i in ids)
        out.append(f"| {kind} | {c['docs']} | {c['kept']} | {c['routed']} | {rate} | "
                   f"{alone}/{len(ids)} = {alone / len(ids) if ids else 0:.3f} |")
    out += ["", f"`ambiguous_business` pages (business topics that are not finance, e.g. enterprise IT, energy "
            f"policy, philanthropy) count as neither finance nor general: {amb['routed']} of "
            f"{amb['kept']} kept were routed (counted as false positives, precision would be "
            f"{pr['tp'] / (pr['tp'] + pr['fp'] + amb['routed']):.3f}). `non_english` pages: {non_en['kept']} of "
            f"{non_en['docs']} survive "
            f"language ID, so none reaches the English model ({non_en['routed']} routed).", "",
            "The same stage scores (`finance_score`, finance vs general labels, kept documents) at other thresholds:",
            "", *sweep_rows(truth, [s for _, _, s in scored])]
    return out


def training_set_lines(train_dir: Path) -> list[str]:
    """What ``build_finance_train.py`` recorded in the training set's manifest: reserved filings left out and its
    leak check against ../shared/realworld."""
    path = train_dir / "manifest.json"
    if not path.exists():
        return []
    manifest = json.loads(path.read_text(encoding="utf-8"))
    excluded = manifest.get("excluded", [])
    leak = manifest.get("leak_check", {})
    by_filer = Counter(e["filer"] for e in excluded)
    lines = [f"Training set (`{os.path.relpath(train_dir, ROOT)}/manifest.json`): {len(excluded)} filings or calls "
             "left out before training (filers whose filings the reserved dgunning/edgartools ships, and US "
             "companies' earnings calls): " + (", ".join(f"{k} {v}" for k, v in sorted(by_filer.items())) or "none")
             + "."]
    if leak.get("checked"):
        lines.append(f"Leak check (word 13-grams of each training document vs each ../shared/realworld document, "
                     f"13-grams of >= {LEAK_BOILERPLATE_GROUPS} training groups not counted): max share "
                     f"**{leak['max_share']:.3f}** "
                     f"(limit {leak['limit']}; raw, boilerplate counted, {leak['max_raw_share']:.3f}); "
                     f"{leak['over_limit']} over the limit.")
    else:
        lines.append("Leak check: not run (no ../shared/realworld when the set was built).")
    return lines


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
    ap.add_argument("--realworld", default=str(ROOT.parent / "shared" / "realworld"))
    ap.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--train-dir", default=str(ROOT / "work" / "finance_train"))
    ap.add_argument("--work", default=str(ROOT / "work" / "bench_route"))
    ap.add_argument("--retrain", action="store_true", help="train the model on --train-dir first")
    ap.add_argument("--install", action="store_true", help="copy the retrained model to filters/models/")
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the tables are only printed")
    args = ap.parse_args()
    provenance.check_results(args.results)
    realworld, corpora, train_dir, work = (Path(args.realworld), Path(args.corpora), Path(args.train_dir),
                                           Path(args.work))
    if not (realworld / "fin_earnings_call.jsonl.gz").exists():
        print(f"error: {realworld} has no fin_*.jsonl.gz: this benchmark needs ../shared/realworld", file=sys.stderr)
        sys.exit(2)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t_start = time.perf_counter()
    exclude = demo_ids()
    bundled = BUNDLED["finance"]
    model, threshold = ROOT / bundled.path, bundled.threshold
    out = []
    has_train = (train_dir / "pos").is_dir() and (train_dir / "neg").is_dir()
    if args.retrain:
        if not has_train:
            print(f"error: --retrain needs {train_dir}/pos and /neg (benchmarks/build_finance_train.py)",
                  file=sys.stderr)
            sys.exit(2)
        model = work / MODEL_NAME
        fit = train([str(train_dir / "pos" / "*.jsonl.gz")], [str(train_dir / "neg" / "*.jsonl.gz")], str(model),
                    holdout=HOLDOUT, seed=SEED, exclude_ids=exclude)
        out.append(f"Trained (fastText, `filters.quality.train` defaults: dim 32, word bigrams, 10 epochs, "
                   f"quantized): {fit['train_pos']} finance + {fit['train_neg']} general documents; model "
                   f"{fit['bytes'] / 1024:.0f} KB.")
    if has_train:
        held = heldout_scores(train_dir, model, exclude)
        truth, scores = [t for t, _, _ in held], [s for _, s, _ in held]
        chosen = pick_threshold(truth, scores, beta=0.5)
        if args.retrain:
            threshold = chosen
        pr = precision_recall(truth, [s >= threshold for s in scores])
        per_src = defaultdict(Counter)
        for _t, s, src in held:
            per_src[src]["n"] += 1
            per_src[src]["routed"] += s >= threshold
        out += ["", f"**Threshold, chosen on the held-out 20% of the training set** ({sum(truth)} finance + "
                f"{len(truth) - sum(truth)} general documents, split by whole filing/call/article): F0.5-best "
                f"threshold {chosen}; shipped threshold {threshold}: precision {pr['precision']:.3f}, recall "
                f"{pr['recall']:.3f}.", "", *sweep_rows(truth, scores), "",
                "Held-out share routed by source: " + ", ".join(
                    f"{src} {c['routed']}/{c['n']}" for src, c in sorted(per_src.items())) + "."]
        if chosen != threshold:
            out.append(f"NOTE: the shipped threshold {threshold} is not the held-out choice {chosen}.")
        out += ["", *training_set_lines(train_dir)]
    else:
        out += ["", f"(No training set at {os.path.relpath(train_dir, ROOT)}: the threshold sweep on held-out "
                "training data needs `benchmarks/build_finance_train.py`; measuring the bundled model at its "
                f"shipped threshold {threshold}.)"]
    if args.install:
        install(model)
        model = ROOT / bundled.path
        if threshold != bundled.threshold:
            print(f"set filters.quality.BUNDLED['finance'].threshold = {threshold} (was {bundled.threshold})")
    out += [""]
    if (corpora / "finance").is_dir():
        out += corpora_heldout(corpora, exclude, model, threshold, work / "corpora")
    out += ["", *realworld_run(realworld, model, threshold, work / "realworld"), "",
            f"Whole benchmark: {time.perf_counter() - t_start:.0f} s.", ""]
    print("\n".join(out), flush=True)
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-route", "\n".join(out)), header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
