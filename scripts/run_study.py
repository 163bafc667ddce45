"""Run a grid of arms x seeds (x optional overrides) from one base config.

    python -m scripts.run_study --base config/study_cpu.py --out-root runs/study_cpu
    python -m scripts.run_study --base config/kron_124m.py --arms bpe_tied kron bpe_untied \
        --seeds 1337 1338 1339 --launcher "torchrun --standalone --nproc_per_node=8" --out-root out/paper
    python -m scripts.run_study --base config/study_cpu.py --arms kron --grid kron_pos_dim=16,32 \
        --grid kron_z_norm=True,False --out-root runs/ablation
    python -m scripts.run_study ... --dry-run          # list the runs and their state, run nothing

Each run trains in <out-root>/<arm>[-<key><value>...]-s<seed> with train.py. Whether a run is done
is decided from its checkpoint's ckpt.json sidecar (never by unpickling the checkpoint): finished at
max_iters with the config this command would give it -> skipped; a checkpoint otherwise -> resumed
(init_from=auto; a raised max_iters continues a finished run); a recorded config that differs in a
setting that cannot change on resume (model shape, seed, ...) -> refused before anything starts,
naming the setting, so no run's files are overwritten. Rerunning the same command after an
interruption finishes the study. Runs go
one after another, or --parallel N at a time (for several GPUs give each its own device through
--launcher, or use torchrun for one run at a time). Grid keys that start with kron_ only vary
the arms that read bytes (kron, kron_tied, hybrid). Extra --key=value arguments after `--` go to every run.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.run_study", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import functools
import itertools
import json
import os
import shlex
import subprocess
import sys
import time

import checkpoint
from arms import ARMS
from errors import IMPORTED, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_grid(specs):
    """['kron_pos_dim=16,32', ...] -> [('kron_pos_dim', ['16', '32']), ...]"""
    grid = []
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--grid {spec!r}: expected key=value1,value2")
        key, values = spec.split("=", 1)
        values = [v for v in values.split(",") if v]
        if not key or not values:
            raise ValueError(f"--grid {spec!r}: expected key=value1,value2 with at least one value")
        grid.append((key, values))
    return grid


def plan(arms, seeds, grid, out_root):
    """The runs: dicts with name, arm, seed, overrides and out_dir (duplicates collapsed)."""
    runs, seen = [], set()
    combos = list(itertools.product(*[[(k, v) for v in vals] for k, vals in grid])) or [()]
    for seed in seeds:  # seed-major, so a partial study is balanced across arms
        for arm in arms:
            for combo in combos:
                combo = tuple((k, v) for k, v in combo if ARMS[arm].reads_bytes or not k.startswith("kron_"))
                tag = "".join(f"-{k}{v}" for k, v in combo)
                name = f"{arm}{tag}"
                if (name, seed) in seen:
                    continue
                seen.add((name, seed))
                runs.append(
                    {"name": name, "arm": arm, "seed": seed, "overrides": dict(combo), "out_dir": os.path.join(out_root, f"{name}-s{seed}")}
                )
    return runs


def planned_config(run, base, extra):
    """The config train.py would build for this run (the same loader, no import of train.py)."""
    from configurator import load_config

    return load_config(train_args(run, base, extra))


def planned_want(run, base, extra):
    """planned_config with its out_dir filled in, as a run's recorded config holds it."""
    want = planned_config(run, base, extra)
    want["out_dir"] = want["out_dir"].format(**want)
    return want


def kept_log(run, keep_dir):
    return os.path.join(keep_dir, os.path.basename(os.path.normpath(run["out_dir"])), "metrics.jsonl")


# A kept log or run folder is the planned run whatever its data folder is called (data/pydocs is now
# data/python_docs): check_same_data compares the data itself, by fingerprint and token counts.
SAME_BY_FINGERPRINT = checkpoint.NOT_RESULTS + ("data_dir",)


