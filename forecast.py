"""The scaling forecast (issue 42): fit L(N, D) = E + A / N^alpha + B / D^beta to each arm of a grid of
finished runs (scripts/run_forecast.py) and forecast the gap between two arms at a larger (N, D).

    python forecast.py results/forecast/runs --ref bpe_tied --other kron --out results/forecast/forecast.json

Definitions (numbers only, no prose; analysis.py's conventions):
  * a cell is one (arm, size, budget); its points are its runs, one per seed: N = non-embedding
    parameters and D = training tokens, both from the run's log ("scale"), L = its final evaluation's
    test-half loss (every validation window of the test half, the mean over sources: final_eval);
  * the fit, as Hoffmann et al. 2022: with E = e^e, A = e^a, B = e^b, minimise over (e, a, b, alpha, beta)
    sum_i Huber_delta(LSE(a - alpha ln N_i, b - beta ln D_i, e) - ln L_i), delta = 1e-3, with L-BFGS-B
    from each start of a small grid, keeping the best; alpha and beta shared by every arm (the plan's main form, the
    command's default; forecast() itself defaults to per arm) or per arm;
  * gap = L_ref(N*, D*) - L_other(N*, D*), positive when `other` is forecast to reach lower loss;
  * the interval (PLAN.md, amendment 5): 2.5 and 97.5 percentiles of the gap over bootstrap replicates,
    each one a functional form (per-arm or shared exponents, with or without the smallest size; equal
    shares) fitted to the runs with seeds resampled within each size (one draw for all its budgets and
    arms: a size's budgets share each seed's stable run, its arms each seed's initialisation), started
    from every form's full-data fit (not only its own: another basin); each replicate's gap g is widened about its
    form's full-data gap g_f to g_f + sqrt(n/(n-1)) (g - g_f), n the fewest seeds of a size (a bootstrap of
    n draws has (n-1)/n of a mean's variance); p_other_better = the share of replicates with gap > 0. The first
    plan's interval (a draw per (size, budget) cell, started from its form's fit, not widened) is
    reported beside it;
  * held-out: the main form fitted without the largest size, its forecast of that size's cells (mean over
    seeds) against what they measured; the same without the largest budget (descriptive);
  * residuals: each cell's fitted loss and measured - fitted; at_bounds: the parameters on a bound.
"""

import argparse
import itertools
import json
import math
import os
import re

import numpy as np
from scipy.optimize import minimize

from runlog import read_metrics

NAME = re.compile(r"^(?P<arm>.+)-L(?P<n_layer>\d+)d(?P<n_embd>\d+)h(?P<n_head>\d+)-i(?P<steps>\d+)-s(?P<seed>\d+)$")
HUBER_DELTA = 1e-3
# starts: e, a, b, alpha, beta (a small version of Hoffmann et al.'s grid)
START_GRID = list(itertools.product((0.0, 1.0), (0.0, 5.0, 10.0), (0.0, 5.0, 10.0), (0.1, 0.3, 0.6), (0.1, 0.3, 0.6)))
BOUNDS = [(-10.0, 50.0)] * 3 + [(0.0, 3.0)] * 2
# The Huber objective on log-loss residuals is tiny (~1e-7 near a good fit: residuals ~1e-3, squared), far below
# scipy's default relative stopping tolerance: without these L-BFGS-B stops early wherever it starts (a synthetic
# grid from a known surface gave a forecast gap of 0.03 for a true 0.17 from the true parameters themselves).
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000}
TARGET = (85e6, 2.5e9)  # GPT-2 124M's non-embedding parameters, and the tokens the plan forecasts at


