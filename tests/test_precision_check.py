"""scripts/precision_check.py: a bf16 run's gap to fp32 against the seed noise."""

import json

import pytest

from tests.conftest import write_run


def test_precision_check_compares_the_gap_with_seed_noise(tmp_path):
    from scripts import precision_check

    def run(name, curve, dtype="float32"):
        d = write_run(tmp_path, name, 1, [(s, v) for s, v in curve])
        with open(d / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"kind": "config", "step": 0, "config": {"dtype": dtype}}) + "\n")
        return str(d)

    steps = range(0, 101, 50)
    fp32 = run("fp32", [(s, 5 - s / 100) for s in steps])
    other = run("other", [(s, 5 - s / 100 + 0.01) for s in steps])
    close = run("bf16", [(s, 5 - s / 100 + 0.0005) for s in steps], "bfloat16")
    far = run("bf16far", [(s, 5 - s / 100 + 0.005) for s in steps], "bfloat16")
    assert precision_check.check(fp32, close, [other])["agrees"]
    assert not precision_check.check(fp32, far, [other])["agrees"]  # half the seed gap: not within a tenth
    with pytest.raises(ValueError, match="not trained with dtype=bfloat16"):
        precision_check.check(fp32, other, [other])
