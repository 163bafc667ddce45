"""The embedded default corpus: Python's own language-reference topics, no download needed.

Source: the `pydoc_data.topics` module that ships with every CPython (the text `help()` shows for
keywords and topics, ~0.47 MB, about 139k GPT-2 tokens; the exact text varies a little between
Python versions). License: Python Software Foundation License, like the rest of CPython.

    python -m data.python_help.prepare            # writes data/python_help/pydoc_{val,train}_*.bin

Documents are the topics in sorted order, EOT before each; the first 16,384 tokens are validation.
Small: for the quickstart and the tests, not for conclusions about the method.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../../..")
    runpy.run_module("data.python_help.prepare", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os

from errors import run_cli
from shards import documents_to_shards

HERE = os.path.dirname(os.path.abspath(__file__))


def documents():
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", default=HERE)
    p.add_argument("--tokenizer", default="gpt2")
    p.add_argument("--val-tokens", type=int, default=16_384)
    args = p.parse_args(argv)
    docs = documents()
    return documents_to_shards(
        docs,
        args.out_dir,
        "pydoc",
        tokenizer=args.tokenizer,
        shard_tokens=10**9,
        val_tokens=args.val_tokens,
        num_proc=1,
        total_docs=len(docs),
    )


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
