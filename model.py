"""GPT-2 as in nanoGPT, with a choice of input layer (the study's arms).

  embedding="bpe_tied"   nn.Embedding shared with the output head (the paper's baseline)
  embedding="kron"       KroneckerEmbedding (fixed byte codec + learned projection) + its own head
  embedding="bpe_untied" nn.Embedding with its own head: the control that separates "Kronecker"
                         from "untied head" (the paper's abstract reports no such arm)
  embedding="kron_tied"  KroneckerEmbedding, and the head tied to it: logits = s * h @ E(W)^T + b,
                         E(W) the layer's embedding of the whole vocabulary rebuilt every forward
                         (kron_embed.vocabulary), s a learned scalar, b = -inf on ids with no bytes.
                         No V x d matrix anywhere.

Everything else is the nanoGPT GPT: pre-norm blocks, learned absolute positions, GELU MLP, causal
scaled-dot-product attention, init std 0.02 with residual projections scaled by 1/sqrt(2*n_layer).
`load_checkpoint` is the one place that turns a train.py checkpoint back into a model.
"""
import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

from kron_embed import KroneckerEmbedding

EMBEDDINGS = ("bpe_tied", "kron", "bpe_untied", "kron_tied")
KRON_ARMS = ("kron", "kron_tied")
# The tied Kron head's logit scale at init: E(W)'s entries have RMS ~1 where a BPE head's weights have
# std 0.02, so s = 0.02 gives the same initial logit spread, hence initial loss ~ ln V, as the other arms.
KRON_TIED_LOGIT_SCALE = 0.02
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
    kron_mode: str = "fused"
    kron_byte_source: str = "exact"
    kron_length_norm: bool = True
    kron_z_norm: bool = True
    # Controls (issue 16), not the paper's arms; each means something on some arms only:
    input_init_std: Optional[float] = None  # bpe_untied: init std of the input table (1.0: the Kron input's RMS)
    kron_shuffle_seed: Optional[int] = None  # Kron arms: token -> bytes rows permuted among real tokens by this seed
    kron_scale: float = 1.0         # Kron arms: input embeddings multiplied by this (0.02: a BPE table's RMS)

    def __post_init__(self):
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding={self.embedding!r}: expected one of {EMBEDDINGS}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.input_init_std is not None and self.embedding != "bpe_untied":
            raise ValueError(f"input_init_std={self.input_init_std} is the scale control of the untied BPE table; "
                             f"with embedding={self.embedding!r} it means nothing (a tied table is the head too)")
        if self.embedding not in KRON_ARMS:
            if self.kron_shuffle_seed is not None:
                raise ValueError(f"kron_shuffle_seed={self.kron_shuffle_seed} shuffles the Kronecker byte table; "
                                 f"embedding={self.embedding!r} has none")
            if self.kron_scale != 1.0:
                raise ValueError(f"kron_scale={self.kron_scale} scales Kronecker embeddings; embedding={self.embedding!r} has none")

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        if cfg.embedding in KRON_ARMS:
            wte = KroneckerEmbedding(cfg.vocab_size, cfg.n_embd, tokenizer=cfg.tokenizer, pos_dim=cfg.kron_pos_dim,
                                     mode=cfg.kron_mode, byte_source=cfg.kron_byte_source,
                                     length_norm=cfg.kron_length_norm, z_norm=cfg.kron_z_norm,
                                     shuffle_seed=cfg.kron_shuffle_seed)
        else:
            wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.transformer = nn.ModuleDict(dict(
            wte=wte,
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=LayerNorm(cfg.n_embd, cfg.bias),
        ))
        if cfg.embedding == "kron_tied":
            self.lm_head = None
            self.logit_scale = nn.Parameter(torch.tensor(KRON_TIED_LOGIT_SCALE))
            self.register_buffer("head_bias", self._no_bytes_bias(wte), persistent=False)
        else:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.embedding == "bpe_tied":
            self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if cfg.embedding in KRON_ARMS:  # explicit, although apply() leaves this non-Linear module alone
            self.transformer.wte.reset_parameters()
        if cfg.input_init_std is not None:  # the scale control: an untied table at another init scale
            nn.init.normal_(self.transformer.wte.weight, mean=0.0, std=cfg.input_init_std)

    @staticmethod
    def _no_bytes_bias(wte):
        """0 for ids with bytes, -inf for the others, so a tied head never predicts padding. Real
        tokens without bytes, or sharing their bytes (hence their logit) with another, are an error
        or a loud warning: a tied head cannot tell such tokens apart."""
        has = wte.has_bytes()
        n_real = wte.n_tokenizer_vocab
        missing = int((~has[:n_real]).sum())
        if missing:
            raise ValueError(f"kron_tied: {missing} real tokens of {wte.tokenizer_name!r} have no bytes and could never be "
                             f"predicted by a head tied to the byte codec; use embedding='kron' for this tokenizer")
        colliding = wte.byte_stats.get("colliding_tokens", 0)
        if colliding > n_real / 1000:  # GPT-2 at pos_dim 16: 44 of 50,257, the truncated long tokens
            import warnings
            warnings.warn(f"kron_tied: {colliding} real tokens share their byte row with another token at "
                          f"pos_dim={wte.pos_dim} (truncation), so the tied head gives them identical logits; raise "
                          f"kron_pos_dim to separate them", stacklevel=3)
        return torch.where(has, 0.0, float("-inf"))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    # --- accounting

    def param_groups_by_role(self):
        """Trainable parameter counts split into input side, output head and body.
        With a tied head the shared matrix is counted once, on the input side."""
        wte = {id(p) for p in self.transformer.wte.parameters()}
        head_params = [self.logit_scale] if self.lm_head is None else list(self.lm_head.parameters())
        head = {id(p) for p in head_params} - wte
        counts = {"input": 0, "output_head": 0, "body": 0}
        for p in self.parameters():  # parameters() yields shared tensors once
            role = "input" if id(p) in wte else "output_head" if id(p) in head else "body"
            counts[role] += p.numel()
        counts["total"] = sum(counts.values())
        return counts

    def describe(self):
        c, cfg = self.param_groups_by_role(), self.config
        head = f"{c['output_head']:,}"
        if cfg.embedding == "bpe_tied":
            head = "tied to the input table"
        elif cfg.embedding == "kron_tied":
            head = (f"tied to the Kronecker layer (+{c['output_head']} logit scale; "
                    f"{self.transformer.wte.byte_stats.get('colliding_tokens', 0)} tokens share a byte row)")
        return (f"GPT[{cfg.embedding}] parameters: total {c['total']:,} | input side {c['input']:,} | "
                f"output head {head} | body {c['body']:,}")

    def flops_per_token(self):
        """Training FLOPs per token (fwd+bwd) as in PaLM / nanoGPT: 6*N_matmul + 12*L*H*Q*T, where
        N_matmul excludes lookup tables (the input layer and wpe) but includes the output head."""
        cfg = self.config
        c = self.param_groups_by_role()
        n_matmul = c["body"] - self.transformer.wpe.weight.numel() + cfg.vocab_size * cfg.n_embd
        return 6 * n_matmul + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    @torch.no_grad()
    def norm_stats(self):
        """Norm-drift statistics. BPE arms: std and mean row L2 norm of the input table. Kron arms:
        std(W)*sqrt(D) of the projection (1 at init). All arms: RMS and mean row norm of the embeddings
        the input layer produces over the real vocabulary, and std / mean row norm of the output head
        (for kron_tied the effective head s * E(W), and s itself)."""
        n_real = self.n_real_tokens()
        wte, out = self.transformer.wte, {}
        if self.config.embedding in KRON_ARMS:
            out["proj_std_sqrtD"] = (wte.weight.float().std() * math.sqrt(wte.D)).item()
            emb = wte.all_embeddings()[:n_real].float()
        else:
            emb = wte.weight[:n_real].float()
            out["wte_std"] = emb.std().item()
            out["wte_row_norm"] = emb.norm(dim=1).mean().item()
        out["emb_rms"] = emb.pow(2).mean().sqrt().item()
        out["emb_row_norm"] = emb.norm(dim=1).mean().item()
        head = self.output_matrix()[:n_real].float()
        if self.lm_head is None:
            out["logit_scale"] = self.logit_scale.item()
            head = head * self.logit_scale.float()
        out["head_std"] = head.std().item()
        out["head_row_norm"] = head.norm(dim=1).mean().item()
        return out

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW with weight decay on the >=2-D weights (matrices, tables, the Kron projection) and
        none on biases and LayerNorm gains; fused on CUDA."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")

    def estimate_mfu(self, tokens_per_s, peak_flops, world_size=1):
        """Model FLOPs utilisation: flops_per_token * tokens/s over the peak of all world_size GPUs
        (tokens_per_s counts the tokens of every rank)."""
        return self.flops_per_token() * tokens_per_s / (peak_flops * world_size)

    # --- forward and sampling

    def output_matrix(self):
        """The (V, d) matrix the head multiplies hidden states by: lm_head.weight, or for kron_tied
        E(W), rebuilt from the projection (differentiable: gradients reach W from both ends)."""
        return self.transformer.wte.vocabulary() if self.lm_head is None else self.lm_head.weight

    def head(self, x, output_matrix=None):
        if self.lm_head is None:  # kron_tied: s * x @ E(W)^T, -inf on ids with no bytes
            E = self.output_matrix() if output_matrix is None else output_matrix
            return F.linear(x * self.logit_scale.to(x.dtype), E.to(x.dtype), self.head_bias.to(x.dtype))
        return self.lm_head(x)

    def forward(self, idx, targets=None, byte_overrides=None, return_hidden=False, output_matrix=None):
        """idx (B, T) -> logits (B, T, V), and the mean cross-entropy when targets are given.
        byte_overrides (Kron arms only) feeds raw bytes at chosen positions; see KroneckerEmbedding.
        output_matrix: a precomputed output_matrix() (generate() builds kron_tied's once per call)."""
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
        logits = self.head(x, output_matrix)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return (logits, loss, hidden) if return_hidden else (logits, loss)

    def embed(self, idx, byte_overrides=None):
        if byte_overrides:
            if self.config.embedding not in KRON_ARMS:
                raise ValueError(f"byte_overrides need the kron arm; this model is {self.config.embedding!r}")
            x = self.transformer.wte(idx, byte_overrides=byte_overrides)
        else:
            x = self.transformer.wte(idx)
        return x * self.config.kron_scale if self.config.kron_scale != 1.0 else x

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None,
                 byte_overrides=None):
        """Autoregressive sampling. temperature 0 is greedy; top_k keeps the k likeliest tokens, top_p
        the smallest set whose probability reaches p. Byte overrides stay at their prompt positions."""
        if temperature < 0:
            raise ValueError(f"temperature={temperature}: expected >= 0")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p={top_p}: expected 0 < top_p <= 1")
        n_real = self.n_real_tokens()
        prompt_len = idx.size(1)
        overrides = {p % prompt_len: b for p, b in (byte_overrides or {}).items()}  # positions in the prompt, fixed
        output_matrix = self.output_matrix() if self.lm_head is None else None  # E(W) once per call, not per token
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.config.block_size:]
            shift = idx.size(1) - ctx.size(1)  # positions that slid out of the context window
            window = {p - shift: b for p, b in overrides.items() if p >= shift} or None
            logits, _ = self(ctx, byte_overrides=window, output_matrix=output_matrix)
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


# ----------------------------------------------------------------------------- checkpoints

def load_checkpoint(path, device="cpu", mode=None):
    """A train.py checkpoint -> (model in eval mode, checkpoint dict), read without running code
    (checkpoint.load). Works across devices (a GPU checkpoint loads on CPU and back). `mode`
    switches a Kron model's execution mode (fused, cached, dynamic): the state is the same
    projection in all three."""
    import checkpoint
    ckpt = checkpoint.load(path, map_location=device)
    args = dict(ckpt["model_args"])
    if mode is not None:
        args["kron_mode"] = mode
    model = GPT(GPTConfig.from_dict(args))
    model.load_state_dict(checkpoint.model_state(ckpt))
    ckpt.pop("optimizer", None)  # inference needs the weights only: free the optimizer state (2x the model)
    ckpt.pop("model", None)
    return model.to(device).eval(), ckpt


def model_args_of(cfg):
    return asdict(cfg)
