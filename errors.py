"""One handler for every entry point: a user's mistake ends in one line naming the value, not a traceback.

    from errors import run_cli
    if __name__ == "__main__":
        run_cli(main)

Errors a user can act on (a bad setting, a damaged or foreign file, a busy run folder, a missing
shard, a full disk) print `error: <message>` and exit 1; KRON_DEBUG=1 (or --debug among the
arguments) shows the full traceback instead. Anything else is a bug and keeps its traceback.

`--import MODULE` (repeatable, before a bare `--`) imports a module before the tool starts, on every
tool alike: the one way to use an arm registered in your own module (arms.register) with a
checkpoint, a probe, an export or a study. A file never chooses what is imported: the user does.
"""

import errno
import importlib
import linecache
import os
import sys

IMPORTED = []  # the modules --import brought in, in order (scripts.run_study passes them on to its runs)


class UserError(Exception):
    """The base of every error that means "the input is wrong" (a bad setting, a damaged or foreign
    file, a busy run folder, ...): ConfigError, CheckpointError, ShardError, RunFolderError,
    RunInUseError, DeviceError, TokenizerError subclass it, each in the module that raises it."""


def user_errors():
    """The exception classes that mean "the input is wrong": ours, and the file errors a path names."""
    return (UserError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def names_a_file(e):
    """An OSError that names its path (a read-only or full filesystem, a permission, a missing folder):
    the user can act on it, whatever layer noticed it. One without a path (a broken pipe, a socket) is
    not known to be the user's, and keeps its traceback."""
    return isinstance(e, OSError) and bool(e.filename) and bool(e.strerror)


def describe(e):
    """One line for a user error; a full disk says so whatever layer noticed it."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return f"no space left on device ({e.filename or 'while writing'}): free some space and run again"
    if isinstance(e, OSError) and e.filename and e.strerror:  # "[Errno 17] File exists: 'x'" -> "'x': file exists"
        return f"{e.filename!r}: {e.strerror[0].lower() + e.strerror[1:]}"
    return str(e)


ROOT = os.path.dirname(os.path.abspath(__file__))


def raised_here(e):
    """Whether a `raise` statement in this repository's own code raised e (a message written for a user),
    not a library (numpy, json, the standard library) or a builtin called from here (int("x") in our
    code): the traceback's last frame is one of our files and the line it stopped on raises e's class
    (`raise ValueError(...)`). A builtin failing inside such a line's arguments would pass as ours: rare
    enough, and the message then still names the bad value."""
    tb = e.__traceback__
    while tb and tb.tb_next:
        tb = tb.tb_next
    if tb is None:
        return False
    where = os.path.abspath(tb.tb_frame.f_code.co_filename)
    ours = where.startswith(ROOT + os.sep) and "site-packages" not in where
    line = linecache.getline(where, tb.tb_lineno).strip()
    return ours and line.startswith(f"raise {type(e).__name__}(")


def take_imports(argv):
    """argv without its `--import MODULE` pairs (those before a bare `--`), each module imported, the
    current folder first on sys.path as for `python -m`. A module that cannot be imported is one line."""
    rest, i = [], 0
    while i < len(argv):
        if argv[i] == "--":
            rest += argv[i:]
            break
        if argv[i] == "--import" or argv[i].startswith("--import="):
            name = argv[i].split("=", 1)[1] if "=" in argv[i] else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if "=" in argv[i] else 2
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            try:
                importlib.import_module(name)
            except ImportError as e:
                sys.exit(f"error: --import {name}: {e} (run from the folder that holds it, or put it on PYTHONPATH)")
            IMPORTED.append(name)
            continue
        rest.append(argv[i])
        i += 1
    return rest


def run_cli(main, argv=None, also=()):
    """Run an entry point's main(argv); user errors end in one line (exit 1) unless debugging, and so do
    an OSError naming its path (read-only filesystem, permission, full disk: names_a_file) and the
    exception classes in `also` (ValueError: the tools' own checks raise it) when this repository's
    code raised them; raised inside a library they are a bug and keep their traceback."""
    argv = take_imports(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0]] + argv
    debug = os.environ.get("KRON_DEBUG") == "1" or "--debug" in argv
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        sys.argv = [sys.argv[0]] + argv
    try:
        return main(argv)
    except user_errors() + tuple(also) + (OSError,) as e:
        if not isinstance(e, user_errors() + (OSError,)) and not raised_here(e):
            raise
        if debug or (isinstance(e, OSError) and not isinstance(e, user_errors()) and e.errno != errno.ENOSPC and not names_a_file(e)):
            raise
        sys.exit(f"error: {describe(e)}")
