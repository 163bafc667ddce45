#!/usr/bin/env bash
# The paper's model on one GPU in one call: bpe_tied, kron and bpe_untied at GPT-2 124M, seed 1337, the
# same batches for every arm, 30.1M tokens each (config/gpu_study_124m.py says how the budget and the
# schedule were sized), ~10 evaluations along each run (overall and per source), and the robustness
# probe on each final checkpoint, on the GPU.
#
# On a bare GPU machine (Python 3, torch with CUDA, numpy, tiktoken, tqdm, matplotlib; no network), nothing
# is installed:
#   here, once:  python -m data.english.prepare && python -m scripts.pack_gpu    # -> gpu_pack/ (~23 MB)
#   there, with gpu_pack/ carried along:  OUT=$OUT bash scripts/gpu_study.sh     # about 8-9 minutes on one H200 (estimate)
#   back here:   python -m scripts.gpu_report --study-archive <OUT>/gpu_study.tar.gz   # -> results/gpu_124m/
#                python -m scripts.make_results                                     # RESULTS.md's "124M on one GPU"
# On any CPU, the same path at a tiny shape (the test suite runs this):
#   bash scripts/gpu_study.sh --smoke DATA_DIR
#
# What it leaves: $OUT/gpu_study.tar.gz (device facts; each run's metrics.jsonl and ckpt.json; each
# probe's JSON and markdown; every log), repacked as each arm finishes so a timeout still brings back the
# finished arms, and $OUT/stages.tsv. Checkpoints (~1.5 GB each) stay under $WORK (default /tmp/gpu_study).
# After the three arms, bpe_tied and kron with seed 1338 run too when the measured time per arm says they
# fit in STUDY_BUDGET_S (default 540 s, from the script's start). Nothing runs past DEADLINE_S (570 s):
# an arm cut short keeps its partial log (ckpt.json then says unfinished, and make_results leaves it out
# of the comparison, naming it). Run this script or scripts/gpu_check.sh in one device session, not both.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_common.sh
gpu_setup gpu_study "$@"   # SMOKE, OUT, WORK, PY, LOGS, RUNS, DATA (on a GPU: the shards unpacked)
BUDGET=${STUDY_BUDGET_S:-540}   # seed 1338 starts only when the measured time per arm says it ends by then
DEADLINE=${DEADLINE_S:-570}     # nothing runs past this (seconds from the start): one device call is 600 s at most
rm -rf "$LOGS"
mkdir -p "$OUT" "$LOGS/runs" "$LOGS/probes" "$RUNS"

if [ "$SMOKE" = 1 ]; then
    EXTRA=(--device=cpu --compile=False --n_layer=1 --n_head=2 --n_embd=32 --block_size=32 --batch_size=2
           --gradient_accumulation_steps=2 --max_iters=4 --lr_decay_iters=4 --warmup_iters=1 --eval_interval=2
           --eval_iters=2 --log_interval=1)
    PROBE_DEV=cpu; FACTS=(--size 256 --repeats 2)
else
    EXTRA=(); PROBE_DEV=cuda; FACTS=()
fi
FAILED=0

pack() {  # the run logs so far (a partial one included) into one archive in $OUT, replaced atomically
    local part="$OUT/gpu_study.tar.gz.part$BASHPID" d
    for d in "$RUNS"/*/; do
        [ -f "$d/metrics.jsonl" ] || continue
        mkdir -p "$LOGS/runs/$(basename "$d")"
        cp "$d/metrics.jsonl" "$LOGS/runs/$(basename "$d")/" 2>/dev/null
        cp "$d/ckpt.json" "$LOGS/runs/$(basename "$d")/" 2>/dev/null
    done
    cp "$LOGS/stages.tsv" "$OUT/stages.tsv" 2>/dev/null
    tar czf "$part" -C "$WORK" logs && mv "$part" "$OUT/gpu_study.tar.gz"
}

arm() {  # arm EMBEDDING SEED: train (within the deadline), keep its logs, probe its final checkpoint
    local emb=$1 seed=$2 name="$1-s$2" start=$SECONDS rc left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 20 ]; then  # (timeout 0 would mean no limit at all)
        printf '%s\tskipped (deadline)\t0\n' "$name" >> "$LOGS/stages.tsv"; echo "== $name: skipped, ${DEADLINE} s deadline"
        FAILED=$((FAILED + 1)); return
    fi
    echo "== $name (at most ${left} s)"
    timeout --kill-after=10 "$left" "$PY" train.py config/gpu_study_124m.py --embedding="$emb" --seed="$seed" \
        --data_dir="$DATA" --out_dir="$RUNS/$name" --init_from=auto --wandb_log=False "${EXTRA[@]}" \
        > "$LOGS/$name.train.log" 2>&1
    rc=$?
    if [ "$rc" = 0 ]; then
        left=$((DEADLINE - SECONDS))
        timeout --kill-after=5 "$((left > 10 ? left : 10))" "$PY" -m probes.robustness "$emb=$RUNS/$name/ckpt.pt" \
            --out "$LOGS/probes/$name" --device "$PROBE_DEV" > "$LOGS/$name.probe.log" 2>&1 || rc=$?
        rm -f "$LOGS/probes/$name/"*.png
    fi
    tail -n 4 "$LOGS/$name.train.log"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >> "$LOGS/stages.tsv"
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
    pack
}

printf 'stage\texit\tseconds\n' > "$LOGS/stages.tsv"
( while sleep 60; do pack; done ) &  # a partial arm's log comes back even if the call is cut short
PACKER=$!
trap 'kill $PACKER 2>/dev/null' EXIT
"$PY" -m scripts.gpu_facts "${FACTS[@]}" --out "$LOGS/device.json" > "$LOGS/facts.log" 2>&1 || FAILED=$((FAILED + 1))
for emb in bpe_tied kron bpe_untied; do
    arm "$emb" 1337
done
PER_ARM=$(( SECONDS / 3 ))
for emb in bpe_tied kron; do
    if [ $(( SECONDS + PER_ARM )) -le "$BUDGET" ] && [ $(( SECONDS + PER_ARM )) -le "$DEADLINE" ]; then
        arm "$emb" 1338
    else
        echo "gpu_study: $emb-s1338 skipped: ${SECONDS} s spent, ~${PER_ARM} s an arm, budget ${BUDGET} s"
    fi
done
kill $PACKER 2>/dev/null
pack
echo "gpu_study: $FAILED failure(s); results in $OUT/gpu_study.tar.gz (checkpoints under $RUNS)"
exit "$FAILED"
