"""Parameter counts per arm: input side, output head, body (the paper's savings table).

    python -m scripts.param_table --out results/param_table

GPT-2 124M rows are counted on the real model (model.py, V padded to 50,304, bias on); the rows for
larger vocabularies (V 50,304 / 128,256 / 131,072 / 151,936 at d 768 / 2,048 / 4,096, pos_dim 32,
D 8,192) count the input side and head only, since their bodies depend on the rest of the
architecture: dense table V*d vs Kron projection D*d (ratio V/D, whatever d), head V*d in every
untied arm. Writes param_table.json and param_table.md.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.param_table", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os

import report
from errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "results", "param_table"))
    args = p.parse_args(argv)
    g, v, md = report.write_param_table(args.out)
    print(md, end="")
    return g, v


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
