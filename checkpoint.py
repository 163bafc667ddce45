"""Checkpoints: the one place that writes and reads them. Checkpoints are data, never code.

<out_dir>/ckpt.pt holds only tensors and plain Python values (model and optimizer state, RNG states
as uint8 tensors, the run's config) and is always read with `torch.load(weights_only=True)`, which
refuses anything that would run code while unpickling. Beside it, <out_dir>/ckpt.json is a small
sidecar with the run's config, step, validation loss and its one "finished" state, so tools (the
study runner, the resume check) never open the checkpoint to read a flag.

Writes are atomic and private: the state goes to a temp file named after this process, then
os.replace puts it in place, so a failed or killed write leaves the previous checkpoint as it was.

A checkpoint that holds anything else (one from an unknown program, or pickled objects) is refused
with the reason; if you trust its source, `python checkpoint.py --convert-trusted IN OUT` rewrites
it in the safe format (that one command unpickles IN with full trust, so only run it on your own files).
"""

import json
import os
import pickle
import re
import sys
import zipfile
from dataclasses import asdict, fields

import torch

from arms import ARMS
from checks import is_int, is_number
from errors import UserError
from model import GPT, GPTConfig, approx_param_count

FORMAT = 2  # 1: train.py before ckpt.json (numpy RNG state inside); 2: plain data only
CKPT_NAME, META_NAME = "ckpt.pt", "ckpt.json"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be written or read as it is; the message names the file."""


def paths(out_dir, kept_step=None):
    """(checkpoint, sidecar) of a run folder: ckpt.pt and ckpt.json, or with kept_step=N the
    checkpoint kept at step N (keep_ckpt_steps), ckpt_stepN.pt and ckpt_stepN.json."""
    if kept_step is None:
        return os.path.join(out_dir, CKPT_NAME), os.path.join(out_dir, META_NAME)
    return os.path.join(out_dir, f"ckpt_step{kept_step}.pt"), os.path.join(out_dir, f"ckpt_step{kept_step}.json")


def _atomic_write(path, write):
    if os.path.islink(path):
        raise CheckpointError(
            f"{path} is a symbolic link (to {os.readlink(path)!r}); refusing to replace it: make it a plain file or choose another out_dir"
        )
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise CheckpointError(
            f"writing {path} failed ({type(e).__name__}: {e}){_disk_note(path)}; the previous {os.path.basename(path)} is intact"
        ) from e


def _disk_note(path):
    """A failed write on a full disk rarely says so (torch reports "unexpected pos"): check and say it."""
    import shutil

    try:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    except OSError:
        return ""
    return f"; no space left on device ({free / 2**20:.0f} MB free)" if free < 256 * 2**20 else ""


def save_run(
    out_dir, model, optimizer, config, step, best_val, val_loss, finished, wandb_id, device_type, branched_from=None, kept_step=None
):
    """What a checkpoint holds, in one place: the model's weights and shape (model_args), the
    optimizer, the run's config, the step, the best and last validation loss, whether it finished,
    its wandb id, the RNG states and, for a branch, where it branched from; ckpt.json repeats the run
    facts for tools that never open it. kept_step=N writes the kept pair ckpt_stepN.pt/.json instead."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_args": asdict(model.config),
        "arm_module": ARMS[model.config.embedding].module,
        "config": config,
        "iter_num": step,
        "best_val_loss": best_val,
        "finished": finished,
        "wandb_id": wandb_id,
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if device_type == "cuda" else None},
        "branched_from": branched_from,
    }
    save(out_dir, state, _meta_of(state, val_loss), kept_step)


def _meta_of(state, val_loss):
    return {
        "step": state["iter_num"],
        "finished": state["finished"],
        "val_loss": val_loss,
        "best_val_loss": state["best_val_loss"],
        "config": state["config"],
        "model_args": state["model_args"],
    }


