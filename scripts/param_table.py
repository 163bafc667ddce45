"""Parameter counts per arm: input side, output head, body (the paper's savings table).

    python -m scripts.param_table --out results/param_table

GPT-2 124M rows are counted on the real model (model.py, V padded to 50,304, bias on); the rows for
larger vocabularies (V 50,304 / 128,256 / 131,072 / 151,936 at d 768 / 2,048 / 4,096, pos_dim 32,
D 8,192) count the input side and head only, since their bodies depend on the rest of the
architecture: dense table V*d vs Kron projection D*d (ratio V/D, whatever d), head V*d in every
untied arm. Writes param_table.json and param_table.md.
"""
import argparse
import json
import os

import torch

from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VOCABS = [(50304, "GPT-2 (padded)"), (128256, "Llama-3"), (131072, "131K (paper's production)"), (151936, "Qwen")]
WIDTHS = [768, 2048, 4096]


def gpt2_rows(pos_dims=(16, 32)):
    rows = []
    for arm in ("bpe_tied", "bpe_untied", "kron", "kron_tied"):
        for pd in (pos_dims if arm == "kron" else (16,) if arm == "kron_tied" else (None,)):
            cfg = GPTConfig(embedding=arm, kron_pos_dim=pd or 16)
            with torch.device("meta"):  # counts need shapes only: no memory, no init
                with_meta = GPT(cfg).param_groups_by_role()
            rows.append({"arm": arm if pd is None else f"{arm} (pos_dim {pd}, D {256 * pd})", **with_meta})
    return rows


def vocab_rows(pos_dim=32):
    D = 256 * pos_dim
    rows = []
    for V, name in VOCABS:
        for d in WIDTHS:
            table, proj = V * d, D * d
            rows.append({"vocab": V, "tokenizer": name, "d_model": d, "dense_table": table, "kron_projection": proj,
                         "input_ratio": table / proj, "input_saving_pct": 100 * (1 - proj / table), "untied_head": V * d,
                         "kron_non_trainable_bytes": V * (pos_dim + 2)})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "results", "param_table"))
    args = p.parse_args(argv)
    g, v = gpt2_rows(), vocab_rows()
    md = ["GPT-2 124M (V 50,304, d 768, 12 layers, bias on), counted on model.py:\n",
          "| arm | input side | output head | body | total |", "|---|---|---|---|---|"]
    for r in g:
        head = "tied" if r["arm"] == "bpe_tied" else f"{r['output_head']:,}"
        md.append(f"| {r['arm']} | {r['input']:,} | {head} | {r['body']:,} | {r['total']:,} |")
    md += ["\nInput side at pos_dim 32 (D 8,192) for larger vocabularies (body not counted):\n",
           "| V | tokenizer | d | dense table | Kron projection | ratio | input saving | Kron byte buffer |",
           "|---|---|---|---|---|---|---|---|"]
    for r in v:
        md.append(f"| {r['vocab']:,} | {r['tokenizer']} | {r['d_model']:,} | {r['dense_table']:,} | {r['kron_projection']:,} | "
                  f"{r['input_ratio']:.2f}× | {r['input_saving_pct']:.2f} % | {r['kron_non_trainable_bytes'] / 1e6:.2f} MB |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "param_table.json"), "w") as f:
        json.dump({"gpt2_124m": g, "vocab_scaling": v}, f, indent=1)
    with open(os.path.join(args.out, "param_table.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return g, v


if __name__ == "__main__":
    main()
