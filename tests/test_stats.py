"""stats.py: Holm's adjustment and the Wilcoxon signed-rank test on known answers."""
import pytest

from stats import holm, wilcoxon_p


def test_holm_multiplies_by_the_remaining_count_and_stays_monotone():
    # sorted 0.005, 0.01, 0.03, 0.04 of m = 4: x4, x3, x2, x1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, None, 0.005]) == pytest.approx([0.03, 0.06, 0.06, None, 0.02])
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_wilcoxon_exact_small_samples():
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.125)  # all of 4 positive: 2 / 2^4
    assert wilcoxon_p([1, -2, 3, -4, 5, -6]) == pytest.approx(0.84375)  # W+ = 1+3+5 = 9: 27 of 64 subsets of ranks sum <= 9, x2
    assert wilcoxon_p([0.0, 0.0]) == 1.0 and wilcoxon_p([1.0]) is None
