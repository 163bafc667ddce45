#!/usr/bin/env bash
# The whole fair study (PLAN.md) from wherever it stands, resumable: the data if missing, phase 1
# (phase1.sh), then for each axis (R, then lr) the runs the choosing step asks for (a setting's missing
# seeds, then edge runs, then the next phase) until it asks for nothing new, then Q4's probe. Every
# choice is scripts/fair_choose.py's, by the plan's rule; nothing here decides. Rerun after an interruption: finished runs are skipped,
# interrupted ones resume. LANES=2 runs two at a time (1 thread each); PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
LANES=${LANES:-2}
[ -d data/english_bpe8k_val3 ] || "$PY" -m data.english.prepare --out-dir data/english_bpe8k_val3 --val-percent 3 \
    --tokenizer data/english_bpe8k/tokenizer.json
[ -d data/english_val3 ] || "$PY" -m data.english.prepare --out-dir data/english_val3 --val-percent 3
PYTHON="$PY" LANES="$LANES" bash results/study_fair/phase1.sh
for axis in R lr; do
    asked=""
    while true; do
        now=$("$PY" -m scripts.fair_choose --axis "$axis" --commands --python "$PY")
        # nothing new to run: the axis is settled, or (nothing at all: an arm whose every setting diverged) not
        if [ -z "$now" ] || [ "$now" = "$asked" ]; then break; fi
        echo "[$(date +%H:%M:%S)] fair_choose --axis $axis asks for $(echo "$now" | wc -l) runs"
        "$PY" -m scripts.fair_progress || echo "(fair_progress failed: the study goes on)"  # where it stands, in runs, no loss
        echo "$now" | xargs -P "$LANES" -d '\n' -I{} bash -fc "{}"  # -f: no globbing; each line is already quoted
        asked=$now
    done
    "$PY" -m scripts.fair_choose --axis "$axis" --settled  # or stop here, naming each arm not settled and why
done
"$PY" -m scripts.fair_q4 --runs runs/study_fair --lanes "$LANES"  # trains again any run whose checkpoints were lost
echo "the study is complete: python -m scripts.make_results writes its answers into RESULTS.md"
