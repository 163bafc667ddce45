"""The statistics the reports use, in one place: paired t-intervals over seeds and the exact McNemar
test on paired outcomes. Plain Python (no scipy): the t quantiles are the standard table values."""
import math
import statistics
from math import comb

# Two-sided 95 % Student-t quantiles t_{0.975, df}, df = 1..30 (standard tables); beyond, 1.96.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_interval95(xs):
    """95 % t-interval of the mean of paired differences: mean +- t_{0.975, n-1} * sd / sqrt(n);
    None with fewer than 2 pairs."""
    xs = list(xs)
    if len(xs) < 2:
        return None
    m, sd = statistics.mean(xs), statistics.stdev(xs)
    half = (T975[len(xs) - 2] if len(xs) - 1 <= len(T975) else 1.96) * sd / math.sqrt(len(xs))
    return [m - half, m + half]


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
    p = 1.0 if n == 0 else min(1.0, 2 * sum(comb(n, k) for k in range(min(n_ab, n_ba) + 1)) / 2 ** n)
    return {"only_first": n_ab, "only_second": n_ba, "p_value": p}
