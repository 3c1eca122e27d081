"""fastText text classifiers: train one from labelled JSONL, score documents with it.

A supervised fastText model (Joulin et al. 2016) is a bag of word and character n-gram
embeddings: fast enough to score every document of a corpus. Two uses:

- a *domain* classifier: curated domain text (e.g. finance news, filings) vs general text, to
  find more domain documents in a general crawl;
- a *quality* classifier: reference text (e.g. Wikipedia, books) vs random web text, as in
  GPT-3 (Brown et al. 2020) and CCNet (Wenzek et al. 2020).

    python -m filters.quality train --positives 'finance/*.jsonl.gz' --negatives 'general/*.jsonl.gz' \\
        --output models/finance.ftz [--holdout 0.2 --epoch 10 --dim 32 --wordNgrams 2]

trains on a seeded split (by a hash of each document's id, so reruns split the same way),
prints precision/recall/F1 of the positive label on the held-out documents, and saves a
quantized model (.ftz, a few hundred KB). ``FastTextScorer(path).score(text)`` is the
probability of the positive label, in [0, 1].
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import re
import tempfile
import zlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.cli import fail
from filters.langid import load_fasttext

_WS = re.compile(r"\s+")
MAX_TRAIN_CHARS = 20_000  # characters of a document used for training and scoring
QUANTIZE_CUTOFF = 20_000  # vocabulary rows kept by quantization (keeps the model a few hundred KB)


def prepare(text: str) -> str:
    """fastText input: one line, lowercased, at most MAX_TRAIN_CHARS characters."""
    return _WS.sub(" ", text[:MAX_TRAIN_CHARS]).strip().lower()


def iter_jsonl(patterns: Sequence[str], max_per_file: int | None = None) -> Iterator[dict[str, Any]]:
    """Records of JSON Lines files (optionally .gz) matched by the glob patterns, at most
    ``max_per_file`` from each file (so a cap still samples every source)."""
    for pattern in patterns:
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise FileNotFoundError(f"{pattern!r} matches no files")
        for path in paths:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                n = 0
                for line in f:
                    if max_per_file is not None and n >= max_per_file:
                        break
                    if line.strip():
                        n += 1
                        yield json.loads(line)


def is_holdout(doc_id: str, fraction: float, seed: int) -> bool:
    """Stable held-out assignment of a document (crc32 of seed + id)."""
    return zlib.crc32(f"{seed}:{doc_id}".encode()) % 10_000 < fraction * 10_000


def split_key(rec: dict[str, Any], default: str = "") -> str:
    """What the held-out split assigns: the record's ``group`` (one filing, one call: its excerpts must fall on
    the same side, or held-out scores flatter the model) or else its ``id``."""
    return str(rec.get("group") or rec.get("id", default))


@dataclass(frozen=True)
class BundledModel:
    """A classifier shipped in ``filters/models/`` and the threshold it ships with."""

    path: str  # relative to the repository (``resolve_model_path`` finds it on a worker too)
    threshold: float
    label: str = "pos"


# The finance router: `--route finance` / `route: finance`. Its threshold is the F0.5-best one on the held-out
# part of the model's own training set (`make bench-route`, benchmarks/bench_route.py), never tuned on
# ../shared/realworld; filters/models/README.md gives the numbers.
BUNDLED = {"finance": BundledModel(path="filters/models/finance.ftz", threshold=0.95)}
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(2, 20))  # 0.10 ... 0.95


def pick_threshold(truth: Sequence[bool], scores: Sequence[float], beta: float = 0.5,
                   grid: Sequence[float] = THRESHOLD_GRID) -> float:
    """The threshold of ``grid`` with the best F-beta on (truth, scores); ``beta`` < 1 weighs precision more
    (a routed general page dilutes the domain side). Ties go to the higher threshold."""
    best, best_t = -1.0, max(grid)
    for t in sorted(grid):
        pr = precision_recall(truth, [s >= t for s in scores])
        p, r = pr["precision"], pr["recall"]
        f = (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0
        if f >= best:
            best, best_t = f, t
    return best_t


def resolve_model_path(path: str) -> str:
    """A relative model path that is not under the current directory is looked up next to the installed
    packages, so ``filters/models/finance.ftz`` (bundled, packaged with ``--setup_file``) also resolves on
    a Dataflow worker, whose working directory is not the repository."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), path)
    return beside if os.path.exists(beside) else path


class FastTextScorer:
    """A loaded supervised fastText model; ``score`` = probability of ``label``."""

    def __init__(self, path: str, label: str = "pos"):
        path = resolve_model_path(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"classifier model not found: {path}")
        self.path, self.label = path, f"__label__{label}"
        self.model = load_fasttext(path)
        if self.label not in self.model.get_labels():
            raise ValueError(f"{path} has no label {label!r} (labels: {self.model.get_labels()})")

    def score(self, text: str) -> float:
        labels, probs = self.model.predict(prepare(text), k=-1)
        for lab, p in zip(labels, probs):
            if lab == self.label:
                return min(float(p), 1.0)
        return 0.0

    def score_batch(self, texts: Sequence[str]) -> list[float]:
        labels, probs = self.model.predict([prepare(t) for t in texts], k=-1)
        return [
            next((min(float(p), 1.0) for lab, p in zip(ls, ps) if lab == self.label), 0.0)
            for ls, ps in zip(labels, probs)
        ]


