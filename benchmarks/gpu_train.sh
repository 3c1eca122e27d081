#!/usr/bin/env bash
# Trainer throughput and MFU on CUDA GPUs, ~1.1B (configs/train/llama1b.yaml) and ~125M (gpt125m.yaml), with an
# ablation table: one row per throughput fix (benchmarks/gpu_ablation.py holds the rows and their meaning).
# Synthetic tokens, bf16, torch.compile, 4 micro-batches per optimizer step, 50 measured steps per row after a
# 5-step warm-up window. No network, no installs: only the repository and the machine's PyTorch (>= 2.5).
#
#   bash benchmarks/gpu_train.sh                       # ~7 min on one H100/H200: rows until the budget is spent
#   ROWS=headline bash benchmarks/gpu_train.sh         # only "all on" and "all off" per model
#   MODELS="llama1b" BUDGET_S=900 bash benchmarks/gpu_train.sh
#   DEVICE=cpu bash benchmarks/gpu_train.sh            # smoke-tests the script on a tiny model (no GPU figures)
#
# Prints tokens/s/GPU, MFU (output head counted; the old count alongside) and peak GPU memory per row; with
# $OUT set, writes the table to $OUT/gpu_train.md (rewritten after every row) and the raw rows to gpu_train.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-420}   # wall seconds for the training rows (the attention micro-benchmark comes first, ~30 s)
ROWS=${ROWS:-all}
MEASURED=${MEASURED:-50}
ACCUM=${ACCUM:-4}
OUT_ARGS=()
if [ -n "${OUT:-}" ]; then OUT_ARGS=(--out "$OUT"); fi
RESULTS_ARGS=()  # RESULTS=benchmarks/RESULTS.md (make bench-train-gpu): the GPU section is written (replaced) there
if [ -n "${RESULTS:-}" ]; then RESULTS_ARGS=(--results "$RESULTS"); fi

if [ "$DEVICE" = cuda ]; then
  $PY -c "import sys, torch, yaml, numpy; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || {
    echo "gpu_train.sh needs a CUDA GPU and a CUDA build of PyTorch plus pyyaml and numpy" \
      "(torch.cuda.is_available() is false here; DEVICE=cpu runs the CPU smoke test)" >&2; exit 1; }
  NGPU=${NGPU:-$($PY -c "import torch; print(torch.cuda.device_count())")}
  MODELS=${MODELS:-"llama1b gpt125m"}
  exec $PY benchmarks/gpu_ablation.py --device cuda --ngpu "$NGPU" --models $MODELS --rows "$ROWS" \
    --measured "$MEASURED" --grad-accum "$ACCUM" --budget-s "$BUDGET_S" "${OUT_ARGS[@]}" "${RESULTS_ARGS[@]}" ${EXTRA:+--extra $EXTRA}
else
  # CPU: the tiny config, fp32, no compile, a few steps: checks that every row runs and the table is written
  exec $PY benchmarks/gpu_ablation.py --device cpu --ngpu 1 --models tiny --rows "$ROWS" --measured "${MEASURED_CPU:-4}" \
    --log-every 2 --grad-accum "$ACCUM" --seq 64 --mb tiny=4:8 --budget-s "$BUDGET_S" "${OUT_ARGS[@]}" \
    --extra train.compile=false train.dtype=fp32 train.cpu_threads=1 train.strategy=fsdp ${EXTRA:-}
fi
