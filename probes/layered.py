"""Neighbour structure at four depths: raw embedding, embedding + position 0, after block 0, after block 1.

    python -m probes.layered bpe=out/a/ckpt.pt kron=out/b/ckpt.pt --out report/

Every real token is fed alone at position 0. Representations (notes §3.2): E_raw = the input
embedding; E_post = E_raw + wpe(0); L0 / L1 = the residual stream after block 0 / block 1. Each space
is mean-centred over the vocabulary; the top-10 neighbours by cosine (self excluded) of 6 families x 8
single-token probes are scored, over their canonical forms, as
  L (loose)          share not equal to the probe's canonical form,
  M (root-substring) share containing the family's root substring,
  S (strict-family)  share inside the family's exact word set (the probe itself included, so its
                     case/space variants count).
A probe is fed as one token: its bare form when the tokenizer has it, else its leading-space form
(" rerun"), which is how words appear mid-sentence. Note: in GPT-2 only 25 of the 48 bare forms are
single tokens (42 of 48 with the leading-space fallback), although the paper's notes say all are.
Probes split either way are skipped and listed under `skipped_probes`; `probe_forms` records the
form used. Writes layered.json, layered.md and layered.png.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.layered", run_name="__main__", alter_sys=True)
    raise SystemExit
import os

import torch
import torch.nn.functional as F
from tqdm import tqdm

from plotting import pyplot, save_figure
from probes.common import canonical, centred, cli, common_args, load_all, md_table, single_token_id, topk_neighbours, write_outputs

FAMILIES = {
    "run": (
        ["run", "runs", "running", "runner", "ran", "rerun", "runners", "runaway"],
        "run",
        {"outrun", "ran", "rerun", "run", "runaway", "runnable", "runner", "runners", "running", "runs", "runway"},
    ),
    "compute": (
        ["compute", "computer", "computing", "computation", "computes", "computed", "computers", "computational"],
        "comput",
        {
            "computability",
            "computation",
            "computational",
            "compute",
            "computed",
            "computer",
            "computers",
            "computes",
            "computing",
            "recompute",
            "uncomputable",
        },
    ),
    "nation": (
        ["nation", "nations", "national", "nationally", "international", "nationality", "nationals", "transnational"],
        "nation",
        {
            "international",
            "internationally",
            "multinational",
            "nation",
            "national",
            "nationalism",
            "nationalist",
            "nationality",
            "nationally",
            "nationals",
            "nations",
            "transnational",
        },
    ),
    "code": (
        ["code", "codes", "coded", "coding", "coder", "encoded", "decoded", "encoding"],
        "cod",
        {
            "code",
            "codec",
            "codecs",
            "coded",
            "coder",
            "coders",
            "codes",
            "coding",
            "decode",
            "decoded",
            "decoder",
            "decodes",
            "decoding",
            "encode",
            "encoded",
            "encoder",
            "encodes",
            "encoding",
            "recode",
            "recoded",
        },
    ),
    "act": (
        ["act", "acts", "acted", "acting", "action", "actor", "active", "react"],
        "act",
        {
            "act",
            "acted",
            "acting",
            "action",
            "actions",
            "activation",
            "active",
            "actively",
            "actor",
            "actors",
            "acts",
            "enact",
            "exact",
            "interact",
            "react",
            "reaction",
            "reacts",
            "transact",
        },
    ),
    "build": (
        ["build", "builds", "built", "builder", "building", "buildings", "rebuild", "prebuilt"],
        "build",
        {
            "build",
            "builder",
            "builders",
            "building",
            "buildings",
            "builds",
            "buildup",
            "built",
            "prebuilt",
            "rebuild",
            "rebuilt",
            "unbuilt",
        },
    ),
}
DEPTHS = ("E_raw", "E_post", "L0", "L1")
K = 10


def scores(neighbour_strs, probe, root, family):
    canon = [canonical(s) for s in neighbour_strs]
    n = len(canon)
    return {
        "L": sum(c != canonical(probe) for c in canon) / n,
        "M": sum(root in c for c in canon) / n,
        "S": sum(c in family for c in canon) / n,
    }


@torch.no_grad()
def representations(m, chunk=2048):
    """{depth: (V_real, d)} for every real token fed alone at position 0."""
    model, n = m.model, m.tok.n_vocab
    reps = {d: [] for d in DEPTHS}
    wpe0 = model.transformer.wpe.weight[0]
    for i in range(0, n, chunk):
        ids = torch.arange(i, min(n, i + chunk), device=m.device)[:, None]
        e = model.embed(ids)
        reps["E_raw"].append(e[:, 0].float())
        x = e + wpe0
        reps["E_post"].append(x[:, 0].float())
        for depth, block in zip(("L0", "L1"), model.transformer.h[:2]):
            x = block(x)
            reps[depth].append(x[:, 0].float())
    return {d: torch.cat(v) for d, v in reps.items() if v}


def run(models, out_dir):
    result = {"k": K, "models": {m.label: {"arm": m.arm, "checkpoint": m.path, **measure(m)} for m in models}}
    write_outputs(out_dir, "layered", result, summary_md(result))
    plot(result, os.path.join(out_dir, "layered.png"))
    return result


def measure(m):
    """One model's neighbour scores per family and depth, and its spaces' norms."""
    reps = representations(m)
    present = [d for d in DEPTHS if d in reps]
    spaces = {d: centred(reps[d]) for d in present}
    res = {"depths": present, "per_family": {}, "neighbours": {}, "skipped_probes": [], "centred_mean_norm": {}, "random_pair_cos": {}}
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, m.tok.n_vocab, (2000,), generator=g) for _ in range(2))
    for d in present:
        res["centred_mean_norm"][d] = spaces[d].norm(dim=1).mean().item()
        res["random_pair_cos"][d] = F.cosine_similarity(spaces[d][a], spaces[d][b], dim=1).mean().item()
    for fam, (probes, root, family) in tqdm(FAMILIES.items(), desc=f"layered {m.label}", disable=None):
        per_depth = {d: [] for d in present}
        for p in probes:
            i = single_token_id(m.tok, p)
            if i is None:
                i = single_token_id(m.tok, " " + p)
                if i is not None:
                    res.setdefault("probe_forms", {})[p] = " " + p
            if i is None:
                res["skipped_probes"].append(p)
                continue
            for d in present:
                strs = [
                    m.tok.token_bytes(j).decode("utf-8", errors="replace")
                    for j in topk_neighbours(spaces[d], spaces[d][i], K, exclude=[i])[0]
                ]
                per_depth[d].append(scores(strs, p, root, family))
                res["neighbours"].setdefault(p, {})[d] = strs
        res["per_family"][fam] = {d: {key: sum(s[key] for s in v) / len(v) for key in "LMS"} if v else None for d, v in per_depth.items()}
    res["overall"] = {}
    for d in present:
        vals = [f[d] for f in res["per_family"].values() if f[d]]
        res["overall"][d] = {key: sum(v[key] for v in vals) / len(vals) for key in "LMS"} if vals else None
    return res


def summary_md(result):
    md = ["# Layered neighbour probe (top-10, mean-centred spaces)\n"]
    rows = []
    for lab, r in result["models"].items():
        for d in r["depths"]:
            o = r["overall"][d]
            rows.append([lab, d, o["L"], o["M"], o["S"], r["centred_mean_norm"][d]])
    md.append(md_table(["model", "depth", "L (loose)", "M (root)", "S (strict family)", "centred mean norm"], rows))
    md.append("\nPer family, S at E_raw -> L1:\n")
    labels = list(result["models"])
    frows = []
    for fam in FAMILIES:
        row = [fam]
        for lab in labels:
            pf = result["models"][lab]["per_family"][fam]
            last = result["models"][lab]["depths"][-1]
            row.append(f"{pf['E_raw']['S']:.3f} -> {pf[last]['S']:.3f}" if pf["E_raw"] else "skipped")
        frows.append(row)
    md.append(md_table(["family"] + labels, frows))
    for lab, r in result["models"].items():
        if r["skipped_probes"]:
            md.append(f"\n{lab}: skipped multi-token probes {r['skipped_probes']}")
        if "run" in r["neighbours"]:
            md.append(
                f"\n{lab} `run` neighbours: "
                + "; ".join(f"{d}: {', '.join(repr(s) for s in v[:6])}" for d, v in r["neighbours"]["run"].items())
            )
    return "\n".join(md)


def plot(result, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(axes, "LMS", ["L: loose", "M: root substring", "S: strict family"]):
        for lab, r in result["models"].items():
            ax.plot(r["depths"], [r["overall"][d][key] for d in r["depths"]], marker="o", label=lab)
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend()
    save_figure(fig, path, dpi=110)


def main(argv=None):
    args = common_args(__doc__.split("\n")[0]).parse_args(argv)
    return run(load_all(args.checkpoints, args.device), args.out)


if __name__ == "__main__":
    cli(main)
