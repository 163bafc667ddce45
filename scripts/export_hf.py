"""Export a checkpoint as a Hugging Face GPT2LMHeadModel folder that `transformers` loads with no code of ours.

    python -m scripts.export_hf --ckpt out/quickstart-kron-s1337/ckpt.pt --out hf/kron
    python -c "from transformers import GPT2LMHeadModel; GPT2LMHeadModel.from_pretrained('hf/kron')"

Writes config.json, model.safetensors and, for GPT-2 BPE, the tokenizer files (vocab.json and
merges.txt, byte-identical to GPT-2's; a tokenizer.json is copied as it is). Every arm exports:
  bpe_tied    exactly (tied embeddings)
  bpe_untied  exactly (untied head)
  kron        the input embeddings materialised: every id through the Kronecker layer (V x d), and
              its own head. What is lost: the layer itself (byte overrides, free slots that take new
              words): the export is a plain table of the vocabulary it had.
  kron_tied   the head s * E(W) materialised (V x d, untied); real tokens' logits are unchanged, but
              ids with no bytes (GPT-2's padding 50257..50303) get logit 0 instead of -inf (GPT-2's
              head has no bias): never sample past the tokenizer's vocabulary (transformers does not).
The folder is written under a temporary name and renamed when complete; an existing --out is refused.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.export_hf", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import errno
import json
import os
import shutil
import sys

import torch

from checkpoint import CheckpointError, load_model
from errors import UserError, run_cli
from tokenizer import offline_gpt2_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LINEAR_IN_BLOCKS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # GPT-2's Conv1D: weight stored (in, out)


def hf_config(model):
    """GPT2Config fields for our model: exact GELU (ours is F.gelu), LayerNorm eps 1e-5, no dropout;
    embeddings tied only where the head multiplies by exactly what the input embeds."""
    cfg = model.config
    from tokenizer import get_tokenizer

    eot = get_tokenizer(cfg.tokenizer).eot_id
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_ctx": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": 4 * cfg.n_embd,
        "activation_function": "gelu",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "use_cache": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "tie_word_embeddings": model.head_is_input_embedding(),
    }


@torch.no_grad()
def hf_state(model):
    """Our weights under GPT2LMHeadModel's names: the input embeddings and the head as V x d matrices
    (materialised for a Kron layer), Linear weights transposed to Conv1D's layout, zero biases where
    our model has none."""
    sd = {k: v.float() for k, v in model.state_dict().items()}
    cfg = model.config
    out = {"transformer.wte.weight": model.all_embeddings().float(), "transformer.wpe.weight": sd["transformer.wpe.weight"]}
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[p + ln + ".weight"] = sd[p + ln + ".weight"]
            out[p + ln + ".bias"] = sd.get(p + ln + ".bias", torch.zeros(cfg.n_embd))
        for name in LINEAR_IN_BLOCKS:
            w = sd[p + name + ".weight"]
            out[p + name + ".weight"] = w.t()
            out[p + name + ".bias"] = sd.get(p + name + ".bias", torch.zeros(w.shape[0]))
    out["transformer.ln_f.weight"] = sd["transformer.ln_f.weight"]
    out["transformer.ln_f.bias"] = sd.get("transformer.ln_f.bias", torch.zeros(cfg.n_embd))
    if not model.head_is_input_embedding():
        head = model.output_matrix().float()
        scale = model.lm_head.stats().get("logit_scale")
        out["lm_head.weight"] = head * scale if scale is not None else head
    return {k: v.contiguous().clone() for k, v in out.items()}


def write_tokenizer(tokenizer_name, folder, block_size):
    """GPT-2's vocab.json / merges.txt (its own files, sha256-checked), or a tokenizer.json as it is."""
    if tokenizer_name == "gpt2":
        src = offline_gpt2_folder()
        shutil.copy(os.path.join(src, "encoder.json"), os.path.join(folder, "vocab.json"))
        shutil.copy(os.path.join(src, "vocab.bpe"), os.path.join(folder, "merges.txt"))
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(
                {
                    "tokenizer_class": "GPT2Tokenizer",
                    "model_max_length": block_size,
                    "bos_token": "<|endoftext|>",
                    "eos_token": "<|endoftext|>",
                    "unk_token": "<|endoftext|>",
                    "add_prefix_space": False,
                },
                f,
                indent=1,
            )
        return "GPT-2 BPE (vocab.json, merges.txt)"
    if os.path.isfile(tokenizer_name) or os.path.isdir(tokenizer_name):
        src = os.path.join(tokenizer_name, "tokenizer.json") if os.path.isdir(tokenizer_name) else tokenizer_name
        shutil.copy(src, os.path.join(folder, "tokenizer.json"))
        return "tokenizer.json"
    return None