def run_point(path):
    """{n, d, loss} of a finished run folder (a final record at its max_iters, and the scale it logged:
    non-embedding parameters and tokens), else None."""
    if not os.path.isfile(os.path.join(path, "metrics.jsonl")):
        return None
    records = read_metrics(path)
    config, final = [r for r in records if r["kind"] == "config"], [r for r in records if r["kind"] == "final"]
    scale = config[-1].get("scale") if config else None
    if not scale or not final or final[-1]["step"] < config[-1]["config"]["max_iters"] or records[-1]["kind"] == "diverged":
        return None
    if not math.isfinite(final[-1]["test_loss"]):
        return None
    return {"n": scale["non_embedding_params"], "d": scale["tokens"], "loss": final[-1]["test_loss"]}


def load_points(folders, names=None):
    """[{arm, size, seed, n, d, loss, path}] for every finished run folder directly under `folders`
    named as scripts/run_forecast.py names them (the scratch/ checks are not), only those in `names`
    when given; unfinished runs are left out with a line saying so."""
    points = []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            m, path = NAME.match(name), os.path.join(folder, name)
            if not m or (names is not None and name not in names) or not os.path.isfile(os.path.join(path, "metrics.jsonl")):
                continue
            point = run_point(path)
            if point is None:
                print(f"left out {path}: unfinished, diverged, without a final evaluation, or logged before runs recorded their scale")
                continue
            size = (int(m["n_layer"]), int(m["n_embd"]), int(m["n_head"]))
            points.append({"arm": m["arm"], "size": size, "seed": int(m["seed"]), **point, "path": path})
    if not points:
        raise FileNotFoundError(f"no finished forecast runs (<arm>-L<l>d<d>h<h>-i<steps>-s<seed>) in {folders}")
    return points


def predict(theta, n, d):
    """L(N, D) = E + A / N^alpha + B / D^beta for theta = (e, a, b, alpha, beta)."""
    e, a, b, alpha, beta = theta
    return np.exp(e) + np.exp(a - alpha * np.log(n)) + np.exp(b - beta * np.log(d))


def huber_loss(theta, log_n, log_d, log_l):
    """sum Huber(LSE(a - alpha ln N, b - beta ln D, e) - ln L) and its gradient in theta."""
    e, a, b, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(0)
    w = np.exp(terms - top)
    lse = top + np.log(w.sum(0))
    w /= w.sum(0)
    r = lse - log_l
    value = np.where(np.abs(r) <= HUBER_DELTA, 0.5 * r**2, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA)).sum()
    g = np.clip(r, -HUBER_DELTA, HUBER_DELTA)
    grad = np.array([(g * w[2]).sum(), (g * w[0]).sum(), (g * w[1]).sum(), -(g * w[0] * log_n).sum(), -(g * w[1] * log_d).sum()])
    return value, grad


def fit(points, arms, shared=False, starts=None):
    """{arm: theta} minimising the summed Huber loss, from each start (a list of {arm: theta}; the
    START_GRID by default), keeping the best. shared: one alpha and beta for all arms (a joint fit)."""
    data = {arm: [np.log([p[k] for p in points if p["arm"] == arm]) for k in ("n", "d", "loss")] for arm in arms}
    if starts is None:
        starts = [{arm: np.array(s) for arm in arms} for s in START_GRID]
    if not shared:  # independent fits: each arm keeps its own best start
        return {arm: _best([s[arm] for s in starts], lambda x, a=arm: huber_loss(x, *data[a]), BOUNDS) for arm in arms}

    def joint(x):  # x = (alpha, beta, then e, a, b per arm)
        value, grad = 0.0, np.zeros_like(x)
        for i, arm in enumerate(arms):
            v, g = huber_loss(np.concatenate([x[2 + 3 * i : 5 + 3 * i], x[:2]]), *data[arm])
            value += v
            grad[:2] += g[3:]
            grad[2 + 3 * i : 5 + 3 * i] = g[:3]
        return value, grad

    flat = [np.concatenate([s[arms[0]][3:]] + [s[arm][:3] for arm in arms]) for s in starts]
    x = _best(flat, joint, BOUNDS[3:] + BOUNDS[:3] * len(arms))
    return {arm: np.concatenate([x[2 + 3 * i : 5 + 3 * i], x[:2]]) for i, arm in enumerate(arms)}


