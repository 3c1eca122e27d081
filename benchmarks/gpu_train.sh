#!/usr/bin/env bash
# Trainer throughput and MFU on CUDA GPUs: ~125M (configs/train/gpt125m.yaml) and ~1.1B (configs/train/llama1b.yaml)
# with bf16 (FSDP2 MixedPrecisionPolicy / autocast) and torch.compile, on synthetic tokens (throughput does not
# depend on the text). Needs no network: data is generated locally.
#
#   bash benchmarks/gpu_train.sh                 # all GPUs of this node
#   NGPU=1 STEPS=40 bash benchmarks/gpu_train.sh
#   MODELS="llama1b" STRATEGY_1B=ddp bash benchmarks/gpu_train.sh
#
# Prints, per model: parameters, tokens/s per GPU, MFU (against the dense bf16 peak of train/metrics.py:
# H100 SXM 989 TFLOP/s, A100 312) and peak GPU memory. Target: MFU >= 50% at ~1B on one H100.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}      # DEVICE=cpu (with small EXTRA overrides) only smoke-tests this script
if [ "$DEVICE" = cuda ]; then
  $PY -c "import torch, yaml, numpy; assert torch.cuda.is_available(), 'no CUDA device'" || {
    echo "gpu_train.sh needs a CUDA build of PyTorch plus pyyaml and numpy" >&2; exit 1; }
  NGPU=${NGPU:-$($PY -c "import torch; print(torch.cuda.device_count())")}
  NAME=$($PY -c 'import torch; print(torch.cuda.get_device_name(0))')
else
  NGPU=${NGPU:-1}; NAME=cpu
fi
STEPS=${STEPS:-30}          # optimizer steps per model; the first LOG_EVERY (compile warm-up) are not counted
LOG_EVERY=${LOG_EVERY:-10}
MODELS=${MODELS:-"gpt125m llama1b"}
MB_125M=${MB_125M:-16}; STRATEGY_125M=${STRATEGY_125M:-ddp}
MB_1B=${MB_1B:-8};      STRATEGY_1B=${STRATEGY_1B:-fsdp}
COMPILE=${COMPILE:-true}
EXTRA=${EXTRA:-}            # more key=value overrides for both models
AC=${AC:-false}             # activation checkpointing (lowers MFU: recomputation is not counted as model FLOPs)
WORK=${WORK:-$(mktemp -d -t gpu_train.XXXXXX)}
SEQ=${SEQ:-2048}

echo "== $NGPU x $NAME, torch $($PY -c 'import torch; print(torch.__version__)'), work dir $WORK"

# Synthetic mixture: random ids, documents of SEQ tokens, enough for every step of the largest micro-batch.
$PY - "$WORK/mix" "$(( STEPS * NGPU * (MB_125M > MB_1B ? MB_125M : MB_1B) * (SEQ + 1) * 12 / 10 ))" "$SEQ" <<'PYEOF'
import json, sys
from pathlib import Path
import numpy as np
from mixtures.shards import write_shard
out, n, seq = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
vocab = 32000  # valid ids for both configs (gpt125m has 50,304, llama1b 32,000)
rng = np.random.default_rng(0)
ids = rng.integers(0, vocab - 1, size=n, dtype=np.int64)
ids[seq - 1::seq] = vocab - 1  # an EOS closing every document of seq tokens
lengths = np.full(n // seq, seq, dtype=np.int64)
write_shard(out / "train" / "part-00000", ids[: lengths.sum()], vocab, doc_lengths=lengths)
(out / "manifest.json").write_text(json.dumps({"vocab_size": vocab, "note": "synthetic tokens for gpu_train.sh"}))
print(f"synthetic mixture: {lengths.sum():,} tokens")
PYEOF

summarize() {  # $1 = run dir, $2 = label
  $PY - "$1" "$2" <<'PYEOF'
import json, sys
from pathlib import Path
recs = [json.loads(line) for line in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
start = [r for r in recs if r["kind"] == "start"][-1]
train = [r for r in recs if r["kind"] == "train"]
train = train[1:] or train  # drop the compile warm-up window
tps = sum(r["tokens_per_s_per_device"] for r in train) / len(train)
mfus = [r["mfu"] for r in train if r["mfu"] is not None]
mfu = f"{100 * sum(mfus) / len(mfus):.1f}%" if mfus else "n/a (device not in train/metrics.py: set train.peak_tflops)"
mem = max(max(r["peak_mem_bytes_per_rank"]) for r in train)
step = sum(r["step_time_s"] for r in train) / len(train)
p = start["params"]
print(f"RESULT {sys.argv[2]}: {p['total'] / 1e6:.1f}M params ({p['non_embedding'] / 1e6:.1f}M non-embedding), "
      f"{start['rank_count']} x {start['device_name']}, {start['strategy']}, {start['dtype']}, "
      f"tokens/s/GPU {tps:,.0f}, MFU {mfu}, peak memory {mem / 2**30:.1f} GiB, step {step:.3f} s")
PYEOF
}

for model in $MODELS; do
  if [ "$model" = gpt125m ]; then MB=$MB_125M; STRATEGY=$STRATEGY_125M; else MB=$MB_1B; STRATEGY=$STRATEGY_1B; fi
  out="$WORK/$model"
  rm -rf "$out"
  $PY -m torch.distributed.run --standalone --nproc_per_node="$NGPU" -m train.run \
    --config "configs/train/$model.yaml" \
    data.dir="$WORK/mix" "data.val_splits=[]" model.seq_len="$SEQ" \
    train.out_dir="$out" train.steps="$STEPS" train.log_every="$LOG_EVERY" train.ckpt_every=-1 \
    train.strategy="$STRATEGY" train.micro_batch="$MB" train.global_batch_tokens=$(( NGPU * MB * SEQ )) \
    train.dtype=bf16 train.compile="$COMPILE" train.activation_checkpointing="$AC" train.device="$DEVICE" \
    train.progress=false train.tensorboard=false optim.warmup_steps=10 $EXTRA
  summarize "$out" "$model"
done
