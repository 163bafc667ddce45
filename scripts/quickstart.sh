#!/usr/bin/env bash
# The main job on the embedded corpus: installs what is needed, prepares the pydoc corpus, trains
# the BPE-tied and Kronecker arms for about 1.5 minutes each on 2 cores, prints their validation losses side by
# side and writes out/quickstart/loss_curves.png. Extra arguments go to scripts/quickstart.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}
"$PY" -m scripts.quickstart "$@"
