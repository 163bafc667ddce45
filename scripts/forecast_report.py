"""The forecast study's results (results/forecast/PLAN.md) for scripts/make_results.py.

While the grid runs, RESULTS.md names the study without a count of kept runs (the plan's amendment 1).
Once every run that results/forecast/grid.json plans has a finished kept log, this fits the plan's
forecast once (forecast.py, shared exponents, 400 replicates), writes results/forecast/forecast.json
and forecast.png, and renders RESULTS.md's section with the plan's decision rules applied:

  F1  L_bpe_tied - L_kron at N = 85M, D = 2.5B         (rule 1 reads F1's held-out gap error)
  F2  L_(the grid's third arm, the best learned table) - L_kron at the same point
  F3  both gaps at N = 85M, D = 30.1M (what scripts/gpu_study.sh measures)
  C1  a branch's final loss against the same schedule run from scratch (results/forecast/runs/scratch/)
  C2  WSD against cosine at one budget (results/forecast/cosine/)
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.forecast_report", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import hashlib
import inspect
import json
import os

import numpy as np

import forecast
from errors import run_cli
from plotting import plot_scaling
from runlog import read_json
from scripts import fair_choose
from scripts.run_forecast import check_plan, grid_runs, parse_arm, read_grid
from scripts.run_study import diverged_at

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_STUDY = "config/gpu_study_124m.py"  # F3's tokens: what scripts/gpu_study.sh trains each arm on
REPLICATES = 400
HELD_OUT_LIMIT = 0.02  # nats: rule 1, F1's mean absolute held-out gap error, read for every 124M forecast


def folder(results):
    return os.path.join(results, "forecast")


def f3_target():
    """(N, D) of F3: the forecast's N (GPT-2 124M) and the tokens the GPU study trains, from its config."""
    from configurator import load_config

    c = load_config([os.path.join(ROOT, GPU_STUDY)])
    return forecast.TARGET[0], float(c["max_iters"] * c["batch_size"] * c["block_size"] * c["gradient_accumulation_steps"])


def declared_third_arm(here):
    """grid.json's third arm as written there (F2's table: the x50 table, or the fair study's best by the
    plan's amendment 3); the grid must hold bpe_tied, kron and exactly one other arm."""
    specs = read_grid(os.path.join(here, "grid.json"))["arms"]
    labels = [parse_arm(a)[0] for a in specs]
    third = [a for a, label in zip(specs, labels) if label not in ("bpe_tied", "kron")]
    if len(third) != 1 or sorted(label for label in labels if label in ("bpe_tied", "kron")) != ["bpe_tied", "kron"]:
        raise ValueError(f"{here}/grid.json arms {labels}: expected bpe_tied, kron and one learned table (F2's)")
    return third[0]


def questions(here):
    """{F1: (bpe_tied, kron), F2: (grid.json's third arm, kron)}, by run label."""
    return {"F1": ("bpe_tied", "kron"), "F2": (parse_arm(declared_third_arm(here))[0], "kron")}


X50 = "bpe_untied:input_scale=50"  # the plan's third arm until its amendment 3 names the fair study's best table
TIED_AT_ITS_OWN = "bpe_tied:input_rms=0.02"  # the fair study's best table when it is bpe_tied as it stands (amendment 4)


def third_arm(results):
    """(the grid's declared third arm, the one the plan's amendments 3-4 ask for, why): the fair study's
    best table at its chosen setting (fair_choose --forecast-arm) once every arm's learning rate is
    chosen; the x50 table while it is not, or when that best table is bpe_tied as it stands (F1's arm).
    Missing or unreadable fair-study logs are an error, not "not chosen": the guard fails closed."""
    declared = declared_third_arm(folder(results))
    try:
        best = fair_choose.forecast_arm(fair_choose.choice_from(os.path.join(results, "study_fair", "runs"), "lr"))
    except fair_choose.NotSettled:
        return declared, X50, "the fair study has not chosen every arm's learning rate"
    if best == TIED_AT_ITS_OWN:
        return declared, X50, "the fair study's best table is bpe_tied as it stands, already F1's arm"
    return declared, best, "the fair study's best table at its chosen setting"