def ensure_meta(out_dir, ckpt):
    """Make ckpt.json agree with the checkpoint it describes: write it for a checkpoint from before the
    sidecar existed, and rewrite it when a crash between the two writes left it behind (the
    checkpoint, written first, is the truth). Returns True when it wrote."""
    try:
        meta = read_meta(out_dir)
    except CheckpointError:
        meta = None
    if meta is not None and meta.get("step") == ckpt["iter_num"] and meta.get("finished") == ckpt.get("finished"):
        return False
    same_step = meta is not None and meta.get("step") == ckpt["iter_num"]  # a loss measured at another step is not kept
    save_meta(out_dir, _meta_of(dict(ckpt, config=ckpt.get("config") or {}), meta.get("val_loss") if same_step else None))
    return True


def remove_stale_temp_files(out_dir):
    """Temp files a killed save left (ckpt.pt.tmp<pid>, ckpt.json.tmp<pid>); call with the run's lock
    held, when no other process can be writing them. Returns the names removed."""
    import re

    stale = [f for f in os.listdir(out_dir) if re.fullmatch(r"ckpt(_step\d+)?\.(pt|json)\.tmp\d+", f)]
    for f in stale:
        os.remove(os.path.join(out_dir, f))
    return stale


def restore_rng(ckpt, device_type):
    """The RNG states a checkpoint saved (CUDA's only on CUDA), so a resumed run draws what it would have."""
    torch.set_rng_state(ckpt["rng"]["torch"].cpu())
    if device_type == "cuda" and ckpt["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"].cpu())


def load_model(path, device="cpu"):
    """A train.py checkpoint -> (model in eval mode, checkpoint dict), read without running code.
    Works across devices (a GPU checkpoint loads on CPU and back). Settings the model no longer has
    (e.g. kron_mode, from before the layer had one form) are ignored. The optimizer state is dropped:
    inference needs the weights only (it is twice the model)."""
    ckpt = load(path, map_location=device)
    model = GPT(config_of(path, ckpt))
    load_weights(model, ckpt, path)
    ckpt.pop("optimizer", None)
    ckpt.pop("model", None)
    return model.to(device).eval(), ckpt


def load_weights(model, ckpt, path):
    """The checkpoint's weights (checked: model_state) into model; a missing, extra or misshapen one is
    one CheckpointError naming the file and the first such weight."""
    state = model_state(ckpt, path)  # its own CheckpointError (a RuntimeError too) is not re-wrapped below
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise CheckpointError(f"{path}: its weights do not fit the model its model_args describe ({detail[:240]})") from None


