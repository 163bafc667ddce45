"""Embedding geometry: do input embeddings cluster typographic variants or morphological relatives?

    python -m probes.clustering bpe=out/a/ckpt.pt kron=out/b/ckpt.pt --out report/
    python -m probes.clustering --hf smollm=/models/SmolLM2-135M --out report/   # any local HF model dir

Spaces: each checkpoint's input space (a BPE table, or the Kron arm's projected embeddings of every
token), each local Hugging Face model's input table (a directory with tokenizer.json and
*.safetensors or pytorch_model.bin), the raw Kronecker codec of the tokenizer (pos_dim 32, D 8192,
no projection), and a Gaussian table of the first table's shape (seed 1337). Definitions follow
the paper's data (notes §3.1):
  * top-5 neighbours of each probe word by raw cosine, excluding the probe itself. Multi-token
    probes are mean-pooled over sub-token rows in table spaces; Kron and codec spaces encode the
    whole string as one byte sequence;
  * typographic@5: share of the top 5 whose canonical form (whitespace markers and edge punctuation
    stripped, casefolded) equals the probe's; morphological@5 = 1 - typographic@5; family means;
  * in-family (mean pairwise) vs random-pair cosine (1000 random token pairs), on mean-centred spaces
    and raw;
  * edit-distance fall-off: mean cosine of (anchor, variant) pairs by bucket (typographic,
    morphological, unrelated), on centred spaces.
Writes clustering.json, clustering.md and clustering.png.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.clustering", run_name="__main__", alter_sys=True)
    raise SystemExit
import glob
import os

import torch
import torch.nn.functional as F
from tqdm import tqdm

from hf_import import read_bin, safetensors_error
from kron_embed import codec_cosines, encode_bytes, kron_codec, token_byte_table
from plotting import pyplot, save_figure
from probes.common import canonical, cli, codec_string, load_all, md_table, parse_labelled, topk_neighbours, write_outputs
from runtime import device_arg
from tokenizer import get_tokenizer

FAMILIES = {
    "run": ["run", "runs", "running", "runner", "ran"],
    "compute": ["compute", "computer", "computing", "computation", "computes"],
    "magnet": ["magnet", "magnets", "magnetic", "magnetize", "magnetized"],
    "tion": ["nation", "station", "action", "rotation", "creation"],
}
FALLOFF = {  # anchor -> bucket -> variants
    "run": {
        "typographic": ["Run", "RUN", " run", "run.", "(run"],
        "morphological": ["runs", "running", "runner", "rerun", "ran"],
        "unrelated": ["table", "green", "river", "music"],
    },
    "compute": {
        "typographic": ["Compute", "COMPUTE", " compute"],
        "morphological": ["computer", "computing", "computation", "computes"],
        "unrelated": ["banana", "window", "silver"],
    },
    "nation": {
        "typographic": ["Nation", "NATION", " nation"],
        "morphological": ["nations", "national", "nationality", "international"],
        "unrelated": ["station", "notion", "garden", "pencil"],
    },
    "import": {
        "typographic": ["Import", "IMPORT", " import"],
        "morphological": ["imports", "imported", "importing"],
        "unrelated": ["important", "purple", "ocean"],
    },
    "code": {
        "typographic": ["Code", "CODE", " code"],
        "morphological": ["codes", "coded", "coding", "decode", "encode"],
        "unrelated": ["cheese", "planet", "ladder"],
    },
}
K = 5


class TableSpace:
    """A (V, d) table over a tokenizer; strings are mean-pooled over their sub-token rows unless a
    whole-string encoder is given (the Kron arm's projection of one byte sequence)."""

    def __init__(self, name, tok, table, whole_string=None):
        self.name, self.tok, self.table, self.whole_string = name, tok, table.float(), whole_string
        self.mean = self.table.mean(0)

    def vector(self, word):
        if self.whole_string:
            return self.whole_string(word)
        ids = self.tok.encode(word)
        if not ids:
            raise ValueError(f"{self.name}: the tokenizer gives no tokens for {word!r}")
        return self.table[ids].mean(0)

    def neighbours(self, word, k):
        exclude = _self_ids(self.tok, word)
        return topk_neighbours(self.table, self.vector(word), k, exclude)

    def rows(self, ids):
        return self.table[ids]


class CodecSpace:
    """The raw Kronecker codec of every token (z-normed, no projection); cosines computed sparsely."""

    def __init__(self, name, tok, pos_dim=32):
        self.name, self.tok, self.pos_dim = name, tok, pos_dim
        table, lengths, _ = token_byte_table(tok, pos_dim)
        self.bytes, self.lengths = torch.from_numpy(table), torch.from_numpy(lengths)
        total = torch.zeros(256 * pos_dim)
        for i in range(0, len(lengths), 2048):
            total += kron_codec(self.bytes[i : i + 2048], self.lengths[i : i + 2048]).sum(0)
        self.mean = total / len(lengths)

    def vector(self, word):
        return codec_string(word, self.pos_dim)

    def neighbours(self, word, k):
        row, n = encode_bytes(word.encode("utf-8"), self.pos_dim)
        sims = codec_cosines(self.bytes, self.lengths, row, n)
        for i in _self_ids(self.tok, word):
            sims[i] = -float("inf")
        vals, idx = torch.topk(sims, k)
        return idx.tolist(), vals.tolist()

    def rows(self, ids):
        return kron_codec(self.bytes[ids], self.lengths[ids])


def _self_ids(tok, word):
    """Ids whose bytes are exactly the probe word (excluded from its own neighbours)."""
    ids = tok.encode(word)
    return ids if len(ids) == 1 and tok.token_bytes(ids[0]) == word.encode("utf-8") else []


def token_str(tok, i):
    return tok.token_bytes(i).decode("utf-8", errors="replace")


def load_hf_embeddings(path):
    """The input embedding matrix of a local Hugging Face model directory."""
    names = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight", "embeddings.weight")
    files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    if files:
        from safetensors import SafetensorError, safe_open

        for f in files:
            try:
                with safe_open(f, framework="pt") as st:
                    for suffix in names:
                        key = next((k for k in st.keys() if k.endswith(suffix)), None)
                        if key:
                            return st.get_tensor(key).float()
            except SafetensorError as e:
                raise safetensors_error(f, e) from None
    for f in sorted(glob.glob(os.path.join(path, "pytorch_model*.bin"))):
        state = read_bin(f)  # weights only: a pickle is refused, never run
        for suffix in names:
            key = next((k for k in state if k.endswith(suffix)), None)
            if key:
                return state[key].float()
    raise FileNotFoundError(f"{path!r}: no input embedding ({' / '.join(names)}) found in *.safetensors or pytorch_model*.bin")


def cos(a, b):
    return F.cosine_similarity(a, b, dim=0).item()


def analyse(space, seed=1337, n_random=1000):
    out = {"families": {}, "neighbours": {}}
    for fam, probes in FAMILIES.items():
        typo = []
        for w in probes:
            idx, sims = space.neighbours(w, K)
            strs = [token_str(space.tok, i) for i in idx]
            hits = sum(canonical(s) == canonical(w) for s in strs)
            typo.append(hits / K)
            out["neighbours"][w] = [[s, round(c, 4)] for s, c in zip(strs, sims)]
        vecs = [space.vector(w) for w in probes]
        pairs = [(i, j) for i in range(len(vecs)) for j in range(i + 1, len(vecs))]
        in_raw = sum(cos(vecs[i], vecs[j]) for i, j in pairs) / len(pairs)
        in_c = sum(cos(vecs[i] - space.mean, vecs[j] - space.mean) for i, j in pairs) / len(pairs)
        out["families"][fam] = {
            "typographic@5": sum(typo) / len(typo),
            "morphological@5": 1 - sum(typo) / len(typo),
            "in_family_cos_centred": in_c,
            "in_family_cos_raw": in_raw,
        }
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, space.tok.n_vocab, (n_random,), generator=g)
    b = torch.randint(0, space.tok.n_vocab, (n_random,), generator=g)
    ra, rb = space.rows(a), space.rows(b)
    out["random_pair_cos_raw"] = F.cosine_similarity(ra, rb, dim=1).mean().item()
    out["random_pair_cos_centred"] = F.cosine_similarity(ra - space.mean, rb - space.mean, dim=1).mean().item()
    out["mean_vector_norm"] = space.mean.norm().item()
    fams = out["families"].values()
    out["mean_morphological@5"] = sum(f["morphological@5"] for f in fams) / len(FAMILIES)
    buckets = {}
    for anchor, groups in FALLOFF.items():
        va = space.vector(anchor) - space.mean
        for bucket, variants in groups.items():
            for v in variants:
                buckets.setdefault(bucket, []).append(cos(va, space.vector(v) - space.mean))
    out["falloff"] = {b: sum(v) / len(v) for b, v in buckets.items()}
    out["falloff"]["spread_morph_minus_unrelated"] = out["falloff"]["morphological"] - out["falloff"]["unrelated"]
    return out


