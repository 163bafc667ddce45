"""Generation with normal, misspelled and forced out-of-vocabulary prompts.

    python -m probes.generation bpe=out/a/ckpt.pt kron=out/b/ckpt.pt --out report/

For each prompt (20, written for this project) and each model: a sampled completion (temperature
0.7, top-p 0.9, 30 new tokens, seed 42) and a greedy one, for the normal prompt and a misspelled
version. Five prompts contain a byte-novel word; in the `forced_oov` condition the Kronecker arm
reads that word (with its leading space) as ONE byte-encoded slot: a free padded id (50300 for
GPT-2) is given the word's bytes. BPE arms cannot do this and run the normal prompt
(`bpe_oov_equivalent`).

Measured per model and condition: the echo rate (the prompt's novel or misspelled word reappears,
case-insensitively, in the completion) and the degenerate rate (some token id occurs 5+ times among
the 30 generated tokens, the rule the paper's data follows). Writes generation.json / .md.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.generation", run_name="__main__", alter_sys=True)
    raise SystemExit

import torch
from tqdm import tqdm

from probes.common import cli, common_args, load_all, md_table, write_outputs

# (normal prompt, misspelled prompt, watched word in the misspelled prompt, novel word or None)
PROMPTS = [
    ("The capital of France is", "The captial of France is", "captial", None),
    ("The largest ocean on Earth is the", "The largest ocaen on Earth is the", "ocaen", None),
    ("Water boils at a temperature of", "Water boils at a temprature of", "temprature", None),
    ("Photosynthesis is the process by which plants", "Photosyntesis is the process by which plants", "Photosyntesis", None),
    ("The early bird catches the", "The eraly bird catches the", "eraly", None),
    ("Two plus two equals", "Two plus two equls", "equls", None),
    ("A week has seven days, and a year has", "A week has seven dyas, and a year has", "dyas", None),
    ("To train a neural network, we use an algorithm called", "To train a nueral network, we use an algorithm called", "nueral", None),
    ("Python is a programming language that", "Python is a programing language that", "programing", None),
    ("The theory of evolution was proposed by", "The theory of evolustion was proposed by", "evolustion", None),
    ("The human heart pumps blood through", "The human haert pumps blood through", "haert", None),
    ("Shakespeare wrote a famous play called", "Shakespeare wrote a famous paly called", "paly", None),
    ("The chemical formula for water is", "The chemical fromula for water is", "fromula", None),
    ("Mount Everest is the highest mountain in", "Mount Everest is the highest moutain in", "moutain", None),
    ("Roses are red, violets are", "Roses are red, violtes are", "violtes", None),
    ("The word kronekticus refers to", "The word kronektikus refers to", "kronektikus", "kronekticus"),
    ("Kubernetes is a system for", "Kuberentes is a system for", "Kuberentes", "Kubernetes"),
    ("TensorFlow is a library for", "TesnorFlow is a library for", "TesnorFlow", "TensorFlow"),
    ("Deserialization is the process of", "Deserialisaton is the process of", "Deserialisaton", "Deserialization"),
    ("A glimbrast is a tool that", "A glimbarst is a tool that", "glimbarst", "glimbrast"),
]
SAMPLING = dict(temperature=0.7, top_p=0.9, max_new_tokens=30, seed=42)


def degenerate(ids, threshold=5):
    """True when some token id occurs `threshold`+ times among the generated ids."""
    return any(ids.count(i) >= threshold for i in set(ids))


def echoed(word, text):
    return word is not None and word.casefold() in text.casefold()


def complete(m, ids, byte_overrides=None, greedy=False):
    g = torch.Generator(device=m.device).manual_seed(SAMPLING["seed"])
    x = torch.tensor([ids], device=m.device)
    out = m.model.generate(
        x,
        SAMPLING["max_new_tokens"],
        temperature=0.0 if greedy else SAMPLING["temperature"],
        top_p=None if greedy else SAMPLING["top_p"],
        generator=g,
        byte_overrides=byte_overrides,
    )
    new = out[0, len(ids) :].tolist()
    return new, m.tok.decode(new)


def forced_oov_ids(m, prompt, word):
    """Prompt ids with `word` (and its leading space) as one slot whose bytes are the word's."""
    start = prompt.index(word)
    span_start = start - 1 if start > 0 and prompt[start - 1] == " " else start
    slots = m.model.transformer.wte.free_slots()
    if not slots:
        raise RuntimeError(f"{m.label}: no free padded id to hold the word {word!r}")
    slot = 50300 if 50300 in slots else slots[0]
    m.model.transformer.wte.set_token_bytes(slot, prompt[span_start : start + len(word)].encode("utf-8"))
    ids = m.tok.encode(prompt[:span_start]) + [slot] + m.tok.encode(prompt[start + len(word) :])
    return ids, slot


