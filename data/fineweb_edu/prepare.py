"""FineWeb-Edu -> GPT-2 token shards (the paper's training data).

    python data/fineweb_edu/prepare.py                          # sample-10BT, all of it (~10B tokens)
    python data/fineweb_edu/prepare.py --max-tokens 3000000000  # enough for the paper's 2.5B-token runs
    python data/fineweb_edu/prepare.py --data-files 'my/*.parquet' --out-dir data/my_fineweb

Reads HuggingFaceFW/fineweb-edu through `datasets` (streaming, so no full download lands on disk
first), or local parquet/jsonl files of the same schema with --data-files (the same code path; only
the `text` column is used). Tokenises with tiktoken GPT-2 in parallel processes, EOT before each
document, into shards of 100M uint16 tokens in the llm.c format; the first shard is validation.
An interrupted run resumes where its last completed shard ended (see data/shards.py).

Pre-tokenised shards in the same format (e.g. the hub's kjj0/finewebedu10B-gpt2) can be dropped into
a folder as they are: train.py reads any *_val_*.bin / *_train_*.bin files with the 20240520 header.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.shards import documents_to_shards  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def load_documents(dataset, config, data_files):
    from datasets import load_dataset
    if data_files:
        kind = "json" if data_files[0].endswith((".json", ".jsonl", ".jsonl.gz", ".json.gz")) else "parquet"
        ds = load_dataset(kind, data_files=data_files, split="train", streaming=True)
    else:
        ds = load_dataset(dataset, name=config, split="train", streaming=True)
    for row in ds:
        if "text" not in row:
            raise KeyError(f"documents need a 'text' column (FineWeb-Edu schema); got columns {sorted(row)}")
        yield row["text"]


def main(argv=None):
    p = argparse.ArgumentParser(description="FineWeb-Edu -> GPT-2 token shards")
    p.add_argument("--dataset", default="HuggingFaceFW/fineweb-edu")
    p.add_argument("--config", default="sample-10BT", help="sample-10BT, sample-100BT or sample-350BT")
    p.add_argument("--data-files", nargs="+", help="local parquet/jsonl files of the same schema instead of the hub")
    p.add_argument("--out-dir", default=os.path.join(HERE))
    p.add_argument("--name", default="fineweb_edu")
    p.add_argument("--tokenizer", default="gpt2")
    p.add_argument("--shard-tokens", type=int, default=100_000_000)
    p.add_argument("--max-tokens", type=int, default=None, help="stop after about this many tokens")
    p.add_argument("--num-proc", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = p.parse_args(argv)
    docs = load_documents(args.dataset, args.config, args.data_files)
    return documents_to_shards(docs, args.out_dir, args.name, tokenizer=args.tokenizer,
                               shard_tokens=args.shard_tokens, num_proc=args.num_proc, max_tokens=args.max_tokens)


if __name__ == "__main__":
    main()