def restore_training_state(optimizer, ckpt, path, device_type):
    """A resume's optimizer and RNG states, each checked first: a checkpoint without them, or with an
    optimizer state for other parameters, is one CheckpointError naming the file and the entry."""
    check_facts(path, ckpt, ("optimizer", "rng"))
    try:
        restore_optimizer(optimizer, ckpt["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its 'optimizer' state does not fit this model's parameters ({str(e)[:200]})") from None
    try:
        restore_rng(ckpt, device_type)
    except (TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its 'rng' state is not a torch RNG state ({str(e)[:200]})") from None


MAX_VOCAB = 2**22  # larger than any tokenizer this repo reads (a Kron arm keeps a V x pos_dim byte table)


def config_of(path, ckpt):
    """The GPTConfig a checkpoint's model_args describe, checked before any model is built: valid
    settings, and a size its weights can hold (absurd model_args would otherwise allocate until the
    machine runs out)."""
    args = ckpt.get("model_args")
    if not isinstance(args, dict):
        raise CheckpointError(f"{path}: model_args is {type(args).__name__}, expected a dict of model settings")
    arm, module = args.get("embedding"), ckpt.get("arm_module")
    if isinstance(module, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", module):
        raise CheckpointError(f"{path}: arm_module = {module[:80]!r}, expected a Python module name")
    if isinstance(arm, str) and arm not in ARMS and isinstance(module, str) and module not in sys.modules:
        # never imported because a file says so: the user names the module
        raise CheckpointError(
            f"{path}: its arm embedding={arm!r} is not registered here; it was registered by the "
            f"module {module!r}: pass --import {module} (run from the folder that holds it, or put "
            f"that folder on PYTHONPATH)"
        )
    from configurator import out_of_range

    model_fields = {f.name for f in fields(GPTConfig)}  # the model's settings, held to a config's ranges
    bad = out_of_range({k: v for k, v in args.items() if k in model_fields})
    if bad:
        raise CheckpointError(f"{path}: model_args {bad[0]} = {str(bad[1])[:80]!r}, expected {bad[2]}")
    try:
        cfg = GPTConfig.from_dict(args)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: model_args are not a valid model ({e})") from None
    held = sum(v.numel() for v in ckpt["model"].values() if isinstance(v, torch.Tensor))
    sizes = ("n_layer", "n_embd", "n_head", "block_size", "vocab_size")
    bad = [k for k in sizes if not isinstance(getattr(cfg, k), int) or isinstance(getattr(cfg, k), bool) or getattr(cfg, k) < 1]
    if bad:
        raise CheckpointError(f"{path}: model_args {bad[0]} = {getattr(cfg, bad[0])!r}, expected an integer >= 1")
    body = approx_param_count(cfg, body_only=True)  # every arm has the blocks; the vocabulary side varies
    if body > 4 * held + 10**6 or cfg.vocab_size > MAX_VOCAB or cfg.vocab_size * cfg.n_embd > 4 * held + 10**8:
        raise CheckpointError(
            f"{path}: model_args describe a model whose blocks alone hold about {body:,} parameters "
            f"(vocab_size {cfg.vocab_size:,}), but its weights hold {held:,}: not a consistent train.py checkpoint"
        )
    return cfg


def save(out_dir, state, meta, kept_step=None):
    """state: tensors and plain values (torch.save); meta: JSON-able run facts for ckpt.json (or, with
    kept_step, the kept checkpoint's ckpt_stepN.pt and .json)."""
    ckpt_path, meta_path = paths(out_dir, kept_step)
    state = dict(state, format=FORMAT)
    _atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))
    save_meta(out_dir, meta, kept_step)


def save_meta(out_dir, meta, kept_step=None):
    """Write ckpt.json alone (also to give a checkpoint from before the sidecar its sidecar)."""
    _atomic_write(paths(out_dir, kept_step)[1], lambda tmp: _write_json(tmp, dict(meta, format=FORMAT)))


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=True)


def _number_or_none(v):
    return v is None or is_number(v)


MAX_STEP = 2**40  # more optimizer steps than any run could take: a larger one is a damaged file
# key: (check, what is expected), for the facts a checkpoint and its sidecar carry
RUN_FACTS = {
    "step": (lambda v: is_int(v) and 0 <= v < MAX_STEP, f"an integer step in [0, {MAX_STEP})"),
    "iter_num": (lambda v: is_int(v) and 0 <= v < MAX_STEP, f"an integer step in [0, {MAX_STEP})"),
    "finished": (lambda v: isinstance(v, bool), "true or false"),
    "config": (lambda v: isinstance(v, dict), "a dict of the run's settings"),
    "model_args": (lambda v: isinstance(v, dict), "a dict of model settings"),
    "val_loss": (_number_or_none, "a number or null"),
    "best_val_loss": (_number_or_none, "a number or null"),
    "optimizer": (lambda v: isinstance(v, dict), "the optimizer's state (a dict), which a resume restores"),
    "rng": (lambda v: isinstance(v, dict) and isinstance(v.get("torch"), torch.Tensor), "the RNG states (a dict with 'torch')"),
}


def check_facts(path, obj, required):
    """Every run fact present has its type and range, and the required ones are there; a violation is
    one CheckpointError naming the file, the key and the value."""
    for key in required:
        if key not in obj:
            raise CheckpointError(f"{path} has no {key!r} entry (expected {RUN_FACTS[key][1]})")
    for key, (ok, expected) in RUN_FACTS.items():
        if key in obj and not ok(obj[key]):
            raise CheckpointError(f"{path}: {key} = {str(obj[key])[:80]!r}, expected {expected}")
    return obj


def read_meta(out_dir, kept_step=None):
    """The ckpt.json sidecar of a run folder (or of its checkpoint kept at kept_step) as a checked
    dict, or None when there is none."""
    path = paths(out_dir, kept_step)[1]
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not readable JSON ({e}); delete it to let the run rewrite it") from e
    except RecursionError:
        raise CheckpointError(f"{path} is not readable JSON (nested too deep); delete it to let the run rewrite it") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} holds a {type(meta).__name__}, expected a JSON object; delete it to let the run rewrite it")
    return check_facts(path, meta, ("step", "finished", "config"))