def third_arm_record(results):
    """F2's table and why, as RESULTS.md says it, from the logs as they are now. run.sh's guard made the
    declared arm the wanted one at the grid's start, and the fair study's choice does not move once made
    (phase 3's seeds never choose): a x50 table that differs from what is wanted now was declared before
    the fair study had chosen. Any other difference means grid.json was not held to the guard."""
    declared, wanted, why = third_arm(results)
    if declared != wanted and declared == X50:
        why = "the fair study had not chosen every arm's learning rate when the grid started"
    elif declared != wanted:
        why = f"as grid.json declares it; not what the plan's amendments ask for, {wanted}"
    return {"arm": declared, "why": why, "exploratory": declared != X50}


def planned_logs(results):
    """(the grid's planned runs, {run name: where its kept log goes}), from grid.json."""
    runs_dir = os.path.join(folder(results), "runs")
    planned = grid_runs(os.path.join(folder(results), "grid.json"), root=ROOT)
    return planned, {f"{r['name']}-s{r['seed']}": os.path.join(runs_dir, f"{r['name']}-s{r['seed']}", "metrics.jsonl") for r in planned}


def kept_grid_runs(results):
    """The grid runs with a kept log (the scratch checks and stray files aside)."""
    return [n for n, path in planned_logs(results)[1].items() if os.path.isfile(path)]


def before_first_run(results):
    """run.sh's guard (amendment 3): before the grid's first run, grid.json's third arm must be the one
    the amendments ask for; once a grid run is kept, the grid's arms stand. Returns what it found, in words."""
    kept = kept_grid_runs(results)
    if kept:
        return f"{len(kept)} grid runs kept: the grid's arms stand"
    declared, wanted, why = third_arm(results)
    if declared != wanted:
        raise ValueError(
            f"grid.json's third arm is {declared!r}, but {why} asks for {wanted!r} (results/forecast/PLAN.md, amendments 3-4): "
            "write it into grid.json and commit that before the first run"
        )
    return f"third arm {declared}: {why}"


def grid_status(results):
    """(planned run names, the diverged ones, the skipped ones, the missing ones) of the grid: a run is
    settled when its kept log is finished or ends diverged, or when it is a branch whose stable run
    diverged before its branch point (it never starts); missing = neither."""
    planned, kept = planned_logs(results)
    steps = {n: diverged_at(path) for n, path in kept.items()}  # each kept log read once
    diverged = {n: step for n, step in steps.items() if step is not None}
    stable_of = {(r["label"], r["size"], r["seed"]): f"{r['name']}-s{r['seed']}" for r in planned if r["role"] == "stable"}
    skipped = []
    for r in planned:
        stable = stable_of[r["label"], r["size"], r["seed"]]
        if r["role"] == "branch" and stable in diverged and diverged[stable] < r["branch_step"]:
            skipped.append(f"{r['name']}-s{r['seed']}")
    finished = {n for n, path in kept.items() if forecast.run_point(os.path.dirname(path)) is not None}
    missing = [n for n in kept if n not in finished and n not in diverged and n not in skipped]
    return list(kept), sorted(diverged), skipped, missing


def missing_runs(results):
    """The grid runs (by folder name) not settled yet (grid_status)."""
    return grid_status(results)[3]


def build(results, replicates=REPLICATES):
    """forecast.json's dict once every grid run is settled (written there with the figure), else None.
    The fit is computed once: a kept forecast.json whose inputs (every point, and every setting of the
    fit: fit_settings) are the same is reused, so the committed forecast does not move with a
    machine's floating point; any change of either refits."""
    planned, diverged, skipped, missing = grid_status(results)
    if missing:
        return None
    here = folder(results)
    points = forecast.load_points([os.path.join(here, "runs")], names=set(planned))
    qs = questions(here)
    inputs = inputs_digest(points, replicates, qs)
    kept = os.path.join(here, "forecast.json")
    out = read_json(kept) if os.path.isfile(kept) else {}
    if out.get("inputs_sha256") != inputs:
        f3 = f3_target()
        out = {q: forecast.forecast(points, ref, other, replicates=replicates, shared=True, also=[f3]) for q, (ref, other) in qs.items()}
        out["inputs_sha256"] = inputs
    out["checks"] = checks(here)
    out["third_arm"] = third_arm_record(results)
    out["diverged"], out["skipped"] = diverged, skipped
    out["dropped_cells"] = dropped_cells(planned, points)
    with open(kept, "w") as f:
        f.write(json.dumps(out, indent=1) + "\n")
    figure(points, out["F1"], os.path.join(here, "forecast.png"))
    return out


