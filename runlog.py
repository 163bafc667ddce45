"""A run's folder: its metric log, where its records go, and the lock that makes one process its owner.

train.py appends JSON lines to <out_dir>/metrics.jsonl through `RunLogger` (which also prints and
feeds wandb); everything that reads them (the quickstart, compare, probes) calls `read_metrics`.
`RunLock` is held by the training process for as long as it
runs, so a second run on the same out_dir is refused instead of interleaving logs and checkpoints.

Record kinds: {"kind": "train", "step", "loss", "lr", "grad_norm", "dt_ms", "tokens_per_s", "mfu", ...},
{"kind": "eval", "step", "val_loss", <norm-drift fields>}, {"kind": "config", ...} once per start.
"""

import json
import os
import socket
import time

from errors import UserError

METRICS_FILE = "metrics.jsonl"


class RunFolderError(UserError, RuntimeError):
    """A run folder this code will not write into as it is (a link where a file belongs, ...)."""


class DamagedFileError(UserError, ValueError):
    """A JSON or JSONL file that cannot be read as one (cut short, not UTF-8, nested too deep, foreign);
    the message names the file, and the line where there is one."""


def refuse_link(path):
    """Never write through a symbolic link: a link in a run folder could point at any file."""
    if os.path.islink(path):
        raise RunFolderError(
            f"{path} is a symbolic link (to {os.readlink(path)!r}); refusing to write through it: "
            f"replace it with a plain file or choose another out_dir"
        )


class MetricsLog:
    def __init__(self, out_dir, keep_until_step=None):
        """Open the log for appending. On resume, records from after the checkpoint's step (written by
        the interrupted run and about to be recomputed) are dropped first. A new run in a folder that
        still holds an earlier run's log moves that log aside (never deletes it) and says where."""
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, METRICS_FILE)
        refuse_link(self.path)
        if keep_until_step is not None and os.path.exists(self.path):
            kept = [r for r in read_metrics(out_dir, drop_torn_tail=True) if _keep(r, keep_until_step)]
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)
            os.replace(tmp, self.path)
        elif keep_until_step is None and os.path.exists(self.path):
            aside = f"{self.path}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(self.path, aside)
            print(f"{out_dir} held an earlier run's {METRICS_FILE} and no checkpoint to resume: moved it to {aside}")

    def write(self, kind, **fields):
        with open(self.path, "a") as f:
            f.write(json.dumps({"kind": kind, **fields}) + "\n")


