"""HellaSwag scoring, as llm.c and build-nanogpt score it: the library half (train.py logs it during
training; probes/hellaswag.py is the command).

Each example's context is followed by each of its 4 endings (" " + ending, as GPT-2 tokenises it);
the loss of the ending's tokens alone is read from the model. acc: the ending with the lowest summed
loss; acc_norm: the lowest mean loss per token. The file is the official jsonl: one object a line with
"ctx", "endings" (4 strings) and "label" (0-3).
"""

import torch
import torch.nn.functional as F
from tqdm import tqdm

from runlog import json_line


def read_examples(path, limit=None):
    """[(ctx, [4 endings], label)] from the official jsonl; every malformed line is named."""
    out = []
    with open(path, "rb") as f:  # decoded a line at a time, so a line that is not UTF-8 is named
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            ex = json_line(raw, f"{path}:{n}")
            if not isinstance(ex, dict) or not isinstance(ex.get("ctx"), str):
                raise ValueError(f"{path}:{n}: expected an object with a string 'ctx'")
            endings, label = ex.get("endings"), ex.get("label")
            if not isinstance(endings, list) or len(endings) != 4 or not all(isinstance(e, str) for e in endings):
                raise ValueError(f"{path}:{n}: 'endings' must be a list of 4 strings, got {str(endings)[:80]}")
            if isinstance(label, str) and label in ("0", "1", "2", "3"):  # not isdigit(): '²' is a digit to it
                label = int(label)
            if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < 4:
                raise ValueError(f"{path}:{n}: 'label' = {label!r}, expected 0, 1, 2 or 3")
            out.append((ex["ctx"], endings, label))
            if limit and len(out) >= limit:
                break
    if not out:
        raise ValueError(f"{path}: no examples")
    return out


def example_rows(tok, ctx, endings, block_size):
    """(ids (4, T), mask (4, T)): context + ending per row, right-padded; mask marks the ending's
    tokens. Rows longer than the block keep their end (the ending and the context just before it)."""
    ctx_ids = tok.encode(ctx)
    rows, masks = [], []
    for ending in endings:
        end_ids = tok.encode(" " + ending)
        ids = (ctx_ids + end_ids)[-block_size:]
        rows.append(ids)
        masks.append([0] * (len(ids) - len(end_ids)) + [1] * min(len(end_ids), len(ids)))
    T = max(len(r) for r in rows)
    ids = torch.zeros(4, T, dtype=torch.long)
    mask = torch.zeros(4, T, dtype=torch.long)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, : len(r)], mask[i, : len(m)] = torch.tensor(r), torch.tensor(m)
    return ids, mask


def ending_losses(logits, ids, mask):
    """(sum, mean) over each row's ending tokens of -log p(token | everything before it)."""
    n, t, v = logits[:, :-1].shape  # rows of classes, as training computes it (a strided class dim sums less exactly)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, v).float(), ids[:, 1:].reshape(-1), reduction="none").view(n, t)
    m = mask[:, 1:].float()
    total = (loss * m).sum(1)
    return total, total / m.sum(1).clamp(min=1)


@torch.no_grad()
def evaluate(model, tok, examples, device="cpu", progress=True):
    """{"acc", "acc_norm", "n"} of a model over examples (read_examples)."""
    model.eval()
    right = right_norm = 0
    for ctx, endings, label in tqdm(examples, desc="hellaswag", disable=not progress or None):
        ids, mask = example_rows(tok, ctx, endings, model.config.block_size)
        ids, mask = ids.to(device), mask.to(device)
        total, mean = ending_losses(model(ids)[0], ids, mask)
        right += int(total.argmin()) == label
        right_norm += int(mean.argmin()) == label
    return {"acc": right / len(examples), "acc_norm": right_norm / len(examples), "n": len(examples)}
