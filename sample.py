"""Sample from a trained checkpoint, nanoGPT-style.

    python sample.py --out_dir=out/quickstart/kron                     # <out_dir>/ckpt.pt, from "\n"
    python sample.py --out_dir=... --start="The history of" --num_samples=3 --max_new_tokens=100
    python sample.py --out_dir=... --start=FILE:prompt.txt --temperature=0.8 --top_k=200 --seed=1
    python sample.py --out_dir=... --start="The word" --byte_word=" kronekticus"   # Kron arms only
    python sample.py --init_from=hf:/models/gpt2 --start="The"          # a Hugging Face GPT-2 folder

Any arm. The checkpoint is read as data (checkpoint.load_model: never unpickled code). --byte_word
appends one slot to the prompt that holds that word's UTF-8 bytes instead of a token: the Kronecker
input layer embeds any byte string, so a word the tokenizer would split (or never saw) enters as one
position. Temperature 0 is greedy.
"""

import argparse
import os
import sys

import torch

from checkpoint import CheckpointError, load_model
from errors import run_cli
from hf_import import hf_path, load_hf
from runtime import device_arg
from tokenizer import get_tokenizer


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out_dir", default="out", help="a train.py out_dir (its ckpt.pt is sampled)")
    p.add_argument("--ckpt", default=None, help="a ckpt.pt path instead of <out_dir>/ckpt.pt")
    p.add_argument("--init_from", default=None, help="hf:PATH: sample a Hugging Face GPT-2 folder's weights instead")
    p.add_argument("--start", default="\n", help="the prompt, or FILE:path to read it from a UTF-8 file")
    p.add_argument("--num_samples", type=int, default=3)
    p.add_argument("--max_new_tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    p.add_argument("--top_k", type=int, default=200, help="keep the k likeliest tokens (0: all)")
    p.add_argument("--top_p", type=float, default=None, help="nucleus sampling: the smallest set whose probability reaches p")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", type=device_arg, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--byte_word", default=None, help="Kron arms: a word appended to the prompt as one byte-encoded slot")
    args = p.parse_args(argv)
    if args.init_from is not None and not hf_path(args.init_from):
        p.error(f"--init_from {args.init_from}: expected hf:PATH, a Hugging Face GPT-2 folder")
    for flag in ("num_samples", "max_new_tokens"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} {getattr(args, flag)}: expected an integer >= 1")
    if not 0 <= args.seed < 2**63:  # torch's generator takes a signed 64-bit seed
        p.error(f"--seed {args.seed}: expected an integer in [0, 2**63)")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        p.error(f"--top_p {args.top_p}: expected a number in (0, 1]")
    if args.top_k < 0 or not 0 <= args.temperature < float("inf"):
        p.error(f"--top_k {args.top_k} / --temperature {args.temperature}: expected top_k >= 0 and a finite temperature >= 0")
    return args


def read_prompt(start):
    """The prompt text: the flag itself, or a UTF-8 file's content for FILE:path."""
    if not start.startswith("FILE:"):
        return start
    path = start[5:]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise ValueError(f"--start=FILE:{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"--start=FILE:{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None


def prompt_ids(model, tok, text, byte_word):
    """(ids (1, T), byte_overrides or None); refuses a prompt the model's context cannot hold."""
    ids = tok.encode(text)
    overrides = None
    if byte_word is not None:
        if not getattr(model.transformer.wte, "reads_bytes", False):
            raise ValueError(
                "--byte_word needs an arm whose input layer reads bytes (kron, kron_tied, hybrid); "
                f"this checkpoint is {model.config.embedding!r}"
            )
        ids = ids + [tok.eot_id]  # a placeholder id: the slot's embedding comes from the bytes
        overrides = {len(ids) - 1: byte_word.encode("utf-8")}
    if not ids:
        ids = [tok.eot_id]
    if len(ids) > model.config.block_size:
        raise ValueError(f"the prompt is {len(ids)} tokens, longer than the model's block_size {model.config.block_size}")
    return torch.tensor([ids], dtype=torch.long), overrides


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if hf_path(args.init_from):
            model = load_hf(hf_path(args.init_from))[0].to(args.device)
        else:
            model, _ = load_model(args.ckpt or os.path.join(args.out_dir, "ckpt.pt"), device=args.device)
        tok = get_tokenizer(model.config.tokenizer)
        ids, overrides = prompt_ids(model, tok, read_prompt(args.start), args.byte_word)
    except (CheckpointError, ValueError) as e:
        sys.exit(f"error: {e}")
    ids = ids.to(args.device)
    print(
        f"sampling {args.num_samples} x {args.max_new_tokens} tokens from {model.config.embedding} "
        f"({model.param_groups_by_role()['total'] / 1e6:.1f}M parameters) on {args.device} ...",
        file=sys.stderr,
        flush=True,
    )
    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    samples = []
    for _ in range(args.num_samples):
        out = model.generate(
            ids,
            args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k or None,
            top_p=args.top_p,
            generator=gen,
            byte_overrides=overrides,
        )
        text = tok.decode(out[0, ids.size(1) :].tolist())
        samples.append(text)
        print(read_prompt(args.start) + (args.byte_word or "") + text)
        print("---------------")
    return samples


if __name__ == "__main__":
    run_cli(main)
