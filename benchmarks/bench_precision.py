"""What lower precision costs a trained domain model, measured: held-out perplexity and bits per byte on
domain and general text, size on disk and CPU inference speed, per number format (``make bench-precision``).

    python benchmarks/bench_precision.py [--mix work/demo/mix] [--steps 300] [--work work/bench_precision]
        [--results benchmarks/RESULTS.md]

1. Train the demo's model (configs/train/tiny.yaml, 2 ranks, FSDP2 over gloo) twice on the demo mixture
   with the same seeds, data and steps: a baseline, and a run whose last ``--qat-fraction`` of steps is
   quantization-aware (``train.qat``: int8 dynamic activations + int4 weights, group 32).
2. Export the baseline as a user would (``train.export --dtype``): fp32, bf16, fp16 and post-training
   quantized int8 and int4 (weight-only) and 8da4w; the QAT run in fp32 and 8da4w (the format it trained for).
3. Load each export with transformers' ``AutoModelForCausalLM`` and measure: loss on the leading
   ``--eval-tokens`` of val_domain and val_general (the trainer's own evaluation windows) as perplexity and
   bits per byte (the manifest's bytes per token); ``model.safetensors`` size beside the planner's figure for
   the format (train/plan.py ``inference_bytes``); CPU tokens/s on ``--threads`` threads for scoring
   (batches of 8 full windows) and greedy generation (batch 1, KV cache).

Prints a Markdown table and writes ``WORK/results.json`` (with ``--results``, also this script's section of
benchmarks/RESULTS.md). Cross-checks printed with it: the fp32 export's perplexity equals the trainer's own
final evaluation, and the QAT run's evaluation (fake quantization on)
sits next to its 8da4w export's. ~4 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks import provenance  # noqa: E402
from core.model_config import ModelConfig, param_counts  # noqa: E402
from core.sections import replace_section  # noqa: E402
from mixtures.shards import TokenStream  # noqa: E402
from train.data import eval_windows  # noqa: E402
from train.export import export  # noqa: E402
from train.metrics import bits_per_byte  # noqa: E402
from train.plan import ModelShape, inference_bytes  # noqa: E402
from train.precision import FORMATS  # noqa: E402

# this script's section of benchmarks/RESULTS.md
TITLE = "## Precision and quantization: what each number format costs the demo model (`make bench-precision`, issue 14)"

SPLITS = ("val_domain", "val_general")
# every export format of train/precision.py FORMATS: fp32, bf16, fp16, int8, int4, 8da4w
BASELINE_FORMATS = tuple(f.name for f in FORMATS.values() if f.used_by("export"))
QAT_FORMATS = ("fp32", "8da4w")
SCORE_BATCH = 8     # sequences per scoring forward
PROMPT = 8          # tokens of the generation prompt; the rest of seq_len is generated


def train_run(config: Path, mix: Path, out: Path, steps: int, eval_tokens: int, nproc: int, *extra: str) -> dict:
    """One training run with torchrun, as ``make train`` runs it; returns its summary.json."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "train.run", "--config", str(config), f"data.dir={mix}", f"train.out_dir={out}",
           f"train.steps={steps}", f"train.eval_tokens={eval_tokens}", "train.ckpt_every=0", "train.eval_every=0",
           "train.progress=false", "train.tensorboard=false", *extra]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"trained {out.name}: {steps} steps in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return json.loads((out / "summary.json").read_text())


@torch.no_grad()
def held_out_loss(model, stream: TokenStream, seq_len: int, max_tokens: int) -> tuple[float, int]:  # noqa: ANN001
    """Mean next-token cross-entropy (nats) over the trainer's evaluation windows of ``stream``."""
    n = eval_windows(stream, seq_len, max_tokens)
    total, count = 0.0, 0
    for lo in range(0, n, SCORE_BATCH):
        batch = np.stack([stream.window(i * seq_len, seq_len + 1) for i in range(lo, min(n, lo + SCORE_BATCH))])
        x = torch.from_numpy(batch)
        logits = model(x[:, :-1]).logits.float()
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum").item()
        count += x[:, 1:].numel()
    return total / count, count