EXPORT_FILES = {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json", "tokenizer.json"}


def remove_stale_exports(out):
    """<out>.tmp<pid> folders an export killed mid-write left (its process is gone, and they hold
    only what an export writes): removed, each named. Returns their paths."""
    import glob
    import re

    stale = []
    for tmp in glob.glob(glob.escape(out.rstrip(os.sep)) + ".tmp*"):
        m = re.fullmatch(r".*\.tmp(\d+)", tmp)
        if not m or not os.path.isdir(tmp) or os.path.islink(tmp) or set(os.listdir(tmp)) - EXPORT_FILES:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # that export is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        shutil.rmtree(tmp)
        print(f"removed {tmp}, left by an export that was killed")
        stale.append(tmp)
    return stale


class ExportError(UserError):
    """An --out an export cannot write (a link, a read-only or full filesystem); the message names --out."""


def check_out(out):
    """Refuse an --out that could not take the export before the model is built: an existing path, a
    symbolic link (dangling or not: an export never writes through one), a folder that cannot be written."""
    if os.path.islink(out):
        raise ExportError(
            f"--out {out!r} is a symbolic link (to {os.readlink(out)!r}); an export writes a new folder, never through a link"
        )
    if os.path.exists(out):
        raise FileExistsError(f"--out {out!r} exists; choose a new folder (an export never overwrites one)")
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(parent) and not os.access(parent, os.W_OK):
        raise ExportError(f"--out {out!r}: its folder {parent!r} cannot be written (a read-only filesystem or no permission)")


def write_failed(out, e):
    """The ExportError for a write into the temp folder that failed: it names --out (the temp folder is gone)."""
    code = e.errno if isinstance(e, OSError) else errno.ENOSPC if "os error 28" in str(e) else None
    if code is None:
        return None
    if code == errno.ENOSPC:
        return ExportError(f"--out {out!r}: no space left on device while writing the export (nothing kept): free some space and run again")
    return ExportError(f"--out {out!r}: {os.strerror(code).lower()} while writing the export (nothing kept)")


def export(ckpt_path, out):
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    check_out(out)
    remove_stale_exports(out)
    model, _ = load_model(ckpt_path)
    tmp = f"{out.rstrip(os.sep)}.tmp{os.getpid()}"
    try:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(hf_config(model), f, indent=1)
        save_file(hf_state(model), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        tok = write_tokenizer(model.config.tokenizer, tmp, model.config.block_size)
        os.replace(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        failed = write_failed(out, e) if isinstance(e, (OSError, SafetensorError)) else None
        if failed:
            raise failed from None
        raise
    print(
        f"exported {ckpt_path} ({model.config.embedding}) to {out}: config.json, model.safetensors"
        + (f", tokenizer: {tok}" if tok else f"; no tokenizer files for {model.config.tokenizer!r}")
    )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True, help="a ckpt.pt written by train.py")
    p.add_argument("--out", required=True, help="a new folder for the Hugging Face model")
    args = p.parse_args(argv)
    try:
        return export(args.ckpt, args.out)
    except (CheckpointError, FileExistsError, ExportError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    run_cli(main)
