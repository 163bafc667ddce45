"""scripts/isa_check.py's arithmetic (no training, no subprocess), and the README's quoted tolerance."""

import os
import re

import torch

from scripts import isa_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_loss_differences_and_tolerance():
    curves = {
        "default": {"bpe_tied": {"0": 10.0, "20": 6.0}, "kron": {"0": 11.0, "20": 7.0}},
        "aten_avx2": {"bpe_tied": {"0": 10.0, "20": 6.0003}, "kron": {"0": 11.0, "20": 7.0}},
    }
    d = isa_check.loss_differences(curves)
    assert d["aten_avx2"]["bpe_tied"]["step"] == 20 and abs(d["aten_avx2"]["bpe_tied"]["max_abs"] - 3e-4) < 1e-9
    assert d["aten_avx2"]["bpe_tied"]["steps_differing"] == 1
    assert d["aten_avx2"]["kron"] == {"max_abs": 0.0, "step": 0, "steps_differing": 0}
    assert isa_check.tolerance_from(d, safety=2.0) == 0.0006  # 3e-4 x 2, one significant digit, rounded up
    assert isa_check.tolerance_from({"p": {"a": {"max_abs": 1.31e-3}}}, safety=2.0) == 0.003
    assert isa_check.tolerance_from({"p": {"a": {"max_abs": 0.0}}}) == 1e-6


def test_ulp_measures():
    a = torch.tensor([1.0, 2.0, -3.0])
    b = a.clone()
    assert isa_check.ulps(a, b) == 0 and isa_check.ulps_of_largest(a, b) == 0
    b[0] = torch.nextafter(a[0], torch.tensor(2.0))  # one ulp of 1.0 = a quarter ulp of 3.0
    assert isa_check.ulps(a, b) == 1
    assert isa_check.ulps_of_largest(a, b) == 0.5  # the largest |element|, 3.0, has ulp 2**-22
    assert isa_check.ulps(torch.tensor([-0.0]), torch.tensor([0.0])) == 0


def test_compare_ops_counts_what_differs():
    ref = {"kron": {"op": {"x": torch.tensor([1.0, 2.0]), "y": torch.tensor([3.0])}}}
    other = {"kron": {"op": {"x": torch.tensor([1.0, 2.5]), "y": torch.tensor([3.0])}}}
    s = isa_check.compare_ops(ref, other)["kron"]["op"]
    assert (s["tensors_differing"], s["elements_differing"], s["max_abs"]) == (1, 1, 0.5)


def test_readme_quotes_the_kept_tolerance():
    """The README's 'within N nats' is the tolerance results/isa_check/isa_check.json holds, typed from it."""
    kept = isa_check.load()
    readme = " ".join(open(os.path.join(ROOT, "README.md")).read().split())  # as read, whatever the line breaks
    quoted = re.search(r"within ([0-9.]+) nats of each other across kernel paths", readme)
    assert quoted, "README: the kernel-path sentence ('within N nats of each other across kernel paths') is missing"
    assert float(quoted.group(1)) == kept["tolerance"]
    arms = re.search(r"up to ([0-9.e-]+) and ([0-9.e-]+) nats", readme)  # each arm's largest difference, 2 digits
    assert arms, "README: the per-arm differences ('up to X and Y nats') are missing"
    for quoted_arm, arm in zip(arms.groups(), ("bpe_tied", "kron")):
        largest = max(d[arm]["max_abs"] for d in kept["loss_differences"].values())
        assert float(quoted_arm) == float(f"{largest:.2g}"), arm


def test_rendered_table_is_the_kept_json_rendered():
    with open(os.path.join(isa_check.OUT, "isa_check.md")) as f:
        assert f.read() == isa_check.render(isa_check.load())
