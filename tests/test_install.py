"""The install as a whole: the README's CPU torchrun example, and every command the README names."""

import os
import re
import shlex
import sys

import pytest

from runlog import read_metrics
from tests.conftest import ROOT, run


def torchrun():
    exe = os.path.join(os.path.dirname(sys.executable), "torchrun")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_readme_cpu_torchrun_example_with_two_gloo_processes(data_dir, tmp_path):
    readme = open(os.path.join(ROOT, "README.md")).read()
    line = next(ln for ln in readme.splitlines() if ln.startswith("torchrun") and "_cpu.py" in ln)
    args = shlex.split(line.split("#")[0])
    assert args[:3] == ["torchrun", "--standalone", "--nproc_per_node=2"]
    out = tmp_path / "ddp"
    r = run(
        torchrun() + args[1:] + [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2", "--eval_interval=2", "--eval_iters=1"],
        OMP_NUM_THREADS="1",
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert [rec["step"] for rec in read_metrics(str(out), "train")] == [0, 1]
    cfg = read_metrics(str(out), "config")[0]
    assert cfg["world_size"] == 2 and cfg["config"]["gradient_accumulation_steps"] == 4


def readme_commands():
    """Every command line in the README's code blocks (continuations joined, comments dropped)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    cmds = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith(("python ", "bash ", "torchrun ")):
                cmds.append(line)
    return cmds


@pytest.mark.slow
def test_readme_commands_name_files_that_exist_and_scripts_that_answer_help():
    cmds = readme_commands()
    assert len(cmds) >= 10
    scripts = set()
    for cmd in cmds:
        words = shlex.split(cmd.replace("$HOST", "host"))
        for w in words:
            if re.fullmatch(r"[\w/.-]+\.(py|sh)", w):
                assert os.path.isfile(os.path.join(ROOT, w)), f"README names {w!r}, which does not exist: {cmd}"
                if w.endswith(".py") and not w.startswith("config/"):
                    scripts.add(w)
    for script in sorted(scripts):
        r = run([sys.executable, script, "--help"], timeout=120)
        assert r.returncode == 0 and "usage" in r.stdout.lower(), f"{script} --help: {r.stderr[-500:]}"
