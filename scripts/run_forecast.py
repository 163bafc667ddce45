"""Run the grid a scaling forecast fits (forecast.py): model sizes x arms x seeds x token budgets, on
warmup-stable-decay schedules, with one stable run per (size, arm, seed) and a cool-down branch per
smaller budget.

    python -m scripts.run_forecast --base config/study_cpu.py --sizes 2x64x2 4x128x4 \
        --arms bpe_tied kron kron:input_scale=50 --seeds 1337 1338 --budgets 1e6 2e6 4e6 \
        --out-root runs/forecast --keep-logs results/forecast/runs
    python -m scripts.run_forecast ... --list       # the plan: steps, branch points, cost; nothing read or run
    python -m scripts.run_forecast ... --dry-run    # the plan with each run's state (finished, interrupted, new)
    python -m scripts.run_forecast ... --from-scratch-check 2e6   # also a from-scratch wsd run of that budget
    python -m scripts.run_forecast --grid results/forecast/grid.json --out-root runs/forecast   # the grid from a file

Budgets are training tokens, rounded to whole steps of the base config's batch_size * block_size *
gradient_accumulation_steps tokens. Every run is lr_schedule='wsd' (set here, with lr_decay_iters=None)
with the base config's cooldown_frac, so budget T steps cools down over K = round(cooldown_frac * T)
steps from S = T - K. For each (size, arm, seed) the largest budget's run is the stable run: trained
from scratch to the largest T, it keeps ckpt_step{S}.pt at each smaller budget's S (keep_ckpt_steps);
each smaller budget is then a branch (init_from='branch:...') that runs only its K cool-down steps,
which train.py makes identical to a from-scratch run of that budget. Cost per (size, arm, seed):
T_max + sum of the smaller budgets' K steps.

An arm may ask for the RMS it feeds the first block instead of a multiplier: bpe_untied:input_rms=R
(or input_rms=sqrt_d, 0.02 sqrt(n_embd)) runs each size at input_scale = R / the arm's own initial RMS.
With --grid, --check scratch runs the grid file's checks cell with --from-scratch-check at its budget
(C1 of results/forecast/PLAN.md) and --check cosine the same cell on the cosine schedule through
scripts/run_study.py (C2: the one kind of run here that is not WSD).

Runs go in <out-root>/<arm>[-<key><value>...]-L<n_layer>d<n_embd>h<n_head>-i<steps>-s<seed> (the
--from-scratch-check runs in <out-root>/scratch/); each branch starts as soon as its stable run has
kept its checkpoint. Whether a run is done, resumed or refused is scripts/run_study.py's rule (its
state()), so rerunning the same command skips finished runs and resumes interrupted ones; a stable run
whose log is kept but whose folder is gone while a branch still needs its checkpoint is trained again
for it (its kept log stays; the console says how far the redone evaluations differ from it). Extra
--key=value arguments after `--` go to every run (not the settings this runner sets per run).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.run_forecast", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import sys

import checkpoint
from arms import ARMS
from errors import run_cli
from runlog import read_json
from scripts import run_study

# Settings this runner sets per run: an extra override of one would make the plan a lie.
SET_HERE = ("n_layer", "n_embd", "n_head", "max_iters", "lr_schedule", "lr_decay_iters", "keep_ckpt_steps", "init_from", "out_dir")
SET_HERE += ("seed", "embedding")


def parse_size(spec):
    """'4x128x4' -> (n_layer, n_embd, n_head)."""
    parts = spec.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--sizes {spec!r}: expected n_layer x n_embd x n_head as positive integers, e.g. 4x128x4")
    return tuple(int(p) for p in parts)


def parse_arm(spec):
    """'kron:input_scale=50,kron_pos_dim=16' -> (label 'kron-input_scale50-kron_pos_dim16', 'kron', overrides).
    input_rms=R (a number, or sqrt_d for 0.02 sqrt(n_embd)) asks for the RMS entering the first block
    rather than a multiplier: each size gets input_scale = R / the arm's own initial RMS (make_run)."""
    arm, _, rest = spec.partition(":")
    if arm not in ARMS:
        raise ValueError(f"--arms {spec!r}: unknown arm {arm!r}; arms are {', '.join(ARMS)}")
    overrides = {}
    for item in [i for i in rest.split(",") if i]:
        key, eq, value = item.partition("=")
        if not key or not eq or not value or key in SET_HERE:
            raise ValueError(f"--arms {spec!r}: expected ARM[:key=value,...] with settings other than {', '.join(SET_HERE)}")
        overrides[key] = value
    if "input_rms" in overrides:
        input_rms(spec, overrides, 1)  # refuses a bad value now, not at the first run of that size
    return arm + "".join(f"-{k}{v}" for k, v in overrides.items()), arm, overrides


