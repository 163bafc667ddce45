"""Kronecker embeddings: a fixed byte-level codec plus one learned projection (arXiv 2605.29459).

A token with UTF-8 bytes b_1..b_L (L <= pos_dim after UTF-8-safe truncation) is encoded as

    kappa(b) = (1/sqrt(L)) * sum_p onehot256(b_p) (x) onehot_pos(p)   in R^D,  D = 256 * pos_dim

flattened byte-major (index = byte * pos_dim + pos), so ||kappa|| = 1. Per token it is then
z-normalised, x <- (x - mean(x)) / (std(x) + 1e-6) with the unbiased std, and projected by one
learned matrix W (D x d_model, no bias). Nothing else is learned: this module is a drop-in for
nn.Embedding whose trainable state is D*d_model instead of V*d_model.

The layer computes W^T z(kappa(token)) by an exact shortcut (the "fused" form). Because z(kappa) has
L entries a = 1/sqrt(L) and D-L zeros, mean mu = L*a/D and unbiased std sigma = sqrt(L*a^2*(1-L/D)/(D-1)), so
    W^T z(kappa) = (a * sum_p W[b_p*P + p] - mu * sum_j W[j]) / (sigma + eps).
Each token costs L row gathers (embedding_bag over contiguous rows of W) plus one column sum shared by
the batch; no D-wide vector is built. The paper's two explicit constructions stay as references
(`reference_forward`): "dynamic", its on-the-fly variant, builds the D-wide codec for the batch from the
(V, pos_dim) byte buffer; "cached" indexes a precomputed (V, D) codec table (`codec_table`). Tests hold
the layer to both, and scripts/bench_embed.py times them (the paper's 4.5 MB buffer vs 2.15 GB table).

Token byte tables, measured on GPT-2 (50257 tokens; `python kron_embed.py` prints these):
  * byte_source="exact" (default): the token's real bytes. 72 tokens exceed 16 bytes (longest 128);
    tokens sharing a byte row with another token: 44 at pos_dim 16, 17 at pos_dim 32 (truncation only).
  * byte_source="decode": bytes of decode([id]) as in the reference code; the 344 partial-UTF-8
    tokens become U+FFFD and collide: 384 colliding tokens at pos_dim 16, 357 at pos_dim 32.
"""

import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tokenizer import BYTE_SOURCES, get_tokenizer

REFERENCES = ("dynamic", "cached")  # the explicit constructions reference_forward() offers
EPS = 1e-6


# ----------------------------------------------------------------------------- byte tables


def utf8_truncate(b, max_len):
    """At most max_len bytes of b, never splitting a UTF-8 code point (walks back over continuation
    bytes, at most 3). Byte strings that are not valid UTF-8 at the cut are cut hard at max_len."""
    if len(b) <= max_len:
        return b
    cut = max_len
    while cut > 0 and max_len - cut < 3 and (b[cut] & 0xC0) == 0x80:
        cut -= 1
    if (b[cut] & 0xC0) == 0x80:  # still inside a continuation run: not a well-formed code point
        return b[:max_len]
    return b[:cut]


def token_byte_table(tokenizer="gpt2", pos_dim=16, vocab_size=None, byte_source="exact"):
    """Per token id its (truncated) UTF-8 bytes, zero padded: (uint8 [V, pos_dim], int16 lengths [V],
    stats). Ids past the tokenizer's vocabulary (padding up to vocab_size) get length 0."""
    if not isinstance(pos_dim, int) or pos_dim < 1:
        raise ValueError(f"pos_dim={pos_dim!r}: expected an integer >= 1")
    if byte_source not in BYTE_SOURCES:
        raise ValueError(f"byte_source={byte_source!r}: expected one of {BYTE_SOURCES}")
    tok = get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    V = tok.n_vocab if vocab_size is None else vocab_size
    if not isinstance(V, int) or V < tok.n_vocab:
        raise ValueError(f"vocab_size={V!r}: expected an int >= the tokenizer's {tok.n_vocab} tokens")
    table, lengths, stats = _byte_table(tok, pos_dim, V, byte_source)
    return table.copy(), lengths.copy(), dict(stats)


