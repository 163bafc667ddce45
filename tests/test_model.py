"""model.py: the GPT around an arm: paired initialisation, generation, one compiled graph, MFU."""

import pytest
import torch

import checkpoint
from model import GPT, GPTConfig


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


@pytest.mark.parametrize("arm", ["bpe_tied", "bpe_untied", "kron", "kron_tied"])
def test_every_arm_compiles_as_one_graph_on_cpu(arm):
    """torch.compile(fullgraph=True) accepts every arm (no graph break, e.g. from a
    host-side id check), and the compiled loss and gradients equal eager's. aot_eager traces the same
    graphs as inductor without its C++ build, which keeps the suite fast."""
    from model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, embedding=arm))
    x, y = torch.randint(0, 50257, (2, 16)), torch.randint(0, 50257, (2, 16))
    _, eager = model(x, y)
    eager.backward()
    g_eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    torch._dynamo.reset()
    _, compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(x, y)
    compiled.backward()
    assert compiled.item() == pytest.approx(eager.item(), abs=1e-5)
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(model.parameters(), g_eager))


def test_generation_top_k_1_is_greedy_and_padding_never_sampled(tiny_checkpoints):
    model, _ = checkpoint.load_model(tiny_checkpoints["kron"])
    prompt = torch.tensor([[464, 1573, 318]])
    greedy = model.generate(prompt, 6, temperature=0.0)
    topk1 = model.generate(prompt, 6, temperature=0.8, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(greedy, topk1)
    sampled = model.generate(prompt, 20, temperature=5.0, top_k=50000, generator=torch.Generator().manual_seed(0))
    assert int(sampled.max()) < 50257  # ids past the tokenizer (padding) get no probability


def test_mfu_is_per_gpu_under_data_parallelism():
    from model import GPT, GPTConfig

    with torch.device("meta"):
        m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64))
    one = m.estimate_mfu(tokens_per_s=1e5, peak_flops=1e12, world_size=1)
    assert one == pytest.approx(m.flops_per_token() * 1e5 / 1e12)
    assert m.estimate_mfu(tokens_per_s=2e5, peak_flops=1e12, world_size=2) == pytest.approx(one)  # 2 GPUs, 2x tokens