@torch.no_grad()
def speed(model, vocab: int, seq_len: int, eos: int | None) -> tuple[float, float]:  # noqa: ANN001
    """(scoring tokens/s, generated tokens/s): median of 3 timed repeats after one warm-up each."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (SCORE_BATCH, seq_len), generator=gen)
    prompt = torch.randint(0, vocab, (1, PROMPT), generator=gen)
    new = seq_len - PROMPT

    def score() -> None:
        model(x)

    def generate() -> None:
        model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=eos)

    rates = []
    for fn, tokens in ((score, x.numel()), (generate, new)):
        fn()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        rates.append(tokens / statistics.median(times))
    return rates[0], rates[1]


def measure(hf_dir: Path, mix: Path, manifest: dict, eval_tokens: int) -> dict:
    """Everything the table shows for one exported directory, loaded as a user loads it."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir)).eval()
    cfg = json.loads((hf_dir / "config.json").read_text())
    seq_len = cfg["max_position_embeddings"]
    out = {"size_bytes": (hf_dir / "model.safetensors").stat().st_size, "compute_dtype": str(model.dtype)}
    for split in SPLITS:
        loss, n = held_out_loss(model, TokenStream(mix / split), seq_len, eval_tokens)
        bpt = (manifest.get("val_bytes_per_token") or {}).get(split)
        out[split] = {"loss": loss, "ppl": math.exp(loss), "bpb": bits_per_byte(loss, bpt), "tokens": n}
    out["score_tokens_per_s"], out["generate_tokens_per_s"] = speed(model, cfg["vocab_size"], seq_len,
                                                                    cfg.get("eos_token_id"))
    return out


def planned_bytes(model_cfg: dict, fmt: str) -> float:
    """The planner's weights + scales for this model in ``fmt`` (no KV cache)."""
    cfg = ModelConfig.from_dict({k: v for k, v in model_cfg.items() if k in ModelConfig.__dataclass_fields__})
    counts = param_counts(cfg)
    shape = ModelShape(float(counts["total"]), cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head, cfg.vocab_size,
                       cfg.seq_len, float(counts["non_embedding"]), "bench", cfg.ffn_hidden)
    b = inference_bytes(shape, fmt)  # 8da4w is priced as int4 (FORMATS["8da4w"].priced_as)
    return b["weights"] + b["scales"]


def train_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "train"}