def dropped_cells(planned, points):
    """The grid's cells (arm, size, steps) with no finished seed: out of the fit, named (the plan)."""
    have = {os.path.basename(p["path"]).rsplit("-s", 1)[0] for p in points}
    return sorted({n.rsplit("-s", 1)[0] for n in planned} - have)


def inputs_digest(points, replicates, qs):
    """sha256 of what the fit reads: each run's name, N, D and loss, and every setting of the fit."""
    rows = sorted((os.path.basename(p["path"]), p["n"], p["d"], p["loss"]) for p in points)
    return hashlib.sha256(json.dumps([rows, fit_settings(replicates, qs)]).encode()).hexdigest()


def fit_settings(replicates, qs):
    """What else decides the forecast: the questions, targets, replicates, and forecast.py's own code
    (its start grid, Huber delta, forms and bootstrap), so an edit to any of them refits."""
    return [
        qs,
        list(forecast.TARGET),
        list(f3_target()),
        replicates,
        hashlib.sha256(inspect.getsource(forecast).encode()).hexdigest(),
    ]


def checks(here):
    """C1: per seed, scratch - branch final loss, beside the branch cell's seed spread; C2: per seed,
    cosine - WSD. A check whose runs are not all finished and kept is None."""
    runs = os.path.join(here, "runs")
    cp = check_plan(os.path.join(here, "grid.json"), root=ROOT)  # the checks cell, declared once

    def losses(folder, name):
        points = {s: forecast.run_point(os.path.join(folder, f"{name}-s{s}")) for s in seeds}
        return None if any(p is None for p in points.values()) else {s: p["loss"] for s, p in points.items()}

    seeds = sorted(int(n.rsplit("-s", 1)[1]) for n in os.listdir(runs) if n.startswith(cp["c1_name"] + "-s"))
    branch = losses(runs, cp["c1_name"])
    if not seeds or branch is None:
        return {"C1": None, "C2": None}
    c1, c2 = losses(os.path.join(runs, "scratch"), cp["c1_name"]), losses(os.path.join(here, "cosine"), cp["c2_name"])
    return {
        "C1": None
        if c1 is None
        else {
            "scratch_minus_branch": {str(s): c1[s] - branch[s] for s in seeds},
            "seed_spread": max(branch.values()) - min(branch.values()),
        },
        "C2": None
        if c2 is None
        else {"cosine_minus_wsd": {str(s): c2[s] - branch[s] for s in seeds}, "mean": float(np.mean([c2[s] - branch[s] for s in seeds]))},
    }


def figure(points, fc, path):
    """Loss against tokens per arm and size with the main form's curves, extended to F1's and F3's targets."""
    panels = []
    for arm, theta in fc["params"].items():
        t = (np.log(theta["E"]), np.log(theta["A"]), np.log(theta["B"]), theta["alpha"], theta["beta"])
        sizes = []
        for n in sorted({p["n"] for p in points if p["arm"] == arm}):
            mine = [p for p in points if p["arm"] == arm and p["n"] == n]
            by_d = {d: np.mean([p["loss"] for p in mine if p["d"] == d]) for d in sorted({p["d"] for p in mine})}
            label = "L{}d{}".format(*mine[0]["size"][:2])
            sizes.append((f"{label} ({n / 1e6:.2g}M)", n, sorted(by_d.items())))
        panels.append((arm, sizes, lambda n, d, t=t: forecast.predict(t, n, d)))
    targets = [("F1", fc["target"]["N"], fc["target"]["D"]), ("F3", fc["also"][0]["target"]["N"], fc["also"][0]["target"]["D"])]
    return plot_scaling(panels, targets, path)