def _duration(seconds):
    """3h05m, 12m30s, 45s: an ETA at the step time of the interval just logged (evaluations not included)."""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class RunLogger:
    """Where a training run's records go: metrics.jsonl always, the console on log steps and
    evaluations, and wandb when asked (grouped by arm, offline without a login)."""

    def __init__(self, out_dir, keep_until_step=None, log_interval=10, max_iters=None):
        self.metrics = MetricsLog(out_dir, keep_until_step)
        self.out_dir, self.log_interval, self.max_iters = out_dir, log_interval, max_iters
        self.wandb = None

    def start_wandb(self, config, run_id):
        """wandb's public API only; imported here, so machines without wandb never need it."""
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if _wandb_logged_in() else "offline")
        self.wandb = wandb.init(
            project=config["wandb_project"],
            group=config["wandb_group"] or config["embedding"],
            name=config["wandb_run_name"] or f"{config['embedding']}-s{config['seed']}",
            config=config,
            dir=self.out_dir,
            mode=mode,
            id=run_id,
            resume="allow",
        )
        if mode == "offline":
            print(f"wandb: offline mode (no login found); upload later with `wandb sync {self.out_dir}/wandb/offline-run-*`")
        return run_id

    def config(self, **fields):
        self.metrics.write("config", **fields)

    def train(self, rec):
        self.metrics.write("train", **rec)
        if self.wandb:
            self.wandb.log({f"train/{k}": v for k, v in rec.items() if k != "step" and v is not None}, step=rec["step"])
        if rec["step"] % self.log_interval == 0:
            mfu = f" | mfu {100 * rec['mfu']:.1f}%" if rec.get("mfu") is not None else ""
            left_s = (self.max_iters - rec["step"] - 1) * rec["dt_ms"] / 1000 if self.max_iters else 0
            eta = f" | eta {_duration(left_s)}" if left_s > 0 else ""
            print(
                f"step {rec['step']:>6}/{self.max_iters} | loss {rec['loss']:.4f} | lr {rec['lr']:.2e} | "
                f"{rec['dt_ms']:.0f} ms | {rec['tokens_per_s']:,.0f} tok/s{mfu}{eta}",
                flush=True,
            )

    def eval(self, step, val_loss, norms, by_source=None, bpb=None, bpb_by_source=None):
        """by_source: {source: val loss} when the validation set has several sources; bpb: bits per
        byte (and per source), comparable across tokenizers."""
        extra = {"val_loss_by_source": by_source} if by_source else {}
        extra.update({"val_bpb": bpb} if bpb is not None else {})
        extra.update({"val_bpb_by_source": bpb_by_source} if bpb_by_source else {})
        self.metrics.write("eval", step=step, val_loss=val_loss, **norms, **extra)
        if self.wandb:
            self.wandb.log(
                {
                    "val/loss": val_loss,
                    **({"val/bpb": bpb} if bpb is not None else {}),
                    **{f"val/loss_{k}": v for k, v in (by_source or {}).items()},
                    **{(f"val/{k}" if k.startswith("hellaswag_") else f"norms/{k}"): v for k, v in norms.items()},
                },
                step=step,
            )
        drift = " | ".join(f"{k} {v:.4g}" for k, v in norms.items())
        sources = " | " + " ".join(f"{k} {v:.3f}" for k, v in by_source.items()) if by_source else ""
        bits = f" | {bpb:.4f} bits/byte" if bpb is not None else ""
        print(f"eval step {step}: val loss {val_loss:.4f}{bits}{sources} | {drift}", flush=True)

    def final(self, step, dev, test, by_source, dev_bpb=None, test_bpb=None, bpb_by_source=None):
        """The final evaluation on the whole validation split: the mean over sources of each half."""
        self.metrics.write(
            "final",
            step=step,
            dev_loss=dev,
            test_loss=test,
            by_source=by_source,
            dev_bpb=dev_bpb,
            test_bpb=test_bpb,
            bpb_by_source=bpb_by_source,
        )
        if self.wandb:
            self.wandb.log(
                {"final/dev_loss": dev, "final/test_loss": test, "final/dev_bpb": dev_bpb, "final/test_bpb": test_bpb}, step=step
            )

        def fmt(v):
            return "-" if v is None else f"{v:.4f}"

        print(
            f"final evaluation at step {step} (every validation window): dev {fmt(dev)} | test {fmt(test)} | "
            f"bits per byte: dev {fmt(dev_bpb)} | test {fmt(test_bpb)}",
            flush=True,
        )

    def diverged(self, step, reason):
        """The run's last record when its loss stopped being finite: a study runner keeps such a log as
        a settled outcome (an infinite loss, PLAN.md's rule), not as a run to retry."""
        self.metrics.write("diverged", step=step, reason=reason)

    def finish(self):
        if self.wandb:
            self.wandb.finish()
            self.wandb = None


def _wandb_logged_in():
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = os.path.expanduser("~/.netrc")
    return os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read()


def _keep(record, step):
    """On resume from `step`: train and eval records from before it (an evaluation at the resume step
    itself is recomputed); a diverged record only from before it (a resumed run may not diverge)."""
    if record.get("kind") in ("train", "eval", "diverged"):
        return record["step"] < step
    return True


def parse_json(data, where):
    """JSON text or bytes read from `where`; damaged or foreign content is refused in one line naming it."""
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedFileError(f"{where}: not a JSON file this repository wrote ({e})") from None
    except RecursionError:  # nested deeper than the parser's stack: no file this repository writes
        raise DamagedFileError(f"{where}: not a JSON file this repository wrote (nested too deep to read)") from None


