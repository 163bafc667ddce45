"""Spelling robustness: how much a one-word typo changes a model's next-token prediction.

    python -m probes.robustness bpe=out/a/ckpt.pt kron=out/b/ckpt.pt --out report/
    python -m probes.robustness ... --pairs my_pairs.jsonl          # {"category", "clean", "typo"} per line
    python -m probes.robustness ... --generate clean.txt --n 300    # build pairs with the typo generator

Per (clean, typo) pair, at the last prompt position (definitions of the paper, notes §3.3):
  kl            KL(P_clean || P_typo) in nats over the next-token distribution (fp32; the
                distribution is taken over the tokenizer's real tokens, padded ids excluded)
  cos_hidden    cosine of the final hidden states (after ln_f)
  logprob_drop  log P_clean(top1_clean) - log P_typo(top1_clean)
  top1_match    argmax of both distributions agree
Aggregates overall and per category; per category the arm with the higher top-1 match rate wins
(equal rates tie). Writes robustness.json, robustness.md and robustness.png.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.robustness", run_name="__main__", alter_sys=True)
    raise SystemExit
import json
import os
import random

import torch
import torch.nn.functional as F
from tqdm import tqdm

from plotting import pyplot, save_figure
from probes.common import cli, common_args, load_all, md_table, write_outputs
from stats import mcnemar  # noqa: F401 (robustness.mcnemar: the paired test this probe reports)

DEFAULT_PAIRS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "robustness_pairs.jsonl")
QWERTY_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def load_pairs(path):
    """A JSONL file of {"category", "clean", "typo"}; every malformed line is reported by number."""
    pairs, errors = [], []
    for n, line in enumerate(read_utf8_lines(path, "pairs file"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {n}: not JSON ({e.msg})")
            continue
        if not isinstance(rec, dict):
            errors.append(f"line {n}: a JSON {type(rec).__name__}, expected an object with category, clean, typo")
            continue
        missing = [k for k in ("category", "clean", "typo") if not isinstance(rec.get(k), str) or not rec.get(k)]
        if missing:
            errors.append(f"line {n}: needs non-empty string fields {missing}")
            continue
        pairs.append(rec)
    if errors:
        raise ValueError(f"malformed pairs file {path}:\n  " + "\n  ".join(errors[:20]))
    if not pairs:
        raise ValueError(f"pairs file {path} holds no pairs")
    return pairs


def neighbour_keys(ch):
    for row in QWERTY_ROWS:
        i = row.find(ch.lower())
        if i >= 0:
            return [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
    return []


def make_typo(word, rng, kind=None):
    """One edit of a word (length >= 3): swap two adjacent inner letters, drop one, double one, or
    substitute a neighbouring QWERTY key. The first letter is kept."""
    if len(word) < 3:
        raise ValueError(f"word {word!r} is too short for a typo (need >= 3 characters)")
    kind = kind or rng.choice(["swap", "drop", "double", "substitute"])
    i = rng.randrange(1, len(word) - 1)
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "substitute":
        options = neighbour_keys(word[i]) or ["e"]
        return word[:i] + rng.choice(options) + word[i + 1 :]
    raise ValueError(f"typo kind {kind!r}: expected swap, drop, double or substitute")


def read_utf8_lines(path, what):
    """The lines of a UTF-8 text file; other bytes are an error naming the file and the offset."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path!r} is not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r})") from None


def generate_pairs(prompts, n, seed=0, category="generated"):
    """Pairs from clean prompts: a typo in one content word (the longest alphabetic word >= 4 chars)."""
    if not prompts:
        raise ValueError("no prompts to build typo pairs from (the prompts file is empty)")
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        clean = prompts[i % len(prompts)]
        words = [w for w in clean.split() if w.isalpha() and len(w) >= 4]
        if not words:
            continue
        w = rng.choice(words)
        typo = make_typo(w, rng)
        pairs.append({"category": category, "clean": clean, "typo": clean.replace(w, typo, 1)})
    return pairs


