"""FineWeb-Edu -> GPT-2 token shards (the paper's training data).

    python -m data.fineweb_edu.prepare                          # sample-10BT, all of it (~10B tokens)
    python -m data.fineweb_edu.prepare --max-tokens 3000000000  # enough for the paper's 2.5B-token runs
    python -m data.fineweb_edu.prepare --data-files 'my/*.parquet' --out-dir data/my_fineweb

Reads HuggingFaceFW/fineweb-edu through `datasets` (streaming, so no full download lands on disk
first), or local parquet/jsonl files of the same schema with --data-files (the same code path; only
the `text` column is used). Tokenises with tiktoken GPT-2 in parallel processes, EOT before each
document, into shards of 100M uint16 tokens in the llm.c format; the first shard is validation.
An interrupted run resumes where its last completed shard ended (see shards.py).

Pre-tokenised shards in the same format (e.g. the hub's kjj0/finewebedu10B-gpt2) can be dropped into
a folder as they are: train.py reads any *_val_*.bin / *_train_*.bin files with the 20240520 header.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../../..")
    runpy.run_module("data.fineweb_edu.prepare", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import glob
import os
import sys

from errors import UserError, run_cli
from shards import ShardError, Stream, documents_to_shards

HERE = os.path.dirname(os.path.abspath(__file__))


OFFLINE_HELP = (
    "offline, pass local parquet/jsonl files of the FineWeb-Edu schema with --data-files, or drop "
    "llm.c-format GPT-2 shards (such as the hub's kjj0/finewebedu10B-gpt2) into data/fineweb_edu/ as they are"
)


class PrepareError(UserError, RuntimeError):
    pass


def check_hub_reachable(host="huggingface.co", timeout=5.0):
    """Fail in seconds, with the alternatives, instead of after datasets' retries and a traceback."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise PrepareError(f"HF_HUB_OFFLINE is set, so the hub cannot be streamed; {OFFLINE_HELP}")
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
        raise PrepareError(f"cannot reach {host} ({e.__class__.__name__}: {e}); {OFFLINE_HELP}") from None


def load_documents(dataset, config, data_files):
    try:
        from datasets import load_dataset  # only here: GPU machines may not have it
    except ImportError:
        raise PrepareError(
            "the `datasets` package is needed to read FineWeb-Edu (pip install datasets); llm.c-format shards need no preparation at all"
        ) from None
    if data_files:
        kind = "json" if data_files[0].endswith((".json", ".jsonl", ".jsonl.gz", ".json.gz")) else "parquet"
        ds = load_dataset(kind, data_files=data_files, split="train", streaming=True)
    else:
        ds = load_dataset(dataset, name=config, split="train", streaming=True)
    return Stream(ds, "text", f"{data_files or dataset} (FineWeb-Edu schema)")  # resumable: its position is saved


def main(argv=None):
    p = argparse.ArgumentParser(description="FineWeb-Edu -> GPT-2 token shards")
    p.add_argument("--dataset", default="HuggingFaceFW/fineweb-edu")
    p.add_argument("--config", default="sample-10BT", help="sample-10BT, sample-100BT or sample-350BT")
    p.add_argument("--data-files", nargs="+", help="local parquet/jsonl files of the same schema instead of the hub")
    p.add_argument("--out-dir", default=os.path.join(HERE))
    p.add_argument("--name", default="fineweb_edu")
    p.add_argument("--tokenizer", default="gpt2")
    p.add_argument("--shard-tokens", type=int, default=100_000_000)
    p.add_argument("--val-tokens", type=int, default=None, help="validation split size (default: one shard)")
    p.add_argument("--max-tokens", type=int, default=None, help="stop after about this many tokens")
    p.add_argument("--num-proc", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = p.parse_args(argv)
    try:
        if args.data_files:
            missing = [f for f in args.data_files if not glob.glob(f)]
            if missing:
                raise PrepareError(f"--data-files {missing} match no file")
        else:
            check_hub_reachable()
        docs = load_documents(args.dataset, args.config, args.data_files)
        return documents_to_shards(
            docs,
            args.out_dir,
            args.name,
            tokenizer=args.tokenizer,
            val_tokens=args.val_tokens,
            shard_tokens=args.shard_tokens,
            num_proc=args.num_proc,
            max_tokens=args.max_tokens,
        )
    except (PrepareError, ShardError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
