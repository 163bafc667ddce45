"""Time the test suite against an older commit's, on the same tests: is the suite slower than it was?

    python -m scripts.suite_time --old feaff5e --out results/suite_time/suite_time.json

Checks the old commit out in a temporary git worktree and runs, one after another with the same
pytest-xdist settings: (1) the old commit's whole suite there, (2) today's tests whose names the old
suite had (tests moved between files keep their names; parametrisations that no longer exist are
listed), (3) today's whole suite. Prints a table and writes JSON. Run it with nothing else on the
machine: the figures are wall times.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.suite_time", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

from errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def collect(cwd):
    """The node ids pytest collects in cwd."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=cwd, capture_output=True, text=True
    ).stdout
    return [line.strip() for line in out.splitlines() if "::" in line]


def timed_pytest(cwd, args, workers):
    """(wall seconds, pytest's summary line) of one pytest run."""
    t = time.time()
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", str(workers), "-p", "no:cacheprovider", *args], cwd=cwd, capture_output=True, text=True
    )
    summary = next((line for line in reversed(r.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "?")
    if r.returncode:
        raise RuntimeError(f"pytest failed in {cwd}: {summary}")
    return time.time() - t, summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, help="the commit to compare with")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None, help="a JSON file for the results")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers {args.workers}: expected an integer >= 1")
    old_dir = os.path.join(tempfile.mkdtemp(), "old")
    subprocess.run(["git", "worktree", "add", "-q", "--detach", old_dir, args.old], cwd=ROOT, check=True)
    try:
        old_names = {i.split("::")[-1] for i in collect(old_dir)}
        today = collect(ROOT)
        same = [i for i in today if i.split("::")[-1] in old_names]
        gone = sorted(old_names - {i.split("::")[-1] for i in same})
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(same) + "\n")
        rows = [
            ("old suite at " + args.old, len(old_names), *timed_pytest(old_dir, [], args.workers)),
            ("the same tests today", len(same), *timed_pytest(ROOT, ["@" + f.name], args.workers)),
            ("the whole suite today", len(today), *timed_pytest(ROOT, [], args.workers)),
        ]
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", old_dir], cwd=ROOT)
    print("| suite | tests | wall s | pytest says |\n|---|---|---|---|")
    for name, n, wall, summary in rows:
        print(f"| {name} | {n} | {wall:.1f} | {summary} |")
    if gone:
        print(f"old tests with no namesake today ({len(gone)}): {', '.join(gone)}")
    result = {
        "old": args.old,
        "workers": args.workers,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": [dict(zip(("suite", "tests", "wall_s", "summary"), r)) for r in rows],
        "old_names_gone": gone,
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