def input_rms(spec, overrides, n_embd):
    """The R an arm's input_rms asks for at width n_embd: a number > 0, or sqrt_d = 0.02 sqrt(n_embd)
    (the sqrt(d) multiplier of a 0.02 table, as the Transformer paper and Gemma scale theirs)."""
    if "input_scale" in overrides:
        raise ValueError(f"--arms {spec!r}: give input_rms or input_scale, not both (input_rms sets the multiplier per size)")
    text = overrides["input_rms"]
    if text == "sqrt_d":
        return 0.02 * n_embd**0.5
    try:
        R = float(text)
    except ValueError:
        R = -1.0
    if not 0 < R < float("inf"):
        raise ValueError(f"--arms {spec!r}: input_rms {text!r}: expected a number > 0 or sqrt_d (0.02 sqrt(n_embd))")
    return R


def check_input_rms(arms, base, extra):
    """input_rms sets input_scale from the arm's own input_norm (per_size), so neither may come from the
    base config or the extra overrides, where per_size cannot see it."""
    if not any("input_rms" in overrides for _, _, overrides in arms):
        return
    from configurator import load_config

    c = load_config([base] + list(extra))
    if c["input_norm"] or c["input_scale"] != 1.0:
        raise ValueError(
            f"an arm asks for input_rms, but {base} or the extra overrides set input_norm={c['input_norm']}, "
            f"input_scale={c['input_scale']}: give input_norm in the arm (ARM:input_norm=True,input_rms=R); input_rms sets input_scale"
        )


def per_size(arm, arm_overrides, size):
    """The arm's train.py overrides at this size: input_rms R becomes input_scale = R / own RMS (1 with
    input_norm on, else the arm's declared init_rms), to 4 significant digits as the fair study writes it."""
    if "input_rms" not in arm_overrides:
        return dict(arm_overrides)
    out = {k: v for k, v in arm_overrides.items() if k != "input_rms"}
    R = input_rms(arm, arm_overrides, size[1])
    own = 1.0 if out.get("input_norm") == "True" else ARMS[arm].init_rms  # train.py reads the value as Python
    if own is None:
        raise ValueError(f"--arms {arm}: input_rms needs the arm's init_rms (arms.register(..., init_rms=...)), which it does not declare")
    out["input_scale"] = f"{R / own:.4g}"
    return out


def parse_budget(text):
    """'2.5e8' -> 2.5e8 training tokens."""
    try:
        tokens = float(text)
    except ValueError:
        tokens = -1
    if not tokens > 0 or tokens == float("inf"):
        raise ValueError(f"--budgets {text!r}: expected a number of training tokens > 0, e.g. 2.5e8")
    return tokens


def base_facts(base, extra):
    """(tokens per step, cooldown_frac) of the base config with the extra overrides."""
    from configurator import load_config

    c = load_config([base, "--lr_schedule=wsd", "--lr_decay_iters=None"] + list(extra))
    return c["batch_size"] * c["block_size"] * c["gradient_accumulation_steps"], c["cooldown_frac"]


