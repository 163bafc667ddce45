"""The tools in scripts/, probes/ and data/*/ run as modules (python -m scripts.compare) and, as nanoGPT users
type them, as files (python scripts/compare.py): run as a file, a tool runs itself as its module (runpy) with
its own clone's root first on sys.path, from any working directory, whatever that directory holds."""

import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def entry_points():
    for path in sorted(
        glob.glob(os.path.join(ROOT, "scripts", "*.py"))
        + glob.glob(os.path.join(ROOT, "probes", "*.py"))
        + glob.glob(os.path.join(ROOT, "data", "*", "*.py"))
    ):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if '__name__ == "__main__"' in text:
            yield os.path.relpath(path, ROOT), text


def test_every_tool_run_as_a_file_re_runs_itself_as_its_own_module():
    found = list(entry_points())
    assert len(found) >= 20, [p for p, _ in found]
    for path, text in found:
        module = path[:-3].replace(os.sep, ".")
        up = "/.." * path.count(os.sep) + "/.."
        assert f'runpy.run_module("{module}", run_name="__main__", alter_sys=True)' in text, path
        assert f'sys.path[0] = os.path.realpath(__file__ + "{up}")' in text, path  # its clone's root, whatever the depth


def test_tools_run_as_files_from_another_directory_even_one_holding_a_decoy_clone(tmp_path):
    for decoy in ("scripts", "probes", "data"):  # what a working directory inside another clone holds
        (tmp_path / decoy).mkdir()
        (tmp_path / decoy / "__init__.py").write_text("raise SystemExit('the decoy ran')\n")
    (tmp_path / "errors.py").write_text("raise SystemExit('the decoy ran')\n")
    for path in ("scripts/make_results.py", "probes/robustness.py", "data/english/prepare.py"):
        r = subprocess.run(
            [sys.executable, os.path.join(ROOT, path), "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": ""},
        )
        assert r.returncode == 0 and r.stdout.startswith("usage:"), (path, r.stderr[-500:])
