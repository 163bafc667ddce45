"""The training settings: their defaults, their allowed ranges, and nanoGPT-style overrides.

    python train.py config/x.py --key=value ...

Config files are plain Python and are *executed* (as in nanoGPT): run only configs you trust. They
assign names (`n_layer = 12`); names they import (`from math import pi`) and names starting with `_`
are helpers, not settings; `include("base_cpu.py")` runs a base file from the same folder first.
`--key=value` overrides come after and are parsed as Python literals
(strings may be written bare: --out_dir=out/run1). Every key must exist in DEFAULTS and keep its type
(an int is accepted where a float is expected; a default of None accepts anything), and every value
must lie in its range (`validate`). Anything else is a ConfigError naming the key and the value.
"""

import ast
import difflib
import os
from dataclasses import asdict, dataclass
from typing import Optional

from arms import CONTROLS
from checks import is_int, is_number, is_positive
from errors import UserError
from model import GPTConfig
from runtime import DTYPES
from shards import VAL_SAMPLES
from tokenizer import BYTE_SOURCES


@dataclass
class TrainConfig(GPTConfig):
    """Every training setting and its default: the one typed config train.py's loop reads
    (c.max_iters, not c["max_iters"]). Config files and --key=value overrides set these names. The
    model's settings (n_layer, embedding, kron_*, the controls, ...) are GPTConfig's own fields,
    inherited, so their names and defaults live in model.py alone."""

    # I/O
    out_dir: str = "out"
    eval_interval: int = 250
    log_interval: int = 10
    eval_iters: int = 20
    val_sample: str = "first"  # validation windows: 'first' of each val shard (the kept studies), or a fixed 'random' sample
    eval_only: bool = False
    final_eval: bool = False  # at the end, also every validation window, per source and dev/test half ("final" record)
    init_from: str = "scratch"  # 'scratch' | 'resume' (needs <out_dir>/ckpt.pt) | 'auto' (resume if present) | 'hf:PATH' (GPT-2 weights)
    # write ckpt.pt at evaluations on multiples of this (None: every one); always at the end and on a stop
    ckpt_interval: Optional[int] = None
    # also keep <out_dir>/ckpt_step{N}.pt at these steps (branch points: init_from='branch:PATH' cools down from one)
    keep_ckpt_steps: Optional[list] = None
    # HellaSwag during training (hellaswag.py): off unless an interval and the official jsonl are given
    hellaswag_interval: Optional[int] = None  # at evaluations on multiples of this step (and the last)
    hellaswag_path: Optional[str] = None
    hellaswag_limit: Optional[int] = None  # only the first N examples (None: all 10,042 of the val set)
    # wandb
    wandb_log: bool = False
    wandb_project: str = "kronecker-embeddings"
    wandb_run_name: Optional[str] = None
    wandb_group: Optional[str] = None
    # data
    data_dir: str = "data/python_help"
    batch_size: int = 12  # sequences of block_size tokens (a GPTConfig field) per micro-batch
    gradient_accumulation_steps: int = 1
    # optimiser: AdamW, linear warmup then cosine decay to min_lr at lr_decay_iters, or warmup-stable-decay
    lr_schedule: str = "cosine"  # 'cosine' or 'wsd': constant after warmup, linear decay to min_lr over the last cooldown_frac of max_iters
    cooldown_frac: float = 0.2  # wsd only: the cool-down's share of max_iters, round(cooldown_frac * max_iters) steps (wsd_cooldown)
    learning_rate: float = 6e-4
    max_iters: int = 4768
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    decay_lr: bool = True
    warmup_iters: int = 175
    lr_decay_iters: Optional[int] = None
    min_lr: float = 6e-5
    embedding_lr_mult: float = 1.0  # the input layer's lr x this, its weight decay / this (GPT.configure_optimizers)
    # system
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    backend: str = "auto"
    seed: int = 1337
    paired_init: bool = False  # the body (and an own head) drawn from seed alone, the same for every arm (GPT.paired_init_)
    num_threads: Optional[int] = None
    cpu_keep_freed_memory: bool = True  # faster CPU steps, resident memory near its peak (runtime.keep_freed_memory)
    peak_flops: Optional[float] = None

    @classmethod
    def from_dict(cls, d):
        """A validated TrainConfig from {key: value}; unknown keys and bad values are ConfigErrors."""
        d = dict(d)
        for key, value in d.items():
            d[key] = _check_type(key, value, DEFAULTS, "the config")
        return cls(**validate({**DEFAULTS, **d}))

    def to_dict(self):
        return asdict(self)


DEFAULTS = asdict(TrainConfig())  # the same settings as a dict: config files are read into one


def _one_of(*values):
    """(check, what is expected) for a setting that takes one of `values` (each list has one source)."""
    words = [repr(v) for v in values]
    return (lambda v: v in values, ", ".join(words[:-1]) + " or " + words[-1])