def kept_state(run, keep_dir, want):
    """'finished' when the run's metric log, kept in git under keep_dir, reached max_iters with the
    planned config (a new clone skips it although it has no checkpoint), 'diverged' when that log ends
    diverged with the planned config, else None."""
    from runlog import read_metrics

    path = kept_log(run, keep_dir) if keep_dir else None
    if not path or not os.path.isfile(path):
        return None
    records = read_metrics(path)  # once: config, evals and the last record all come from it
    configs, evals = [r for r in records if r["kind"] == "config"], [r for r in records if r["kind"] == "eval"]
    check_same_data(path, configs, want["data_dir"])
    if not configs:
        return None
    fixed, changed = checkpoint.config_changes(configs[-1]["config"], want, ignore=SAME_BY_FINGERPRINT)
    if fixed or changed:
        return None
    if diverged_step(records) is not None:
        return "diverged"
    return "finished" if evals and evals[-1]["step"] >= want["max_iters"] else None


@functools.lru_cache(maxsize=None)
def fingerprint_of(data_dir):
    """data_fingerprint reads every shard to count its tokens: once per folder per invocation (main()
    clears it), not once per planned run and again per run folder."""
    from shards import data_fingerprint

    return data_fingerprint(data_dir)


def check_same_data(path, configs, data_dir):
    """A kept log trained on other data than data_dir holds now (another corpus version) must not be
    mixed with new runs: refuse, naming both token counts."""
    from configurator import ConfigError

    data_dir = data_dir if os.path.isabs(data_dir) else os.path.join(ROOT, data_dir)  # train.py runs in ROOT
    if not configs or not os.path.isdir(data_dir):
        return
    kept = (configs[-1].get("n_train_tokens"), configs[-1].get("n_val_tokens"))
    try:
        now = fingerprint_of(data_dir)
    except (FileNotFoundError, ValueError):
        return  # a folder train.py itself will refuse, with its own message
    kept_sha = (configs[-1].get("data") or {}).get("sha256")
    if kept_sha and kept_sha != now["sha256"]:
        raise ConfigError(
            f"{path} was trained on data with fingerprint {kept_sha}, but {data_dir} now has {now['sha256']}: "
            f"another version of the data (README: 'Data provenance')"
        )
    if None not in kept and kept != (now["train_tokens"], now["val_tokens"]):
        raise ConfigError(
            f"{path} was trained on {kept[0]:,} train / {kept[1]:,} val tokens, but {data_dir} now holds "
            f"{now['train_tokens']:,} / {now['val_tokens']:,}: another version of the data. Prepare the version "
            f"the kept logs used (README: 'Data provenance') or keep new logs elsewhere"
        )


def keep(run, keep_dir):
    """Copy a settled run's metric log into keep_dir (meant to be committed): only a log that is itself
    settled (its run finished, or it ends diverged), so a partial log in a run folder never replaces a
    kept one."""
    import shutil

    src = os.path.join(run["out_dir"], "metrics.jsonl")
    settled = (checkpoint.read_meta(run["out_dir"]) or {}).get("finished") or diverged_at(src) is not None
    if keep_dir and os.path.isfile(src) and settled:
        dst = kept_log(run, keep_dir)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(src, dst + ".part")  # then renamed: an interrupted copy never leaves a torn kept log
        os.replace(dst + ".part", dst)


SETTLED = ("finished", "diverged")  # a rerun skips these: a diverged run is an outcome (an infinite loss), not a failure


def diverged_at(log_path):
    """The step of a run's diverged record (train.py writes it last when the loss stops being finite), or None."""
    from runlog import read_metrics

    return diverged_step(read_metrics(log_path, drop_torn_tail=True)) if os.path.isfile(log_path) else None


def diverged_step(records):
    """diverged_at for records already read."""
    return records[-1]["step"] if records and records[-1].get("kind") == "diverged" else None


def state(run, base, extra=(), keep_dir=None):
    """'finished', 'diverged' (its log, kept or in its folder, ends with a diverged record),
    'interrupted' (a checkpoint to resume or extend) or 'new'; raises ConfigError for a run folder
    whose recorded config conflicts with the planned one."""

    want = planned_want(run, base, extra)  # built once, for the kept log and the sidecar alike
    return kept_state(run, keep_dir, want) or folder_state(run, want)


