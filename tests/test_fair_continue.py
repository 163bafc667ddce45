"""results/study_fair/continue.sh end to end, with every training replaced by a stub that writes a
synthetic kept log (a known optimum per arm): phase 1, the edge runs the choosing step asks for, phase 2,
its lr edges, phase 3 at S and L, Q4's call, and the answers RESULTS.md would open with. What is tested
is the orchestration (the loop, the stop conditions, the commands' quoting), not any training."""

import json
import math
import os
import stat
import subprocess
import sys

import pytest

from scripts import fair_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# per arm: (base dev, best R, best lr); bpe_tied's best R lies beyond the grid (two R edges), kron's lr too
OPTIMUM = {
    "bpe_tied": (5.6, 8.0, 2e-3),
    "bpe_untied": (5.5, 0.2772, 2e-3),
    "bpe_lowrank": (5.7, 1.0, 2e-3),
    "kron": (5.4, 1.0, 9e-3),
    "kron_shuffled": (5.6, 1.0, 2e-3),
    "hybrid": (5.45, 1.0, 2e-3),
    "kron_tied": (6.5, 1.0, 2e-3),
}
OWN = {"bpe_tied": 0.02, "bpe_untied": 0.02, "bpe_lowrank": 0.02, "hybrid": 2**0.5}

FAKE_RUN_STUDY = """
import json, math, os, sys
args = sys.argv[1:]
extra = args[args.index("--") + 1:]
args = args[: args.index("--")]
value = lambda flag: args[args.index(flag) + 1]
grid = [args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--grid"]
arm, seed, keep = value("--arms"), int(value("--seeds")), value("--keep-logs")
name = arm + "".join(f"-{k}{v}" for k, v in grid) + f"-s{seed}"
g = dict(grid)
shuffled = "kron_shuffle_seed" in g
label = "kron_shuffled" if shuffled else arm
optimum = json.loads(os.environ["OPTIMUM"])[label]
own = 1.0 if g.get("input_norm") else json.loads(os.environ["OWN"]).get(arm, 1.0)
R, lr = float(g.get("input_scale", 1)) * own, float(g.get("learning_rate", 2e-3))
dev = optimum[0] + 0.05 * math.log(R / optimum[1]) ** 2 + 0.05 * math.log(lr / optimum[2]) ** 2 + 0.02 * bool(g.get("input_norm"))
dev += 0.001 * (seed % 7)
config = {"embedding": arm, "input_scale": float(g.get("input_scale", 1)), "input_norm": bool(g.get("input_norm")),
          "learning_rate": lr, "min_lr": float(g.get("min_lr", 2e-4)), "seed": seed,
          "kron_shuffle_seed": "seed" if shuffled else None, "grad_clip": 1.0}
sources = {f"src{i}": dev + 0.01 * ((seed + i) % 3 - 1) for i in range(8)}
records = [{"kind": "config", "config": config, "extra": extra}, {"kind": "train", "step": 0, "grad_norm": 0.5},
           {"kind": "eval", "step": 0, "val_loss": 9.0, "emb_rms": R}, {"kind": "eval", "step": 500, "val_loss": dev, "emb_rms": 2 * R},
           {"kind": "final", "step": 500, "dev_loss": dev, "test_loss": dev, "by_source": {"dev": sources, "test": sources}}]
os.makedirs(os.path.join(os.environ["FAKE_RESULTS"], keep, name), exist_ok=True)
with open(os.path.join(os.environ["FAKE_RESULTS"], keep, name, "metrics.jsonl"), "w") as f:
    f.write("".join(json.dumps(r) + "\\n" for r in records))
"""

STUB = """#!/usr/bin/env bash
# a python that runs fair_choose on the fake logs and fakes every other module continue.sh calls
[ "$1" = "-m" ] || exec {real} "$@"
module=$2; shift 2
echo "$module $*" >> "$FAKE_RESULTS/calls.txt"
case $module in
  scripts.fair_choose) exec {real} -m scripts.fair_choose --logs "$FAKE_RESULTS/results/study_fair/runs" "$@" ;;
  scripts.run_study) exec {real} "$FAKE_RESULTS/fake_run_study.py" "$@" ;;
  scripts.fair_progress) exec {real} -m scripts.fair_progress --logs "$FAKE_RESULTS/results/study_fair/runs" \
      --logs-l "$FAKE_RESULTS/results/study_fair/runs_v50k" "$@" ;;
  *) exit 0 ;;
esac
"""


