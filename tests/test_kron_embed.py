"""kron_embed.py: the Kronecker codec and layer: geometry, closed forms, agreement with the explicit
constructions, byte tables, the full-vocabulary rebuild, shuffled bytes, bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kron_embed import (
    KroneckerEmbedding,
    codec_cosines,
    codec_stats,
    codec_table,
    encode_bytes,
    kron_codec,
    reference_forward,
    token_byte_table,
    utf8_truncate,
)
from tokenizer import get_tokenizer


def codec_of(*words, pos_dim=16, length_norm=True, z_norm=False):
    rows = [encode_bytes(w.encode("utf-8"), pos_dim) for w in words]
    byte_rows = torch.stack([r for r, _ in rows])
    lengths = torch.tensor([n for _, n in rows], dtype=torch.int16)
    return kron_codec(byte_rows, lengths, length_norm=length_norm, z_norm=z_norm)


def cos(u, v):
    return F.cosine_similarity(u, v, dim=0).item()


# --------------------------------------------------------------------------- codec geometry


def test_codec_has_unit_norm_before_z_norm():
    x = codec_of("a", "run", " the", "computation", "कककक")
    assert torch.allclose(x.norm(dim=1), torch.ones(5), atol=1e-6)


@pytest.mark.parametrize(
    "a,b,expected",
    [
        ("compute", "commute", 6 / 7),
        ("nation", "notion", 5 / 6),
        ("mistake", "mistkae", 5 / 7),
        ("separate", "seperate", 7 / 8),
        ("run", "RUN", 0.0),
        ("run", "runs", 3 / math.sqrt(12)),
        ("nation", "station", 0.0),
        ("run", "run", 1.0),
    ],
)
def test_codec_cosines_follow_byte_overlap(a, b, expected):
    x = codec_of(a, b)
    assert cos(x[0], x[1]) == pytest.approx(expected, abs=1e-6)


def test_z_norm_matches_closed_form():
    D = 4096
    for word in ["a", "runs", "hello", "computation"]:
        raw = codec_of(word, z_norm=False)[0].double()
        L = len(word)
        mean, std = math.sqrt(L) / D, math.sqrt((1 - L / D) / (D - 1))
        assert raw.mean().item() == pytest.approx(mean, rel=1e-6)
        assert raw.std().item() == pytest.approx(std, rel=1e-5)  # torch's std is unbiased (ddof=1)
        a, m, s = codec_stats(torch.tensor([L]), D)
        assert (m.item(), s.item()) == pytest.approx((mean, std), rel=1e-5)
        z = codec_of(word, z_norm=True)[0]
        nonzero = (1 / math.sqrt(L) - mean) / (std + 1e-6)
        assert z.max().item() == pytest.approx(nonzero, rel=1e-5)
        assert z.norm().item() == pytest.approx(math.sqrt(D - 1), rel=1e-4)
    # worked values from the paper at D = 4096: L = 5 -> non-zero 28.60, zero -0.035
    z5 = codec_of("hello", z_norm=True)[0]
    assert z5.max().item() == pytest.approx(28.60, abs=0.01) and z5.min().item() == pytest.approx(-0.035, abs=0.001)


def test_empty_token_is_zero_and_finite():
    z = kron_codec(torch.zeros(1, 16, dtype=torch.uint8), torch.zeros(1, dtype=torch.int16))
    assert torch.isfinite(z).all() and (z == 0).all()


def test_length_and_z_norm_are_switchable():
    raw = codec_of("runs", length_norm=False, z_norm=False)[0]
    assert raw.sum().item() == 4 and raw.max().item() == 1
    emb = KroneckerEmbedding(50304, 8, pos_dim=16, z_norm=False, length_norm=False)
    ids = torch.tensor([1000, 50])
    ref = torch.stack([kron_codec(emb.token_bytes[i][None], emb.token_lengths[i][None], False, False)[0] for i in ids])
    assert torch.allclose(emb(ids), ref @ emb.weight, atol=1e-5)


# --------------------------------------------------------------------------- byte tables


def test_utf8_truncation_never_splits_a_code_point():
    ka = "क".encode("utf-8") * 5
    assert utf8_truncate(ka, 4) == "क".encode("utf-8")
    assert utf8_truncate(ka, 7) == ("कक").encode("utf-8")
    for text in ["naïve café", "感謝感謝感謝", "धन्यवाद", "emoji 😀😀 ok"]:
        b = text.encode("utf-8")
        for n in range(1, len(b) + 2):
            t = utf8_truncate(b, n)
            assert len(t) <= n and b.startswith(t)
            t.decode("utf-8")  # raises if a code point was split


def test_gpt2_table_exact_vs_decode():
    tok = get_tokenizer("gpt2")
    table, lengths, stats = token_byte_table("gpt2", 16, 50304)
    assert table.shape == (50304, 16) and table.dtype == np.uint8 and lengths.dtype == np.int16
    assert (lengths[50257:] == 0).all()  # padded ids have no bytes
    the = tok.encode(" the")[0]
    assert bytes(table[the, : lengths[the]]) == b" the"
    assert bytes(table[50256, : lengths[50256]]) == b"<|endoftext|>"
    partial = [i for i in range(tok.n_vocab) if tok.token_bytes(i) != tok.decoded_bytes(i)]
    assert len(partial) == 344
    assert stats["colliding_tokens"] == 44 and stats["truncated"] == 72 and stats["longest"] == 128
    _, dec_lengths, dec_stats = token_byte_table("gpt2", 16, 50304, byte_source="decode")
    assert dec_stats["colliding_tokens"] == 384
    assert table[partial[0], 0] != 0xEF  # exact bytes keep the partial token's real first byte


# --------------------------------------------------------------------------- the layer


@pytest.fixture(scope="module")
def layers():
    """The layer (its fused closed form), and the same projection through the paper's explicit
    constructions: the codec built per batch ("dynamic") and the precomputed (V, D) table ("cached")."""
    torch.manual_seed(0)
    layer = KroneckerEmbedding(50304, 48, pos_dim=16)
    table = codec_table(layer)
    return {
        "fused": layer,
        "dynamic": lambda ids, **kw: reference_forward(layer, ids, "dynamic", **kw),
        "cached": lambda ids, **kw: (
            reference_forward(layer, ids, "cached", table) if not kw else reference_forward(layer, ids, "dynamic", **kw)
        ),
    }


def run_modes(layers, ids, **kw):
    torch.manual_seed(1)
    upstream = torch.randn(*ids.shape, 48)
    weight = layers["fused"].weight
    results = {}
    for mode, forward in layers.items():
        weight.grad = None
        y = forward(ids, **kw)
        y.backward(upstream)
        results[mode] = (y.detach(), weight.grad.clone())
    weight.grad = None
    return results


@pytest.mark.parametrize("source", ["random", "gpt2_text"])
def test_modes_agree_in_outputs_and_gradients(layers, source):
    if source == "random":
        ids = torch.randint(0, 50304, (4, 64), generator=torch.Generator().manual_seed(0))
    else:
        text = "The Kronecker codec encodes naïve bytes: 感謝, कक, and <|endoftext|> as plain text."
        ids = torch.tensor(get_tokenizer("gpt2").encode(text))[None]
    res = run_modes(layers, ids)
    ref_y, ref_g = res["cached"]
    for mode in ("fused", "dynamic"):
        y, g = res[mode]
        assert (y - ref_y).abs().max().item() < 1e-5, mode
        assert (g - ref_g).abs().max().item() < 1e-5 * ref_g.abs().max().item(), mode


def test_init_and_state_dict(layers):
    layer = layers["fused"]
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert list(layer.state_dict()) == ["weight"]
    fresh = KroneckerEmbedding(50304, 768, pos_dim=16)
    assert fresh.weight.std().item() == pytest.approx(1 / 64, rel=0.01)
    torch.manual_seed(0)
    ids = torch.randint(0, 50257, (2048,))
    assert fresh(ids).std().item() == pytest.approx(1.0, rel=0.05)


def test_parameter_counts_at_gpt2_shape():
    emb = torch.nn.Embedding(50304, 768)
    kron = KroneckerEmbedding(50304, 768, pos_dim=16)
    assert sum(p.numel() for p in emb.parameters()) == 38_633_472
    assert sum(p.numel() for p in kron.parameters()) == 3_145_728
    assert kron.non_trainable_bytes() == 50304 * 16 + 50304 * 2 + 16 * 8 + 2 * 17 * 4  # bytes, lengths, positions,
    # and the per-length scale and shift tables (float32, lengths 0..16)


def test_padded_ids_and_free_slots(layers):
    layer = layers["fused"]
    assert (layer(torch.tensor([50300])) == 0).all()  # no bytes yet: zero codec -> zero embedding
    layer.set_token_bytes(50300, b"kronekticus")
    ref = layer(torch.tensor([0]), byte_overrides={0: b"kronekticus"})
    for how in ("fused", "dynamic"):
        assert torch.allclose(layers[how](torch.tensor([50300])), ref, atol=1e-5)
    layer.set_token_bytes(50300, b"")
    assert 50300 in layer.free_slots() and 50256 not in layer.free_slots()
    with pytest.raises(ValueError, match="real token"):
        layer.set_token_bytes(42, b"x")


def test_byte_overrides(layers):
    tok = get_tokenizer("gpt2")
    ids = torch.tensor([tok.encode("The word xx refers to")])
    res = run_modes(layers, ids, byte_overrides={2: b" kronekticus"})
    for mode in ("fused", "dynamic"):
        assert (res[mode][0] - res["cached"][0]).abs().max().item() < 1e-5
    y = res["fused"][0][0]
    plain = layers["fused"](ids)[0].detach()
    assert torch.allclose(y[[0, 1, 3, 4]], plain[[0, 1, 3, 4]], atol=1e-6)
    # the override equals a fresh codec of the same bytes projected by W
    row, n = encode_bytes(b" kronekticus", 16)
    expect = kron_codec(row[None], torch.tensor([n])) @ layers["fused"].weight
    assert torch.allclose(y[2], expect[0].detach(), atol=1e-5)
    # negative positions count from the end of the sequence
    assert torch.allclose(layers["fused"](ids, byte_overrides={-3: b" kronekticus"}), res["fused"][0], atol=1e-6)


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error(layers):
    layer = layers["fused"]
    with pytest.raises(TypeError, match="int64 or torch.int32 tensor, got torch.float32"):
        layer(torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="int64 or torch.int32 tensor, got list"):
        layer([1, 2])
    for dtype in (torch.uint8, torch.int16, torch.bool):  # uint8/bool would index as a mask
        with pytest.raises(TypeError, match=f"got {dtype}"):
            layer(torch.tensor([1, 0], dtype=dtype))
    assert torch.equal(layer(torch.tensor([5], dtype=torch.int32)), layer(torch.tensor([5])))
    with pytest.raises(IndexError, match="50304"):
        layer(torch.tensor([50304]))
    with pytest.raises(IndexError, match="-1"):
        layer(torch.tensor([-1]))
    with pytest.raises(TypeError, match="bytes"):
        layer(torch.tensor([[1, 2]]), byte_overrides={0: "text"})
    with pytest.raises(IndexError, match="outside the sequence"):
        layer(torch.tensor([[1, 2]]), byte_overrides={2: b"ab"})
    with pytest.raises(ValueError, match="unknown tokenizer 'nope'"):
        KroneckerEmbedding(100, 8, tokenizer="nope")
    with pytest.raises(ValueError, match="pos_dim=0"):
        KroneckerEmbedding(50304, 8, pos_dim=0)
    with pytest.raises(ValueError, match="how='fast'"):
        reference_forward(layer, torch.tensor([1]), "fast")
    with pytest.raises(ValueError, match="needs table=codec_table"):
        reference_forward(layer, torch.tensor([1]), "cached")
    with pytest.raises(ValueError, match="vocab_size=100"):
        KroneckerEmbedding(100, 8)
    with pytest.raises(ValueError, match="byte_source='pieces'"):
        KroneckerEmbedding(50304, 8, byte_source="pieces")


def test_kron_ids_of_the_wrong_dtype(tmp_path):
    from kron_embed import KroneckerEmbedding

    layer = KroneckerEmbedding(50304, 8, pos_dim=4)
    for dtype in (torch.uint8, torch.int16):
        with pytest.raises(TypeError, match=f"int64 or torch.int32 tensor, got {dtype}"):
            layer(torch.tensor([1, 2], dtype=dtype))


def test_pos_dim_32():
    layer = KroneckerEmbedding(50304, 16, pos_dim=32)
    assert layer.D == 8192 and layer.byte_stats["truncated"] == 14  # GPT-2: 14 tokens exceed 32 bytes
    ids = torch.randint(0, 50257, (64,))
    assert (layer(ids) - reference_forward(layer, ids, "dynamic")).abs().max().item() < 1e-5


@pytest.mark.parametrize("z_norm", [True, False])
def test_sparse_codec_cosines_match_dense(z_norm):
    table, lengths, _ = token_byte_table("gpt2", 16)
    ids = torch.arange(0, 50257, 97)
    rows, lens = torch.from_numpy(table)[ids], torch.from_numpy(lengths)[ids]
    q, qlen = encode_bytes(b" running", 16)
    dense = kron_codec(rows, lens, z_norm=z_norm)
    qd = kron_codec(q[None], torch.tensor([qlen]), z_norm=z_norm)[0]
    expect = F.cosine_similarity(dense, qd[None], dim=1)
    assert torch.allclose(codec_cosines(rows, lens, q, qlen, z_norm=z_norm), expect, atol=1e-5)


# --------------------------------------------------------------------------- the full vocabulary (kron_tied's head)


@pytest.fixture(scope="module")
def cached_layer():
    """A layer and its explicit (V, D) codec table (the paper's cached construction)."""
    torch.manual_seed(0)
    layer = KroneckerEmbedding(50304, 16, pos_dim=4)
    layer.table = codec_table(layer)
    return layer


def test_vocabulary_equals_row_by_row_forward_of_every_id(cached_layer):
    """The fused full-vocabulary rebuild against the cached-table path, id by id (in chunks)."""
    with torch.no_grad():
        rebuilt = cached_layer.vocabulary()
        ids = torch.arange(50304)
        rows = torch.cat([reference_forward(cached_layer, ids[i : i + 4096], "cached", cached_layer.table) for i in range(0, 50304, 4096)])
    assert rebuilt.shape == (50304, 16)
    assert torch.allclose(rebuilt, rows, atol=1e-5)
    assert torch.all(rebuilt[50257:] == 0) and not cached_layer.has_bytes()[50257:].any()


def test_head_gradient_through_w_matches_cached_table_reference(cached_layer):
    torch.manual_seed(1)
    h = torch.randn(8, 16)
    target = torch.randint(0, 50257, (8,))
    W = cached_layer.weight
    W.grad = None
    F.cross_entropy(0.5 * h @ cached_layer.vocabulary().T, target).backward()
    fused_grad = W.grad.clone()
    W.grad = None
    F.cross_entropy(0.5 * h @ (cached_layer.table @ W).T, target).backward()  # the explicit V x D route
    assert ((fused_grad - W.grad).norm() / W.grad.norm()).item() < 1e-5


def test_fused_layer_computes_its_length_tables_once(monkeypatch):
    import kron_embed

    kron = kron_embed.KroneckerEmbedding(50304, 8)
    ids = torch.tensor([[15496, 995, 0, 50256]])
    expected = kron_embed.reference_forward(kron, ids, "dynamic")

    def refuse(*a, **k):
        raise AssertionError("codec_stats recomputed in forward")

    monkeypatch.setattr(kron_embed, "codec_stats", refuse)
    torch.testing.assert_close(kron(ids), expected, atol=1e-5, rtol=1e-5)
    kron.vocabulary()
    assert "length_scale" not in kron.state_dict()  # buffers, rebuilt at construction, never saved


# --------------------------------------------------------------------------- shuffled bytes (a control of the study)


def test_shuffled_bytes_keep_the_statistics_but_not_the_token():
    plain = KroneckerEmbedding(50304, 8, pos_dim=16)
    shuf = KroneckerEmbedding(50304, 8, pos_dim=16, shuffle_seed=7)
    n = plain.n_tokenizer_vocab
    a = {bytes(r[:length].tolist()) for r, length in zip(plain.token_bytes[:n], plain.token_lengths[:n])}
    b = {bytes(r[:length].tolist()) for r, length in zip(shuf.token_bytes[:n], shuf.token_lengths[:n])}
    assert a == b  # the same set of byte codes, hence the same statistics
    moved = (shuf.token_bytes[:n] != plain.token_bytes[:n]).any(dim=1).float().mean().item()
    assert moved > 0.99  # almost every token now has another token's bytes
    assert torch.equal(shuf.token_lengths[n:], plain.token_lengths[n:])  # padding stays byte-less
    again = KroneckerEmbedding(50304, 8, pos_dim=16, shuffle_seed=7)
    assert torch.equal(again.token_bytes, shuf.token_bytes)  # a fixed seed: the same permutation
