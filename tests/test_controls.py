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