def _best(starts, objective, bounds, polish=3):
    """The lowest minimum over the starts: each searched with scipy's default tolerances (cheap), then the
    `polish` best of those carried to convergence with LBFGS_OPTIONS, keeping the lowest."""
    found = sorted((minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds) for x0 in starts), key=lambda r: r.fun)
    polished = [minimize(objective, r.x, jac=True, method="L-BFGS-B", bounds=bounds, options=LBFGS_OPTIONS) for r in found[:polish]]
    return min(polished, key=lambda r: r.fun).x


def cells(points):
    """{(size, steps-or-tokens D): {arm: {seed: point}}}: the grid's cells, arms side by side."""
    out = {}
    for p in points:
        out.setdefault((p["size"], p["d"]), {}).setdefault(p["arm"], {})[p["seed"]] = p
    return out


def resample(points, rng, per="size"):
    """The points with seeds drawn with replacement, one draw per size for all its budgets and arms
    (per="size", amendment 5) or per (size, budget) cell for its arms (per="cell", the first plan),
    from the seeds found there. Each (arm, cell) takes the drawn seeds it has, so the arms stay paired
    by seed; one that has none of them (its other runs diverged) keeps the seeds it has."""
    groups = seeds_by(points, (lambda p: p["size"]) if per == "size" else (lambda p: (p["size"], p["d"])))
    draws = {
        key: [sorted(seeds)[i] for i in rng.choice(len(seeds), size=len(seeds), replace=True)] for key, seeds in sorted(groups.items())
    }
    out = []
    for (size, d), by_arm in sorted(cells(points).items()):
        draw = draws[size if per == "size" else (size, d)]
        for arm, by_seed in sorted(by_arm.items()):
            out += [by_seed[s] for s in draw if s in by_seed] or list(by_seed.values())
    return out


def seeds_by(points, key):
    """{key(point): the seeds found there}."""
    out = {}
    for p in points:
        out.setdefault(key(p), set()).add(p["seed"])
    return out


def seeds_per_size(points):
    """The fewest seeds any size has: the n of widen() (the grid's 2 when every size has both)."""
    return min(len(s) for s in seeds_by(points, lambda p: p["size"]).values())


def by_scale(points):
    """The sizes ordered by their non-embedding parameters (every arm's of a size: the body is shared)."""
    n = {}
    for p in points:
        n[p["size"]] = max(n.get(p["size"], 0), p["n"])
    return sorted(n, key=n.get)


def forms(points):
    """{name: (shared exponents, points)}: per-arm and shared exponents, each on every size and, when at
    least three sizes would remain, without the smallest."""
    sizes = by_scale(points)
    subsets = {"all sizes": points}
    if len(sizes) >= 4:
        subsets["without the smallest size"] = [p for p in points if p["size"] != sizes[0]]
    return {
        f"{kind}, {label}": (kind == "shared exponents", pts)
        for label, pts in subsets.items()
        for kind in ("per-arm exponents", "shared exponents")
    }


def at_bounds(theta, tol=1e-6):
    """The parameters (E, A, B, alpha, beta) the fit left on a bound of BOUNDS."""
    names = ("E", "A", "B", "alpha", "beta")
    return [n for n, v, (lo, hi) in zip(names, theta, BOUNDS) if v <= lo + tol or v >= hi - tol]


def params_of(theta):
    e, a, b, alpha, beta = (float(v) for v in theta)
    return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": alpha, "beta": beta}


def gap_at(thetas, ref, other, n, d):
    return float(predict(thetas[ref], n, d) - predict(thetas[other], n, d))


