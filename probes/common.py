"""What every probe shares: loading labelled checkpoints, the tokenizer, string canonicalisation,
nearest-neighbour retrieval, and writing JSON + markdown results."""

import argparse
import json
import os
import re
import string

import torch
import torch.nn.functional as F

from checkpoint import load_model
from kron_embed import encode_bytes, kron_codec
from runtime import device_arg
from tokenizer import get_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WS = re.compile(r"[\sĠ▁]+")


def canonical(s):
    """Canonical form of a token string: whitespace markers (Ġ, ▁, space, tab) removed, edge
    punctuation stripped, casefolded. Typographic variants (run, Run, ' run', '.run') share it."""
    return _WS.sub("", s).strip(string.punctuation).casefold()


class Probed:
    """A loaded checkpoint with its label, arm and tokenizer."""

    def __init__(self, label, path, device="cpu"):
        self.label, self.path = label, path
        self.model, self.ckpt = load_model(path, device=device)
        self.arm = self.model.config.embedding
        self.reads_bytes = getattr(self.model.transformer.wte, "reads_bytes", False)  # Kron: byte overrides, free slots
        self.tok = get_tokenizer(self.model.config.tokenizer)
        self.device = device

    def __repr__(self):
        return f"{self.label}({self.arm}, step {self.ckpt.get('iter_num')})"

    @torch.no_grad()
    def input_table(self):
        """(n_real_tokens, d) input embeddings of every real token, whatever the arm."""
        return self.model.all_embeddings()[: self.tok.n_vocab].float()

    @torch.no_grad()
    def embed_string(self, text):
        """One vector for a string in this model's input space: Kron encodes the whole string as one
        byte sequence; BPE arms mean-pool the rows of its sub-tokens."""
        if self.reads_bytes:
            wte = self.model.transformer.wte
            return wte(torch.tensor([0], device=self.device), byte_overrides={0: text.encode("utf-8")})[0].float()
        ids = self.tok.encode(text)
        return self.model.transformer.wte(torch.tensor(ids, device=self.device)).float().mean(0)


def parse_labelled(specs, what="checkpoint", expect="a ckpt.pt written by train.py", is_dir=False):
    """'label=path' or 'path' -> list of (label or None, path); a missing path is an error naming it."""
    out = []
    for spec in specs:
        label, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
        if not is_dir and os.path.isdir(path):
            raise FileNotFoundError(f"{what} {path!r} is a folder; expected {expect} (e.g. {os.path.join(path, 'ckpt.pt')})")
        if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
            raise FileNotFoundError(f"{what} {path!r} does not exist (expected {expect})")
        out.append((label or None, path))
    return out


def cli(main):
    """Run a probe's main() as a command through the shared handler (errors.py): a bad input ends in
    one line naming it (ValueError too: the probes raise it for malformed inputs); --debug or
    KRON_DEBUG=1 shows the traceback."""
    from errors import run_cli

    return run_cli(main, also=(ValueError,))


def parse_checkpoints(specs):
    return parse_labelled(specs)


def load_all(specs, device="cpu"):
    models = []
    for label, path in parse_checkpoints(specs):
        m = Probed(label or "", path, device)
        m.label = label or m.arm
        models.append(m)
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"checkpoint labels {labels} repeat; name them with label=path")
    return models


def codec_table(tokenizer_name, pos_dim=32, n=None, z_norm=True):
    """The raw Kronecker codec of every token (no projection): (n, 256*pos_dim) float32."""
    from kron_embed import token_byte_table

    table, lengths, _ = token_byte_table(tokenizer_name, pos_dim)
    n = n or len(lengths)
    return kron_codec(torch.from_numpy(table[:n]), torch.from_numpy(lengths[:n]), z_norm=z_norm)


def codec_string(text, pos_dim=32, z_norm=True):
    row, L = encode_bytes(text.encode("utf-8"), pos_dim)
    return kron_codec(row[None], torch.tensor([L]), z_norm=z_norm)[0]


def topk_neighbours(table, query, k, exclude=()):
    """Indices and cosines of the k rows of `table` most cosine-similar to `query`, skipping `exclude`."""
    sims = F.cosine_similarity(table, query[None], dim=1)
    if exclude:
        sims[list(exclude)] = -float("inf")
    vals, idx = torch.topk(sims, k)
    return idx.tolist(), vals.tolist()


def centred(table):
    return table - table.mean(0, keepdim=True)


def single_token_id(tok, word):
    """The id of `word` if the tokenizer keeps it as one token, else None."""
    ids = tok.encode(word)
    return ids[0] if len(ids) == 1 else None


def common_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("checkpoints", nargs="+", help="ckpt.pt files, optionally labelled: kron=out/run/ckpt.pt")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", type=device_arg, default="cpu")
    return p


def write_outputs(out_dir, name, result, markdown):
    """<out_dir>/<name>.json and <out_dir>/<name>.md; returns the two paths."""
    os.makedirs(out_dir, exist_ok=True)
    jpath, mpath = os.path.join(out_dir, f"{name}.json"), os.path.join(out_dir, f"{name}.md")
    with open(jpath, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    with open(mpath, "w") as f:
        f.write(markdown.rstrip() + "\n")
    print(f"wrote {jpath} and {mpath}")
    return jpath, mpath


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)