def folder_state(run, want):
    """state() from the run's folder alone (its log and sidecar), against the planned config `want`."""
    from configurator import ConfigError

    if diverged_at(os.path.join(run["out_dir"], "metrics.jsonl")) is not None:
        return "diverged"
    meta = checkpoint.read_meta(run["out_dir"])
    if meta is None:
        has_ckpt = os.path.exists(checkpoint.paths(run["out_dir"])[0])
        return "interrupted" if has_ckpt else "new"
    log = os.path.join(run["out_dir"], "metrics.jsonl")
    if os.path.isfile(log):
        from runlog import read_metrics

        check_same_data(log, read_metrics(log, "config", drop_torn_tail=True), want["data_dir"])  # train.py drops a torn end
    fixed, changed = checkpoint.config_changes(meta.get("config", {}), want, ignore=SAME_BY_FINGERPRINT)
    extend = set(changed) <= {"max_iters", "lr_decay_iters"} and want["max_iters"] > meta.get("step", 0)
    if fixed or (changed and meta.get("finished") and not extend):
        detail = ", ".join(f"{k}: recorded {a!r}, planned {b!r}" for k, (a, b) in {**fixed, **changed}.items())
        raise ConfigError(
            f"{run['out_dir']} holds a run with other settings ({detail}); it cannot be continued into "
            f"the planned one: move or delete that folder, or use another --out-root"
        )
    if meta.get("finished") and meta.get("step", 0) >= want["max_iters"]:
        return "finished"
    return "interrupted"  # resumed by train.py, which prints every changed setting


def train_args(run, base, extra):
    """train.py's arguments for a run: the base config, the run's settings, the extra overrides."""
    args = [base, f"--embedding={run['arm']}", f"--seed={run['seed']}", f"--out_dir={run['out_dir']}", "--init_from=auto"]
    return args + [f"--{k}={v}" for k, v in run["overrides"].items()] + list(extra)


def command(run, base, launcher, extra):
    prefix = shlex.split(launcher) if launcher else [sys.executable]
    imports = [f"--import={m}" for m in IMPORTED]  # this command's own --import, for every run
    return prefix + [os.path.join(ROOT, "train.py")] + imports + train_args(run, base, extra)


def registered_arms(argv):
    """The arms known once the base config has run: a config may import a module that registers its own."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--base")
    base = pre.parse_known_args(argv)[0].base
    if base and os.path.isfile(base):
        from configurator import ConfigError, load_config

        try:
            load_config([base])
        except ConfigError:
            pass  # reported with the rest of the planned configs below
    return list(ARMS)


def parse_args(argv):
    """(args, extra train.py overrides, grid), every flag checked."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="base config file")
    p.add_argument(
        "--arms", nargs="+", default=["bpe_tied", "kron", "bpe_untied"], choices=registered_arms(sys.argv[1:] if argv is None else argv)
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[1337, 1338, 1339])
    p.add_argument("--grid", nargs="*", action="extend", default=[], help="key=v1,v2 overrides to cross with arms and seeds")
    p.add_argument("--out-root", required=True)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--launcher", default=None, help='e.g. "torchrun --standalone --nproc_per_node=8"')
    p.add_argument("--dry-run", action="store_true")
    p.add_argument(
        "--keep-logs",
        default=None,
        help="copy each finished run's metrics.jsonl here (to commit), and skip runs whose log kept here is complete",
    )
    args, extra = p.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    bad = [e for e in extra if not e.startswith("--") or "=" not in e]
    if bad:
        p.error(f"unrecognised arguments {bad}: extra train.py overrides are --key=value")
    if not os.path.isfile(args.base):
        p.error(f"base config {args.base!r} not found")
    if args.parallel < 1:
        p.error(f"--parallel {args.parallel}: expected an integer >= 1 (runs at a time)")
    try:
        return args, extra, parse_grid(args.grid)
    except ValueError as e:
        p.error(str(e))


def check_data(data_dirs):
    """Every planned run's data is there (both splits) before anything runs, --dry-run included; a
    missing folder names the command that prepares it. Relative folders are the runs' own: from the
    repository root, where train.py runs."""
    from shards import shard_paths

    for d in sorted(data_dirs):
        for split in ("train", "val"):
            shard_paths(os.path.join(ROOT, d), split)


def child_env():
    """The runs' environment: this one, with the folder this command was started in on PYTHONPATH
    when it --import-ed a module from there (the runs start in the repository root)."""
    env = dict(os.environ)
    if IMPORTED:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
    return env