def budget_steps(budgets, tokens_per_step):
    """Each budget's steps, round(tokens / tokens_per_step), distinct and >= 1, ascending."""
    steps = sorted({round(b / tokens_per_step) for b in budgets})
    if len(steps) != len(budgets) or steps[0] < 1:
        raise ValueError(
            f"--budgets {budgets}: at {tokens_per_step:,} tokens a step these are {[round(b / tokens_per_step) for b in budgets]} "
            f"steps; expected distinct budgets of at least one step"
        )
    return steps


def branch_step(steps, cooldown_frac):
    """S = T - round(cooldown_frac * T): where budget T's cool-down starts (configurator.wsd_cooldown)."""
    from configurator import wsd_cooldown

    return steps - wsd_cooldown(steps, cooldown_frac)


def plan(sizes, arms, seeds, steps, cooldown_frac, out_root, scratch_steps=None):
    """The runs, as run_study's dicts (name, arm, seed, overrides, out_dir) with role ('stable',
    'branch' or 'scratch'), steps, branch_step (S, or None) and cost (the steps it trains): per
    (size, arm, seed) the stable run to max(steps) keeping each smaller budget's S, each smaller
    budget's branch from it, and with scratch_steps a from-scratch run of that many steps."""
    longest = max(steps)
    points = {t: branch_step(t, cooldown_frac) for t in steps if t < longest}
    if any(s < 1 for s in points.values()):
        raise ValueError(f"budgets of {sorted(points)} steps: a cool-down of round({cooldown_frac} * T) steps leaves no stable step")
    runs = []
    for size in sizes:
        for seed in seeds:  # seed-major within a size, as run_study: a partial grid is balanced across arms
            for label, arm, arm_overrides in arms:
                cell = (label, arm, arm_overrides, size, seed)
                stable = make_run(cell, out_root, "stable", longest, {"keep_ckpt_steps": sorted(set(points.values()))} if points else {})
                runs.append(stable)
                for t, s in points.items():
                    kept = os.path.abspath(checkpoint.paths(stable["out_dir"], kept_step=s)[0])
                    runs.append(make_run(cell, out_root, "branch", t, {"init_from": f"branch:{kept}"}, s))
                if scratch_steps:
                    runs.append(make_run(cell, os.path.join(out_root, "scratch"), "scratch", scratch_steps, {}))
    return runs


def make_run(cell, folder, role, steps, overrides, branch_point=None):
    """One planned run of (label, arm, arm overrides, size, seed): every run is wsd, of its own steps."""
    label, arm, arm_overrides, size, seed = cell
    name = f"{label}-L{size[0]}d{size[1]}h{size[2]}-i{steps}"
    settings = {"n_layer": size[0], "n_embd": size[1], "n_head": size[2], "lr_schedule": "wsd", "lr_decay_iters": None}
    return {
        "name": name,
        "arm": arm,
        "seed": seed,
        "overrides": {**settings, **per_size(arm, arm_overrides, size), "max_iters": steps, **overrides},
        "out_dir": os.path.join(folder, f"{name}-s{seed}"),
        "role": role,
        "label": label,
        "size": size,
        "steps": steps,
        "branch_step": branch_point,
        "cost": steps - (branch_point or 0),
    }


def source_of(run):
    """A branch's kept checkpoint (the path after 'branch:')."""
    return run["overrides"]["init_from"].split(":", 1)[1]


