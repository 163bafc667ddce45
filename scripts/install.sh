#!/usr/bin/env bash
# Installs what the project needs into the current Python environment (a venv is recommended).
# torch first, pinned, only when it is missing: an unpinned torch would pull the newest CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
    "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -r requirements.txt