@torch.no_grad()
def last_position(model, tok, text, device):
    ids = torch.tensor([tok.encode(text)], device=device)
    logits, _, hidden = model(ids, return_hidden=True)
    return logits[0, -1, : tok.n_vocab].float(), hidden[-1][0, -1].float(), ids.shape[1]


def pair_metrics(logits_clean, logits_typo, h_clean, h_typo):
    lp_c, lp_t = F.log_softmax(logits_clean, -1), F.log_softmax(logits_typo, -1)
    kl = torch.sum(lp_c.exp() * (lp_c - lp_t)).item()
    top = int(lp_c.argmax())
    return {
        "kl": max(kl, 0.0),
        "cos_hidden": F.cosine_similarity(h_clean, h_typo, dim=0).item(),
        "logprob_drop": (lp_c[top] - lp_t[top]).item(),
        "top1_match": top == int(lp_t.argmax()),
        "top1_clean": top,
        "top1_typo": int(lp_t.argmax()),
    }


def aggregate(records):
    n = len(records)
    kls = sorted(r["kl"] for r in records)
    return {
        "n": n,
        "top1_match_rate": sum(r["top1_match"] for r in records) / n,
        "mean_kl": sum(kls) / n,
        "median_kl": kls[n // 2] if n % 2 else (kls[n // 2 - 1] + kls[n // 2]) / 2,
        "mean_cos_hidden": sum(r["cos_hidden"] for r in records) / n,
        "mean_logprob_drop": sum(r["logprob_drop"] for r in records) / n,
    }


def unrelated_agreement(records):
    """The baseline top-1 survival is measured against: how often the clean top-1 of prompt i equals
    that of an unrelated prompt (i+1). A model that predicts '\n' or ' the' everywhere scores high here
    too, and then survival says little about spelling."""
    tops = [r["top1_clean"] for r in records]
    n = len(tops)
    return sum(tops[i] == tops[(i + 1) % n] for i in range(n)) / n if n > 1 else None


def run(models, pairs, out_dir):
    result = {"n_pairs": len(pairs), "models": {}, "per_pair": []}
    categories = sorted(set(p["category"] for p in pairs), key=[p["category"] for p in pairs].index)
    for m in models:
        recs = []
        for p in tqdm(pairs, desc=f"robustness {m.label}", disable=None):
            lc, hc, nc = last_position(m.model, m.tok, p["clean"], m.device)
            lt, ht, nt = last_position(m.model, m.tok, p["typo"], m.device)
            rec = {**p, **pair_metrics(lc, lt, hc, ht), "tokens_clean": nc, "tokens_typo": nt}
            rec["top1_clean_str"], rec["top1_typo_str"] = m.tok.decode([rec["top1_clean"]]), m.tok.decode([rec["top1_typo"]])
            recs.append(rec)
        overall = dict(aggregate(recs), unrelated_top1_agreement=unrelated_agreement(recs))
        result["models"][m.label] = {
            "arm": m.arm,
            "checkpoint": m.path,
            "overall": overall,
            "per_category": {c: aggregate([r for r in recs if r["category"] == c]) for c in categories},
        }
        result["per_pair"].append({"model": m.label, "records": recs})
    labels = [m.label for m in models]
    if len(labels) >= 2:
        wins, leaders_by_cat = {}, {}
        for c in categories:
            rates = {lab: result["models"][lab]["per_category"][c]["top1_match_rate"] for lab in labels}
            best = max(rates.values())
            leaders = [lab for lab, r in rates.items() if r == best]
            leaders_by_cat[c] = leaders
            wins[c] = f"tie ({', '.join(leaders)})" if len(leaders) > 1 else leaders[0]
        result["category_winner_top1"] = wins
        result["category_leaders_top1"] = leaders_by_cat
        # a model wins or ties a category when its top-1 rate equals the best rate there
        result["wins_or_ties"] = {lab: sum(lab in ls for ls in leaders_by_cat.values()) for lab in labels}
        survival = {rec["model"]: [r["top1_match"] for r in rec["records"]] for rec in result["per_pair"]}
        result["mcnemar_top1"] = {f"{a} vs {b}": mcnemar(survival[a], survival[b]) for i, a in enumerate(labels) for b in labels[i + 1 :]}
    md = summary(result, labels, categories)
    write_outputs(out_dir, "robustness", result, md)
    plot(result, labels, categories, os.path.join(out_dir, "robustness.png"))
    return result


def summary(result, labels, categories):
    rows = [
        [lab]
        + [
            result["models"][lab]["overall"].get(k)
            for k in ("top1_match_rate", "unrelated_top1_agreement", "mean_kl", "median_kl", "mean_cos_hidden", "mean_logprob_drop")
        ]
        for lab in labels
    ]
    md = [
        f"# Spelling robustness ({result['n_pairs']} pairs)\n",
        md_table(
            ["model", "top-1 match", "baseline: unrelated prompts agree", "mean KL", "median KL", "mean hidden cos", "mean log-prob drop"],
            rows,
        ),
        "",
    ]
    if result.get("mcnemar_top1"):
        md += [
            "Paired test of top-1 survival (exact McNemar, two-sided): "
            + "; ".join(
                f"{k}: {v['only_first']} vs {v['only_second']} pairs kept by one only, p = {v['p_value']:.3g}"
                for k, v in result["mcnemar_top1"].items()
            ),
            "",
        ]
    crow = []
    for c in categories:
        r = [c] + [
            f"{result['models'][lab]['per_category'][c]['top1_match_rate']:.2f} / {result['models'][lab]['per_category'][c]['mean_kl']:.3f}"
            for lab in labels
        ]
        if "category_winner_top1" in result:
            r.append(result["category_winner_top1"][c])
        crow.append(r)
    header = ["category"] + [f"{lab} top-1 / KL" for lab in labels] + (["top-1 winner"] if "category_winner_top1" in result else [])
    md += ["## Per category", md_table(header, crow), ""]
    if "wins_or_ties" in result:
        md.append(
            "Wins or ties on top-1 per category: " + ", ".join(f"{k} {v}/{len(categories)}" for k, v in result["wins_or_ties"].items())
        )
    return "\n".join(md)


def plot(result, labels, categories, path):
    plt = pyplot()
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(categories))
    w = 0.8 / len(labels)
    for i, lab in enumerate(labels):
        pc = result["models"][lab]["per_category"]
        axes[0].bar(x + i * w, [pc[c]["top1_match_rate"] for c in categories], w, label=lab)
        axes[1].bar(x + i * w, [pc[c]["mean_kl"] for c in categories], w, label=lab)
    for ax, t in zip(axes, ["top-1 match rate (higher is more robust)", "mean KL(clean||typo), nats (lower is more robust)"]):
        ax.set_xticks(x + w * (len(labels) - 1) / 2, categories, rotation=45, ha="right")
        ax.set_title(t, fontsize=10)
        ax.legend()
    save_figure(fig, path, dpi=110)


def main(argv=None):
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--pairs", default=DEFAULT_PAIRS, help="JSONL of {category, clean, typo}")
    p.add_argument("--generate", help="a text file of clean prompts, one a line: build pairs with the typo generator")
    p.add_argument("--n", type=int, default=200, help="pairs to generate with --generate")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n {args.n}: expected an integer >= 1 (pairs to generate)")
    if args.generate:
        prompts = [line.strip() for line in read_utf8_lines(args.generate, "prompts file") if line.strip()]
        if not prompts:
            p.error(f"prompts file {args.generate!r} holds no prompts (one clean prompt a line)")
        pairs = generate_pairs(prompts, args.n)
        if not pairs:
            p.error(f"no prompt in {args.generate!r} has an alphabetic word of 4+ letters to misspell")
    else:
        pairs = load_pairs(args.pairs)
    return run(load_all(args.checkpoints, args.device), pairs, args.out)


if __name__ == "__main__":
    cli(main)
