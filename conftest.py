"""Lets tests import the top-level modules (model.py, kron_embed.py, ...) from the repo root, and runs
each test process (and the scripts it starts) on one CPU thread. Why: scripts/test.sh runs one
pytest-xdist worker per core, and a tiny model's many small ops slow down more than tenfold when
torch's second OpenMP thread has to wait for a core that another process holds."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported, inherited by subprocesses