def held_out(points, arms, shared=False, pair=None, leave="size"):
    """The form fitted without the largest size (leave="size"; or the largest budget, leave="budget"),
    against the left-out cells (cell_rows, mean loss over seeds): per cell the forecast error (fitted -
    measured, nats), each arm's mean absolute error, and the mean and largest over all; with pair =
    (ref, other), also the error of the forecast gap ref - other at each left-out cell and its mean absolute value
    (the plan's rule 1 reads that one, for the size)."""
    left = by_scale(points)[-1] if leave == "size" else max(p["d"] for p in points)
    left_key = "N" if leave == "size" else "D"

    def is_left(p):
        return (p["size"] if leave == "size" else p["d"]) == left

    thetas = fit([p for p in points if not is_left(p)], arms, shared)
    rows = [{**r, "error": r["fitted"] - r["mean_loss"]} for r in cell_rows([p for p in points if is_left(p)], thetas)]
    errors = [abs(r["error"]) for r in rows]
    out = {
        "left_out": f"largest {leave}",
        left_key: left if leave == "budget" else rows[0]["N"],
        "cells": rows,
        "arm_mean_abs_error": {
            a: float(np.mean([abs(r["error"]) for r in rows if r["arm"] == a])) for a in sorted({r["arm"] for r in rows})
        },
        "mean_abs_error": float(np.mean(errors)),
        "max_abs_error": float(max(errors)),
    }
    if pair:
        by = {(r["arm"], tuple(r["size"]), r["D"]): r["error"] for r in rows}
        gaps = {k[1:]: by[k] - by[(pair[1],) + k[1:]] for k in by if k[0] == pair[0] and (pair[1],) + k[1:] in by}
        out["gap_errors"] = {f"L{s[0]}d{s[1]} D {d:.3g}": e for (s, d), e in sorted(gaps.items())}
        out["gap_mean_abs_error"] = float(np.mean([abs(e) for e in gaps.values()])) if gaps else None
    return out


def cell_rows(points, thetas):
    """Each cell (arm, size, D): N, its seeds, the mean loss over them, the fit's loss and the residual."""
    rows = []
    for (size, d), by_arm in sorted(cells(points).items()):
        for arm, by_seed in sorted(by_arm.items()):
            n = next(iter(by_seed.values()))["n"]
            mean = float(np.mean([p["loss"] for p in by_seed.values()]))
            fitted = float(predict(thetas[arm], n, d))
            rows.append({"arm": arm, "size": list(size), "N": n, "D": d, "seeds": sorted(by_seed), "mean_loss": mean})
            rows[-1].update(fitted=fitted, residual=mean - fitted)
    return rows


def widen(gap, centre, n):
    """A replicate's gap moved away from its form's full-data gap by sqrt(n/(n-1)) (amendment 5)."""
    return centre + math.sqrt(n / (n - 1)) * (gap - centre) if n > 1 else gap


def interval(gaps):
    return [float(np.percentile(gaps, 2.5)), float(np.percentile(gaps, 97.5))]


def bootstrap(points, fits, arms, ref, other, targets, replicates, seed, per):
    """{target: [gap per replicate]}: replicate r fits form r mod len(fits) to resampled points: per
    "size", from every form's fit and widened (amendment 5); per "cell", from its own form's fit (the
    first plan). Also the share of replicates with a parameter on a bound."""
    rng, names = np.random.default_rng(seed), list(fits)
    n_seeds = seeds_per_size(points)
    gaps, on_bound = {t: [] for t in targets}, 0
    for r in range(replicates):
        sh, pts, thetas = fits[names[r % len(names)]]
        starts = [thetas] + [t for _, _, t in fits.values() if t is not thetas] if per == "size" else [thetas]
        boot = fit(resample(pts, rng, per), arms, sh, starts=starts)
        on_bound += any(at_bounds(t) for t in boot.values())
        for t in targets:
            g = gap_at(boot, ref, other, *t)
            gaps[t].append(widen(g, gap_at(thetas, ref, other, *t), n_seeds) if per == "size" else g)
    return gaps, on_bound / replicates