def states(runs, base, extra, keep_dir):
    """Each run's run_study.state, and for a branch that is new while its kept checkpoint is missing:
    'skipped' when its stable run diverged before that step; when the stable run is settled (its kept
    log) but its folder is gone (a new clone, a lost workspace), the stable run is redone for its
    checkpoints ('redo': trained again, its kept log left as it is); when the folder is there but
    never kept that step (a budget added later), refused."""
    from configurator import ConfigError

    stable = {}
    for r in runs:
        want, kept_in = run_study.planned_want(r, base, extra), keep_for(r, keep_dir)
        kept = run_study.kept_state(r, kept_in, want) if kept_in else None  # run_study.state, its two halves apart
        r["state"], r["kept"] = kept or run_study.folder_state(r, want), kept is not None
        if r["role"] == "stable":
            stable[os.path.abspath(r["out_dir"])] = r  # source_of() is absolute, out_dir may not be
    for r in runs:
        if r["role"] == "branch" and r["state"] == "new" and not os.path.isfile(source_of(r)):
            source = stable[os.path.dirname(source_of(r))]
            settled = source.get("settled_as", source["state"])  # as its kept log says, before any redo
            if settled == "diverged" and diverged_step(source, keep_dir) < r["branch_step"]:
                r["state"] = "skipped"  # its stable run diverged before this branch's start: none will come
            elif settled in run_study.SETTLED and not (checkpoint.read_meta(source["out_dir"]) or {}).get("finished"):
                source["settled_as"], source["state"] = settled, "redo"  # folder gone, or a redo interrupted
            elif settled in run_study.SETTLED:
                raise ConfigError(
                    f"{r['name']}-s{r['seed']} branches from {source_of(r)}, which the {source['state']} stable run "
                    f"{source['out_dir']} did not keep: rerun the grid with the budgets it was run with, or move that run aside"
                )
    return runs


def diverged_step(run, keep_dir):
    """The step at which a diverged run's log (kept, else in its folder) says it diverged."""
    kept = run_study.kept_log(run, keep_for(run, keep_dir)) if keep_dir else ""
    found = run_study.diverged_at(kept)
    return found if found is not None else run_study.diverged_at(os.path.join(run["out_dir"], "metrics.jsonl"))


def keep_for(run, keep_dir):
    """Where a run's log is kept: the scratch checks in their own subfolder (their names repeat the branches')."""
    return os.path.join(keep_dir, "scratch") if keep_dir and run["role"] == "scratch" else keep_dir


def describe(runs, tokens_per_step):
    """One line per run, then the cost per (size, arm, seed) and in all, in steps and tokens."""
    lines = []
    for r in runs:
        what = f"branch from step {r['branch_step']}" if r["role"] == "branch" else r["role"]
        state = f"{r['state']:<11} " if "state" in r else ""
        lines.append(
            f"  {state}{r['name']}-s{r['seed']}: {r['steps']} steps = {r['steps'] * tokens_per_step:.3g} tokens, "
            f"{what}, trains {r['cost']} steps"
        )
    total = sum(r["cost"] for r in runs)
    groups = len({(r["label"], r["size"], r["seed"]) for r in runs})
    lines.append(
        f"{len(runs)} runs for {groups} (size, arm, seed): {total:,} steps ({total * tokens_per_step:.3g} tokens) in all, "
        f"{total / max(groups, 1):,.0f} steps each"
    )
    return "\n".join(lines)


DEFAULTS = {"arms": ["bpe_tied", "kron"], "seeds": [1337, 1338, 1339]}  # when neither a flag nor --grid gives them
GRID_KEYS = {"base": str, "sizes": list, "arms": list, "seeds": list, "budgets": list, "checks": dict}
CHECK_KEYS = ("arm", "size", "budget")  # the plan's checks C1 and C2: one (arm, size) at one branched budget


def read_grid(path):
    """A grid file: JSON with some of base, sizes, arms, seeds, budgets (as on the command line), and
    optionally checks (the cell --check runs at: arm, size, budget), so that the runner and
    scripts/make_results.py read one declaration of a study's grid."""
    grid = read_json(path)
    if not isinstance(grid, dict):
        raise ValueError(f"--grid {path}: a JSON {type(grid).__name__}; expected an object with some of {', '.join(GRID_KEYS)}")
    for key, value in grid.items():
        if key not in GRID_KEYS:
            raise ValueError(f"--grid {path}: unknown setting {key!r}; expected some of {', '.join(GRID_KEYS)}")
        if not isinstance(value, GRID_KEYS[key]) and key != "checks":  # checks: its own message below
            raise ValueError(f"--grid {path}: {key} {value!r}: expected a JSON {'string' if key == 'base' else 'list'}")
    if not all(isinstance(s, int) for s in grid.get("seeds", [])):
        raise ValueError(f"--grid {path}: seeds {grid['seeds']}: expected integers")
    if "checks" in grid and (not isinstance(grid["checks"], dict) or sorted(grid["checks"]) != sorted(CHECK_KEYS)):
        raise ValueError(f"--grid {path}: checks {grid['checks']}: expected an object with {', '.join(CHECK_KEYS)}")
    return {k: [str(x) for x in v] if k in ("sizes", "arms", "budgets") else v for k, v in grid.items()}


