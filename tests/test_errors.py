"""errors.py: every entry point ends a user's mistake in one line naming the value, writes nothing, and
shows the traceback with --debug."""

import errno
import glob
import os
import re
import subprocess
import sys

import pytest
import torch

from errors import describe, run_cli
from tests.conftest import ROOT


def entry_points():
    """Every file a user runs: train.py and sample.py, and the modules under scripts/, probes/ and data/."""
    files = [os.path.join(ROOT, f) for f in ("train.py", "sample.py")]
    for pattern in ("scripts/*.py", "probes/*.py", "data/*/prepare.py"):
        files += glob.glob(os.path.join(ROOT, pattern))
    return sorted(f for f in files if 'if __name__ == "__main__":' in open(f).read())


def test_every_entry_point_goes_through_the_shared_handler():
    files = entry_points()
    assert len(files) >= 25
    for path in files:
        block = open(path).read().split('if __name__ == "__main__":')[-1]
        if os.path.basename(path) in ("train.py", "sample.py"):  # their main() calls run_cli itself (after --help)
            block = open(path).read().split("\ndef main(")[-1]
        assert "run_cli(" in block or "cli(main)" in block, path


def one_line_error(main, argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(main, argv, also=(ValueError,))
    message = str(e.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in capsys.readouterr().err
    return message


def test_tools_refuse_bad_inputs_in_one_line_and_write_nothing(tmp_path, capsys):
    from data.python_help import prepare
    from scripts import compare, export_hf, gpu_report, make_results, pack_gpu

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    missing = str(tmp_path / "missing")
    cases = [
        (compare.main, [missing, "--out", str(tmp_path / "cmp")], "is not a folder of runs", tmp_path / "cmp"),
        (
            make_results.main,
            ["--results", missing, "--out", str(tmp_path / "R.md")],
            "no RESULTS.template.md there",
            tmp_path / "R.md",
        ),
        (prepare.main, ["--out-dir", str(a_file)], "a_file': file exists", None),
        (
            gpu_report.main,
            ["--archive", str(a_file), "--results", str(tmp_path / "gpu")],
            "(0 bytes) is not a tar archive",
            tmp_path / "gpu",
        ),
        (pack_gpu.main, ["--data", missing, "--out", str(tmp_path / "pack")], "no shards in", tmp_path / "pack"),
        (export_hf.main, ["--ckpt", str(a_file), "--out", str(tmp_path / "hf")], "is empty (0 bytes)", tmp_path / "hf"),
    ]
    for main, argv, expected, not_written in cases:
        message = one_line_error(main, argv, capsys)
        assert expected in message, (main.__module__, message)
        assert not_written is None or not not_written.exists(), (main.__module__, not_written)
    assert a_file.read_text() == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_benchmarks_refuse_a_device_this_machine_lacks(capsys):
    from scripts import bench_embed, bench_train

    assert "device='cuda:3' but CUDA is not available" in one_line_error(bench_train.main, ["--device", "cuda:3"], capsys)
    assert "device='cuda' but CUDA is not available" in one_line_error(bench_embed.main, ["--devices", "cuda"], capsys)


def test_debug_shows_the_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "scripts.compare", str(tmp_path / "missing"), "--out", str(tmp_path / "c")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [f"error: {str(tmp_path / 'missing')!r} is not a folder of runs"]
    r = subprocess.run(
        [sys.executable, "-m", "scripts.compare", str(tmp_path / "missing"), "--out", str(tmp_path / "c"), "--debug"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr


def test_os_errors_read_as_one_line_naming_the_file():
    assert describe(FileExistsError(errno.EEXIST, "File exists", "/x/y")) == "'/x/y': file exists"
    assert describe(OSError(errno.ENOSPC, "No space left on device", "/x/ckpt.pt")).startswith("no space left on device (/x/ckpt.pt)")
    assert describe(FileNotFoundError("no train shards in 'd'")) == "no train shards in 'd'"


def test_a_tokenizer_that_cannot_be_had_is_one_line_naming_it(data_dir, tmp_path, monkeypatch, capsys):
    import tokenizer
    import train
    from tests.conftest import tiny_config

    (tmp_path / "bad.json").write_text('{"version": "1.0", "model": {"type": "BPE"')  # cut short
    (tmp_path / "bpe").mkdir()
    for name in ("vocab.bpe", "encoder.json"):
        (tmp_path / "bpe" / name).write_text("not the published file")
    cases = [
        ("nope", None, "unknown tokenizer 'nope': expected a tiktoken encoding"),
        (str(tmp_path / "bad.json"), None, "bad.json' is not a tokenizer.json the tokenizers library can read"),
        ("gpt2", str(tmp_path / "bpe"), "vocab.bpe has sha256 .*not the published file's"),
    ]
    for name, bpe_dir, expected in cases:
        tokenizer.get_tokenizer.cache_clear()
        if bpe_dir:
            monkeypatch.setenv("GPT2_BPE_DIR", bpe_dir)
        out = tmp_path / f"run-{len(name)}"
        message = one_line_error(lambda argv: train.train(tiny_config(data_dir, out, tokenizer=name, embedding="kron")), [], capsys)
        assert re.search(expected, message), message
        assert not out.exists()
    tokenizer.get_tokenizer.cache_clear()


def test_a_value_error_raised_inside_a_library_is_a_bug_and_keeps_its_traceback(capsys):
    """The tools pass also=(ValueError,) for their own checks; the same class raised by numpy or the standard
    library (statistics.mean([]), a reshape) is a bug, not a user's input, and is not reduced to one line."""
    import statistics

    import numpy as np

    def own_check(argv):
        raise ValueError("--grid 'x': expected key=value1,value2")

    def own_check_on_many_lines(argv):
        n = "x"
        raise ValueError(f"--n={n!r}: expected an integer")

    def reraised(argv):  # a bare re-raise of a library's error is still the library's
        try:
            int("x")
        except ValueError:
            raise

    assert one_line_error(own_check, [], capsys) == "error: --grid 'x': expected key=value1,value2"
    assert one_line_error(own_check_on_many_lines, [], capsys) == "error: --n='x': expected an integer"
    for bug in (lambda argv: statistics.mean([]), lambda argv: np.zeros(3).reshape(2, 2), reraised):
        with pytest.raises(ValueError):  # propagates: the traceback is printed by Python, not swallowed
            run_cli(bug, [], also=(ValueError,))


def test_a_damaged_json_file_is_refused_in_one_line_naming_it(tmp_path, capsys):
    """JSON the repository wrote and a user hands back (a benchmark, a pack's manifest) is parsed by
    runlog.read_json: damaged or not UTF-8, it is one line naming the file, not a json traceback."""
    from scripts import compare_bench, pack_gpu

    bad = tmp_path / "bench.json"
    bad.write_bytes(b'{"meta": {"args": ')
    message = one_line_error(compare_bench.main, ["--before", str(bad), "--after", str(bad)], capsys)
    assert str(bad) in message and "not a JSON file this repository wrote" in message
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "MANIFEST.json").write_bytes(b"\xff\xfe not utf-8")
    message = one_line_error(pack_gpu.main, ["--unpack", str(tmp_path / "data"), "--out", str(tmp_path / "pack")], capsys)
    assert "MANIFEST.json: not a JSON file this repository wrote" in message
