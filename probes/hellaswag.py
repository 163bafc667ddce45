"""HellaSwag from the command line: pick the likeliest of 4 endings (scoring: hellaswag.py).

    python -m probes.hellaswag --ckpt out/run/ckpt.pt --data data/hellaswag/hellaswag_val.jsonl
    python -m probes.hellaswag --ckpt out/run/ckpt.pt --download        # fetch the official val set first
    python -m probes.hellaswag --ckpt ... --limit 500 --out report/      # a quick look, JSON written

Each example's context is followed by each ending (" " + ending, as GPT-2 tokenises it); the loss of
the ending's tokens alone is read from the model. acc: the ending with the lowest summed loss;
acc_norm: the lowest mean loss per token (llm.c's and build-nanogpt's headline number). Every arm
works (kron_tied included). The file is the official jsonl: one object a line with "ctx", "endings"
(4 strings) and "label" (0-3); a line that is not is a one-line error naming it.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.hellaswag", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import sys

from checkpoint import CheckpointError, load_model
from hellaswag import evaluate, read_examples
from probes.common import cli
from runtime import device_arg
from tokenizer import get_tokenizer

URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
DEFAULT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "hellaswag", "hellaswag_val.jsonl")


def download(path):
    import urllib.request

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with urllib.request.urlopen(URL, timeout=30) as r, open(path + ".part", "wb") as f:
            f.write(r.read())
    except OSError as e:
        raise ValueError(f"could not download {URL} ({e}); fetch it on a machine with network and pass --data") from None
    os.replace(path + ".part", path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", default=DEFAULT, help="the official hellaswag_val.jsonl (or a file of that schema)")
    p.add_argument("--download", action="store_true", help=f"fetch the official val set to --data first ({URL})")
    p.add_argument("--limit", type=int, default=None, help="only the first N examples")
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--out", default=None, help="a folder for hellaswag.json")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit {args.limit}: expected an integer >= 1")
    try:
        if args.download and not os.path.isfile(args.data):
            download(args.data)
        if not os.path.isfile(args.data):
            raise ValueError(f"{args.data} does not exist: pass --data PATH to the official hellaswag_val.jsonl, or --download")
        examples = read_examples(args.data, args.limit)
        model, ckpt = load_model(args.ckpt, device=args.device)
    except (CheckpointError, ValueError) as e:
        sys.exit(f"error: {e}")
    res = evaluate(model, get_tokenizer(model.config.tokenizer), examples, args.device)
    res.update(ckpt=args.ckpt, arm=model.config.embedding, step=ckpt.get("iter_num"), data=args.data)
    print(f"hellaswag {res['arm']} step {res['step']}: acc {res['acc']:.4f}, acc_norm {res['acc_norm']:.4f} ({res['n']} examples)")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "hellaswag.json"), "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    cli(main)
