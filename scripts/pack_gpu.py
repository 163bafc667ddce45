"""Pack what a GPU run needs on a machine without network into one gitignored folder, and unpack it there.

    python -m data.english.prepare && python -m scripts.pack_gpu     # here: English shards (xz) + GPT-2 BPE
                                                                     # + nanoGPT's bench files -> gpu_pack/
    python -m scripts.pack_gpu --unpack /tmp/gpu_data                # there: shards back, sha256-checked

gpu_pack/ holds gpt2/ (vocab.bpe and encoder.json, sha256-checked: tokenizer.py reads them at once
when GPT2_BPE_DIR points there), data/ (the prepared token shards, each xz-compressed: the English
corpus's 49 MB of shards travel as about 22 MB), nanogpt/ (nanoGPT's unmodified bench.py, model.py and
configurator.py, for the side-by-side step time only; never imported by this repo) and MANIFEST.json
with sizes and hashes. scripts/gpu_check.sh and scripts/gpu_study.sh unpack it themselves; carry
the folder with the code (`carry: ["gpu_pack"]`). Nothing is installed on the GPU machine.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.pack_gpu", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import glob
import hashlib
import json
import lzma
import os
import shutil
import sys

from checks import is_int
from errors import run_cli
from runlog import read_json
from shards import TOKENIZER_RECORD, read_shard
from tokenizer import GPT2_FILES, offline_gpt2_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NANOGPT_FILES = ("bench.py", "model.py", "configurator.py", "LICENSE")
DEFAULT_NANOGPT = os.path.join(os.path.dirname(ROOT), "shared", "anchors", "nanoGPT")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


PACK_ENTRIES = {"MANIFEST.json", "gpt2", "data", "nanogpt"}


def refuse_foreign(out):
    """--out may replace an earlier pack, never anything else: a folder without MANIFEST.json, or with
    any file its manifest does not list, is refused whole (a user's files are never deleted)."""
    entries = set(os.listdir(out)) if os.path.isdir(out) and not os.path.islink(out) else None
    if entries is None or "MANIFEST.json" not in entries:
        raise SystemExit(
            f"error: --out {out} exists and is not a pack this script wrote (no MANIFEST.json): choose a new folder, or remove it yourself"
        )
    manifest = read_json(os.path.join(out, "MANIFEST.json"))
    shards = manifest.get("data") if isinstance(manifest, dict) else None  # an odd manifest allows no shard
    allowed = {"MANIFEST.json"} | {f"gpt2/{n}" for n in GPT2_FILES} | {f"nanogpt/{n}" for n in NANOGPT_FILES}
    allowed |= {f"data/{n}.xz" for n in (shards if isinstance(shards, dict) else {})} | {f"data/{TOKENIZER_RECORD}"}
    held = {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs}
    extra = sorted(held - allowed)
    if extra or entries - PACK_ENTRIES:
        names = ", ".join((extra or sorted(entries - PACK_ENTRIES))[:3])
        raise SystemExit(f"error: --out {out} exists and holds {names}, which no pack writes: choose a new folder, or remove it yourself")


def safe_name(name, dest):
    """A shard name from a manifest, as a plain file name inside dest: no folders, no '..', no link."""
    if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", "..") or not name.endswith(".bin"):
        raise SystemExit(f"error: the pack's MANIFEST.json names {name!r}: expected a shard file name (*.bin, no folders)")
    dst = os.path.join(dest, name)
    if os.path.islink(dst) or os.path.islink(dst + ".part"):
        raise SystemExit(f"error: {dst} is a symbolic link: refusing to write through it")
    return dst


def decompress_bounded(src, dst, limit):
    """Decompress an .xz file, stopping with an error past `limit` bytes (its manifest's token count:
    a small archive cannot fill the disk)."""
    written = 0
    try:
        with lzma.open(src, "rb") as f, open(dst, "wb") as g:
            while block := f.read(1 << 22):
                written += len(block)
                if written > limit:
                    raise SystemExit(f"error: {src} expands past the {limit:,} bytes its manifest's token count allows")
                g.write(block)
    except (lzma.LZMAError, EOFError) as e:
        _remove(dst)
        raise SystemExit(f"error: {src} is not a whole .xz file ({e}): copy the pack again") from None
    except BaseException:  # the bound, a full disk, an interrupt: no partial file is left behind
        _remove(dst)
        raise


def _remove(path):
    if os.path.lexists(path):
        os.remove(path)


def read_manifest(pack_dir):
    """A pack's MANIFEST.json, checked: an object whose 'data' maps shard names to {tokens, sha256}."""
    path = os.path.join(pack_dir, "MANIFEST.json")
    manifest = read_json(path)
    data = manifest.get("data") if isinstance(manifest, dict) else None
    if not isinstance(data, dict):
        raise SystemExit(f"error: {path} is not a pack's manifest: expected a JSON object with a 'data' object of shards")
    for name, info in data.items():
        if not (isinstance(info, dict) and is_int(info.get("tokens")) and info["tokens"] >= 0 and isinstance(info.get("sha256"), str)):
            raise SystemExit(f"error: {path}: data[{name!r}] = {str(info)[:80]}, expected {{tokens: an integer >= 0, sha256: a string}}")
    return manifest


def pack(data, out, nanogpt, max_mb):
    shards = sorted(glob.glob(os.path.join(data, "*_train_*.bin")) + glob.glob(os.path.join(data, "*_val_*.bin")))
    if not shards:
        sys.exit(f"error: no shards in {data!r}: prepare it first (e.g. python -m data.english.prepare)")
    if os.path.exists(out):
        refuse_foreign(out)
        shutil.rmtree(out)  # a pack this script wrote, and nothing else in it
    for sub in ("gpt2", "data"):
        os.makedirs(os.path.join(out, sub))
    manifest = {"gpt2": {}, "data": {}, "nanogpt": {}, "source": os.path.relpath(os.path.abspath(data), ROOT)}
    for name, digest in GPT2_FILES.items():
        src = os.path.join(offline_gpt2_folder(), name)
        if sha256(src) != digest:
            sys.exit(f"error: {src} has the wrong sha256 (expected {digest})")
        shutil.copy(src, os.path.join(out, "gpt2", name))
        manifest["gpt2"][name] = digest
    for src in shards:
        n = len(read_shard(src))  # checks the header and size before it travels
        dst = os.path.join(out, "data", os.path.basename(src) + ".xz")
        with open(src, "rb") as f, lzma.open(dst, "wb", preset=6) as g:
            shutil.copyfileobj(f, g, 1 << 22)
        manifest["data"][os.path.basename(src)] = {"tokens": n, "sha256": sha256(src)}
        print(f"  {os.path.basename(src)}: {n:,} tokens -> {os.path.getsize(dst) / 2**20:.1f} MB", flush=True)
    if os.path.isfile(os.path.join(data, TOKENIZER_RECORD)):  # which tokenizer made the shards travels with them
        shutil.copy(os.path.join(data, TOKENIZER_RECORD), os.path.join(out, "data", TOKENIZER_RECORD))
    if nanogpt:
        os.makedirs(os.path.join(out, "nanogpt"))
        for name in NANOGPT_FILES:
            shutil.copy(os.path.join(nanogpt, name), os.path.join(out, "nanogpt", name))
            manifest["nanogpt"][name] = sha256(os.path.join(out, "nanogpt", name))
    with open(os.path.join(out, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs) / 2**20
    if size_mb > max_mb:
        shutil.rmtree(out)
        sys.exit(f"error: the pack takes {size_mb:.1f} MB, over --max-mb {max_mb} (removed); pack a smaller corpus")
    tokens = sum(v["tokens"] for v in manifest["data"].values())
    print(
        f"packed {len(shards)} shards ({tokens:,} tokens), the GPT-2 BPE files"
        f"{' and nanoGPT' if nanogpt else ''} into {out} ({size_mb:.1f} MB)"
    )
    return manifest


def unpack(pack_dir, dest):
    """Decompress the pack's shards into dest, checking each against MANIFEST.json's sha256."""
    manifest = read_manifest(pack_dir)
    os.makedirs(dest, exist_ok=True)
    for name, info in manifest["data"].items():
        dst = safe_name(name, dest)
        if not (os.path.isfile(dst) and sha256(dst) == info["sha256"]):
            decompress_bounded(os.path.join(pack_dir, "data", name + ".xz"), dst + ".part", 1024 + 2 * int(info["tokens"]))
            if sha256(dst + ".part") != info["sha256"]:
                sys.exit(f"error: {name} from {pack_dir} does not match its sha256 in MANIFEST.json")
            os.replace(dst + ".part", dst)
    if os.path.isfile(os.path.join(pack_dir, "data", TOKENIZER_RECORD)):
        shutil.copy(os.path.join(pack_dir, "data", TOKENIZER_RECORD), os.path.join(dest, TOKENIZER_RECORD))
    print(f"unpacked {len(manifest['data'])} shards into {dest}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(ROOT, "data", "english"), help="a prepared shard folder")
    p.add_argument("--out", default=os.path.join(ROOT, "gpu_pack"))
    p.add_argument(
        "--nanogpt",
        default=DEFAULT_NANOGPT if os.path.isdir(DEFAULT_NANOGPT) else None,
        help="a nanoGPT checkout to take bench.py/model.py/configurator.py from (default: ../shared/anchors/nanoGPT)",
    )
    p.add_argument("--max-mb", type=float, default=48.0, help="refuse a pack larger than this (the tree travels too: 64 MiB in all)")
    p.add_argument("--unpack", metavar="DEST", help="decompress the pack at --out into DEST instead of packing")
    args = p.parse_args(argv)
    if args.unpack:
        return unpack(args.out, args.unpack)
    if args.max_mb <= 0:
        p.error(f"--max-mb {args.max_mb}: expected a number > 0")
    if args.nanogpt and not all(os.path.isfile(os.path.join(args.nanogpt, f)) for f in NANOGPT_FILES):
        sys.exit(f"error: --nanogpt {args.nanogpt!r} lacks one of {', '.join(NANOGPT_FILES)}")
    return pack(args.data, args.out, args.nanogpt, args.max_mb)


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
