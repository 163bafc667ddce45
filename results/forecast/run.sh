#!/usr/bin/env bash
# The forecast study's runs (results/forecast/PLAN.md), in the plan's order: the grid, then the two checks.
# Rerun after an interruption: finished runs (kept logs) are skipped, interrupted ones resume.
# LANES=2 runs two at a time (1 thread each); PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
LANES=${LANES:-2}
K=results/forecast
# before the first run: grid.json's third arm is the one the plan's amendments 3-4 ask for (else it stops and says what)
"$PY" -m scripts.forecast_report --before-first-run
# the grid (sizes, arms, seeds, budgets) is declared once, in grid.json: make_results reads it too
"$PY" -m scripts.run_forecast --grid "$K/grid.json" --out-root runs/forecast --keep-logs "$K/runs" --parallel "$LANES" -- --num_threads=1
# the checks, at grid.json's checks cell: C1 a branch's cool-down against the same
# WSD schedule run from scratch; C2 the cosine schedule the other studies use, at the same budget
"$PY" -m scripts.run_forecast --grid "$K/grid.json" --check scratch --out-root runs/forecast --keep-logs "$K/runs" \
    --parallel "$LANES" -- --num_threads=1
"$PY" -m scripts.run_forecast --grid "$K/grid.json" --check cosine --out-root runs/forecast_cosine --keep-logs "$K/cosine" \
    --parallel "$LANES" -- --num_threads=1
