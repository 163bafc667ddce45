#!/usr/bin/env bash
# The test command: installs what is needed, then runs the test suite (CPU, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check .            # house rules (pyproject.toml): pyflakes, pycodestyle, import order
"$PY" -m ruff format --check .   # and one layout (ruff format)
set +e
"$PY" -m pytest -q -n auto "$@"   # one worker per core (pytest-xdist)
status=$?
set -e
if [ "$status" -eq 5 ]; then   # pytest: no tests collected
    echo "pytest collected no tests"
    exit 0
fi
exit "$status"
