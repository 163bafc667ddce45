"""stats.py: Holm's adjustment and the sign test on known answers."""

import pytest

from stats import holm, sign_test


def test_holm_multiplies_by_the_remaining_count_and_stays_monotone():
    # sorted 0.005, 0.01, 0.03, 0.04 of m = 4: x4, x3, x2, x1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, None, 0.005]) == pytest.approx([0.03, 0.06, 0.06, None, 0.02])
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []
    with pytest.raises(ValueError, match="must lie in"):
        holm([float("nan"), 0.01])  # a NaN would otherwise turn the whole family into 1.0


def test_sign_test_exact_small_samples():
    assert sign_test(4, 0) == pytest.approx(0.125)  # 4 of 4 one way: 2 / 2^4
    assert sign_test(5, 1) == pytest.approx(0.21875)  # P[X <= 1] of Binomial(6, 1/2) = 7/64, two-sided 14/64
    assert sign_test(3, 3) == 1.0 and sign_test(0, 0) is None
