"""scripts/quickstart.py's comparison with the kept table: fed dicts, no training."""

from scripts.quickstart import compare_with_kept

AMD = {"cpu": "AMD EPYC", "cpu_capability": "AVX512", "threads": 2, "torch": "2.13.0+cpu", "numpy": "2.4.6"}
KEPT = {"curves": {"bpe_tied": {"0": 10.7329, "20": 6.4485}, "kron": {"0": 10.8670, "20": 6.7504}}, "machine": AMD}


def test_exact_match():
    line = compare_with_kept({"bpe_tied": {0: 10.7329, 20: 6.4485}, "kron": {0: 10.8670, 20: 6.7504}}, KEPT, 0.002, AMD)
    assert line == "kept table: exact match (4 losses, every digit)"


def test_within_tolerance_names_the_largest_difference_and_its_step():
    line = compare_with_kept({"bpe_tied": {0: 10.7329, 20: 6.4490}, "kron": {0: 10.8671, 20: 6.7504}}, KEPT, 0.002, AMD)
    assert line.startswith("kept table: within the kernel-path tolerance 0.002 nats")
    assert "largest difference 0.0005 (bpe_tied, step 20)" in line


def test_outside_tolerance_reports_where_the_kept_table_came_from_and_what_differs():
    intel = {**AMD, "cpu": "Intel(R) Xeon(R) Platinum 8480+", "threads": 8}
    line = compare_with_kept({"bpe_tied": {0: 10.7329, 20: 6.46}}, KEPT, 0.002, intel)
    assert "outside the kernel-path tolerance 0.002 nats" in line
    assert "(bpe_tied, step 20)" in line
    assert "came from cpu AMD EPYC, cpu_capability AVX512, threads 2" in line
    assert "differs in cpu Intel(R) Xeon(R) Platinum 8480+ here, threads 8 here" in line


def test_outside_tolerance_on_the_same_facts_says_so():
    line = compare_with_kept({"kron": {20: 6.76}}, KEPT, 0.002, AMD)
    assert line.endswith("this machine records the same facts")


def test_kept_table_without_facts_and_without_a_tolerance():
    old = {"curves": KEPT["curves"], "machine": {"cpu": "x86_64", "cores": 2}}
    line = compare_with_kept({"kron": {20: 6.7505}}, old, None, AMD)
    assert line.startswith("kept table: not an exact match: largest difference 0.0001 (kron, step 20)")
    assert line.endswith("records no machine facts to compare")


def test_nothing_in_common():
    assert "nothing to compare" in compare_with_kept({"bpe_untied": {0: 10.7}}, KEPT, 0.002, AMD)
