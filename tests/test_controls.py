"""The fair-comparison study's controls (issue 38), each shown to change what its name says."""

import pytest
import torch

import train
from arms import ARMS as ARM_SPECS
from model import GPT, GPTConfig
from runlog import read_metrics
from tests.conftest import tiny

ARMS = ["bpe_tied", "bpe_untied", "bpe_lowrank", "kron", "hybrid"]


def build(arm, **kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, embedding=arm, **kw))


def rms(m):
    return m.norm_stats()["emb_rms"]


@pytest.mark.parametrize("arm", ARMS)
def test_input_scale_multiplies_what_enters_the_first_block_on_every_arm(arm):
    assert rms(build(arm, input_scale=7.0)) == pytest.approx(7.0 * rms(build(arm)), rel=1e-5)


@pytest.mark.parametrize("arm", ["bpe_tied", "bpe_untied", "bpe_lowrank", "kron", "kron_tied", "hybrid"])
def test_each_arms_declared_initial_rms_is_what_its_input_layer_produces(arm):
    """arms.register's init_rms is what the fair study's R = input_scale x init_rms assumes (analysis.fair_own_rms)."""
    torch.manual_seed(0)  # at a study's width: the low-rank table's RMS is noisy at a tiny rank
    m = GPT(GPTConfig(n_layer=1, n_head=4, n_embd=128, block_size=16, embedding=arm))
    assert rms(m) == pytest.approx(ARM_SPECS[arm].init_rms, rel=0.05)


@pytest.mark.parametrize("arm", ARMS)
def test_input_norm_holds_every_row_at_the_multiplier_while_the_layer_moves(arm):
    """RMSNorm without parameters: each token's vector has RMS input_scale, before and after AdamW
    steps that change the input layer itself."""
    m = build(arm, input_norm=True, input_scale=3.0)
    before = {k: v for k, v in m.transformer.wte.drift_stats(50257).items()}
    opt = m.configure_optimizers(0.1, 3e-2, (0.9, 0.95), "cpu")
    x = torch.randint(0, 50257, (4, 16))
    for _ in range(3):
        _, loss = m(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad()
    rows = m.all_embeddings()[:50257].pow(2).mean(dim=1).sqrt()
    # F.rms_norm's eps (float32's, 1.2e-7) is added to each row's mean square: rows of mean square
    # >= 1e-4 (a 0.02 table's is 4e-4) come out within 1e-3 of the multiplier, smaller ones below it
    raw = m.transformer.wte.all_embeddings()[:50257].pow(2).mean(dim=1)
    big = raw >= 1e-4
    assert big.float().mean() > 0.5 and torch.allclose(rows[big], torch.full_like(rows[big], 3.0), rtol=1e-3)
    assert rows.max() <= 3.0 + 1e-4
    after = m.transformer.wte.drift_stats(50257)
    assert any(abs(after[k] - before[k]) > 1e-4 for k in before)  # the layer underneath did move


def test_embedding_lr_mult_makes_a_table_initialised_x50_train_as_a_table_multiplied_x50(data_dir, tmp_path):
    """Under AdamW an output multiplied by m is a table initialised x m with its lr x m and its weight
    decay / m: the two runs' losses agree to Adam's eps, while lr_mult=1 on the x50 table (the frozen
    random code) is far off. With clipping off: the scaled table's gradient is m times the other's, so
    a clip on the global norm acts differently on the two (the equivalence holds where it does not act)."""
    curves = {}
    for name, kw in {
        "scaled": dict(input_scale=50.0),
        "mult": dict(input_init_std=1.0, embedding_lr_mult=50.0),
        "frozen": dict(input_init_std=1.0),
    }.items():
        out = tmp_path / name
        train.train(tiny(data_dir, out, embedding="bpe_untied", paired_init=True, max_iters=12, grad_clip=0.0, **kw))
        curves[name] = [r["loss"] for r in read_metrics(str(out), "train")]
    assert curves["mult"] == pytest.approx(curves["scaled"], rel=1e-4)
    assert abs(curves["frozen"][-1] - curves["scaled"][-1]) > 100 * abs(curves["mult"][-1] - curves["scaled"][-1])


def test_embedding_lr_mult_gives_the_input_layer_its_own_groups():
    m = build("kron")
    opt = m.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu", embedding_lr_mult=4.0)
    wte = {id(p) for p in m.transformer.wte.parameters()}
    for g in opt.param_groups:
        inside = {id(p) in wte for p in g["params"]}
        assert len(inside) == 1 and g["lr_mult"] == (4.0 if inside == {True} else 1.0)
        if g["weight_decay"]:
            assert g["weight_decay"] == pytest.approx(0.1 / g["lr_mult"])
    assert len(m.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu").param_groups) == 2  # as before


def test_shuffled_bytes_draw_their_permutation_from_the_run_seed():
    from configurator import DEFAULTS

    cfgs = [
        GPTConfig.from_dict(
            dict(DEFAULTS, embedding="kron", kron_shuffle_seed="seed", seed=s, n_layer=1, n_head=2, n_embd=32, block_size=16)
        )
        for s in (11, 12)
    ]
    assert [c.kron_shuffle_seed for c in cfgs] == [11, 12]
    tables = [GPT(c).transformer.wte.token_bytes for c in cfgs]
    assert not torch.equal(tables[0], tables[1])
    with pytest.raises(ValueError, match="resolves 'seed'"):
        GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, embedding="kron", kron_shuffle_seed="seed"))


def test_the_hybrid_input_is_the_code_plus_the_scaled_table():
    m = build("hybrid")
    wte = m.transformer.wte
    ids = torch.arange(100)
    expected = wte.kron(ids) + 50.0 * wte.table.weight[ids]
    assert torch.allclose(m.embed(ids), expected, atol=1e-6)
    stats = m.norm_stats()
    assert {"proj_std_sqrtD", "wte_std", "emb_rms"} <= set(stats)
    assert stats["emb_rms"] == pytest.approx(2**0.5, rel=0.1)  # two parts of RMS ~1, independent


def test_the_final_evaluation_reads_every_validation_window_once_in_two_halves(data_dir, tmp_path):
    from shards import TokenData

    data = TokenData(data_dir, 32, 50304, "gpt2")
    windows = data.val_batches(4, None, "all")
    n = sum(x.shape[0] for x, _, _ in windows)
    assert n == (data.n_val_tokens - 1) // 32 or n == (data.n_val_tokens - 1) // 32 + 1  # every full window
    halves = {src.split("/")[1] for _, _, src in windows}
    assert halves == {"dev", "test"}
    train.train(tiny(data_dir, tmp_path, embedding="kron", max_iters=4, eval_interval=2, lr_decay_iters=4, final_eval=True))
    final = read_metrics(str(tmp_path), "final")
    assert len(final) == 1 and final[0]["step"] == 4
    assert set(final[0]["by_source"]) == {"dev", "test"} and 5 < final[0]["dev_loss"] < 12
    assert final[0]["test_loss"] == pytest.approx(next(iter(final[0]["by_source"]["test"].values())))
