"""Debian packages as corpus sources: fetched with `apt-get download` (no root needed; `apt-get update`
must have run once) and unpacked with `dpkg-deb -x`. Used by data/python_docs and data/english."""
import glob
import os
import subprocess

# The Python 3.11 documentation: its package, and where the reStructuredText sources sit inside it.
PYTHON_DOCS = "python3.11-doc"
PYTHON_DOCS_SOURCES = os.path.join("usr", "share", "doc", "python3.11", "html", "_sources")


def version_of(path):
    """The Debian version in a .deb's file name (name_version_arch.deb): which release made a corpus."""
    return os.path.basename(path).split("_")[1] if os.path.basename(path).count("_") >= 2 else None


def unpack(package, workdir, deb=None):
    """(the unpacked tree's root, the package's version): `deb`, a .deb already downloaded, or else the
    package fetched into workdir. A failure is one FileNotFoundError naming the command and the cause."""
    if deb is None:
        _run(["apt-get", "download", package], workdir)
        deb = glob.glob(os.path.join(workdir, f"{package}_*.deb"))[0]
    root = os.path.join(workdir, "x")
    _run(["dpkg-deb", "-x", deb, root], workdir)
    return root, version_of(deb)


def _run(cmd, cwd):
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = (getattr(e, "stderr", b"") or b"").decode(errors="replace").strip().splitlines()[-1:]
        hint = " (run `apt-get update` once first; a machine without apt can pass a downloaded .deb)" if cmd[0] == "apt-get" else ""
        raise FileNotFoundError(f"`{' '.join(cmd)}` failed{hint}: {detail[0] if detail else e}") from None
