"""The study's controls (issue 16): they do what they say, and refuse arms where they mean nothing."""
import pytest
import torch

from configurator import ConfigError, load_config
from kron_embed import KroneckerEmbedding
from model import GPT, GPTConfig


def small(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, **kw))


def test_scale_control_gives_the_untied_table_the_kron_input_rms():
    ids = torch.arange(50257)
    kron_rms = small(embedding="kron").embed(ids).pow(2).mean().sqrt().item()
    ctrl_rms = small(embedding="bpe_untied", input_init_std=1.0).embed(ids).pow(2).mean().sqrt().item()
    plain = small(embedding="bpe_untied")
    assert ctrl_rms == pytest.approx(1.0, abs=0.01) and kron_rms == pytest.approx(1.0, abs=0.1)
    assert plain.embed(ids).std().item() == pytest.approx(0.02, rel=0.02)
    assert small(embedding="bpe_untied", input_init_std=1.0).lm_head.weight.std().item() == pytest.approx(0.02, rel=0.02)


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


def test_kron_scale_multiplies_the_input_embeddings():
    ids = torch.tensor([[5, 6, 7]])
    a, b = small(embedding="kron"), small(embedding="kron", kron_scale=0.02)
    assert torch.allclose(b.embed(ids), 0.02 * a.embed(ids))


@pytest.mark.parametrize("arm,setting,message", [
    ("bpe_tied", "--input_init_std=1.0", "input_init_std=1.0 is the scale control of the untied BPE table"),
    ("kron", "--input_init_std=1.0", "input_init_std=1.0 is the scale control"),
    ("bpe_tied", "--kron_shuffle_seed=3", "kron_shuffle_seed=3 shuffles the Kronecker byte table"),
    ("bpe_untied", "--kron_scale=0.02", "kron_scale=0.02 scales Kronecker embeddings"),
])
def test_a_control_on_an_arm_where_it_means_nothing_is_refused(arm, setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config([f"--embedding={arm}", setting])


def test_study_grid_with_an_unknown_arm_or_setting_or_misplaced_control_is_refused_before_any_run(tmp_path, capsys):
    from scripts import run_study
    root = tmp_path / "study"
    with pytest.raises(SystemExit):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "kron", "bpe_shuffled", "--out-root", str(root)])
    assert "invalid choice: 'bpe_shuffled'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown config key 'kron_shufle_seed'"):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "kron", "--grid", "kron_shufle_seed=1",
                        "--out-root", str(root)])
    with pytest.raises(SystemExit, match="input_init_std=1.0 is the scale control"):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "bpe_tied", "--grid", "input_init_std=1.0",
                        "--out-root", str(root)])
    assert not root.exists()  # nothing started


def relative_change_of_input(steps=20, lr=2e-3, **kw):
    """||W_T - W_0|| / ||W_0|| of the input layer's parameters after AdamW steps on random tokens."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, **kw))
    params = list(m.transformer.wte.parameters())
    start = [p.detach().clone() for p in params]
    opt = m.configure_optimizers(0.1, lr, (0.9, 0.95), "cpu")
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randint(0, 50257, (4, 16), generator=g)
        _, loss = m(x, torch.roll(x, -1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return [((p.detach() - s).norm() / s.norm()).item() for p, s in zip(params, start)], m


def test_the_input_scale_control_keeps_the_tables_learning_dynamics():
    """input_scale=50 gives inputs of the Kron layer's RMS (~1) from a table that still starts at 0.02
    and moves like the ordinary table under AdamW; input_init_std=1.0 gives the RMS but a table that
    hardly moves (a frozen random code)."""
    ids = torch.arange(50257)
    scaled = small(embedding="bpe_untied", input_scale=50.0)
    assert scaled.embed(ids).pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=0.02)
    assert scaled.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=0.02)
    (plain,), _ = relative_change_of_input(embedding="bpe_untied")
    (control,), _ = relative_change_of_input(embedding="bpe_untied", input_scale=50.0)
    (frozen,), _ = relative_change_of_input(embedding="bpe_untied", input_init_std=1.0)
    assert 0.5 < control / plain < 2.0
    assert frozen < plain / 10


def test_the_low_rank_table_matches_the_kron_projections_parameters_and_learns():
    for shape in (dict(n_layer=4, n_head=4, n_embd=128, block_size=256), dict()):  # the CPU study's and 124M
        with torch.device("meta"):
            low = GPT(GPTConfig(embedding="bpe_lowrank", **shape)).param_groups_by_role()["input"]
            kron = GPT(GPTConfig(embedding="kron", **shape)).param_groups_by_role()["input"]
        assert abs(low - kron) / kron < 0.05
    m = small(embedding="bpe_lowrank")
    assert m.embed(torch.arange(50257)).std().item() == pytest.approx(0.02, rel=0.25)  # rank 3 here: a noisy product
    changes, _ = relative_change_of_input(embedding="bpe_lowrank")
    (plain,), _ = relative_change_of_input(embedding="bpe_untied")
    assert all(c > plain / 10 for c in changes)  # both factors learn; neither is frozen
    with pytest.raises(ValueError, match="lowrank_rank=8 is the rank of the factorised table"):
        GPTConfig(embedding="bpe_untied", lowrank_rank=8)


def test_paired_initialisation_gives_every_arm_the_same_body_and_head():
    def body_and_head(arm, paired):
        torch.manual_seed(0)
        m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, embedding=arm))
        if paired:
            m.paired_init_(1337)
        body = {n: p.detach().clone() for n, p in m.named_parameters() if not n.startswith(("transformer.wte.", "lm_head."))}
        return body, m.lm_head.weight.detach().clone() if hasattr(m.lm_head, "weight") else None
    arms = ("kron", "bpe_untied", "bpe_lowrank", "bpe_tied", "kron_tied")
    paired = {a: body_and_head(a, True) for a in arms}
    unpaired = {a: body_and_head(a, False) for a in arms}
    for a in arms[1:]:
        assert all(torch.equal(paired[a][0][n], paired["kron"][0][n]) for n in paired["kron"][0])
    for a in ("bpe_untied", "bpe_lowrank"):
        assert torch.equal(paired[a][1], paired["kron"][1])  # the own V x d heads agree too
    differ = [n for n in unpaired["kron"][0] if not torch.equal(unpaired["kron"][0][n], unpaired["bpe_untied"][0][n])]
    assert differ  # without it the body depends on the input layer's draws (the kept studies' pairing: data only)
    assert torch.equal(body_and_head("kron", True)[0]["transformer.wpe.weight"], paired["kron"][0]["transformer.wpe.weight"])


def test_train_py_applies_paired_initialisation(data_dir, tmp_path):
    import train
    from tests.conftest import tiny_config
    models = {arm: train.train(tiny_config(data_dir, tmp_path / arm, embedding=arm, max_iters=0, paired_init=True)).model
              for arm in ("kron", "bpe_untied")}
    a, b = (dict(m.named_parameters()) for m in models.values())
    assert torch.equal(a["transformer.h.0.attn.c_attn.weight"], b["transformer.h.0.attn.c_attn.weight"])
    assert torch.equal(a["lm_head.weight"], b["lm_head.weight"])
