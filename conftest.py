"""Lets tests import the top-level modules (model.py, kron_embed.py, ...) from the repo root."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