def check_plan(path, root=None, extra=()):
    """The plan's checks from a grid file: C1 (a branch against the same schedule from scratch) and C2
    (cosine at the same budget), both at grid.json's checks cell. Returns its arm (and the grid's own
    text for it and the size), size, steps, the run name C1's branch and scratch runs share, and C2's
    run_study group name and overrides (the size as extra settings, so the name stays the arm's)."""
    g = {**DEFAULTS, **read_grid(path)}
    if "checks" not in g:
        raise ValueError(f"--grid {path}: no checks ({', '.join(CHECK_KEYS)}) declared")
    c = g["checks"]
    if c["arm"] not in g["arms"] or c["size"] not in g["sizes"] or c["budget"] not in g["budgets"]:
        raise ValueError(f"--grid {path}: checks {c}: expected an arm, size and budget of the grid")
    base = os.path.join(root, g["base"]) if root and not os.path.isabs(g["base"]) else g["base"]
    tokens_per_step, _ = base_facts(base, extra)
    steps = round(parse_budget(c["budget"]) / tokens_per_step)
    if steps == max(budget_steps([parse_budget(b) for b in g["budgets"]], tokens_per_step)):
        raise ValueError(f"--grid {path}: checks budget {c['budget']}: the largest budget has no branch to check")
    label, arm, overrides = parse_arm(c["arm"])
    size = parse_size(c["size"])
    c2_grid = {**per_size(arm, overrides, size), "lr_schedule": "cosine", "max_iters": steps}
    return {
        "arm": arm,
        "spec": c["arm"],  # the grid file's own text for the arm and size, as --arms and --sizes take them
        "size_spec": c["size"],
        "size": size,
        "steps": steps,
        "budget": c["budget"],
        "c1_name": f"{label}-L{size[0]}d{size[1]}h{size[2]}-i{steps}",
        "c2_name": run_study.plan([arm], [0], [(k, [v]) for k, v in c2_grid.items()], "")[0]["name"],  # as run_study names it
        "c2_grid": c2_grid,
        "c2_extra": [f"--n_layer={size[0]}", f"--n_embd={size[1]}", f"--n_head={size[2]}"],
    }


