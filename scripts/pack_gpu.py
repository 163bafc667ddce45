"""Pack what a GPU run needs on a machine without network into one gitignored folder.

    python scripts/pack_gpu.py                          # data/pydocs shards + GPT-2 BPE -> gpu_pack/
    python scripts/pack_gpu.py --data data/my_corpus --out gpu_pack --max-mb 60

The folder holds gpt2/ (vocab.bpe and encoder.json, sha256-checked: tokenizer.py reads them when
GPT2_BPE_DIR points there) and data/ (the prepared token shards, as train.py reads them), plus
MANIFEST.json with sizes and hashes. scripts/gpu_check.sh finds it and sets GPT2_BPE_DIR; carry it
to the GPU machine with the code. Nothing is installed there: the GPU machine's own torch is used.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from data.shards import read_shard  # noqa: E402
from tokenizer import GPT2_FILES, offline_gpt2_folder  # noqa: E402


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(ROOT, "data", "pydocs"), help="a prepared shard folder")
    p.add_argument("--out", default=os.path.join(ROOT, "gpu_pack"))
    p.add_argument("--max-mb", type=float, default=60.0, help="refuse a pack larger than this (carry limit)")
    args = p.parse_args(argv)
    shards = sorted(glob.glob(os.path.join(args.data, "*_train_*.bin")) + glob.glob(os.path.join(args.data, "*_val_*.bin")))
    if not shards:
        sys.exit(f"error: no shards in {args.data!r}: prepare it first (e.g. python data/pydocs/prepare.py)")
    size_mb = sum(os.path.getsize(s) for s in shards) / 2 ** 20
    if size_mb > args.max_mb:
        sys.exit(f"error: the shards in {args.data!r} take {size_mb:.1f} MB, over --max-mb {args.max_mb}")
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(os.path.join(args.out, "gpt2"))
    os.makedirs(os.path.join(args.out, "data"))
    manifest = {"gpt2": {}, "data": {}, "source": os.path.relpath(os.path.abspath(args.data), ROOT)}
    for name, digest in GPT2_FILES.items():
        src = os.path.join(offline_gpt2_folder(), name)
        if sha256(src) != digest:
            sys.exit(f"error: {src} has the wrong sha256 (expected {digest})")
        shutil.copy(src, os.path.join(args.out, "gpt2", name))
        manifest["gpt2"][name] = digest
    for src in shards:
        n = len(read_shard(src))  # checks the header and size before it travels
        dst = os.path.join(args.out, "data", os.path.basename(src))
        shutil.copy(src, dst)
        manifest["data"][os.path.basename(src)] = {"tokens": n, "sha256": sha256(dst)}
    with open(os.path.join(args.out, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    tokens = sum(v["tokens"] for v in manifest["data"].values())
    print(f"packed {len(shards)} shards ({tokens:,} tokens, {size_mb:.1f} MB) and the GPT-2 BPE files into {args.out}")
    return manifest


if __name__ == "__main__":
    main()
