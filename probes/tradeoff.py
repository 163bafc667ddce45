"""The byte-locality trade-off: byte-similar but unrelated words, and where a model separates them.

    python -m probes.tradeoff bpe=out/a/ckpt.pt kron=out/b/ckpt.pt --out report/

For pairs such as compute/commute, nation/notion, import/important: their cosine in the raw codec
(pos_dim 16, whole strings), and in each checkpoint at every depth: depth 0 is the input embedding,
depth l the residual stream after block l-1, each word fed alone (no leading space) and represented
by the mean over its token positions. Spaces are not centred here (each word pair is compared
directly). The Kron arm's whole-string embedding (the word as one byte slot) is reported too.
Writes tradeoff.json, tradeoff.md and tradeoff.png.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.tradeoff", run_name="__main__", alter_sys=True)
    raise SystemExit
import os

import torch
import torch.nn.functional as F

from plotting import pyplot, save_figure
from probes.common import cli, codec_string, common_args, load_all, md_table, write_outputs

PAIRS = [
    ("compute", "commute"),
    ("nation", "notion"),
    ("import", "important"),
    ("run", "rune"),
    ("form", "from"),
    ("trail", "trial"),
    ("causal", "casual"),
    ("quiet", "quite"),
    ("desert", "dessert"),
    ("angel", "angle"),
]
CONTROLS = [("compute", "computer"), ("nation", "national"), ("run", "running")]  # byte-similar and related


@torch.no_grad()
def depth_vectors(m, word):
    ids = torch.tensor([m.tok.encode(word)], device=m.device)
    _, _, hidden = m.model(ids, return_hidden=True)
    emb = m.model.embed(ids)
    # hidden[0] is the block-0 input (embedding + position); hidden[l] the input of block l; hidden[-1] after ln_f
    return [emb[0].mean(0).float()] + [h[0].mean(0).float() for h in hidden[1:-1]] + [hidden[-1][0].mean(0).float()]


def cos(a, b):
    return F.cosine_similarity(a, b, dim=0).item()


def run(models, out_dir, pos_dim=16):
    result = {"pairs": {}, "depth_labels": {}}
    for a, b in PAIRS + CONTROLS:
        rec = {"kind": "unrelated" if (a, b) in PAIRS else "related", "codec": cos(codec_string(a, pos_dim), codec_string(b, pos_dim))}
        for m in models:
            va, vb = depth_vectors(m, a), depth_vectors(m, b)
            rec[m.label] = [cos(x, y) for x, y in zip(va, vb)]
            if m.reads_bytes:
                rec[f"{m.label} whole-string"] = cos(m.embed_string(a), m.embed_string(b))
        result["pairs"][f"{a}/{b}"] = rec
    for m in models:
        result["depth_labels"][m.label] = ["input"] + [f"after block {i}" for i in range(m.model.config.n_layer - 1)] + ["final (ln_f)"]
    labels = [m.label for m in models]
    md = [
        "# Byte-locality trade-off: cosine of byte-similar pairs by depth\n",
        "Columns per model: input embedding -> final layer (mean over each word's tokens).\n",
    ]
    rows = []
    for pair, rec in result["pairs"].items():
        row = [pair, rec["kind"], rec["codec"]]
        for lab in labels:
            row.append(" → ".join(f"{v:.2f}" for v in rec[lab]))
        rows.append(row)
    md.append(md_table(["pair", "kind", "codec"] + labels, rows))
    write_outputs(out_dir, "tradeoff", result, "\n".join(md))
    plot(result, labels, os.path.join(out_dir, "tradeoff.png"))
    return result


def plot(result, labels, path):
    plt = pyplot()
    import numpy as np

    fig, axes = plt.subplots(1, len(labels), figsize=(5 * len(labels), 3.6), squeeze=False)
    for ax, lab in zip(axes[0], labels):
        for kind, colour in (("unrelated", "tab:red"), ("related", "tab:blue")):
            curves = [rec[lab] for rec in result["pairs"].values() if rec["kind"] == kind]
            arr = np.array(curves)
            for c in arr:
                ax.plot(c, color=colour, alpha=0.25)
            ax.plot(arr.mean(0), color=colour, lw=2.5, label=f"{kind} pairs (mean)")
        ax.set_xticks(range(len(result["depth_labels"][lab])), result["depth_labels"][lab], rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{lab}: cosine of byte-similar pairs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)


def main(argv=None):
    args = common_args(__doc__.split("\n")[0]).parse_args(argv)
    return run(load_all(args.checkpoints, args.device), args.out)


if __name__ == "__main__":
    cli(main)