def grid_runs(path, out_root="", root=None):
    """The runs a grid file plans (plan()'s dicts, the from-scratch check aside), without reading any
    run; a relative base config is found under `root` when given (the repository), else here."""
    g = {**DEFAULTS, **read_grid(path)}
    base = os.path.join(root, g["base"]) if root and not os.path.isabs(g["base"]) else g["base"]
    tokens_per_step, cooldown_frac = base_facts(base, [])
    steps = budget_steps([parse_budget(b) for b in g["budgets"]], tokens_per_step)
    sizes, arms = [parse_size(s) for s in g["sizes"]], [parse_arm(a) for a in g["arms"]]
    check_input_rms(arms, base, [])
    return plan(sizes, arms, sorted(set(g["seeds"])), steps, cooldown_frac, out_root)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grid", default=None, help="a JSON file of base, sizes, arms, seeds, budgets (flags win) and checks (--check)")
    p.add_argument("--base", help="base config file (its cooldown_frac sets every cool-down)")
    p.add_argument("--sizes", nargs="+", help="n_layer x n_embd x n_head, e.g. 4x128x4 6x192x6")
    p.add_argument("--arms", nargs="+", help="ARM or ARM:key=value,... e.g. kron:input_scale=50 (default: bpe_tied kron)")
    p.add_argument("--seeds", nargs="+", type=int, help="default: 1337 1338 1339")
    p.add_argument("--budgets", nargs="+", help="training tokens per budget, e.g. 1e6 2e6 4e6")
    p.add_argument("--out-root", required=True)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--launcher", default=None, help='e.g. "torchrun --standalone --nproc_per_node=8"')
    p.add_argument("--keep-logs", default=None, help="copy each finished run's metrics.jsonl here; skip runs whose kept log is complete")
    p.add_argument("--from-scratch-check", default=None, help="also a from-scratch wsd run of this budget (a branched one of --budgets)")
    p.add_argument(
        "--check",
        choices=("scratch", "cosine"),
        help="with --grid: run a check at its checks cell: scratch (C1: the cell with --from-scratch-check) or cosine (C2, via run_study)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the runs and their states; run nothing")
    p.add_argument("--list", action="store_true", help="list the plan (steps, branch points, cost) without reading any run")
    args, extra = p.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    args.given = {k for k, v in vars(args).items() if v != p.get_default(k)}  # on the command line, before the grid fills the rest
    for key, value in {**DEFAULTS, **(read_grid(args.grid) if args.grid else {})}.items():
        if key != "checks" and getattr(args, key) is None:  # the checks cell is read by --check alone
            setattr(args, key, value)
    missing = [f"--{k}" for k in ("base", "sizes", "budgets") if getattr(args, k) is None]
    if missing:
        p.error(f"{', '.join(missing)} required (on the command line or in --grid)")
    bad = [e for e in extra if not e.startswith("--") or "=" not in e or e[2:].split("=")[0] in SET_HERE]
    if bad:
        p.error(f"unrecognised arguments {bad}: extra train.py overrides are --key=value, of settings other than {', '.join(SET_HERE)}")
    if not os.path.isfile(args.base):
        p.error(f"base config {args.base!r} not found")
    if args.parallel < 1:
        p.error(f"--parallel {args.parallel}: expected an integer >= 1 (runs at a time)")
    return args, extra


def main(argv=None):
    args, extra = parse_args(argv)
    if args.check:
        if not args.grid:
            raise ValueError("--check reads the checks cell of a grid file: give --grid")
        given = [f"--{k.replace('_', '-')}" for k in ("base", "sizes", "arms", "budgets", "from_scratch_check") if k in args.given]
        if given:
            raise ValueError(f"--check runs at the grid file's checks cell: {', '.join(given)} would be ignored; leave them out")
        cp = check_plan(args.grid, extra=extra)
        if args.check == "cosine":
            return cosine_check(cp, args, extra)
        args.sizes, args.arms, args.from_scratch_check = [cp["size_spec"]], [cp["spec"]], cp["budget"]
    sizes = [parse_size(s) for s in args.sizes]
    arms = [parse_arm(a) for a in args.arms]
    check_input_rms(arms, args.base, extra)
    tokens_per_step, cooldown_frac = base_facts(args.base, extra)
    steps = budget_steps([parse_budget(b) for b in args.budgets], tokens_per_step)
    scratch = None
    if args.from_scratch_check:
        scratch = round(parse_budget(args.from_scratch_check) / tokens_per_step)
        if scratch not in steps[:-1]:
            raise ValueError(
                f"--from-scratch-check {args.from_scratch_check}: {scratch} steps is not one of the branched budgets ({steps[:-1]} steps)"
            )
    runs = plan(sizes, arms, sorted(set(args.seeds)), steps, cooldown_frac, args.out_root, scratch)
    if args.list:
        print(describe(runs, tokens_per_step))
        return runs
    from configurator import ConfigError

    run_study.fingerprint_of.cache_clear()
    try:
        run_study.check_data({run_study.planned_config(r, args.base, extra)["data_dir"] for r in runs})
        states(runs, args.base, extra, args.keep_logs)
        for r in runs:
            if r["state"] in run_study.SETTLED and not r["kept"]:  # a settled kept log is never replaced (a redo's)
                run_study.keep(r, keep_for(r, args.keep_logs))
    except (ConfigError, checkpoint.CheckpointError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"in {args.out_root}:\n" + describe(runs, tokens_per_step))
    if args.dry_run:
        return runs
    os.makedirs(args.out_root, exist_ok=True)
    failed = execute(runs, args, extra)
    with open(os.path.join(args.out_root, "forecast_runs.json"), "w") as f:
        json.dump({"base": args.base, "extra": extra, "tokens_per_step": tokens_per_step, "runs": runs}, f, indent=1)
    if failed:
        sys.exit(run_study.did_not_finish(failed, with_state=True))
    return runs