@functools.lru_cache(maxsize=8)
def _byte_table(tok, pos_dim, V, byte_source):
    table = np.zeros((V, pos_dim), dtype=np.uint8)
    lengths = np.zeros(V, dtype=np.int16)
    full_len = np.zeros(tok.n_vocab, dtype=np.int64)
    for i in range(tok.n_vocab):
        b = tok.bytes_of(i, byte_source)
        full_len[i] = len(b)
        b = utf8_truncate(b, pos_dim)
        table[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
        lengths[i] = len(b)
    stats = byte_table_stats(table[: tok.n_vocab], lengths[: tok.n_vocab], full_len, pos_dim)
    return table, lengths, stats


def byte_table_stats(table, lengths, full_lengths, pos_dim):
    """Coverage and collisions: share of tokens within pos_dim bytes, the longest token, and how many
    tokens share their byte row (hence their embedding) with another token."""
    rows = np.concatenate([table, lengths[:, None].astype(np.uint8)], axis=1)
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    colliding = int((counts[inverse.reshape(-1)] > 1).sum())
    return {
        "n_tokens": int(len(lengths)),
        "pos_dim": pos_dim,
        "within_pos_dim": float((full_lengths <= pos_dim).mean()),
        "truncated": int((full_lengths > pos_dim).sum()),
        "longest": int(full_lengths.max()),
        "mean_length": float(full_lengths.mean()),
        "colliding_tokens": colliding,
        "empty_tokens": int((lengths == 0).sum()),
    }


def encode_bytes(b, pos_dim):
    """One byte string as a (uint8 [pos_dim], length) row, truncated UTF-8-safely."""
    if not isinstance(b, (bytes, bytearray)):
        raise TypeError(f"byte override {b!r}: expected bytes (e.g. 'word'.encode('utf-8')), got {type(b).__name__}")
    b = utf8_truncate(bytes(b), pos_dim)
    row = torch.zeros(pos_dim, dtype=torch.uint8)
    row[: len(b)] = torch.tensor(list(b), dtype=torch.uint8)
    return row, len(b)


# ----------------------------------------------------------------------------- the codec


def codec_stats(lengths, D, length_norm=True):
    """Per token: the non-zero value a, and the z-norm mean and (unbiased) std of its codec vector."""
    L = lengths.to(torch.float32)
    a = torch.rsqrt(L.clamp(min=1.0)) if length_norm else torch.ones_like(L)
    mean = L * a / D
    std = torch.sqrt((L * a * a * (1.0 - L / D) / (D - 1)).clamp(min=0.0))
    return a, mean, std


def kron_codec(byte_rows, lengths, length_norm=True, z_norm=True, eps=EPS):
    """The D-wide codec for a batch of byte rows: uint8 [N, P], lengths [N] -> float32 [N, D].
    Built explicitly with scatter (the reference construction); z-norm uses torch's unbiased std."""
    N, P = byte_rows.shape
    D = 256 * P
    pos = torch.arange(P, device=byte_rows.device)
    valid = pos < lengths[:, None].to(torch.long)
    index = byte_rows.to(torch.long) * P + pos
    a, _, _ = codec_stats(lengths, D, length_norm)
    values = torch.where(valid, a[:, None], torch.zeros((), device=byte_rows.device))
    x = torch.zeros(N, D, dtype=torch.float32, device=byte_rows.device).scatter_add_(1, index, values)
    if z_norm:
        x = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + eps)
    return x


def codec_cosines(table, lengths, query_row, query_len, z_norm=True, length_norm=True):
    """Cosine between the codec of one byte row and the codec of every row of a byte table, exactly
    and without building D-wide vectors: with m = number of shared (byte, position) pairs,
        x_a . x_b = m * a_a * a_b,  and after centring  (x_a - mu_a).(x_b - mu_b) = x_a . x_b - D mu_a mu_b,
    while ||x - mu||^2 = L a^2 - D mu^2. (The z-norm's eps is ignored: it does not change cosines.)"""
    table, lengths = torch.as_tensor(table), torch.as_tensor(lengths).to(torch.long)
    P = table.shape[1]
    D = 256 * P
    q = torch.as_tensor(query_row).to(table.dtype)
    pos = torch.arange(P)
    valid = (pos < lengths[:, None]) & (pos < int(query_len))
    shared = ((table == q) & valid).sum(1).to(torch.float64)
    a, mean, _ = (t.to(torch.float64) for t in codec_stats(lengths, D, length_norm))
    qa, qmean, _ = (t.to(torch.float64) for t in codec_stats(torch.tensor([int(query_len)]), D, length_norm))
    dot = shared * a * qa
    sq, qsq = lengths * a * a, int(query_len) * qa * qa
    if z_norm:
        dot, sq, qsq = dot - D * mean * qmean, sq - D * mean * mean, qsq - D * qmean * qmean
    return (dot / (sq.clamp(min=1e-30).sqrt() * qsq.clamp(min=1e-30).sqrt())).to(torch.float32)