def json_line(raw, where):
    """One line of a JSONL file (bytes) as a value; ValueError naming `where` (path:line) if it is not one."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DamagedFileError(f"{where}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
    except json.JSONDecodeError as e:
        raise DamagedFileError(f"{where}: not a JSON line ({e})") from None
    except RecursionError:
        raise DamagedFileError(f"{where}: not a JSON line (nested too deep to read)") from None


def read_json(path):
    """A JSON file the repository wrote (a probe's output, a benchmark, a sidecar), refused naming it if damaged."""
    with open(path, "rb") as f:
        return parse_json(f.read(), path)


def read_metrics(out_dir, kind=None, drop_torn_tail=False):
    """All records of a run (optionally of one kind), in order. Accepts the run folder or the file. A
    line that is not JSON is refused naming path:line; with drop_torn_tail (a resume), an unreadable
    LAST line, what a run killed in the middle of a write leaves, is dropped with a warning instead."""
    path = out_dir if out_dir.endswith(".jsonl") else os.path.join(out_dir, METRICS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no metrics log at {path!r}: is this a train.py out_dir?")
    with open(path, "rb") as f:
        lines = [(n, raw.strip()) for n, raw in enumerate(f, 1) if raw.strip()]
    records = []
    for i, (n, raw) in enumerate(lines):
        try:
            records.append(json_line(raw, f"{path}:{n}"))
        except ValueError as e:
            if not (drop_torn_tail and i == len(lines) - 1):
                raise
            print(f"warning: {e}; dropped it, the torn end of a write that was killed ({len(raw)} bytes)")
    return [r for r in records if kind is None or r.get("kind") == kind]


def series_from_evals(evals):
    """The drift series of one run's eval records. The input layer's scale metric is std(W)*sqrt(D)
    for Kron and the table's std for BPE arms, also given relative to its first evaluation."""
    key = "proj_std_sqrtD" if "proj_std_sqrtD" in evals[0] else "wte_std"
    base = evals[0][key]
    return {
        "steps": [r["step"] for r in evals],
        "input_scale_rel": [r[key] / base for r in evals],
        "input_scale_key": key,
        "input_scale": [r[key] for r in evals],
        "emb_rms": [r["emb_rms"] for r in evals],
        "emb_row_norm": [r.get("emb_row_norm") for r in evals],
        "head_std": [r.get("head_std") for r in evals],
    }


class RunLock:
    """An advisory lock on <out_dir>/.lock (fcntl.flock): the OS releases it when the process dies,
    so a killed run leaves no stale lock; the file records who holds it, for the error message."""

    def __init__(self, out_dir):
        self.path = os.path.join(out_dir, ".lock")
        self.fd = None

    def acquire(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        refuse_link(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise RunInUseError(
                f"out_dir {os.path.dirname(self.path)!r} is in use by a live run ({holder}); "
                f"wait for it to finish, stop it, or choose another out_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays (harmless, reused next time)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class RunInUseError(UserError, RuntimeError):
    pass


def summary(out_dir):
    """The figures a README quotes from a run's log: steps, final validation loss, median step time
    and tokens/s (over logged steps after the first, which includes warm-up), and the machine."""
    import statistics

    train = read_metrics(out_dir, "train")
    evals = read_metrics(out_dir, "eval")
    config = read_metrics(out_dir, "config")
    steady = train[1:] or train
    return {
        "steps": len(train),
        "final_step": evals[-1]["step"] if evals else None,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "median_step_ms": statistics.median(r["dt_ms"] for r in steady) if steady else None,
        "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady) if steady else None,
        "device": config[0].get("device") if config else None,
        "world_size": config[0].get("world_size") if config else None,
    }


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Summarise a run's metrics.jsonl: steps, final val loss, median speed")
    p.add_argument("runs", nargs="+", help="train.py out_dirs or metrics.jsonl files")
    for run in p.parse_args(argv).runs:
        print(run, json.dumps(summary(run)))


if __name__ == "__main__":
    from errors import run_cli

    run_cli(main, also=(ValueError,))
