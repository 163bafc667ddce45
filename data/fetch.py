"""Corpus sources fetched from package registries: a command runner whose failure is one line naming the
package, and Debian packages (`apt-get download`, no root needed once `apt-get update` has run; then
`dpkg-deb -x`). Used by data/python_docs and data/english."""

import glob
import os
import subprocess

# The Python 3.11 documentation: its package, and where the reStructuredText sources sit inside it.
PYTHON_DOCS = "python3.11-doc"
PYTHON_DOCS_SOURCES = os.path.join("usr", "share", "doc", "python3.11", "html", "_sources")


def run(cmd, cwd, package):
    """Run a fetching command; a failure is a FileNotFoundError naming the package, the command and the
    last line the command printed."""
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = (getattr(e, "stderr", b"") or b"").decode(errors="replace").strip().splitlines()[-1:]
        hint = " (run `apt-get update` once first; a machine without apt can pass a downloaded .deb)" if cmd[0] == "apt-get" else ""
        raise FileNotFoundError(f"could not fetch {package}: `{' '.join(cmd)}` failed{hint}: {detail[0] if detail else e}") from None


def version_of(path):
    """The Debian version in a .deb's file name (name_version_arch.deb): which release made a corpus."""
    return os.path.basename(path).split("_")[1] if os.path.basename(path).count("_") >= 2 else None


def unpack_deb(package, workdir, deb=None):
    """(the unpacked tree's root, the package's version): `deb`, a .deb already downloaded, or else the
    package fetched into workdir."""
    if deb is None:
        run(["apt-get", "download", package], workdir, f"Debian package {package}")
        deb = glob.glob(os.path.join(workdir, f"{package}_*.deb"))[0]
    root = os.path.join(workdir, "x")
    run(["dpkg-deb", "-x", deb, root], workdir, f"Debian package {package}")
    return root, version_of(deb)
