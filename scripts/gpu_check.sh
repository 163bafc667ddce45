#!/usr/bin/env bash
# Repeats the GPU checks in one call on any CUDA machine (no network needed there):
#   1. scripts/bench_embed.py on CPU and CUDA at both shapes;
#   2. scripts/bench_train.py at GPT-2 124M (bf16, torch.compile): every arm, Kron in fused/cached/dynamic
#      modes: step time, tokens/s, MFU, peak memory, Kron overhead vs bpe_tied;
#   3. a few hundred train.py steps of each 124M arm, the last under torchrun (DDP over nccl);
#   4. resume: a GPU checkpoint continued on CPU.
# Usage: bash scripts/gpu_check.sh [DATA_DIR] [STEPS]   (DATA_DIR: prepared shards, default data/pydocs)
# Writes everything under ${OUT:-gpu_check}/. Status: written for the GPU issue, NOT yet run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/pydocs}
STEPS=${2:-300}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/device.txt"
python scripts/bench_embed.py --out "$OUT/bench_embed.json" 2>&1 | tee "$OUT/bench_embed.log"
python scripts/bench_train.py --n-layer 12 --n-head 12 --n-embd 768 --block-size 1024 --batch-size 16 --compile \
    --kron-modes fused cached dynamic --steps 30 --warmup 5 --out "$OUT/bench_train.json" 2>&1 | tee "$OUT/bench_train.log"
COMMON="--data_dir=$DATA --max_iters=$STEPS --lr_decay_iters=$STEPS --eval_interval=100 --eval_iters=10 --batch_size=16 --gradient_accumulation_steps=4 --wandb_log=False --log_interval=20"
python train.py config/bpe_124m.py $COMMON --out_dir="$OUT/bpe_tied" 2>&1 | tee "$OUT/bpe_tied.log"
python train.py config/bpe_untied_124m.py $COMMON --out_dir="$OUT/bpe_untied" 2>&1 | tee "$OUT/bpe_untied.log"
torchrun --standalone --nproc_per_node=1 train.py config/kron_124m.py $COMMON --out_dir="$OUT/kron" 2>&1 | tee "$OUT/kron.log"
python train.py config/kron_124m.py $COMMON --out_dir="$OUT/kron" --init_from=resume --max_iters=$((STEPS + 2)) \
    --device=cpu --compile=False --batch_size=1 --block_size=1024 --gradient_accumulation_steps=1 2>&1 | tee "$OUT/resume_on_cpu.log"
