"""The statistics the reports use, in one place: paired t-intervals over seeds, the exact McNemar and
sign tests, and Holm's adjustment of a family of p-values, with scipy's exact Student-t quantiles and
binomial test."""

import math
import statistics

from scipy import stats as _scipy


def t_interval95(xs):
    """95 % t-interval of the mean of paired differences: mean +- t_{0.975, n-1} * sd / sqrt(n);
    None with fewer than 2 pairs."""
    xs = list(xs)
    if len(xs) < 2:
        return None
    m, sd = statistics.mean(xs), statistics.stdev(xs)
    half = float(_scipy.t.ppf(0.975, len(xs) - 1)) * sd / math.sqrt(len(xs))
    return [m - half, m + half]


def t_test_p(xs):
    """Two-sided p of the one-sample t-test that the mean of paired differences is 0:
    t = mean / (sd / sqrt(n)), n - 1 degrees of freedom; None with fewer than 2 pairs, 0 when every
    difference is the same nonzero value."""
    xs = list(xs)
    if len(xs) < 2:
        return None
    m, sd = statistics.mean(xs), statistics.stdev(xs)
    if sd == 0:
        return 1.0 if m == 0 else 0.0
    return float(2 * _scipy.t.sf(abs(m) / (sd / math.sqrt(len(xs))), len(xs) - 1))


def mean_std(xs):
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    xs = list(xs)
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def mcnemar(a, b):
    """Exact two-sided McNemar test on paired booleans (e.g. top-1 survival of two models on the same
    pairs): n_ab = pairs only a keeps, n_ba = only b; p = min(1, 2 * P[X <= min(n_ab, n_ba)]),
    X ~ Binomial(n_ab + n_ba, 1/2)."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"McNemar needs paired outcomes: got {len(a)} and {len(b)}")
    n_ab = sum(x and not y for x, y in zip(a, b))
    n_ba = sum(y and not x for x, y in zip(a, b))
    n = n_ab + n_ba
    p = 1.0 if n == 0 else float(_scipy.binomtest(min(n_ab, n_ba), n, 0.5).pvalue)
    return {"only_first": n_ab, "only_second": n_ba, "p_value": p}


def sign_test(higher, lower):
    """Exact two-sided sign test: p of a split at least this uneven between `higher` and `lower` under
    Binomial(higher + lower, 1/2) (ties dropped); None when there is nothing to split."""
    n = higher + lower
    return None if n == 0 else float(_scipy.binomtest(higher, n, 0.5).pvalue)


def holm(pvalues):
    """Holm's step-down adjustment of a family of p-values (same order back): the i-th smallest of m
    is multiplied by (m - i), made monotone, capped at 1. None entries stay None and do not count."""
    if any(p is not None and not 0 <= p <= 1 for p in pvalues):  # NaN fails both comparisons
        raise ValueError(f"holm: p-values must lie in [0, 1] (or be None), got {pvalues}")
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m, out, running = len(present), list(pvalues), 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