def markdown(rows: list[dict], ref: dict) -> str:
    """The results table; changes are relative to the baseline's fp32 export."""
    def delta(r: dict, split: str) -> str:
        return f"{(r[split]['ppl'] / ref[split]['ppl'] - 1) * 100:+.2f}%"

    head = ("| model | format | domain ppl | change | domain bpb | general ppl | change | general bpb | "
            "model.safetensors MB | planned MB | scoring tok/s | generation tok/s |")
    lines = [head, "|" + "---|" * 2 + "---:|" * 10]
    for r in rows:
        d, g = r["val_domain"], r["val_general"]
        lines.append(f"| {r['model']} | {r['format']} | {d['ppl']:.2f} | {delta(r, 'val_domain')} | {d['bpb']:.4f} "
                     f"| {g['ppl']:.2f} | {delta(r, 'val_general')} | {g['bpb']:.4f} | {r['size_bytes'] / 1e6:.2f} "
                     f"| {r['planned_bytes'] / 1e6:.2f} | {r['score_tokens_per_s']:,.0f} "
                     f"| {r['generate_tokens_per_s']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mix", type=Path, default=ROOT / "work" / "demo" / "mix", help="the demo mixture (make demo)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "train" / "tiny.yaml",
                    help="the demo's trainer config")
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "bench_precision")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per run (300 ~ one pass over the demo mix)")
    ap.add_argument("--qat-fraction", type=float, default=0.2, help="share of the steps trained with QAT (the last)")
    ap.add_argument("--eval-tokens", type=int, default=16384, help="held-out tokens per split")
    ap.add_argument("--nproc", type=int, default=2, help="training ranks")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for evaluation and speed")
    ap.add_argument("--seed", type=int, help="train.seed (model init) and data.seed (order) of both runs; "
                                             "default: the config's")
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the table is only printed")
    a = ap.parse_args()
    provenance.check_results(a.results)
    if not (a.mix / "manifest.json").is_file():
        sys.exit(f"error: no mixture at {a.mix}: run `make demo` first")
    torch.set_num_threads(a.threads)
    manifest = json.loads((a.mix / "manifest.json").read_text())
    qat = f"train.qat={{scheme: 8da4w, start_fraction: {1 - a.qat_fraction}, group_size: 32}}"
    seeds = [] if a.seed is None else [f"train.seed={a.seed}", f"data.seed={a.seed}"]
    t0 = time.perf_counter()
    runs = {"baseline": (train_run(a.config, a.mix, a.work / "baseline", a.steps, a.eval_tokens, a.nproc, *seeds),
                         BASELINE_FORMATS),
            "QAT": (train_run(a.config, a.mix, a.work / "qat", a.steps, a.eval_tokens, a.nproc, qat, *seeds),
                    QAT_FORMATS)}
    rows = []
    for name, (_, formats) in runs.items():
        run_dir = a.work / ("baseline" if name == "baseline" else "qat")
        for fmt in formats:
            hf = export(run_dir, a.work / "hf" / f"{run_dir.name}_{fmt}", fmt)
            model_cfg = json.loads((hf / "domainlm_config.json").read_text())["model"]
            row = {"model": name, "format": fmt, **measure(hf, a.mix, manifest, a.eval_tokens),
                   "planned_bytes": planned_bytes(model_cfg, fmt)}
            rows.append(row)
            print(f"{name} {fmt}: domain ppl {row['val_domain']['ppl']:.2f}, general ppl "
                  f"{row['val_general']['ppl']:.2f}, {row['size_bytes'] / 1e6:.2f} MB", file=sys.stderr)
    ref = rows[0]
    # the two runs must be the same run until the QAT phase starts, or the comparison measures something else
    base, qat_losses = train_losses(a.work / "baseline"), train_losses(a.work / "qat")
    qat_start = int(round((1 - a.qat_fraction) * a.steps))
    same_before_qat = all(base[s] == qat_losses[s] for s in base if s <= qat_start)

    def find(model: str, fmt: str) -> dict:
        return next(r for r in rows if r["model"] == model and r["format"] == fmt)

    gaps = {model: {split: find(model, "8da4w")[split]["ppl"] / find(model, "fp32")[split]["ppl"] - 1
                    for split in SPLITS} for model in ("baseline", "QAT")}
    checks = {split: {"trainer_ppl": runs["baseline"][0]["eval"][split]["ppl"], "fp32_export_ppl": ref[split]["ppl"],
                      "qat_trainer_ppl": runs["QAT"][0]["eval"][split]["ppl"],
                      "qat_8da4w_export_ppl": next(r for r in rows if r["model"] == "QAT" and r["format"] == "8da4w")[
                          split]["ppl"]} for split in SPLITS}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "seed": a.seed,
              "torch": torch.__version__, "steps": a.steps, "qat_fraction": a.qat_fraction,
              "eval_tokens": a.eval_tokens, "threads": a.threads, "load_average": os.getloadavg(),
              "wall_s": time.perf_counter() - t0, "params": runs["baseline"][0]["params"], "rows": rows,
              "checks": checks, "same_losses_before_qat": same_before_qat, "qat_start_step": qat_start,
              "8da4w_gap_vs_own_fp32": gaps}
    (a.work / "results.json").write_text(json.dumps(result, indent=1))
    notes = [f"- {split}: trainer ppl {c['trainer_ppl']:.4f} vs fp32 export {c['fp32_export_ppl']:.4f}; QAT trainer "
             f"(fake quantization on) {c['qat_trainer_ppl']:.4f} vs its 8da4w export {c['qat_8da4w_export_ppl']:.4f}"
             for split, c in checks.items()]
    notes += [f"- {model}: 8da4w vs its own fp32 export: domain {gap['val_domain']:+.2%}, "
              f"general {gap['val_general']:+.2%}" for model, gap in gaps.items()]
    notes += [f"- baseline and QAT runs identical (train loss) through step {qat_start}, where QAT starts: "
              f"{same_before_qat}",
              f"- params {result['params']}, {a.steps} steps, wall {result['wall_s']:.0f} s, "
              f"load {', '.join(f'{x:.1f}' for x in result['load_average'])}"]
    table = markdown(rows, ref)
    print(table + "\n\n" + "\n".join(notes))
    if a.results:
        replace_section(a.results, TITLE, provenance.body("bench-precision", provenance.method(__doc__), table,
                                                          "\n".join(notes), device=f"torch {torch.__version__}"),
                        header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {a.results}")


if __name__ == "__main__":
    main()