@pytest.mark.slow
def test_continue_runs_every_phase_the_plan_asks_for_and_stops(tmp_path):
    (tmp_path / "fake_run_study.py").write_text(FAKE_RUN_STUDY)
    stub = tmp_path / "my python"  # a path with a space: the printed commands must quote it
    stub.write_text(STUB.format(real=sys.executable))
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PYTHON=str(stub), LANES="2", FAKE_RESULTS=str(tmp_path), OPTIMUM=json.dumps(OPTIMUM), OWN=json.dumps(OWN))
    r = subprocess.run(["bash", "results/study_fair/continue.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    runs = tmp_path / "results" / "study_fair" / "runs"
    names = sorted(os.listdir(runs))
    # phase 1 (70); R edges: bpe_tied twice (best R 8 lies beyond both), and once each for the arms whose best
    # is the grid's top R 1 (bpe_lowrank, kron, shuffled kron, kron_tied, the hybrid); phase 2 (7 x 2 x 2);
    # kron's lr edges, twice
    assert len([n for n in names if n.endswith(("-s1337", "-s1338"))]) == 70 + (2 + 5) * 2 + 28 + 2 * 2
    assert {"bpe_tied-input_scale180-s1338", "bpe_tied-input_scale648-s1338", "hybrid-input_scale2.546-s1337"} <= set(names)
    assert not [n for n in names if n.startswith("bpe_tied-input_scale2333")]  # at most two extensions beyond the grid
    lr_edges = {f"kron-input_scale1-learning_rate{lr}-min_lr{lr / 10:g}-s1338" for lr in (0.008, 0.016)}
    assert lr_edges <= set(names)
    kept_ckpts = [json.loads(open(runs / n / "metrics.jsonl").readline())["extra"] for n in names if n.endswith("-s2003")]
    assert sum("--keep_ckpt_steps=[100,200,300,400]" in e for e in kept_ckpts) == 3  # kron, shuffled, best table
    assert len(os.listdir(tmp_path / "results" / "study_fair" / "runs_v50k")) == 35
    # the progress before the last batch (phase 3): every choosing run kept, phase 3 not started
    last = r.stdout[r.stdout.rindex("the fair study's kept runs") :]
    assert "  phase 1        70 of 70\n  R edge runs    14 (as" in last
    assert "  phase 2        28 of 28\n  lr edge runs    4 (as" in last and "phase 3 at S    0 of 35" in last
    assert "now: both axes are settled" in last and "left: 70 runs" in last, last
    calls = (tmp_path / "calls.txt").read_text()
    assert "scripts.fair_q4 --runs runs/study_fair --lanes 2" in calls
    assert "scripts.fair_choose --axis R --settled" in calls and "scripts.fair_choose --axis lr --settled" in calls
    ans = fair_report.answers(str(tmp_path / "results"))
    assert ans["best"] == "bpe_untied" and ans["chosen"]["kron"] == (False, 1.0, 8e-3)
    assert ans["primary"]["Q1 S"]["mean"] == pytest.approx(
        OPTIMUM["bpe_untied"][0] - OPTIMUM["kron"][0] - 0.05 * math.log(8e-3 / 9e-3) ** 2, abs=1e-6
    )


@pytest.mark.slow
def test_continue_stops_saying_why_when_an_asked_run_leaves_no_log(tmp_path):
    """A run that ends without a kept log (here: kron_tied's, whose runner exits 0 and writes nothing)
    is asked for again and again: continue.sh stops at that axis, naming the arm, instead of going on."""
    (tmp_path / "fake_run_study.py").write_text(
        'import sys\nif "kron_tied" not in sys.argv:\n' + "\n".join("    " + line for line in FAKE_RUN_STUDY.strip().splitlines()) + "\n"
    )
    stub = tmp_path / "python"
    stub.write_text(STUB.format(real=sys.executable))
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PYTHON=str(stub), LANES="2", FAKE_RESULTS=str(tmp_path), OPTIMUM=json.dumps(OPTIMUM), OWN=json.dumps(OWN))
    r = subprocess.run(["bash", "results/study_fair/continue.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "--axis R is not settled: " in r.stderr and "kron_tied: a setting lacks a seed" in r.stderr
    assert "--axis lr" not in (tmp_path / "calls.txt").read_text()  # phase 2 never started