def run(models, out_dir):
    records = []
    for m in models:
        for normal, misspelled, typo_word, novel in tqdm(PROMPTS, desc=f"generation {m.label}", disable=None):
            conditions = [("normal", normal, novel), ("misspelled", misspelled, typo_word)]
            if novel:
                conditions.append(("forced_oov", normal, novel))
            for cond, prompt, watched in conditions:
                slot = None
                if cond == "forced_oov" and m.reads_bytes:
                    ids, slot = forced_oov_ids(m, prompt, novel)
                else:
                    ids = m.tok.encode(prompt)
                new, text = complete(m, ids)
                gnew, gtext = complete(m, ids, greedy=True)
                if slot is not None:
                    m.model.transformer.wte.set_token_bytes(slot, b"")
                records.append(
                    {
                        "model": m.label,
                        "arm": m.arm,
                        "condition": cond,
                        "prompt": prompt,
                        "watched_word": watched,
                        "prompt_ids": ids,
                        "oov_slot": slot,
                        "bpe_oov_equivalent": cond == "forced_oov" and slot is None,
                        "sampled": text,
                        "sampled_ids": new,
                        "greedy": gtext,
                        "echo_sampled": echoed(watched, text),
                        "echo_greedy": echoed(watched, gtext),
                        "degenerate": degenerate(new),
                    }
                )
    stats = {}
    for m in models:
        for cond in ("normal", "misspelled", "forced_oov"):
            rs = [r for r in records if r["model"] == m.label and r["condition"] == cond]
            watched = [r for r in rs if r["watched_word"]]
            stats.setdefault(m.label, {})[cond] = {
                "n": len(rs),
                "echo_rate_sampled": sum(r["echo_sampled"] for r in watched) / max(1, len(watched)),
                "echo_rate_greedy": sum(r["echo_greedy"] for r in watched) / max(1, len(watched)),
                "n_watched": len(watched),
                "degenerate_rate": sum(r["degenerate"] for r in rs) / max(1, len(rs)),
            }
    result = {"sampling": SAMPLING, "stats": stats, "records": records}
    md = ["# Generation probe\n", f"Sampling: {SAMPLING}; echo = the novel/misspelled word reappears in the completion.\n"]
    rows = [
        [lab, cond, s["n"], f"{s['echo_rate_sampled']:.2f}", f"{s['echo_rate_greedy']:.2f}", f"{s['degenerate_rate']:.2f}"]
        for lab, conds in stats.items()
        for cond, s in conds.items()
    ]
    md.append(md_table(["model", "condition", "prompts", "echo (sampled)", "echo (greedy)", "degenerate"], rows))
    md.append("\n## Examples (sampled)\n")
    for r in records:
        if r["condition"] != "normal" and r["watched_word"] in ("kronekticus", "kronektikus", "nueral"):
            md.append(f"- **{r['model']}** [{r['condition']}] {r['prompt']!r} → {r['sampled']!r}")
    write_outputs(out_dir, "generation", result, "\n".join(md))
    return result


def main(argv=None):
    args = common_args(__doc__.split("\n")[0]).parse_args(argv)
    return run(load_all(args.checkpoints, args.device), args.out)


if __name__ == "__main__":
    cli(main)