# ----------------------------------------------------------------------------- the layer


class _FusedByteBag(torch.autograd.Function):
    """The fused layer on eager CPU, forward and backward in one place:
        out[n] = sum_k scale[n] W[index[k]] - shift[n] * sum_j W[j]      (k over token n's real bytes)
        dW     = A @ g - 1 (shift^T g),   A = sparse (D x N), A[index[k], n] = scale[n].
    Why by hand: embedding_bag's own CPU backward sorts and segments the indices, and autograd of the
    shift term adds three more N x d passes; at the GPT-2 shape that was ~5x nn.Embedding's whole
    forward + backward. Here the backward is one sparse-dense product, one matrix-vector product and
    an in-place broadcast."""

    @staticmethod
    def forward(ctx, weight, index, token, offsets, scale, shift):
        values = scale[token]  # per gathered row: its token's scale (also A's entries in backward)
        ctx.save_for_backward(index, token, values, shift)
        ctx.weight_shape, ctx.weight_dtype = weight.shape, weight.dtype
        out = F.embedding_bag(index, weight, offsets, per_sample_weights=values.to(weight.dtype), mode="sum")
        return out.addr_(shift.to(out.dtype), weight.sum(dim=0).to(out.dtype), alpha=-1)

    @staticmethod
    def backward(ctx, grad_out):
        index, token, values, shift = ctx.saved_tensors
        g = grad_out.float()
        A = torch.sparse_coo_tensor(torch.stack([index, token]), values.float(), (ctx.weight_shape[0], g.shape[0]), check_invariants=False)
        grad_weight = torch.sparse.mm(A, g).sub_(shift.float() @ g)
        return grad_weight.to(ctx.weight_dtype), None, None, None, None, None