LR_SCHEDULES = ("cosine", "wsd")

# key: (check, what is expected). Checked once, when a config is loaded (and by train.train for dicts).
_AT_LEAST_1 = (
    "batch_size",
    "block_size",
    "gradient_accumulation_steps",
    "eval_interval",
    "eval_iters",
    "log_interval",
    "n_layer",
    "n_head",
    "n_embd",
    "vocab_size",
)
MAX_THREADS = 4096  # more CPU threads than any machine has: a larger count is a typo (torch overflows past 2**63)
MAX_POS_DIM = 1024  # bytes a Kron arm keeps per token: GPT-2's longest token has 128, and the byte table is V x this
RANGES = {
    **{k: (lambda v: v >= 1, "an integer >= 1") for k in _AT_LEAST_1},
    "kron_pos_dim": (lambda v: 1 <= v <= MAX_POS_DIM, f"an integer in [1, {MAX_POS_DIM}]"),
    "max_iters": (lambda v: v >= 0, "an integer >= 0"),
    "warmup_iters": (lambda v: v >= 0, "an integer >= 0"),
    "lr_decay_iters": (lambda v: v is None or (is_int(v) and v >= 1), "None or an integer >= 1"),
    "ckpt_interval": (lambda v: v is None or (is_int(v) and v >= 1), "None or an integer >= 1"),
    "keep_ckpt_steps": (
        lambda v: v is None or (isinstance(v, (list, tuple)) and all(is_int(s) and s >= 1 for s in v)),
        "None or a list of integers >= 1",
    ),
    "lr_schedule": _one_of(*LR_SCHEDULES),
    "cooldown_frac": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "hellaswag_interval": (lambda v: v is None or (is_int(v) and v >= 1), "None or an integer >= 1"),
    "hellaswag_limit": (lambda v: v is None or (is_int(v) and v >= 1), "None or an integer >= 1"),
    "seed": (lambda v: 0 <= v < 2**63, "an integer in [0, 2**63)"),
    "learning_rate": (lambda v: 0 < v < float("inf"), "a finite number > 0"),
    "min_lr": (lambda v: 0 <= v < float("inf"), "a finite number >= 0"),
    "weight_decay": (lambda v: 0 <= v < float("inf"), "a finite number >= 0"),
    "beta1": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "grad_clip": (lambda v: 0 <= v < float("inf"), "a finite number >= 0 (0 turns clipping off)"),
    "dropout": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "num_threads": (lambda v: v is None or (is_int(v) and 1 <= v <= MAX_THREADS), f"None or an integer in [1, {MAX_THREADS}]"),
    "peak_flops": (lambda v: v is None or (is_number(v) and 0 < v < float("inf")), "None or a finite number > 0"),
    "init_from": (
        lambda v: v in ("scratch", "resume", "auto") or (v.startswith(("hf:", "branch:")) and len(v.split(":", 1)[1]) > 0),
        "'scratch', 'resume', 'auto', 'hf:PATH' (a Hugging Face GPT-2 folder) or 'branch:PATH' (a kept ckpt_step{N}.pt)",
    ),
    "dtype": _one_of("auto", *DTYPES),
    "backend": _one_of("auto", "nccl", "gloo"),
    "device": (lambda v: v in ("auto", "cpu", "cuda", "mps") or v.startswith("cuda:"), "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    "embedding_lr_mult": (is_positive, "a finite number > 0"),
    "input_scale": (is_positive, "a finite number > 0"),
    "kron_byte_source": _one_of(*BYTE_SOURCES),
    "val_sample": _one_of(*VAL_SAMPLES),
    **{name: (c.check, c.expected) for name, c in CONTROLS.items()},  # each control's own declaration
}


class ConfigError(UserError, ValueError):
    pass


def _check_type(key, value, defaults, where):
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults, n=3)
        hint = f"; did you mean {' / '.join(close)}?" if close else ""
        raise ConfigError(f"unknown config key {key!r} in {where}{hint}")
    default = defaults[key]
    if value is None and default is not None:
        raise ConfigError(f"config key {key!r} in {where}: got None, expected {type(default).__name__} like the default {default!r}")
    if default is None or value is None:  # an optional setting: its range check says what it accepts
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, int):
        return float(value)
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(
        f"config key {key!r} in {where}: got {value!r} ({type(value).__name__}), "
        f"expected {type(default).__name__} like the default {default!r}"
    )


def out_of_range(settings):
    """(key, value, what is expected) of the first setting in `settings` outside its RANGES entry, or None."""
    for key, (ok, expected) in RANGES.items():
        if key not in settings:
            continue
        try:
            good = ok(settings[key])
        except (TypeError, AttributeError):  # None or a wrong type where a number or string belongs
            good = False
        if not good:
            return key, settings[key], expected
    return None