def build_spaces(models, hf_dirs, codec_pos_dim, random_table=True):
    spaces = []
    for m in models:
        whole = m.embed_string if m.reads_bytes else None
        spaces.append(TableSpace(f"{m.label} ({m.arm})", m.tok, m.input_table(), whole))
    for label, path in hf_dirs:
        tok = get_tokenizer(path)
        table = load_hf_embeddings(path)[: tok.n_vocab]
        spaces.append(TableSpace(f"{label} (HF)", tok, table))
    if spaces and random_table:
        first = spaces[0]
        g = torch.Generator().manual_seed(1337)
        spaces.append(TableSpace("random (Gaussian)", first.tok, torch.randn(first.table.shape, generator=g)))
    toks = {}
    for s in list(spaces):
        toks.setdefault(s.tok.name, s.tok)
    for name, tok in toks.items():
        label = "codec" if len(toks) == 1 else f"codec [{os.path.basename(name)}]"
        spaces.append(CodecSpace(f"{label} (pos_dim {codec_pos_dim})", tok, codec_pos_dim))
    return spaces


def run(models, hf_dirs, out_dir, codec_pos_dim=32):
    spaces = build_spaces(models, hf_dirs, codec_pos_dim)
    result = {"k": K, "families": FAMILIES, "spaces": {}}
    for s in tqdm(spaces, desc="clustering", disable=None):
        result["spaces"][s.name] = analyse(s)
    names = list(result["spaces"])
    rows = [
        [n] + [r["families"][f]["morphological@5"] for f in FAMILIES] + [r["mean_morphological@5"]] for n, r in result["spaces"].items()
    ]
    md = [
        "# Embedding clustering\n",
        "morphological@5 (1 - share of top-5 neighbours that are typographic variants):\n",
        md_table(["space"] + list(FAMILIES) + ["mean"], rows),
        "",
        "In-family vs random-pair cosine (mean-centred spaces):\n",
        md_table(
            ["space"] + [f"{f} in-family" for f in FAMILIES] + ["random pair (centred)", "random pair (raw)"],
            [
                [n]
                + [r["families"][f]["in_family_cos_centred"] for f in FAMILIES]
                + [r["random_pair_cos_centred"], r["random_pair_cos_raw"]]
                for n, r in result["spaces"].items()
            ],
        ),
        "",
        "Edit-distance fall-off, mean centred cosine to the anchor:\n",
        md_table(
            ["space", "typographic", "morphological", "unrelated", "morph - unrelated"],
            [
                [
                    n,
                    r["falloff"]["typographic"],
                    r["falloff"]["morphological"],
                    r["falloff"]["unrelated"],
                    r["falloff"]["spread_morph_minus_unrelated"],
                ]
                for n, r in result["spaces"].items()
            ],
        ),
        "",
        "Top-5 neighbours of `run`:\n",
    ]
    for n in names:
        md.append(f"- {n}: " + ", ".join(repr(s) for s, _ in result["spaces"][n]["neighbours"]["run"]))
    write_outputs(out_dir, "clustering", result, "\n".join(md))
    plot(result, os.path.join(out_dir, "clustering.png"))
    return result


