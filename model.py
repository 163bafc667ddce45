"""GPT-2 as in nanoGPT, composed of one input layer and one output head: an arm (arms.py).

  embedding="bpe_tied"   nn.Embedding shared with the output head (the paper's baseline)
  embedding="kron"       KroneckerEmbedding (fixed byte codec + learned projection) + its own head
  embedding="bpe_untied" nn.Embedding with its own head: the control that separates "Kronecker"
                         from "untied head" (the paper's abstract reports no such arm)
  embedding="kron_tied"  KroneckerEmbedding, and the head tied to it: logits = s * h @ E(W)^T + b
  ...and any arm added with arms.register().

Everything else is the nanoGPT GPT: pre-norm blocks, learned absolute positions, GELU MLP, causal
scaled-dot-product attention, init std 0.02 with residual projections scaled by 1/sqrt(2*n_layer).
Checkpoints (what they hold, loading one back into a model) are checkpoint.py's alone.
"""

import math
from dataclasses import dataclass, fields
from typing import Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

import arms
from arms import ARMS, CONTROLS
from loss import cross_entropy, linear_cross_entropy

EMBEDDINGS = ARMS  # the registered arms' names (a live view: arms registered later appear too)
# Dense bf16 tensor-core peak FLOP/s of one GPU, matched by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_flops_of(device_name):
    """One GPU's bf16 peak from its name, or None when the GPU is not in PEAK_BF16_FLOPS."""
    return next((f for k, f in PEAK_BF16_FLOPS.items() if k in device_name), None)


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    embedding: str = "bpe_tied"
    tokenizer: str = "gpt2"
    kron_pos_dim: int = 16
    kron_byte_source: str = "exact"
    kron_length_norm: bool = True
    kron_z_norm: bool = True
    # Controls (issue 16), not the paper's arms; each means something on some arms only, and each is
    # declared once in arms.CONTROLS (default, range, what it does):
    input_init_std: Optional[float] = CONTROLS[
        "input_init_std"
    ].default  # bpe_untied: init std of the input table (1.0: the Kron input's RMS)
    kron_shuffle_seed: Optional[int] = CONTROLS[
        "kron_shuffle_seed"
    ].default  # Kron arms: token -> bytes rows permuted among real tokens by this seed
    kron_scale: float = CONTROLS["kron_scale"].default  # Kron arms: input embeddings multiplied by this (0.02: a BPE table's RMS)
    # Every arm (GPT.embed): x = input_scale * norm(input_layer(idx)), norm an RMSNorm without parameters
    # when input_norm (nanochat, modded-nanogpt), else nothing. input_scale 50 on a 0.02 table: the Kron
    # input's RMS, keeping the table's learning dynamics (input_init_std=1.0 is a nearly frozen random code).
    input_scale: float = 1.0
    input_norm: bool = False
    lowrank_rank: Optional[int] = CONTROLS[
        "lowrank_rank"
    ].default  # bpe_lowrank: the factorised table's rank (None: as many parameters as the Kron projection)
    tied_logit_scale: Optional[float] = CONTROLS[
        "tied_logit_scale"
    ].default  # kron_tied: the head's logit scale s at init (None: arms.KRON_TIED_LOGIT_SCALE)
    hybrid_table_scale: float = CONTROLS[
        "hybrid_table_scale"
    ].default  # hybrid: input = Kron code + this x a 0.02 table (50: both parts at RMS ~1)
    # How the loss is computed, not what it is: tokens per chunk of the output layer + cross-entropy
    # (loss.py), 0 = the plain path with the (N, V) logits materialised. Equal within float rounding;
    # a study keeps one setting throughout (the kept studies used 0).
    loss_chunk: int = 512

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        arms.check_controls(self)  # the arm exists; a control on an arm where it means nothing is refused

    @classmethod
    def from_dict(cls, d):
        """The model's settings from a run's {key: value}. kron_shuffle_seed='seed' becomes the run's
        seed: one byte permutation per seed, so the permutation is part of the sample."""
        names = {f.name for f in fields(cls)}
        args = {k: v for k, v in d.items() if k in names}
        if args.get("kron_shuffle_seed") == "seed":
            if "seed" not in d:
                raise ValueError("kron_shuffle_seed='seed' takes the run's seed, and these settings have none")
            args["kron_shuffle_seed"] = d["seed"]
        return cls(**args)


