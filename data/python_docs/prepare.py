"""An offline English corpus of ~3.5M GPT-2 tokens: the Python 3.11 documentation sources.

    python -m data.python_docs.prepare         # needs apt-get (Debian/Ubuntu) and the Debian archive

Source: Debian's `python3.11-doc` package (fetched with `apt-get download`, no root needed, then
unpacked with `dpkg-deb -x`): the reStructuredText sources of the tutorial, HOWTOs, FAQ, language
and library reference under usr/share/doc/python3.11/html/_sources/ (*.rst.txt). License: PSF
License (the Python documentation). Used for the Python-docs study (results/study_cpu/README.md); a study at the
paper's scale uses FineWeb-Edu (data/fineweb_edu/prepare.py).

Documents are the files in sorted path order, EOT before each; the first 262,144 tokens are the
validation split. A machine without apt can pass --deb or --sources-dir with the same files.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../../..")
    runpy.run_module("data.python_docs.prepare", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import glob
import json
import os
import tempfile

from data import fetch
from errors import run_cli
from shards import data_fingerprint, documents_to_shards

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = fetch.PYTHON_DOCS


def fetch_sources(workdir, deb=None):
    """(the _sources folder, the package version) of python3.11-doc, fetched or from a downloaded .deb."""
    root, version = fetch.unpack_deb(PACKAGE, workdir, deb)
    return os.path.join(root, fetch.PYTHON_DOCS_SOURCES), version


def main(argv=None):
    p = argparse.ArgumentParser(description="Python 3.11 docs -> GPT-2 token shards")
    p.add_argument("--out-dir", default=HERE)
    p.add_argument("--deb", help="a downloaded python3.11-doc .deb")
    p.add_argument("--sources-dir", help="an already unpacked _sources folder")
    p.add_argument("--val-tokens", type=int, default=262_144)
    p.add_argument("--num-proc", type=int, default=2)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        src, version = (args.sources_dir, None) if args.sources_dir else fetch_sources(tmp, args.deb)
        files = sorted(glob.glob(os.path.join(src, "**", "*.rst.txt"), recursive=True))
        if not files:
            raise FileNotFoundError(f"no *.rst.txt files under {src!r}")
        texts = [open(f, encoding="utf-8", errors="replace").read() for f in files]
        state = documents_to_shards(
            texts, args.out_dir, "pydocs", shard_tokens=10**9, val_tokens=args.val_tokens, num_proc=args.num_proc, total_docs=len(texts)
        )
    with open(os.path.join(args.out_dir, "corpus.json"), "w") as f:  # provenance: which package version, what came out
        json.dump(
            {"packages": {PACKAGE: version or "unknown (--sources-dir)"}, "documents": len(texts), "data": data_fingerprint(args.out_dir)},
            f,
            indent=1,
        )
    return state


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
