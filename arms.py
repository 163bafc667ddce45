"""The study's arms: an input layer and an output head, chosen by name from a registry.

An input layer maps token ids to d_model vectors and says what it is made of:

    forward(idx, byte_overrides=None) -> (..., d)   byte_overrides only where reads_bytes is True
    all_embeddings() -> (V, d)                       every id's input embedding (probes, drift)
    drift_stats(n_real) -> {name: float}             its own norm-drift statistics, logged at evals
    init_weights()                                   its init, run after the GPT's generic one

A head maps final hidden states to logits = h' W^T + b, and says what those three are:

    logit_inputs(h) -> (h', W, b)                    W (V, d); b (V,) or None, never learned; the
                                                     loss (loss.py) takes them, chunked or not
    forward(h) -> (..., V)                           the logits themselves (sampling, probes)
    output_matrix() -> (V, d)                        W alone, as logit_inputs builds it
    tied                                             None for a matrix of its own, else how it is
                                                     tied to the input layer (in words)
    stats() -> {name: float}                         extra head statistics (e.g. a learned scale)

Whatever a head computes W from (its own matrix, the input table, the Kronecker projection) is its
own business: it builds W on every call, and autograd carries the gradient to whatever W came from.
The training step and GPT.forward treat every head alike.

An arm is a function cfg -> (input layer, head) plus the controls it gives meaning to; register()
adds one. Controls (settings that modify a layer for the study's "why") are refused, naming them,
on arms that do not take them. This module knows nothing of GPT; model.py composes what it builds.
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
from torch.nn import functional as F

from checks import is_int, is_number, is_positive
from errors import UserError
from kron_embed import KroneckerEmbedding

# The tied Kron head's logit scale at init: E(W)'s entries have RMS ~1 where a BPE head's weights have
# std 0.02, so s = 0.02 gives the same initial logit spread, hence initial loss ~ ln V, as the other arms.
KRON_TIED_LOGIT_SCALE = 0.02


@dataclass(frozen=True)
class Control:
    """A setting that modifies some arms' layers for the study's "why": declared here once. GPTConfig
    takes its field's default from `default` (the neutral value), configurator.validate its range
    from `check`/`expected`, and check_controls its refusal on arms that do not take it from `what`."""

    default: object
    check: Callable  # value -> bool
    expected: str
    what: str  # completes "<name>=<value> ..." in the refusal


CONTROLS = {
    "input_init_std": Control(
        None,
        lambda v: v is None or is_positive(v),
        "None or a finite number > 0",
        "is the scale control of the untied BPE table (a tied table is the head too)",
    ),
    "kron_shuffle_seed": Control(
        None,
        lambda v: v is None or v == "seed" or (is_int(v) and v >= 0),
        "None, an integer >= 0, or 'seed' (the run's own seed)",
        "shuffles the Kronecker byte table",
    ),
    "kron_scale": Control(1.0, is_positive, "a finite number > 0", "scales Kronecker embeddings"),
    "lowrank_rank": Control(
        None, lambda v: v is None or (is_int(v) and v >= 1), "None or an integer >= 1", "is the rank of the factorised table of bpe_lowrank"
    ),
    "tied_logit_scale": Control(
        None,
        lambda v: v is None or (is_number(v) and 0 <= v < float("inf")),
        "None or a finite number >= 0",
        "is the initial logit scale of kron_tied's head",
    ),
    "hybrid_table_scale": Control(50.0, is_positive, "a finite number > 0", "multiplies the learned table of the hybrid arm"),
}


# ----------------------------------------------------------------------------- input layers


class TableInput(nn.Embedding):
    """A learned V x d table. Controls: init_std re-initialises it at that std after the GPT's init (at
    1.0 AdamW's ~lr-sized steps barely move it: a nearly frozen random code); scale multiplies its
    output (the hybrid's table; every arm's own multiplier is GPT.embed's input_scale)."""

    reads_bytes = False

    def __init__(self, vocab_size, d_model, init_std=None, scale=1.0):
        super().__init__(vocab_size, d_model)
        self.init_std, self.scale = init_std, scale

    def forward(self, idx, byte_overrides=None):
        if byte_overrides:
            raise ValueError("byte_overrides need an input layer that reads bytes (a Kron arm); this one is a table")
        x = super().forward(idx)
        return x * self.scale if self.scale != 1.0 else x

    def init_weights(self, generator=None):
        """After the GPT's generic init (std 0.02): the init_std control; with a generator (paired
        initialisation) the whole table is drawn from it."""
        if self.init_std is not None or generator is not None:
            with torch.no_grad():
                self.weight.normal_(0.0, self.init_std or 0.02, generator=generator)

    def all_embeddings(self):
        """Every id through forward (equal to the table itself unless a subclass changes forward)."""
        return self(torch.arange(self.num_embeddings, device=self.weight.device))

    @torch.no_grad()
    def drift_stats(self, n_real):
        emb = self.weight[:n_real].float()
        return {"wte_std": emb.std().item(), "wte_row_norm": emb.norm(dim=1).mean().item()}


class KronInput(KroneckerEmbedding):
    """The byte codec and its learned projection; scale (a control) multiplies what it produces."""

    reads_bytes = True

    def __init__(self, vocab_size, d_model, scale=1.0, **kron_kwargs):
        super().__init__(vocab_size, d_model, **kron_kwargs)
        self.scale = scale

    def forward(self, idx, byte_overrides=None):
        x = super().forward(idx, byte_overrides)
        return x * self.scale if self.scale != 1.0 else x

    def init_weights(self, generator=None):  # explicit: a model-wide Linear/Embedding init leaves this module alone
        self.reset_parameters(generator)

    @torch.no_grad()
    def drift_stats(self, n_real):
        return {"proj_std_sqrtD": (self.weight.float().std() * self.D**0.5).item()}


class HybridInput(nn.Module):
    """A learned table plus the Kronecker code: x = kron(idx) + table_scale * table(idx). The table
    starts at std 0.02 like any table and table_scale (50) brings it to the code's RMS ~1, so neither
    part starts as noise on the other; does the byte prior add anything to a learned table?"""

    reads_bytes = True

    def __init__(self, kron, table):
        super().__init__()
        self.kron, self.table = kron, table

    def forward(self, idx, byte_overrides=None):
        return self.kron(idx, byte_overrides) + self.table(idx)

    def init_weights(self, generator=None):
        self.kron.init_weights(generator)
        with torch.no_grad():
            self.table.weight.normal_(0.0, 0.02, generator=generator)

    def all_embeddings(self):
        return self.kron.all_embeddings() + self.table.all_embeddings()

    @torch.no_grad()
    def drift_stats(self, n_real):
        return {**self.kron.drift_stats(n_real), **self.table.drift_stats(n_real)}


class LowRankInput(nn.Module):
    """A factorised learned table, E = A B with A (V x r) and B (r x d), ALBERT-style: few, shared input
    parameters that are not a byte code. Both factors start at std sqrt(0.02 / sqrt(r)), so E's entries
    start at std 0.02 like a table's and each factor moves by a similar fraction per AdamW step."""

    reads_bytes = False

    def __init__(self, vocab_size, d_model, rank):
        super().__init__()
        self.rank = rank
        self.A = nn.Parameter(torch.empty(vocab_size, rank))
        self.B = nn.Parameter(torch.empty(rank, d_model))
        self.init_weights()

    def init_weights(self, generator=None):
        std = (0.02 / self.rank**0.5) ** 0.5
        with torch.no_grad():
            self.A.normal_(0.0, std, generator=generator)
            self.B.normal_(0.0, std, generator=generator)

    def forward(self, idx, byte_overrides=None):
        if byte_overrides:
            raise ValueError("byte_overrides need an input layer that reads bytes (a Kron arm); this one is a table")
        return F.embedding(idx, self.A) @ self.B

    def all_embeddings(self):
        return self.A @ self.B

    @torch.no_grad()
    def drift_stats(self, n_real):
        emb = (self.A[:n_real] @ self.B).float()
        return {"wte_std": emb.std().item(), "wte_row_norm": emb.norm(dim=1).mean().item()}


def matched_rank(cfg):
    """The rank whose A and B hold as many parameters as the Kron projection at this width:
    r (V + d) ~= 256 * pos_dim * d."""
    return max(1, round(256 * cfg.kron_pos_dim * cfg.n_embd / (cfg.vocab_size + cfg.n_embd)))


# ----------------------------------------------------------------------------- heads


class LinearHead(nn.Linear):
    """logits = h W^T, W its own (V, d) matrix (or, tied, the input table's)."""

    def __init__(self, d_model, vocab_size, tied=None):
        super().__init__(d_model, vocab_size, bias=False)
        self.tied = tied

    def logit_inputs(self, x):
        return x, self.weight, None

    def output_matrix(self):
        return self.weight

    def stats(self):
        return {}


class KronTiedHead(nn.Module):
    """logits = s * h E(W)^T + b: E(W) the Kron layer's embedding of the whole vocabulary, rebuilt from
    its projection (no V x d matrix anywhere), s a learned scalar, b = -inf on ids with no bytes.
    E(W) is rebuilt on every call (about V * mean(L) row gathers, small beside the N x V x d logits)."""

    tied = "rebuilt from the input layer each step"

    def __init__(self, kron, init_scale=None):
        super().__init__()
        self.__dict__["kron"] = kron  # a reference, not a submodule: W stays the input layer's alone
        self.logit_scale = nn.Parameter(torch.tensor(KRON_TIED_LOGIT_SCALE if init_scale is None else float(init_scale)))
        self.register_buffer("head_bias", no_bytes_bias(kron), persistent=False)

    def output_matrix(self):
        return self.kron.vocabulary()

    def logit_inputs(self, x):
        return x * self.logit_scale.to(x.dtype), self.output_matrix(), self.head_bias

    def forward(self, x):
        h, E, b = self.logit_inputs(x)
        return F.linear(h, E.to(h.dtype), b.to(h.dtype))

    def stats(self):
        return {"logit_scale": self.logit_scale.item()}


class ArmSettingError(UserError, ValueError):
    """A setting an arm cannot be built with (found while building it, as a ConfigError is at load time)."""


def no_bytes_bias(kron):
    """0 for ids with bytes, -inf for the others, so a tied head never predicts padding. Real tokens
    without bytes, or sharing their bytes (hence their logit) with another, are an error or a loud
    warning: a tied head cannot tell such tokens apart."""
    has = kron.has_bytes()
    n_real = kron.n_tokenizer_vocab
    missing = int((~has[:n_real]).sum())
    if missing:
        raise ArmSettingError(
            f"embedding='kron_tied' with kron_pos_dim={kron.pos_dim}: {missing} real tokens of {kron.tokenizer_name!r} have no "
            f"bytes and could never be predicted by a head tied to the byte codec; raise kron_pos_dim (4 holds any "
            f"UTF-8 character) or use embedding='kron' for this tokenizer"
        )
    colliding = kron.byte_stats.get("colliding_tokens", 0)
    if colliding > n_real / 1000:  # GPT-2 at pos_dim 16: 44 of 50,257, the truncated long tokens
        import warnings

        warnings.warn(
            f"kron_tied: {colliding} real tokens share their byte row with another token at "
            f"pos_dim={kron.pos_dim} (truncation), so the tied head gives them identical logits; raise "
            f"kron_pos_dim to separate them",
            stacklevel=3,
        )
    return torch.where(has, 0.0, float("-inf"))


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Arm:
    name: str
    build: Callable  # cfg -> (input layer, head)
    controls: tuple = ()
    doc: str = ""
    reads_bytes: bool = False  # its input layer is built from token bytes: the kron_* settings apply to it
    init_rms: float = None  # its input layer's output RMS at init, default settings: what input_scale multiplies
    module: str = __name__  # the module that registered it: what `--import` must name to load its checkpoints


ARMS = {}


def register(name, build, controls=(), doc="", reads_bytes=False, init_rms=None):
    """Add an arm: build(cfg) -> (input layer, head); controls: the CONTROLS it gives meaning to;
    init_rms: the RMS of its input layer's output at initialisation (tests/test_controls.py measures it),
    so that a study can set what enters the first block, R = input_scale x init_rms, for every arm.
    An arm defined outside this file is registered by importing its module: from a config file
    (`import my_arm`), or with `--import my_arm` on any tool's command line (errors.run_cli). Its
    checkpoints record that module's name, and a tool that meets one without the arm names it."""
    unknown = [c for c in controls if c not in CONTROLS]
    if unknown:
        raise ValueError(f"arm {name!r}: unknown controls {unknown}; known: {sorted(CONTROLS)}")
    ARMS[name] = Arm(name, build, tuple(controls), doc, reads_bytes, init_rms, build.__module__)
    return ARMS[name]


def check_controls(cfg):
    """The arm exists, and every control set away from neutral is one this arm takes."""
    if cfg.embedding not in ARMS:
        raise ValueError(f"embedding={cfg.embedding!r}: expected one of {tuple(ARMS)}")
    arm = ARMS[cfg.embedding]
    for name, control in CONTROLS.items():
        value = getattr(cfg, name)
        if value != control.default and name not in arm.controls:
            raise ValueError(
                f"{name}={value} {control.what}; with embedding={cfg.embedding!r} it means nothing "
                f"(this arm takes {', '.join(arm.controls) or 'no controls'})"
            )


def kron_input(cfg):
    if isinstance(cfg.kron_shuffle_seed, str):  # a run's 'seed', left unresolved
        raise ValueError(
            f"kron_shuffle_seed={cfg.kron_shuffle_seed!r}: a run's config resolves 'seed' to its seed "
            f"(GPTConfig.from_dict); a model takes None or an integer >= 0"
        )
    return KronInput(
        cfg.vocab_size,
        cfg.n_embd,
        scale=cfg.kron_scale,
        tokenizer=cfg.tokenizer,
        pos_dim=cfg.kron_pos_dim,
        byte_source=cfg.kron_byte_source,
        length_norm=cfg.kron_length_norm,
        z_norm=cfg.kron_z_norm,
        shuffle_seed=cfg.kron_shuffle_seed,
    )


def _bpe_tied(cfg):
    table, head = TableInput(cfg.vocab_size, cfg.n_embd), LinearHead(cfg.n_embd, cfg.vocab_size, tied="tied to the input layer")
    table.weight = head.weight
    return table, head


def _kron_tied(cfg):
    kron = kron_input(cfg)
    return kron, KronTiedHead(kron, cfg.tied_logit_scale)


register("bpe_tied", _bpe_tied, doc="nn.Embedding shared with the output head (the paper's baseline)", init_rms=0.02)
register(
    "kron",
    lambda cfg: (kron_input(cfg), LinearHead(cfg.n_embd, cfg.vocab_size)),
    controls=("kron_shuffle_seed", "kron_scale"),
    doc="KroneckerEmbedding + its own head (the paper's arm)",
    reads_bytes=True,
    init_rms=1.0,
)
register(
    "bpe_untied",
    lambda cfg: (TableInput(cfg.vocab_size, cfg.n_embd, cfg.input_init_std), LinearHead(cfg.n_embd, cfg.vocab_size)),
    controls=("input_init_std",),
    doc="nn.Embedding with its own head: separates 'Kronecker' from 'untied head'",
    init_rms=0.02,
)
register(
    "bpe_lowrank",
    lambda cfg: (LowRankInput(cfg.vocab_size, cfg.n_embd, cfg.lowrank_rank or matched_rank(cfg)), LinearHead(cfg.n_embd, cfg.vocab_size)),
    controls=("lowrank_rank",),
    doc="a factorised V x r x d table with the Kron projection's parameter count, untied head",
    init_rms=0.02,
)
register(
    "kron_tied",
    _kron_tied,
    controls=("kron_shuffle_seed", "kron_scale", "tied_logit_scale"),
    doc="KroneckerEmbedding, and the head tied to it: logits = s h E(W)^T (not in the paper)",
    reads_bytes=True,
    init_rms=1.0,
)
register(
    "hybrid",
    lambda cfg: (
        HybridInput(kron_input(cfg), TableInput(cfg.vocab_size, cfg.n_embd, scale=cfg.hybrid_table_scale)),
        LinearHead(cfg.n_embd, cfg.vocab_size),
    ),
    controls=("kron_shuffle_seed", "hybrid_table_scale"),
    doc="a learned table (x50) plus the Kronecker code, untied head: does the byte prior add to a table?",
    reads_bytes=True,
    init_rms=2**0.5,  # the code and the x50 table, each at RMS 1, summed
)