def verdict(fc, held_out_error):
    """The plan's rules: 'unsupported' (rule 1), 'no sign' (the interval contains 0) or 'stated'."""
    if held_out_error is None or held_out_error > HELD_OUT_LIMIT:
        return "unsupported"
    lo, hi = fc["interval95"]
    return "no sign" if lo <= 0 <= hi else "stated"


def nats(value):
    """A held-out error, or why there is none (no left-out cell had both arms)."""
    return "none (no left-out cell with both arms)" if value is None else f"{value:.3f} nats"


def held_errors(held):
    per_arm = ", ".join(f"{arm} {e:.3f}" for arm, e in held["arm_mean_abs_error"].items())
    return f"{per_arm} nats (largest cell {held['max_abs_error']:.3f})"


def interval_text(iv):
    return f"[{iv[0]:+.3f}, {iv[1]:+.3f}]"


def first_plan_text(out, error):
    """The first plan's interval beside the amended one (amendments 5 and 7), and rule 2's verdict under it."""
    parts = []
    for q in ("F1", "F2"):
        iv = out[q]["first_plan_interval95"]
        parts.append(f"{q} {interval_text(iv)}, verdict {verdict({'interval95': iv}, error)}")
    return f"The first plan's interval (a draw per cell, not widened), and the verdict it would give: {'; '.join(parts)}."


def gap_cell(gap, interval, p):
    return f"{gap:+.3f} [{interval[0]:+.3f}, {interval[1]:+.3f}], P {p:.2f}"


def section_markdown(out):
    """RESULTS.md's forecast section: one sentence first, then the table, the held-out check, the checks."""
    if out is None:
        return (
            "Not computed yet: `results/forecast/forecast.json`, its figure and this section are built once every run "
            "of the grid (`results/forecast/grid.json`, run by `bash results/forecast/run.sh`) is kept."
        )
    f1 = out["F1"]
    error = f1["held_out"]["gap_mean_abs_error"]
    largest = max(c["N"] for c in f1["cells"])
    longest = max(c["D"] for c in f1["cells"])
    ratio = f"{f1['target']['N'] / largest:.0f}× in N and {f1['target']['D'] / longest:.0f}× in D beyond the largest cell"
    t1, t3 = f1["target"], f1["also"][0]["target"]
    lines = [first_sentence(f1, verdict(f1, error), error, ratio), ""]
    lines += [
        f"| question | gap at N {t1['N'] / 1e6:.0f}M, D {t1['D'] / 1e9:.1f}B [95 %], P(other better) | verdict "
        f"| F3: at D {t3['D'] / 1e6:.1f}M | verdict |",
        "|---|---|---|---|---|",
    ]
    for q, fc in ((q, out[q]) for q in ("F1", "F2")):
        f3 = fc["also"][0]
        q = f"{q} (exploratory)" if q == "F2" and out.get("third_arm", {}).get("exploratory") else q
        lines.append(
            f"| {q}: {fc['ref']} − {fc['other']} | {gap_cell(fc['gap'], fc['interval95'], fc['p_other_better'])} | {verdict(fc, error)} "
            f"| {gap_cell(f3['gap'], f3['interval95'], f3['p_other_better'])} | {verdict(f3, error)} |"
        )
    held, budget = f1["held_out"], f1["held_out_budget"]
    worst = max(f1["cells"], key=lambda c: abs(c["residual"]))
    bounds = "; ".join(f"{arm}: {', '.join(names)}" for arm, names in f1["at_bounds"].items() if names) or "none"
    lines += [
        "",
        f"Held-out size (N = {held['N'] / 1e6:.2f}M, fitted without it): mean absolute loss error "
        f"{held_errors(held)}; F1's gap error {nats(error)} "
        f"(rule 1's limit {HELD_OUT_LIMIT}, read for every forecast here, as the plan says); F2's own "
        f"{nats(out['F2']['held_out']['gap_mean_abs_error'])}. Held-out budget (D = {budget['D'] / 1e6:.1f}M, "
        f"descriptive, amendment 5): {held_errors(budget)}; F1's gap error {nats(budget['gap_mean_abs_error'])}.",
        f"Fit: {f1['form']}, {len(f1['cells'])} cells from {sum(len(c['seeds']) for c in f1['cells'])} runs, "
        f"{f1['bootstrap']['replicates']} bootstrap replicates over seeds and {len(f1['bootstrap']['forms'])} forms; "
        + "; ".join(f"{arm}: E {p['E']:.3f}, α {p['alpha']:.3f}, β {p['beta']:.3f}" for arm, p in f1["params"].items())
        + f". Largest residual (measured − fitted): {worst['residual']:+.3f} nats ({worst['arm']}, "
        f"L{worst['size'][0]}d{worst['size'][1]}, D {worst['D'] / 1e6:.1f}M). On a bound: {bounds}; in "
        f"{f1['bootstrap']['share_on_a_bound']:.0%} of replicates. " + first_plan_text(out, error),
        "",
        third_arm_text(out.get("third_arm")),
        checks_text(out["checks"]),
        *missing_text(out),
        "",
        "![loss against tokens, per arm and size, with the fitted curves](results/forecast/forecast.png)",
    ]
    return "\n".join(lines)