def precision_recall(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float]:
    tp = sum(t and p for t, p in zip(truth, predicted))
    fp = sum(p and not t for t, p in zip(truth, predicted))
    fn = sum(t and not p for t, p in zip(truth, predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def train(
    positives: Sequence[str],
    negatives: Sequence[str],
    output: str,
    *,
    holdout: float = 0.2,
    seed: int = 0,
    epoch: int = 10,
    lr: float = 0.5,
    dim: int = 32,
    word_ngrams: int = 2,
    min_count: int = 2,
    threshold: float = 0.5,
    quantize: bool = True,
    max_docs: int | None = None,
    label: str = "pos",
    exclude_ids: Collection[str] = (),
) -> dict[str, Any]:
    """Train, evaluate on the held-out split, save; returns the report (also printed by the CLI).
    Documents whose id is in ``exclude_ids`` are used for neither (e.g. the text the model will be
    applied to, so that a demo routes documents the model never saw)."""
    import fasttext

    train_lines: list[str] = []
    held: list[tuple[bool, str]] = []
    counts = {"train_pos": 0, "train_neg": 0, "holdout_pos": 0, "holdout_neg": 0}
    for is_pos, patterns in ((True, positives), (False, negatives)):
        for i, rec in enumerate(iter_jsonl(patterns, max_docs)):
            if rec.get("id") in exclude_ids:
                counts["excluded"] = counts.get("excluded", 0) + 1
                continue
            text = prepare(rec.get("text") or "")
            if not text:
                continue
            tag = "pos" if is_pos else "neg"
            if is_holdout(split_key(rec, str(i)), holdout, seed):
                held.append((is_pos, text))
                counts[f"holdout_{tag}"] += 1
            else:
                train_lines.append(f"__label__{label if is_pos else 'other'} {text}")
                counts[f"train_{tag}"] += 1
    if not counts["train_pos"] or not counts["train_neg"]:
        raise ValueError(f"need positive and negative training documents, got {counts}")
    # deterministic shuffle: SGD order matters; sort by a hash instead of a random permutation
    train_lines.sort(key=lambda s: zlib.crc32(s.encode("utf-8", "surrogatepass")))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(train_lines) + "\n")
        fasttext.FastText.eprint = lambda *a, **k: None
        model = fasttext.train_supervised(
            input=path,
            epoch=epoch,
            lr=lr,
            dim=dim,
            wordNgrams=word_ngrams,
            minCount=min_count,
            loss="softmax",
            thread=1,
            seed=seed,
            verbose=0,
        )
        if quantize:
            model.quantize(input=path, retrain=True, qnorm=True, cutoff=QUANTIZE_CUTOFF, thread=1, verbose=0)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    model.save_model(output)
    scorer = FastTextScorer(output, label)
    scores = scorer.score_batch([t for _, t in held]) if held else []
    report = {
        "model": output,
        "bytes": os.path.getsize(output),
        **counts,
        "threshold": threshold,
        **precision_recall([t for t, _ in held], [s >= threshold for s in scores]),
    }
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m filters.quality", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a classifier from labelled JSON Lines")
    t.add_argument(
        "--positives", action="append", required=True, help="glob of positive JSONL(.gz) (repeatable)"
    )
    t.add_argument(
        "--negatives", action="append", required=True, help="glob of negative JSONL(.gz) (repeatable)"
    )
    t.add_argument("--output", required=True, help="model file to write (.ftz when quantized)")
    t.add_argument("--label", default="pos", help="name of the positive label (the score's label)")
    t.add_argument("--holdout", type=float, default=0.2, help="held-out fraction for evaluation")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epoch", type=int, default=10)
    t.add_argument("--lr", type=float, default=0.5)
    t.add_argument("--dim", type=int, default=32)
    t.add_argument("--wordNgrams", type=int, default=2)
    t.add_argument("--minCount", type=int, default=2)
    t.add_argument("--threshold", type=float, default=0.5, help="score threshold for precision/recall")
    t.add_argument("--max-docs", type=int, help="documents per input file at most")
    t.add_argument("--no-quantize", action="store_true", help="save the full .bin model")
    t.add_argument("--exclude", action="append", default=[],
                   help="glob of JSONL(.gz) whose document ids are left out of training and evaluation (repeatable)")
    s = sub.add_parser("score", help="score JSON Lines documents with a model (prints id, score)")
    s.add_argument("--model", required=True)
    s.add_argument("--label", default="pos")
    s.add_argument("--input", action="append", required=True)
    args = ap.parse_args(argv)
    if args.command == "score":
        try:
            scorer = FastTextScorer(args.model, args.label)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        for rec in iter_jsonl(args.input):
            print(f"{rec.get('id')}\t{scorer.score(rec.get('text') or ''):.4f}")
        return {}
    try:
        exclude = {str(rec.get("id")) for rec in iter_jsonl(args.exclude)} if args.exclude else set()
        report = train(
            args.positives,
            args.negatives,
            args.output,
            holdout=args.holdout,
            seed=args.seed,
            epoch=args.epoch,
            lr=args.lr,
            dim=args.dim,
            word_ngrams=args.wordNgrams,
            min_count=args.minCount,
            threshold=args.threshold,
            quantize=not args.no_quantize,
            max_docs=args.max_docs,
            label=args.label,
            exclude_ids=exclude,
        )
    except (OSError, ValueError) as exc:
        fail(str(exc))
    print(json.dumps(report, indent=2))
    print(
        f"held-out: precision {report['precision']:.3f} recall {report['recall']:.3f} f1 {report['f1']:.3f} "
        f"({report['holdout_pos']} positives, {report['holdout_neg']} negatives); "
        f"model {report['bytes'] / 1024:.0f} KB -> {report['model']}"
    )
    return report


if __name__ == "__main__":
    main()