def forecast(points, ref, other, target=TARGET, replicates=400, seed=0, shared=False, also=()):
    """The forecast.json dict: gap = L_ref - L_other at target = (N*, D*) from the main form (per-arm
    exponents unless shared), its bootstrap interval and p_other_better over seeds and forms (and the
    first plan's interval beside it), the parameters per arm and any on a bound, every form's own gap,
    the cells used with their residuals, and the held-out checks. Every arm in the points is fitted
    (shared exponents are shared by all of them); `also`: more (N, D) targets, each with its gap,
    interval and probability from the same replicates."""
    found = sorted({p["arm"] for p in points})
    missing = [a for a in (ref, other) if a not in found]
    if missing:
        raise ValueError(f"arm {missing[0]!r} has no finished runs; arms found: {found}")
    arms = found
    n, d = target
    fits = {name: (sh, pts, fit(pts, arms, sh)) for name, (sh, pts) in forms(points).items()}
    main = "shared exponents, all sizes" if shared else "per-arm exponents, all sizes"
    targets = [(n, d)] + [tuple(t) for t in also]
    gaps, on_bound = bootstrap(points, fits, arms, ref, other, targets, replicates, seed, "size")
    first_plan, _ = bootstrap(points, fits, arms, ref, other, targets, replicates, seed, "cell")
    best = fits[main][2]

    def at(t):
        return {
            "target": {"N": t[0], "D": t[1]},
            "gap": gap_at(best, ref, other, *t),
            "interval95": interval(gaps[t]),
            "p_other_better": float(np.mean(np.array(gaps[t]) > 0)),
            "first_plan_interval95": interval(first_plan[t]),
        }

    return {
        "ref": ref,
        "other": other,
        **at((n, d)),
        "form": main,
        "params": {arm: params_of(t) for arm, t in best.items()},
        "at_bounds": {arm: at_bounds(t) for arm, t in best.items()},
        "forms": {
            name: {"gap": gap_at(t, ref, other, n, d), "params": {a: params_of(x) for a, x in t.items()}}
            for name, (_, _, t) in fits.items()
        },
        "bootstrap": {"replicates": replicates, "seed": seed, "forms": list(fits), "per": "size", "share_on_a_bound": on_bound},
        "cells": cell_rows(points, best),
        "held_out": held_out(points, arms, shared, pair=(ref, other)),
        "held_out_budget": held_out(points, arms, shared, pair=(ref, other), leave="budget"),
        "also": [at(t) for t in targets[1:]],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="folders holding the forecast grid's run folders (or their kept logs)")
    p.add_argument("--ref", required=True, help="the reference arm (as run_forecast names it, e.g. bpe_tied)")
    p.add_argument("--other", required=True, help="the arm compared with it (e.g. kron-input_scale50)")
    p.add_argument("--n", type=float, default=TARGET[0], help="non-embedding parameters to forecast at")
    p.add_argument("--d", type=float, default=TARGET[1], help="training tokens to forecast at")
    p.add_argument("--replicates", type=int, default=400)
    p.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed")
    p.add_argument("--per-arm", action="store_true", help="the main form fits alpha and beta per arm (default: shared, as the plan says)")
    p.add_argument("--also", nargs=2, type=float, action="append", default=[], metavar=("N", "D"), help="another target (repeatable)")
    p.add_argument("--out", default=None, help="write the result here as JSON (else print it)")
    a = p.parse_args(argv)
    if a.replicates < 1 or not (a.n > 0 and a.d > 0):
        p.error(f"--replicates {a.replicates}, --n {a.n}, --d {a.d}: expected an integer >= 1 and numbers > 0")
    out = forecast(load_points(a.runs), a.ref, a.other, (a.n, a.d), a.replicates, a.seed, not a.per_arm, [tuple(t) for t in a.also])
    text = json.dumps(out, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return out


if __name__ == "__main__":
    from errors import run_cli

    run_cli(main, also=(ValueError,))