def first_sentence(f1, rule, error, ratio):
    gap = gap_cell(f1["gap"], f1["interval95"], f1["p_other_better"])
    if rule == "unsupported" and error is None:
        return (
            "**The 124M forecast is unsupported:** no cell of the largest size has both arms, so rule 1 cannot be "
            f"checked (its forecast would be {gap})."
        )
    if rule == "unsupported":
        return (
            f"**The 124M forecast is unsupported:** fitted without the largest size, the fit misses that size's "
            f"bpe_tied − kron gaps by {error:.3f} nats on average, over the plan's limit of {HELD_OUT_LIMIT} "
            f"(its forecast would be {gap})."
        )
    if rule == "no sign":
        return f"**No sign forecast at 124M:** bpe_tied − kron at 85M parameters and 2.5B tokens is {gap}; the interval contains 0."
    side = "kron" if f1["gap"] > 0 else "bpe_tied"
    return f"**Forecast: {side} ahead at 124M**, bpe_tied − kron = {gap}, an extrapolation {ratio}."


def checks_text(c):
    c1, c2 = c["C1"], c["C2"]
    one = (
        "C1 (branch vs scratch) not kept."
        if c1 is None
        else "C1, a branch against the same schedule from scratch (bpe_tied, L4 d128, 2M tokens): scratch − branch "
        + ", ".join(f"seed {s}: {v:+.2e}" for s, v in c1["scratch_minus_branch"].items())
        + f" nats, beside a seed spread of {c1['seed_spread']:.3f}."
    )
    two = (
        "C2 (WSD vs cosine) not kept."
        if c2 is None
        else f"C2, cosine − WSD at the same budget: {c2['mean']:+.3f} nats (mean over seeds; "
        + ", ".join(f"seed {s}: {v:+.3f}" for s, v in c2["cosine_minus_wsd"].items())
        + ")."
    )
    return f"{one} {two}"


def third_arm_text(t):
    """Which table F2 compares with kron, and why (the plan's amendments 3-4)."""
    if t is None:
        return ""
    tail = " F2 is exploratory: an amendment set its arm." if t["exploratory"] else ""
    return f"F2's table is {t['arm']}: {t['why']} (results/forecast/PLAN.md, amendments 3-4).{tail}"


def missing_text(out):
    """The plan's rule for missing runs: diverged runs named, cells with no finished seed named as dropped."""
    lines = []
    if out.get("diverged"):
        lines.append(f"Diverged (a cell keeps its other seed): {', '.join(out['diverged'])}.")
    if out.get("skipped"):
        lines.append(f"Not run (their stable run diverged before their branch point): {', '.join(out['skipped'])}.")
    if out.get("dropped_cells"):
        lines.append(f"Dropped from the fit (no finished seed): {', '.join(out['dropped_cells'])}.")
    return ["", *lines] if lines else []


def main(argv=None):
    """results/forecast/run.sh's guard before the grid's first run (before_first_run)."""
    p = argparse.ArgumentParser(description="the forecast grid's third arm, checked before its first run (PLAN.md amendment 3)")
    p.add_argument("--before-first-run", action="store_true", required=True, help="the one thing this command does")
    p.add_argument("--results", default=os.path.join(ROOT, "results"))
    found = before_first_run(p.parse_args(argv).results)
    print(found)
    return found


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