def cosine_check(cp, args, extra):
    """C2: the checks cell with the cosine schedule of the other studies, at the same budget, through
    run_study (its runs are not WSD, so not this runner's)."""
    check_input_rms([parse_arm(cp["spec"])], args.base, extra)
    argv = ["--base", args.base, "--arms", cp["arm"], "--seeds", *[str(s) for s in sorted(set(args.seeds))], "--out-root", args.out_root]
    argv += ["--keep-logs", args.keep_logs] if args.keep_logs else []
    argv += [f"--grid={k}={v}" for k, v in cp["c2_grid"].items()] + ["--parallel", str(args.parallel)]
    argv += ["--launcher", args.launcher] if args.launcher else []
    argv += ["--dry-run"] if args.dry_run or args.list else []
    return run_study.main(argv + ["--", *cp["c2_extra"], *extra])


def execute(runs, args, extra):
    """Every run not settled, in plan order (per (size, arm, seed): its stable run, then its branches;
    the scratch check), args.parallel at a time through run_study.execute. A branch starts once its
    kept checkpoint exists, so a group's branches run while later stable runs train and a lost
    workspace loses only the groups in flight. A branch whose stable run ended without its checkpoint
    is 'skipped' when that run diverged before the branch point, else 'blocked'. Returns the runs that
    did not finish."""
    todo = [r for r in runs if r["state"] not in run_study.SETTLED + ("skipped",)]
    redone = [r for r in todo if r["state"] == "redo"]
    for r in todo:
        r["keep_dir"] = None if r["state"] == "redo" else keep_for(r, args.keep_logs)  # a redo keeps the log it has
    stable = {os.path.abspath(r["out_dir"]): r for r in runs if r["role"] == "stable"}

    def ready(r):
        return r["role"] != "branch" or r["state"] == "interrupted" or os.path.isfile(source_of(r))  # or its own ckpt.pt

    failed = run_study.execute(todo, args, extra, ready)
    for r in [r for r in failed if r["state"] == "blocked"]:
        step = diverged_step(stable[os.path.dirname(source_of(r))], args.keep_logs)
        if step is not None and step < r["branch_step"]:
            r["state"] = "skipped"  # its stable run diverged before the branch point: settled, not failed
            failed.remove(r)
    for r in redone:
        same_as_kept(r, args.keep_logs)
    return failed


def same_as_kept(run, keep_dir):
    """A stable run redone for its checkpoints: say whether its evaluations repeat its kept log's (they do
    on the same machine and software; another kernel path moves them by a few ulp)."""
    from runlog import read_metrics

    def losses(path):
        return [(r["step"], r["val_loss"]) for r in read_metrics(path, "eval")] if os.path.isfile(path) else []

    kept, redone = losses(run_study.kept_log(run, keep_dir)), losses(os.path.join(run["out_dir"], "metrics.jsonl"))
    if not redone:
        return
    worst = max((abs(a[1] - b[1]) for a, b in zip(kept, redone)), default=float("nan"))
    print(
        f"redone for its checkpoints: {run['name']}-s{run['seed']}; its kept log stays; the redone evaluations "
        f"differ from it by at most {worst:.2e} nats" + ("" if [a[0] for a in kept] == [b[0] for b in redone] else " (at other steps)"),
        flush=True,
    )


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