class KroneckerEmbedding(nn.Module):
    """nn.Embedding-compatible input layer: forward(ids) -> (..., d_model). (Long as a class, ~170 lines
    with this docstring; each method is short: the buffers and their checks, the fused forward, the codec,
    byte-novel slots (set_token_bytes, free_slots) and the full embedding table for the probes.)

    The only parameter is `weight`, the projection laid out as (D, d_model) so that the fused form's
    gathers read contiguous rows; y = z(kappa(token)) @ weight. It is initialised N(0, 1/D) in
    reset_parameters(), and since this is not an nn.Linear, a model-wide Linear/Embedding init does
    not touch it. The byte table is a non-persistent buffer rebuilt from `tokenizer`, so the
    state_dict holds the projection alone.
    """

    def __init__(
        self, vocab_size, d_model, tokenizer="gpt2", pos_dim=16, byte_source="exact", length_norm=True, z_norm=True, shuffle_seed=None
    ):
        """shuffle_seed: a control, not the method. The rows of the token -> bytes table are permuted
        among the tokenizer's real tokens by this seed, so every token keeps a distinct byte code with
        the same statistics, just not its own bytes."""
        super().__init__()
        if not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"d_model={d_model!r}: expected an integer >= 1")
        table, lengths, self.byte_stats = token_byte_table(tokenizer, pos_dim, vocab_size, byte_source)
        self.tokenizer_name = tokenizer if isinstance(tokenizer, str) else tokenizer.name
        self.n_tokenizer_vocab = get_tokenizer(self.tokenizer_name).n_vocab
        self.shuffle_seed = shuffle_seed
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed).permutation(self.n_tokenizer_vocab)
            table[: self.n_tokenizer_vocab] = table[order]
            lengths[: self.n_tokenizer_vocab] = lengths[order]
        self.num_embeddings, self.embedding_dim = table.shape[0], d_model
        self.pos_dim, self.D = pos_dim, 256 * pos_dim
        self.byte_source = byte_source
        self.length_norm, self.z_norm = length_norm, z_norm
        self.register_buffer("token_bytes", torch.from_numpy(table), persistent=False)
        self.register_buffer("token_lengths", torch.from_numpy(lengths), persistent=False)
        self.register_buffer("positions", torch.arange(pos_dim), persistent=False)
        scale, shift = self._length_coefficients()  # computed once: they depend on the byte length alone
        self.register_buffer("length_scale", scale, persistent=False)
        self.register_buffer("length_shift", shift, persistent=False)
        self.weight = nn.Parameter(torch.empty(self.D, d_model))
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """The paper's init: W ~ N(0, 1/D), so each output coordinate has std ~1 at init."""
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0 / math.sqrt(self.D), generator=generator)

    def extra_repr(self):
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, pos_dim={self.pos_dim}, D={self.D}, "
            f"tokenizer={self.tokenizer_name!r}, byte_source={self.byte_source!r}, "
            f"length_norm={self.length_norm}, z_norm={self.z_norm}"
        )

    # --- input checking and byte rows

    def _check_ids(self, ids):
        # int32/int64 only: indexing with uint8 (or bool) would be read as a mask, not as ids
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int32, torch.int64):
            what = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"token ids must be a torch.int64 or torch.int32 tensor, got {what}")
        if ids.numel() == 0:
            return
        if ids.device.type == "cpu" and not torch.compiler.is_compiling():
            lo, hi = (int(v) for v in torch.aminmax(ids))  # one pass over the ids
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                raise IndexError(f"token id {bad} is out of range: expected 0 <= id < {self.num_embeddings}")
        else:  # no host sync on accelerators (nor a graph break under torch.compile): an assert in the graph
            torch._assert_async(((ids >= 0) & (ids < self.num_embeddings)).all(), "token id out of range")

    def _byte_rows(self, ids, byte_overrides):
        """Byte rows [N, P] and lengths [N] for flattened ids, with per-position overrides applied."""
        flat = ids.reshape(-1)
        rows, lengths = self.token_bytes[flat], self.token_lengths[flat]
        if byte_overrides:
            T = ids.shape[-1] if ids.dim() > 0 else 1
            rows, lengths = rows.clone(), lengths.clone()
            for pos, b in self._validated_overrides(byte_overrides, T):
                row, n = encode_bytes(b, self.pos_dim)
                sel = torch.arange(pos, flat.numel(), T, device=flat.device)
                rows[sel] = row.to(rows.device)
                lengths[sel] = n
        return rows, lengths

    @staticmethod
    def _validated_overrides(byte_overrides, T):
        if not isinstance(byte_overrides, dict):
            raise TypeError(f"byte_overrides must be a dict {{position: bytes}}, got {type(byte_overrides).__name__}")
        out = []
        for pos, b in byte_overrides.items():
            if not isinstance(pos, int) or not -T <= pos < T:
                raise IndexError(f"byte override position {pos!r} is outside the sequence: expected an int in [{-T}, {T})")
            if not isinstance(b, (bytes, bytearray)):
                raise TypeError(f"byte override at position {pos}: expected bytes, got {type(b).__name__} {b!r}")
            out.append((pos % T, b))
        return out

    # --- the layer

    def forward(self, ids, byte_overrides=None):
        """ids: integer tensor (...,) -> (..., d_model). byte_overrides: {position along the last
        dimension: bytes} embeds those bytes at that position (every row of a batch) instead of the
        token there, e.g. a word the tokenizer would split, fed as one byte-encoded slot."""
        self._check_ids(ids)
        rows, lengths = self._byte_rows(ids, byte_overrides)
        return self._fused(rows, lengths).reshape(*ids.shape, self.embedding_dim)

    def codec(self, ids, byte_overrides=None):
        """The explicit z-normed codec rows z(kappa(token)) of ids: (..., D), the reference construction."""
        self._check_ids(ids)
        rows, lengths = self._byte_rows(ids, byte_overrides)
        return kron_codec(rows, lengths, self.length_norm, self.z_norm).reshape(*ids.shape, self.D)

    def _fused(self, rows, lengths):
        """W^T z(kappa) per token from its byte row, without any D-wide vector (see the module doc)."""
        P = self.pos_dim
        lengths = lengths.to(torch.long)
        scale, shift = self.length_scale[lengths], self.length_shift[lengths]
        valid = self.positions < lengths[:, None]
        if rows.device.type == "cpu" and not torch.compiler.is_compiling():  # gather only the L real bytes
            token, pos = valid.nonzero().unbind(1)
            index = rows[token, pos].to(torch.long) * P + pos
            offsets = torch.cumsum(lengths, 0) - lengths
            return _FusedByteBag.apply(self.weight, index, token, offsets, scale, shift)
        # fixed shapes (accelerators, torch.compile): padded positions are gathered with weight 0
        index = rows.to(torch.long) * P + self.positions
        weights = torch.where(valid, scale[:, None], torch.zeros((), device=scale.device)).to(self.weight.dtype)
        out = F.embedding_bag(index, self.weight, per_sample_weights=weights, mode="sum")
        return out - shift[:, None].to(out.dtype) * self.weight.sum(dim=0)

    def _length_coefficients(self):
        """(P+1,) tables of the closed form's per-token scale a/(sigma+eps) and shift mu/(sigma+eps),
        indexed by the token's byte length (the only thing they depend on). Without z-norm: a and 0."""
        a, mean, std = codec_stats(torch.arange(self.pos_dim + 1), self.D, self.length_norm)
        if not self.z_norm:
            return a, torch.zeros_like(a)
        return a / (std + EPS), mean / (std + EPS)

    # --- free slots and introspection

    def set_token_bytes(self, token_id, b, allow_real_token=False):
        """Give id `token_id` the bytes b (UTF-8-safely truncated). Meant for the padded ids past the
        tokenizer's vocabulary, which have no bytes: a 'free slot' for an out-of-vocabulary word.
        Not saved in the state_dict."""
        if not isinstance(token_id, int) or not 0 <= token_id < self.num_embeddings:
            raise IndexError(f"token id {token_id!r}: expected an int in [0, {self.num_embeddings})")
        if token_id < self.n_tokenizer_vocab and not allow_real_token:
            raise ValueError(
                f"token id {token_id} is a real token of {self.tokenizer_name!r}; free slots are "
                f"{self.n_tokenizer_vocab}..{self.num_embeddings - 1} (or pass allow_real_token=True)"
            )
        row, n = encode_bytes(b, self.pos_dim)
        self.token_bytes[token_id] = row.to(self.token_bytes.device)
        self.token_lengths[token_id] = n

    def free_slots(self):
        """Padded ids that no tokenizer output uses and that have no bytes yet."""
        ids = torch.arange(self.n_tokenizer_vocab, self.num_embeddings)
        return [int(i) for i in ids if int(self.token_lengths[i]) == 0]

    def vocabulary(self):
        """E(W), the (V, d_model) embedding of every id, differentiable in W: what an output head
        tied to this layer multiplies hidden states by. Built with the fused closed form (about
        V * mean(L) row gathers of W, nothing D-wide), so it can be rebuilt every step.
        Ids with no bytes (padding, unused free slots) get zero rows; see has_bytes()."""
        return self._fused(self.token_bytes, self.token_lengths)

    def has_bytes(self):
        """(V,) bool: ids with at least one byte, the only ones a tied head should ever predict."""
        return self.token_lengths > 0

    def all_embeddings(self, chunk=8192):
        """(V, d_model) embeddings of every id, e.g. for probes and norm-drift statistics."""
        ids = torch.arange(self.num_embeddings, device=self.weight.device)
        return torch.cat([self(ids[i : i + chunk]) for i in range(0, self.num_embeddings, chunk)])

    def non_trainable_bytes(self):
        """Bytes of buffers this layer keeps (byte table, lengths, positions, per-length coefficients)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())


# ----------------------------------------------------------------------------- references


def codec_table(layer, chunk=8192):
    """(V, D) float32: every id's z-normed codec row, the table the paper's "cached" variant keeps."""
    ids = torch.arange(layer.num_embeddings, device=layer.token_bytes.device)
    return torch.cat([layer.codec(ids[i : i + chunk]) for i in range(0, layer.num_embeddings, chunk)])


def reference_forward(layer, ids, how="dynamic", table=None, byte_overrides=None):
    """The layer's output built the explicit way, differentiable in layer.weight: "dynamic" builds the
    codec for this batch (the paper's on-the-fly variant); "cached" indexes `table` (codec_table(layer)).
    Equal to layer(ids) up to float rounding; the layer itself never builds D-wide vectors."""
    if how == "dynamic":
        z = layer.codec(ids, byte_overrides)
    elif how == "cached":
        if table is None or byte_overrides:
            raise ValueError("how='cached' needs table=codec_table(layer) and no byte_overrides")
        layer._check_ids(ids)
        z = table[ids]
    else:
        raise ValueError(f"how={how!r}: expected one of {REFERENCES}")
    return z.to(layer.weight.dtype) @ layer.weight


if __name__ == "__main__":
    import argparse
    import json

    p = argparse.ArgumentParser(description="Coverage and collision statistics of a tokenizer's byte table.")
    p.add_argument("--tokenizer", default="gpt2")
    p.add_argument("--pos-dim", type=int, nargs="+", default=[16, 32])
    args = p.parse_args()
    for source in BYTE_SOURCES:
        for pd in args.pos_dim:
            print(
                json.dumps(
                    {"tokenizer": args.tokenizer, "byte_source": source, **token_byte_table(args.tokenizer, pd, byte_source=source)[2]}
                )
            )