def main(argv=None):
    args, extra, grid = parse_args(argv)
    fingerprint_of.cache_clear()  # one invocation's view of the data: a later call may see it re-prepared
    runs = plan(args.arms, args.seeds, grid, args.out_root)
    from configurator import ConfigError

    try:
        check_data({planned_config(r, args.base, extra)["data_dir"] for r in runs})
        for r in runs:  # state() builds (so checks) every planned config before any run starts
            r["state"] = state(r, args.base, extra, args.keep_logs)
            if r["state"] in SETTLED:
                keep(r, args.keep_logs)
    except (ConfigError, checkpoint.CheckpointError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(
        f"{len(runs)} runs in {args.out_root}: "
        + ", ".join(f"{s} {sum(r['state'] == s for r in runs)}" for s in ("finished", "diverged", "interrupted", "new"))
    )
    for r in runs:
        print(f"  {r['state']:<11} {r['name']}-s{r['seed']}")
    if args.dry_run:
        return runs
    os.makedirs(args.out_root, exist_ok=True)
    failed = execute([r for r in runs if r["state"] not in SETTLED], args, extra)
    with open(os.path.join(args.out_root, "study.json"), "w") as f:
        json.dump({"base": args.base, "runs": runs, "extra": extra}, f, indent=1)
    if failed:
        sys.exit(did_not_finish(failed))
    return runs


def did_not_finish(failed, with_state=False):
    """The one line a runner ends with when runs failed (run_study, run_forecast): which, and what to do."""
    names = [f"{r['name']}-s{r['seed']}" + (f" ({r['state']})" if with_state else "") for r in failed]
    return (
        f"{len(failed)} run(s) did not finish: " + ", ".join(names) + "; see each run's train.log for why, mend it, "
        "then rerun the same command to resume them"
    )


def execute(todo, args, extra, ready=None):
    """Run `todo`, args.parallel at a time, each train.py logging to <out_dir>/train.log; finished and
    diverged runs' logs are kept (--keep-logs, or a run's own keep_dir; None keeps nothing). With
    ready(run), a free lane takes the first run in `todo` that is ready; runs left when none is ready
    and none is running are 'blocked'. Returns the runs that did not finish (nor diverge)."""
    running, failed, took, total = [], [], [], len(todo)
    todo = list(todo)
    while todo or running:
        while len(running) < args.parallel:
            r = next((r for r in todo if ready is None or ready(r)), None)
            if r is None:
                break
            todo.remove(r)
            os.makedirs(r["out_dir"], exist_ok=True)
            log = open(os.path.join(r["out_dir"], "train.log"), "a")
            cmd = command(r, args.base, args.launcher, extra)
            print(
                f"[{time.strftime('%H:%M:%S')}] {'resume' if r['state'] == 'interrupted' else 'start'} "
                f"{r['name']}-s{r['seed']}: log in {log.name}",
                flush=True,
            )
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=child_env())
            running.append((r, proc, log, time.time()))
        if not running:  # nothing could start: what is left waits on runs that did not finish
            for r in todo:
                r["state"] = "blocked"
            return failed + todo
        time.sleep(0.5)
        for item in [i for i in running if i[1].poll() is not None]:
            r, proc, log, started = item
            took.append(time.time() - started)
            running.remove(item)
            log.close()
            done = (checkpoint.read_meta(r["out_dir"]) or {}).get("finished", False) and proc.returncode == 0
            r["state"] = "finished" if done else ("failed" if proc.returncode else "interrupted")
            if r["state"] == "failed" and diverged_at(os.path.join(r["out_dir"], "metrics.jsonl")) is not None:
                r["state"] = "diverged"
            if r["state"] in SETTLED:
                keep(r, r.get("keep_dir", args.keep_logs))
            else:
                failed.append(r)
            left = len(todo) + len(running)
            eta = sum(took) / len(took) * left / args.parallel  # from the measured run times
            print(
                f"[{time.strftime('%H:%M:%S')}] {r['state']} {r['name']}-s{r['seed']} (exit {proc.returncode}, "
                f"{took[-1] / 60:.1f} min) | {total - left} of {total} done, {left} left"
                + (f", about {eta / 60:.1f} min more" if left else ""),
                flush=True,
            )
            if r["state"] in ("failed", "diverged"):
                print(f"    {last_words(log.name)}", flush=True)
    return failed


def last_words(log_path):
    """A failed run's own last message (e.g. a config error), not torchrun's banner after it."""
    with open(log_path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    said = [line for line in lines if line.startswith("error:")] or lines
    return said[-1] if said else "(empty log)"


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