def plot(result, path):
    plt = pyplot()
    import numpy as np

    names = list(result["spaces"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(FAMILIES))
    w = 0.8 / len(names)
    for i, n in enumerate(names):
        axes[0].bar(x + i * w, [result["spaces"][n]["families"][f]["morphological@5"] for f in FAMILIES], w, label=n)
    axes[0].set_xticks(x + w * (len(names) - 1) / 2, list(FAMILIES))
    axes[0].set_title("morphological@5 (higher: fewer typographic neighbours)", fontsize=10)
    buckets = ["typographic", "morphological", "unrelated"]
    xb = np.arange(len(buckets))
    for i, n in enumerate(names):
        axes[1].bar(xb + i * w, [result["spaces"][n]["falloff"][b] for b in buckets], w, label=n)
    axes[1].set_xticks(xb + w * (len(names) - 1) / 2, buckets)
    axes[1].set_title("edit-distance fall-off: centred cosine to anchor", fontsize=10)
    axes[1].legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def parse_hf_dirs(specs):
    return [
        (label or os.path.basename(os.path.normpath(path)), path)
        for label, path in parse_labelled(specs, "Hugging Face model directory", "a folder with tokenizer.json and weights", is_dir=True)
    ]


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="*", help="ckpt.pt files, optionally labelled: kron=out/run/ckpt.pt")
    p.add_argument("--hf", nargs="*", default=[], help="local Hugging Face model dirs, optionally label=dir")
    p.add_argument("--codec-pos-dim", type=int, default=32)
    p.add_argument("--out", required=True)
    p.add_argument("--device", type=device_arg, default="cpu")
    args = p.parse_args(argv)
    if not args.checkpoints and not args.hf:
        p.error("give at least one checkpoint or --hf model directory")
    hf = parse_hf_dirs(args.hf)
    models = load_all(args.checkpoints, args.device) if args.checkpoints else []
    return run(models, hf, args.out, args.codec_pos_dim)


if __name__ == "__main__":
    cli(main)
