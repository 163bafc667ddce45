"""nanoGPT-style configuration: `python train.py config/x.py --key=value ...`.

Config files are plain Python that assign names (e.g. `n_layer = 12`); `--key=value` overrides come
after and are parsed as Python literals (strings may be written bare: --out_dir=out/run1). Every key
must already exist in the defaults and keep its type (an int is accepted where a float is expected;
a default of None accepts anything). Anything else is an error that names the key and the value.
"""
import ast
import difflib
import os


class ConfigError(ValueError):
    pass


def _check(key, value, defaults, where):
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults, n=3)
        hint = f"; did you mean {' / '.join(close)}?" if close else ""
        raise ConfigError(f"unknown config key {key!r} in {where}{hint}")
    default = defaults[key]
    if default is None or value is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, int):
        return float(value)
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(f"config key {key!r} in {where}: got {value!r} ({type(value).__name__}), "
                      f"expected {type(default).__name__} like the default {default!r}")


def load_config(defaults, argv):
    """defaults: {key: value}; argv: config files and --key=value overrides, in order."""
    cfg = dict(defaults)
    for arg in argv:
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                raise ConfigError(f"config file {arg!r} not found (arguments are config files or --key=value)")
            namespace = {}
            with open(arg) as f:
                exec(compile(f.read(), arg, "exec"), namespace)
            for key, value in namespace.items():
                if key.startswith("_") or callable(value) or type(value).__name__ == "module":
                    continue
                cfg[key] = _check(key, value, defaults, arg)
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
            cfg[key] = _check(key, value, defaults, f"--{key}")
    return cfg
