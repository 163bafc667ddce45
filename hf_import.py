"""Read a Hugging Face GPT2LMHeadModel folder into our GPT: nanoGPT's init_from='gpt2', offline.

    python train.py config/x.py --init_from=hf:/models/gpt2      # fine-tune from those weights
    python sample.py --init_from=hf:/models/gpt2 --start="The"   # sample from them

The folder holds config.json (model_type gpt2) and model.safetensors (or pytorch_model.bin, read with
weights_only=True: never unpickled code). A tied head (tie_word_embeddings, or no lm_head.weight)
becomes the bpe_tied arm, an own head bpe_untied; any other architecture is refused in one line.
Conv1D weights are transposed to Linear's layout. The hub's `gpt2` is such a folder once downloaded
(`huggingface-cli download gpt2`); scripts/export_hf.py writes one from our checkpoints.
"""

import json
import os
import warnings

import torch

from checkpoint import CheckpointError, model_state
from model import GPT, GPTConfig

PREFIX = "hf:"
CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # stored (in, out) by Hugging Face


def hf_path(init_from):
    """The folder of an init_from='hf:PATH', or None for any other init_from."""
    return init_from[len(PREFIX) :] if isinstance(init_from, str) and init_from.startswith(PREFIX) else None


def read_config(folder):
    """Our model settings from the folder's config.json: shape, bias, arm, tokenizer."""
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"init_from=hf:{folder}: no config.json there (expected a Hugging Face GPT-2 folder)")
    with open(path) as f:
        hf = json.load(f)
    if hf.get("model_type") != "gpt2":
        raise CheckpointError(f"{path}: model_type {hf.get('model_type')!r}, expected 'gpt2' (GPT2LMHeadModel only)")
    if hf.get("activation_function", "gelu_new") != "gelu":
        warnings.warn(
            f"{path}: activation {hf.get('activation_function', 'gelu_new')!r} (GELU's tanh approximation) is computed "
            "as exact GELU here, as nanoGPT does: logits differ slightly from the original",
            stacklevel=2,
        )
    tokenizer = os.path.join(folder, "tokenizer.json") if os.path.isfile(os.path.join(folder, "tokenizer.json")) else "gpt2"
    return {
        "n_layer": hf["n_layer"],
        "n_head": hf["n_head"],
        "n_embd": hf["n_embd"],
        "block_size": hf.get("n_positions", hf.get("n_ctx", 1024)),
        "vocab_size": hf["vocab_size"],
        "bias": True,
        "tokenizer": tokenizer,
        "tie": hf.get("tie_word_embeddings", True),
    }


def safetensors_error(path, e):
    """The CheckpointError for a .safetensors file its reader refused (a damaged or foreign file)."""
    return CheckpointError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:200]})")


def read_bin(path):
    """A pytorch_model.bin as data only (weights_only: never unpickled); anything else is one
    CheckpointError naming the file."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: it holds Python objects beyond tensors, and unpickling those can run code; "
            f"only plain weights are read (use a model.safetensors of the model instead)"
        ) from None
    except Exception as e:  # torch's reader fails in many ways on a damaged or foreign file
        raise CheckpointError(f"{path}: not a readable torch weights file ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def read_weights(folder):
    """{name: tensor} from model.safetensors, or pytorch_model.bin read as data only."""
    st, pt = os.path.join(folder, "model.safetensors"), os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(st):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(st)
        except SafetensorError as e:
            raise safetensors_error(st, e) from None
    if os.path.isfile(pt):
        return read_bin(pt)
    raise CheckpointError(f"init_from=hf:{folder}: no model.safetensors or pytorch_model.bin there")


def our_state(hf_state):
    """Hugging Face names and layouts -> ours ('transformer.' prefix optional, Conv1D transposed,
    the attention-mask buffers of old checkpoints dropped)."""
    out = {}
    for name, t in hf_state.items():
        key = name if name.startswith(("transformer.", "lm_head.")) else "transformer." + name
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if any(key.endswith(f"{c}.weight") for c in CONV1D):
            t = t.t()
        out[key] = t.contiguous()  # its dtype as stored: model_state refuses a non-float one
    return out


def shape_settings(folder):
    """The settings a run started from this folder takes from it (they override its config)."""
    cfg = read_config(folder)
    return {k: v for k, v in cfg.items() if k != "tie"} | {"embedding": "bpe_tied" if cfg["tie"] else "bpe_untied"}


def load_hf_into(model, folder):
    """Copy a Hugging Face GPT-2 folder's weights into `model` (built with shape_settings(folder)),
    each checked (finite floats only); returns the model."""
    state = model_state({"model": our_state(read_weights(folder))}, f"init_from=hf:{folder}")
    if model.lm_head.tied:  # one matrix for both ends: the input table's
        state["lm_head.weight"] = state["transformer.wte.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"init_from=hf:{folder}: its weights do not fit a GPT-2 of its config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def load_hf(folder, **overrides):
    """(GPT in eval mode, its GPTConfig) from a Hugging Face GPT-2 folder alone (sampling, tests)."""
    config = GPTConfig(**shape_settings(folder), **overrides)
    return load_hf_into(GPT(config), folder).eval(), config
