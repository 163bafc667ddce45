#!/usr/bin/env bash
# Phase 1 of PLAN.md: every arm at the 5 (input norm, R) points, lr 2e-3, seeds 1337 and 1338, at S.
# One single-run runner command per line, seed-major, two at a time at 1 thread each. Rerun it after
# an interruption: finished runs (kept logs) are skipped, interrupted ones resume from their checkpoints.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
LANES=${LANES:-2}
run() {  # arm, seed, then --grid arguments
    local arm=$1 seed=$2; shift 2
    echo "$(printf '%q' "$PY") -m scripts.run_study --base config/study_fair.py --out-root runs/study_fair --keep-logs results/study_fair/runs" \
         "--arms $arm --seeds $seed $* -- --num_threads=1"
}
plan() {
    for seed in 1337 1338; do
        for arm in bpe_tied bpe_untied bpe_lowrank; do
            for m in 1 13.86 50; do run $arm $seed --grid input_scale=$m; done
        done
        for m in 0.02 0.2771 1; do
            run kron $seed --grid input_scale=$m
            run kron $seed --grid kron_shuffle_seed=seed --grid input_scale=$m
        done
        for m in 0.01414 0.196 0.7071; do run hybrid $seed --grid input_scale=$m; done
        for m in 0.2771 1; do
            for arm in bpe_tied bpe_untied bpe_lowrank kron hybrid; do run $arm $seed --grid input_norm=True --grid input_scale=$m; done
            run kron $seed --grid kron_shuffle_seed=seed --grid input_norm=True --grid input_scale=$m
        done
    done
    for seed in 1337 1338; do  # amendment 3: kron_tied at the same 5 points, after the plan's 60
        for m in 0.02 0.2771 1; do run kron_tied $seed --grid input_scale=$m; done
        for m in 0.2771 1; do run kron_tied $seed --grid input_norm=True --grid input_scale=$m; done
    done
}
if [ "${1:-}" = "--list" ]; then plan; exit 0; fi
plan | xargs -P "$LANES" -d '\n' -I{} bash -fc "{}"  # one command a line, already quoted; -f: no globbing
