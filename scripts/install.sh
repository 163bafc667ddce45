#!/usr/bin/env bash
# Installs what the project needs into the current Python environment (a venv is recommended).
# torch first, pinned, only when it is missing: an unpinned torch would pull the newest CUDA build.
# pip's own progress is shown: a fresh machine takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "install: torch 2.13.0 (CPU build) ..."
    "$PY" -m pip install --progress-bar on "torch==2.13.0"
fi
echo "install: requirements.txt ..."
"$PY" -m pip install --progress-bar on -r requirements.txt