def validate(cfg):
    """Every setting in its range, and the few that depend on each other; returns cfg."""
    bad = out_of_range(cfg)
    if bad:
        raise ConfigError(f"config key {bad[0]!r} = {bad[1]!r}: expected {bad[2]}")
    if cfg["hellaswag_interval"] is not None and not cfg["hellaswag_path"]:
        raise ConfigError(
            f"config key 'hellaswag_interval' = {cfg['hellaswag_interval']}: needs hellaswag_path, the official "
            f"hellaswag_val.jsonl (python -m probes.hellaswag --download fetches it)"
        )
    if cfg["lr_schedule"] == "wsd":
        check_wsd(cfg)
    if cfg["min_lr"] > cfg["learning_rate"]:
        raise ConfigError(f"config key 'min_lr' = {cfg['min_lr']!r}: expected <= learning_rate ({cfg['learning_rate']!r})")
    try:  # the model's own checks: the arm exists, n_embd % n_head, a control on an arm where it means nothing
        GPTConfig.from_dict(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg


def wsd_cooldown(max_iters, cooldown_frac):
    """The wsd cool-down's length in steps: round(cooldown_frac * max_iters) (Python's rounding)."""
    return round(cooldown_frac * max_iters)


def check_wsd(cfg):
    """A wsd schedule's settings agree: lr_decay_iters (cosine's) unset, the cool-down after warmup."""
    if cfg["lr_decay_iters"] is not None:
        raise ConfigError(
            f"config key 'lr_decay_iters' = {cfg['lr_decay_iters']!r}: cosine's setting; lr_schedule='wsd' decays over "
            f"the last cooldown_frac of max_iters (set lr_decay_iters=None)"
        )
    start = cfg["max_iters"] - wsd_cooldown(cfg["max_iters"], cfg["cooldown_frac"])
    if cfg["max_iters"] and start < cfg["warmup_iters"]:
        raise ConfigError(
            f"config key 'cooldown_frac' = {cfg['cooldown_frac']!r}: the cool-down would start at step {start}, "
            f"inside the warmup (warmup_iters={cfg['warmup_iters']}, max_iters={cfg['max_iters']})"
        )


def _imported_names(source, filename):
    """Names a config file binds with import statements: helpers, not settings."""
    names = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _run_config_file(path, namespace, helpers, chain=()):
    """Execute one config file into namespace; include("base.py") inside it runs that file (next to
    it) first, in the same namespace, so a per-arm config states only how it differs from its base.
    `chain`: the files including this one, so an include cycle is named instead of recursing."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 Python config file ({e.reason} at byte {e.start})") from None
    try:
        code = compile(source, path, "exec")
    except SyntaxError as e:  # one line: file:line: what Python says, and the line itself
        text = (e.text or "").strip()
        raise ConfigError(f"{path}:{e.lineno}: syntax error in the config file: {e.msg}" + (f" ({text[:80]!r})" if text else "")) from None
    helpers |= _imported_names(source, path)
    chain = chain + (os.path.abspath(path),)

    def include(name):
        base = os.path.join(os.path.dirname(os.path.abspath(path)), name)
        if not os.path.isfile(base):
            raise ConfigError(f"{path}: include({name!r}) names no file ({base})")
        if os.path.abspath(base) in chain:
            cycle = " -> ".join(os.path.basename(p) for p in chain + (os.path.abspath(base),))
            what = "includes itself" if len(chain) == 1 else "is part of an include cycle"
            raise ConfigError(f"{path}: include({name!r}) {what} ({cycle}): a config may include only files that do not include it")
        _run_config_file(base, namespace, helpers, chain)
        namespace["include"] = include  # the base's own include() resolved names next to the base

    namespace["include"] = include
    exec(code, namespace)


def load_config(argv, defaults=None):
    """argv: config files and --key=value overrides, in order -> a validated {key: value}."""
    defaults = DEFAULTS if defaults is None else defaults
    cfg = dict(defaults)
    for arg in argv:
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                raise ConfigError(f"config file {arg!r} not found (arguments are config files or --key=value)")
            namespace, helpers = {}, set()
            _run_config_file(arg, namespace, helpers)
            for key, value in namespace.items():
                if key.startswith("_") or key in helpers or callable(value) or type(value).__name__ == "module":
                    continue
                cfg[key] = _check_type(key, value, defaults, arg)
        else:
            if "=" not in arg:
                raise ConfigError(f"override {arg!r}: expected --key=value")
            key, text = arg[2:].split("=", 1)
            try:
                value = ast.literal_eval(text)
            except (SyntaxError, ValueError):
                value = text  # a bare string
            if isinstance(defaults.get(key), str) and not isinstance(value, str):
                value = text  # e.g. --out_dir=123 is still a path
            cfg[key] = _check_type(key, value, defaults, f"--{key}")
    return validate(cfg) if defaults is DEFAULTS else cfg
