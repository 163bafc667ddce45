#!/usr/bin/env bash
# Installs what the project needs into the current Python environment (a venv is recommended).
# torch first, pinned, only when it is missing: an unpinned torch would pull the newest CUDA build.
# pip's own progress is shown: a fresh machine takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
    # pip's default build: from PyPI on Linux x86-64 that is the CUDA build (several GB). For the
    # CPU-only build on a machine without a GPU: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        echo "install: torch 2.13.0 from $TORCH_INDEX_URL ..."
        "$PY" -m pip install --progress-bar on "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
    else
        echo "install: torch 2.13.0, pip's default build for this machine (set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU-only one) ..."
        "$PY" -m pip install --progress-bar on "torch==2.13.0"
    fi
fi
echo "install: requirements.txt ..."
"$PY" -m pip install --progress-bar on -r requirements.txt