def approx_param_count(cfg, body_only=False):
    """Parameters from the shape alone, nothing built: the blocks' 12 L d^2 and the positions, plus
    (unless body_only) a V x d table on each side, which a tied or a Kron arm does not have, so the
    total bounds every arm from above. Size checks run on it before anything is allocated."""
    body = 12 * cfg.n_layer * cfg.n_embd**2 + cfg.block_size * cfg.n_embd
    return body if body_only else body + 2 * cfg.vocab_size * cfg.n_embd


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's has no bias=False before 2.1)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.n_head, self.dropout = cfg.n_head, cfg.dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(cfg.n_embd, cfg.bias), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = LayerNorm(cfg.n_embd, cfg.bias), MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2: blocks between an arm's input layer and head (arms.py). Long as a class (~190 lines), short
    in its parts: nanoGPT's methods (forward, generate, optimizer groups, MFU) plus the arm's statistics
    (norm_stats, param_groups_by_role, describe), each a few lines."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        wte, head = ARMS[cfg.embedding].build(cfg)
        self.transformer = nn.ModuleDict(
            dict(
                wte=wte,
                wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                ln_f=LayerNorm(cfg.n_embd, cfg.bias),
            )
        )
        self.lm_head = head
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        wte.init_weights()  # the input layer's own init (Kron: N(0, 1/D); a table's init-scale control)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    @torch.no_grad()
    def paired_init_(self, seed):
        """Draw the body (positions, blocks, final norm), the input layer and an own head each from a
        generator of its own, seeded by `seed`: arms with the same seed then start from the same body
        (and the same head where they have an own V x d head), so a paired gap compares input layers,
        not initialisations. Without it the body depends on how much randomness the input layer took."""

        def generator(part):
            return torch.Generator().manual_seed(seed * 3 + part)

        body = generator(0)
        for name, p in [(n, p) for n, p in self.named_parameters() if not n.startswith(("transformer.wte.", "lm_head."))]:
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj.weight") else 0.02
                p.copy_(torch.empty(p.shape).normal_(0.0, std, generator=body))
        self.transformer.wte.init_weights(generator(1))
        head = getattr(self.lm_head, "weight", None)
        if isinstance(head, nn.Parameter) and head is not getattr(self.transformer.wte, "weight", None):
            head.copy_(torch.empty(head.shape).normal_(0.0, 0.02, generator=generator(2)))
        return self

    # --- accounting

    def param_groups_by_role(self):
        """Trainable parameter counts split into input side, output head and body.
        With a tied head the shared matrix is counted once, on the input side."""
        wte = {id(p) for p in self.transformer.wte.parameters()}
        head = {id(p) for p in self.lm_head.parameters()} - wte
        counts = {"input": 0, "output_head": 0, "body": 0}
        for p in self.parameters():  # parameters() yields shared tensors once
            role = "input" if id(p) in wte else "output_head" if id(p) in head else "body"
            counts[role] += p.numel()
        counts["total"] = sum(counts.values())
        return counts

    def describe(self):
        c, cfg = self.param_groups_by_role(), self.config
        head, own = f"{c['output_head']:,}", c["output_head"]
        if self.lm_head.tied:
            head = self.lm_head.tied + (f" (+{own:,} own parameter{'s' if own > 1 else ''})" if own else "")
        return (
            f"GPT[{cfg.embedding}] parameters: total {c['total']:,} | input side {c['input']:,} | output head {head} | body {c['body']:,}"
        )

    def flops_per_token(self):
        """Training FLOPs per token (fwd+bwd) as in PaLM / nanoGPT: 6*N_matmul + 12*L*H*Q*T, where
        N_matmul excludes lookup tables (the input layer and wpe) but includes the output head."""
        cfg = self.config
        c = self.param_groups_by_role()
        n_matmul = c["body"] - self.transformer.wpe.weight.numel() + cfg.vocab_size * cfg.n_embd
        return 6 * n_matmul + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    @torch.no_grad()
    def norm_stats(self):
        """Norm-drift statistics: the input layer's own (BPE: std and mean row L2 norm of the table;
        Kron: std(W)*sqrt(D) of the projection, 1 at init); for every arm the RMS and mean row norm of
        the embeddings GPT.embed produces over the real vocabulary (input_norm and input_scale included), and std / mean row norm of
        the output head (for kron_tied the effective head s * E(W), and s itself)."""
        n_real = self.n_real_tokens()
        out = self.transformer.wte.drift_stats(n_real)
        emb = self.all_embeddings()[:n_real].float()  # what enters the first block, before positions
        out["emb_rms"] = emb.pow(2).mean().sqrt().item()
        out["emb_row_norm"] = emb.norm(dim=1).mean().item()
        head = self.output_matrix()[:n_real].float()
        extra = self.lm_head.stats()
        if "logit_scale" in extra:
            head = head * extra["logit_scale"]
        out.update(extra)
        out["head_std"] = head.std().item()
        out["head_row_norm"] = head.norm(dim=1).mean().item()
        return out

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type, embedding_lr_mult=1.0):
        """AdamW with weight decay on the >=2-D weights (matrices, tables, the Kron projection) and
        none on biases and LayerNorm gains; fused on CUDA. embedding_lr_mult != 1 gives the input
        layer's parameters (a tied table: the head too) groups of their own, lr x mult (train.py reads
        each group's "lr_mult") and weight decay / mult, so their decay per step (lr x wd) is unchanged
        and only Adam's step moves: an input multiplied by m under AdamW is a table initialised x m
        with this multiplier m (up to Adam's eps)."""
        params = [p for p in self.parameters() if p.requires_grad]
        inputs = {id(p) for p in self.transformer.wte.parameters()} if embedding_lr_mult != 1.0 else set()
        groups = []
        for ps, mult in (([p for p in params if id(p) not in inputs], 1.0), ([p for p in params if id(p) in inputs], embedding_lr_mult)):
            groups += [
                {"params": [p for p in ps if p.dim() >= 2], "weight_decay": weight_decay / mult, "lr_mult": mult},
                {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0, "lr_mult": mult},
            ]
        groups = groups[:2] + [g for g in groups[2:] if g["params"]]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")

    def estimate_mfu(self, tokens_per_s, peak_flops, world_size=1):
        """Model FLOPs utilisation: flops_per_token * tokens/s over the peak of all world_size GPUs
        (tokens_per_s counts the tokens of every rank)."""
        return self.flops_per_token() * tokens_per_s / (peak_flops * world_size)

    # --- forward and sampling

    def output_matrix(self):
        """The (V, d) matrix the head multiplies hidden states by (kron_tied: E(W), rebuilt from the
        projection, so gradients reach W from both ends)."""
        return self.lm_head.output_matrix()

    def head_is_input_embedding(self):
        """True when the head multiplies by exactly the vectors embed() takes in (a tied table, no
        input multiplier or norm): an exporter may then store one matrix for both."""
        same = self.lm_head.output_matrix() is getattr(self.transformer.wte, "weight", None)
        return same and not self.config.input_norm and self.config.input_scale == 1.0

    def forward(self, idx, targets=None, byte_overrides=None, return_hidden=False):
        """idx (B, T) -> (logits (B, T, V), None) without targets; with targets (logits, mean
        cross-entropy), where logits is None when config.loss_chunk > 0 (never materialised).
        byte_overrides (Kron arms only) feeds raw bytes at chosen positions; see KroneckerEmbedding."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        hidden = []
        x = self.embed(idx, byte_overrides) + self.transformer.wpe(torch.arange(T, device=idx.device))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            if return_hidden:
                hidden.append(x)
            x = block(x)
        x = self.transformer.ln_f(x)
        hidden.append(x)
        if targets is not None and self.config.loss_chunk > 0 and not return_hidden:
            logits, loss = None, linear_cross_entropy(*self.lm_head.logit_inputs(x), targets, self.config.loss_chunk)
        else:
            logits = self.lm_head(x)
            loss = None if targets is None else cross_entropy(logits, targets)
        return (logits, loss, hidden) if return_hidden else (logits, loss)

    def embed(self, idx, byte_overrides=None):
        """input_scale * norm(input_layer(idx)): what enters the first block, before positions.
        byte_overrides only where the input layer reads bytes (Kron arms)."""
        x = self.transformer.wte(idx, byte_overrides=byte_overrides)
        if self.config.input_norm:
            x = F.rms_norm(x, (x.size(-1),))
        return x * self.config.input_scale if self.config.input_scale != 1.0 else x

    def all_embeddings(self, chunk=8192):
        """(V, d): embed() of every id (probes, drift statistics, export)."""
        ids = torch.arange(self.config.vocab_size, device=self.transformer.wpe.weight.device)
        return torch.cat([self.embed(ids[i : i + chunk]) for i in range(0, len(ids), chunk)])

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None, byte_overrides=None):
        """Autoregressive sampling. temperature 0 is greedy; top_k keeps the k likeliest tokens, top_p
        the smallest set whose probability reaches p. Byte overrides stay at their prompt positions."""
        if temperature < 0:
            raise ValueError(f"temperature={temperature}: expected >= 0")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p={top_p}: expected 0 < top_p <= 1")
        n_real = self.n_real_tokens()
        prompt_len = idx.size(1)
        overrides = {p % prompt_len: b for p, b in (byte_overrides or {}).items()}  # positions in the prompt, fixed
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.config.block_size :]
            shift = idx.size(1) - ctx.size(1)  # positions that slid out of the context window
            window = {p - shift: b for p, b in overrides.items() if p >= shift} or None
            logits, _ = self(ctx, byte_overrides=window)
            logits = logits[:, -1, :].float()
            logits[:, n_real:] = -float("inf")  # padded ids are never produced
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                if top_p is not None and top_p < 1:
                    sorted_logits, order = torch.sort(logits, descending=True)
                    probs = torch.softmax(sorted_logits, dim=-1)
                    drop = probs.cumsum(dim=-1) - probs >= top_p  # keep the token that crosses p
                    sorted_logits[drop] = -float("inf")
                    logits = torch.full_like(logits, -float("inf")).scatter(1, order, sorted_logits)
                nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat((idx, nxt), dim=1)
        return idx

    def n_real_tokens(self):
        from tokenizer import get_tokenizer

        return get_tokenizer(self.config.tokenizer).n_vocab
