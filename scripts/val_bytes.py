"""Count the UTF-8 bytes behind a kept study's validation windows, once, so its logged losses convert to
bits per byte without rerunning anything.

    python -m scripts.val_bytes results/study_english results/study_small_vocab   # needs their data prepared

For each study folder, reads the first kept run's config (data_dir, tokenizer, vocab_size, block_size,
batch_size, eval_iters, val_sample), rebuilds the exact validation windows train.py evaluated
(shards.TokenData.val_batches), checks the data against what the run logged (fingerprint, or token
counts in logs older than the fingerprint), and writes <study>/val_bytes.json: per source, the target
tokens and the bytes they stand for (tokenizer.text_byte_counts). analysis.bits_per_byte then gives
bpb = sum_s loss_s * tokens_s / (ln 2 * sum_s bytes_s).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.val_bytes", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import glob
import json
import os

from errors import run_cli
from runlog import read_metrics
from scripts.run_study import check_same_data
from shards import TokenData
from tokenizer import text_byte_counts


def first_config(study):
    logs = sorted(glob.glob(os.path.join(study, "runs", "*", "metrics.jsonl")))
    if not logs:
        raise ValueError(f"{study!r}: no kept run logs under runs/")
    return read_metrics(os.path.dirname(logs[0]), "config")[0]


def count(study):
    record = first_config(study)
    c = record["config"]
    check_same_data(study, [record], c["data_dir"])  # the data must be the version the runs logged
    tokenizer = c.get("tokenizer") or "gpt2"  # logs older than the setting: GPT-2 BPE
    nbytes = text_byte_counts(tokenizer, c["vocab_size"])
    data = TokenData(c["data_dir"], c["block_size"], c["vocab_size"], tokenizer)
    out = {}
    for _, y, source in data.val_batches(c["batch_size"], c["eval_iters"], c.get("val_sample", "first")):
        s = out.setdefault(source, {"tokens": 0, "bytes": 0})
        s["tokens"] += int(y.size)
        s["bytes"] += int(nbytes[y].sum())
    return {"data_dir": c["data_dir"], "tokenizer": tokenizer, "sources": out}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("studies", nargs="+", help="results/<study> folders with runs/*/metrics.jsonl")
    args = p.parse_args(argv)
    for study in args.studies:
        counted = count(study)
        path = os.path.join(study, "val_bytes.json")
        with open(path, "w") as f:
            json.dump(counted, f, indent=1)
        total = sum(s["bytes"] for s in counted["sources"].values())
        print(f"{path}: {len(counted['sources'])} sources, {total:,} bytes")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