def _legacy_numpy_globals():
    """Format-1 checkpoints hold numpy's RNG state (an ndarray); these are the only globals it needs."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load(path, map_location="cpu"):
    """A train.py checkpoint as a dict, read without running code. Every failure names the file."""
    if os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a folder; expected a ckpt.pt file written by train.py (e.g. {os.path.join(path, CKPT_NAME)})")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist (expected a ckpt.pt written by train.py)")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path!r} is empty (0 bytes): not a checkpoint")
    if str(map_location).startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"cannot load {path!r} onto {map_location!r}: CUDA is not available here (use the cpu)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"{path!r} is truncated or not a torch checkpoint (not a zip archive)")
    try:
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            with torch.serialization.safe_globals(_legacy_numpy_globals()):
                ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path!r}: it holds Python objects that only a full unpickle can rebuild, and "
            f"unpickling can run code ({str(e).splitlines()[-1][:200]}). If you trust its source, convert it once with "
            f"`python checkpoint.py --convert-trusted {path} OUT.pt`"
        ) from e
    except Exception as e:  # torch's reader fails in many ways on a damaged archive
        raise CheckpointError(f"{path!r} is truncated or not a torch checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(ckpt, dict) or "model_args" not in ckpt or "model" not in ckpt:
        found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path!r} is not a train.py checkpoint (no 'model_args'/'model' entries; found {found})")
    if ckpt.get("format", 1) > FORMAT:
        raise CheckpointError(f"{path!r} has checkpoint format {ckpt['format']}, newer than this code's {FORMAT}: update the code")
    if not isinstance(ckpt["model"], dict):
        raise CheckpointError(f"{path}: model = {type(ckpt['model']).__name__}, expected a dict of tensors")
    check_facts(path, ckpt, ("iter_num",))
    return _migrate(ckpt)


def model_state(ckpt, path="the checkpoint"):
    """The model's weights, without the key prefixes torch.compile ('_orig_mod.') and DDP ('module.') add,
    each checked before use: a float tensor with only finite values (a weight of another dtype would be
    cast silently, a NaN one would sample garbage and export without a word)."""
    state = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in ckpt["model"].items()}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise CheckpointError(f"{path}: weight {name} is {getattr(t, 'dtype', type(t).__name__)}, expected a float tensor")
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{path}: weight {name} holds {bad:,} non-finite values (NaN or inf) of {t.numel():,}")
    return state


def _migrate(ckpt):
    """Bring a checkpoint written by older code to today's layout, in place. kron_tied's logit scale
    was the GPT's own first parameter ('logit_scale'); it is now its head's last ('lm_head.logit_scale').
    The optimizer state follows parameters by position, so the scalar group's first entry moves last."""
    model = ckpt["model"]
    old = next((k for k in model if k.removeprefix("_orig_mod.").removeprefix("module.") == "logit_scale"), None)
    if old is None:
        return ckpt
    ckpt["model"] = {(k.replace("logit_scale", "lm_head.logit_scale") if k == old else k): v for k, v in model.items()}
    groups = (ckpt.get("optimizer") or {}).get("param_groups") or []
    if len(groups) == 2 and groups[1]["params"]:  # GPT.configure_optimizers: [>= 2-D weights, the rest]
        ids = groups[1]["params"]
        groups[1]["params"] = ids[1:] + ids[:1]
    return ckpt


# The optimizer settings that say how it runs on this device, not what it computes, and the ones the
# resumed run's config sets (a changed --weight_decay must take effect, not only be printed).
DEVICE_SPECIFIC = ("fused", "foreach", "capturable")
FROM_CONFIG = ("weight_decay", "betas", "eps", "lr_mult")


