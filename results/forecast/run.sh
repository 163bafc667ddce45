#!/usr/bin/env bash
# The forecast study's runs (results/forecast/PLAN.md), in the plan's order: the grid, then the two checks.
# Rerun after an interruption: finished runs (kept logs) are skipped, interrupted ones resume.
# LANES=2 runs two at a time (1 thread each); PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
LANES=${LANES:-2}
K=results/forecast
# the grid (sizes, arms, seeds, budgets) is declared once, in grid.json: make_results reads it too
"$PY" -m scripts.run_forecast --grid "$K/grid.json" --out-root runs/forecast --keep-logs "$K/runs" --parallel "$LANES" -- --num_threads=1
# check 1: a branch's cool-down against the same WSD schedule run from scratch (bpe_tied, 4L d128, 2M tokens)
"$PY" -m scripts.run_forecast --base config/forecast.py --sizes 4x128x4 --arms bpe_tied --seeds 1337 1338 \
    --budgets 5e5 1e6 2e6 4e6 --from-scratch-check 2e6 --out-root runs/forecast --keep-logs "$K/runs" \
    --parallel "$LANES" -- --num_threads=1
# check 2: the cosine schedule the other studies use, at the same budget (488 steps), same arm and size
"$PY" -m scripts.run_study --base config/forecast.py --arms bpe_tied --seeds 1337 1338 --out-root runs/forecast_cosine \
    --keep-logs "$K/cosine" --grid lr_schedule=cosine --grid max_iters=488 --parallel "$LANES" -- --num_threads=1