def restore_optimizer(optimizer, saved):
    """Load a saved optimizer state into an optimizer built for this run's device. Why not plain
    load_state_dict: it takes the saved run's param_groups whole, `fused` included, so a CPU save
    resumed on CUDA would run unfused AdamW with its `step` counters on the GPU (a host sync per
    parameter per step), and a CUDA save resumed on CPU would keep the CUDA choice. The freshly built
    optimizer's device settings are kept; `step` goes where they want it (the parameter's device when
    fused or capturable, else the CPU)."""
    wanted = [{k: g[k] for k in DEVICE_SPECIFIC + FROM_CONFIG if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, keep in zip(optimizer.param_groups, wanted):
        group.update(keep)
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            step = state.get("step")
            if isinstance(step, torch.Tensor):
                state["step"] = step.to(device=p.device if on_device else "cpu", dtype=torch.float32)


def fixed_on_resume():
    """Settings a resumed run may not change: the model's shape (GPTConfig's fields, but dropout and
    how the loss is computed), the seed, which picks every batch, and the embedding's learning-rate
    multiplier, which decides the optimizer's groups."""
    return tuple(f.name for f in fields(GPTConfig) if f.name not in ("dropout", "loss_chunk")) + ("seed", "embedding_lr_mult")


# A setting whose default today is not what a run recorded before it existed did: loss_chunk came in
# with the chunked loss (loss_chunk > 0 by default); every run before it computed the plain path, 0.
BEFORE_IT_EXISTED = {"loss_chunk": 0}


# Settings that change how a run is executed or reported, never what it computes.
NOT_RESULTS = (
    "out_dir",
    "init_from",
    "eval_only",
    "log_interval",
    "ckpt_interval",
    "hellaswag_interval",
    "hellaswag_path",
    "hellaswag_limit",
    "keep_ckpt_steps",
    "wandb_log",
    "wandb_project",
    "wandb_run_name",
    "wandb_group",
    "compile",
    "num_threads",
    "cpu_keep_freed_memory",
    "backend",
    "peak_flops",
)


def config_changes(theirs, ours, ignore=("init_from", "eval_only")):
    """(refused, allowed): {key: (recorded, new)} for the settings that differ between a checkpoint's
    recorded config and the one about to resume it. A setting the record lacks (it predates the setting)
    had its default value then (or its BEFORE_IT_EXISTED value), so it is compared as that."""
    from configurator import DEFAULTS

    then = {**DEFAULTS, **BEFORE_IT_EXISTED}
    recorded = {k: theirs[k] if k in theirs else then[k] for k in ours if k in theirs or k in then}
    changed = {k: (recorded[k], ours[k]) for k in recorded if recorded[k] != ours[k] and k not in ignore}
    fixed = fixed_on_resume()
    return ({k: v for k, v in changed.items() if k in fixed}, {k: v for k, v in changed.items() if k not in fixed})


def convert_trusted(src, dst):
    """Rewrite a checkpoint you trust in the safe format: drops numpy RNG state and pickled objects."""
    if not os.path.isfile(src):
        raise CheckpointError(f"--convert-trusted: checkpoint {src!r} does not exist (expected a ckpt.pt file you trust)")
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=False)  # the user vouches for src
    except Exception as e:  # torch's reader fails in many ways on a damaged archive
        raise CheckpointError(f"{src!r} is truncated or not a torch checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise CheckpointError(f"{src!r} is not a train.py checkpoint")
    rng = ckpt.get("rng") or {}
    safe = {k: v for k, v in ckpt.items() if k != "rng"}
    safe["rng"] = {k: v for k, v in rng.items() if isinstance(v, torch.Tensor) or v is None}
    safe["format"] = FORMAT
    torch.save(safe, dst)
    load(dst)  # proves the result loads safely
    return dst


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Checkpoint tools")
    p.add_argument(
        "--convert-trusted",
        nargs=2,
        metavar=("IN", "OUT"),
        help="rewrite a checkpoint YOU TRUST (it is fully unpickled) in the safe format",
    )
    a = p.parse_args(argv)
    if not a.convert_trusted:
        p.error("nothing to do: pass --convert-trusted IN OUT")
    print(f"wrote {convert_trusted(*a.convert_trusted)}")


if __name__ == "__main__":
    from errors import run_cli

    run_cli(main)  # a CheckpointError or a file error: one line (--debug: the traceback)
