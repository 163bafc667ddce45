"""runtime.py and the CUDA path, checked on a CPU: device resolution with torch.cuda mocked, one
process under torchrun without a DDP wrapper, the stop flag's syncs, resume across devices, the
benchmarks' precision settings and Dynamo limits, and the offline GPT-2 files read first."""
import json
import os
import re
import socket

import pytest
import torch

import checkpoint
import runtime
import train
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Stop(Exception):
    """Raised by the mocked set_device: the test has what it came for."""


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda as one machine with GPUs would present it; set_device records what it was given."""
    calls = []

    def set_device(device):
        calls.append(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(runtime, "use_fast_matmul", lambda device_type: None)  # leave the process's flags alone
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: None)
    return calls


def _index_of(device):
    return torch._utils._get_device_index(device, optional=False)  # what torch.cuda.set_device requires


@pytest.mark.parametrize("setting, env, expected", [
    ("cuda", {}, "cuda:0"),              # one GPU, plain process: the README's one-GPU command
    ("auto", {}, "cuda:0"),
    ("cuda:1", {}, "cuda:1"),
    ("cuda", {"RANK": "3", "LOCAL_RANK": "3", "WORLD_SIZE": "4"}, "cuda:3"),  # torchrun: this process's GPU
    ("cuda:2", {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda:2"),
])
def test_cuda_device_always_has_an_index(fake_cuda, monkeypatch, setting, env, expected):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if env:  # a torchrun group of several processes, without one
        import torch.distributed as dist
        monkeypatch.setattr(dist, "init_process_group", lambda backend: None)
        monkeypatch.setattr(dist, "get_rank", lambda: int(env["RANK"]))
        monkeypatch.setattr(dist, "get_world_size", lambda: int(env["WORLD_SIZE"]))
    rt = runtime.Runtime(setting, "auto")
    assert rt.device == expected and rt.device_type == "cuda" and rt.dtype == "bfloat16"
    assert len(fake_cuda) == 1 and _index_of(fake_cuda[0]) == int(expected.split(":")[1])


def test_cpu_never_touches_cuda(fake_cuda):
    rt = runtime.Runtime("cpu", "auto")
    assert (rt.device, rt.dtype, fake_cuda) == ("cpu", "float32", [])
    with pytest.raises(runtime.DeviceError, match="device='cuda' but CUDA is not available"):
        runtime.resolve_device("cuda", cuda_available=False)


def test_readme_one_gpu_command_reaches_an_indexed_cuda_device(fake_cuda, monkeypatch):
    """The README's command for the paper's run on one GPU, run as written up to the device choice."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    line = next(ln for ln in readme.splitlines() if "the paper's setting, one GPU" in ln)
    argv = re.match(r"\s*python train\.py (.*?)\s+#", line).group(1).split()
    assert argv[0] == "config/kron_124m.py"
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(ROOT)

    def set_device(device):
        fake_cuda.append(device)
        raise _Stop
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    with pytest.raises(_Stop):
        train.main(argv)
    assert _index_of(fake_cuda[0]) == 0


def test_one_process_under_torchrun_has_no_ddp_wrapper(monkeypatch):
    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    rt = runtime.Runtime("cpu", "float32", backend="gloo")
    try:
        assert rt.distributed and not rt.data_parallel and dist.is_initialized()
        model = torch.nn.Linear(2, 2)
        assert rt.wrap(model, compile=False) is model
        assert rt.all_reduce([1.0, 2.0]) == [1.0, 2.0]
    finally:
        rt.close()


def test_stop_flag_is_not_synchronised_every_step(data_dir, tmp_path, monkeypatch):
    """Alone, the stop check reads a flag; under DDP it all-reduces on log steps only."""
    calls = []
    real = runtime.Runtime.all_reduce

    def counting(self, values, op="sum"):
        calls.append(op)
        return real(self, values, op)
    monkeypatch.setattr(runtime.Runtime, "all_reduce", counting)
    t = train.train(tiny_config(data_dir, tmp_path / "run", max_iters=12, log_interval=4))
    assert "max" not in calls  # the single process never all-reduced the stop flag
    t.rt.data_parallel = True
    monkeypatch.setattr(runtime.Runtime, "all_reduce", lambda self, v, op="sum": calls.append(op) or [0.0])
    calls.clear()
    for t.iter_num in range(12):
        assert not train.stop_requested(t, train.StopGuard(verbose=False))
    assert calls == ["max"] * 3  # steps 0, 4, 8


def _adamw_state(fused, steps=2):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4, 3))
    opt = torch.optim.AdamW([p], lr=1e-2, fused=fused)
    for _ in range(steps):
        p.grad = torch.randn(4, 3)
        opt.step()
    return p, opt


def test_restore_optimizer_keeps_this_devices_choices():
    """A fused save (as CUDA writes it) restored into an unfused optimizer stays unfused, and back."""
    _, saved_fused = _adamw_state(fused=True)
    p, opt = _adamw_state(fused=False, steps=0)
    checkpoint.restore_optimizer(opt, saved_fused.state_dict())
    assert not opt.param_groups[0]["fused"]
    assert opt.state[p]["step"].device.type == "cpu" and float(opt.state[p]["step"]) == 2.0
    _, saved_plain = _adamw_state(fused=False)
    p, opt = _adamw_state(fused=True, steps=0)
    checkpoint.restore_optimizer(opt, saved_plain.state_dict())
    assert opt.param_groups[0]["fused"] and opt.state[p]["step"].dtype == torch.float32
    p.grad = torch.randn(4, 3)
    opt.step()  # runs fused from the restored moments
    assert float(opt.state[p]["step"]) == 3.0


def test_resume_of_a_cuda_style_checkpoint_on_cpu(data_dir, tmp_path):
    """A checkpoint whose optimizer says fused (CUDA's choice) resumes on CPU unfused, exactly."""
    cfg = tiny_config(data_dir, tmp_path / "run", max_iters=6, eval_interval=3)
    full = train.train(tiny_config(data_dir, tmp_path / "full", max_iters=6, eval_interval=3))
    train.train(dict(cfg, max_iters=3))
    path = tmp_path / "run" / "ckpt.pt"
    ckpt = checkpoint.load(str(path))
    for g in ckpt["optimizer"]["param_groups"]:
        g["fused"] = True
    torch.save(ckpt, path)
    t = train.train(dict(cfg, init_from="resume"))
    assert all(not g["fused"] for g in t.optimizer.param_groups)
    losses = [json.loads(ln) for ln in open(tmp_path / "run" / "metrics.jsonl")]
    ref = [json.loads(ln) for ln in open(tmp_path / "full" / "metrics.jsonl")]
    val = {r["step"]: r["val_loss"] for r in losses if r.get("kind") == "eval"}
    ref_val = {r["step"]: r["val_loss"] for r in ref if r.get("kind") == "eval"}
    assert val[6] == pytest.approx(ref_val[6], abs=1e-6) and full.iter_num == 6


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


def test_gpt2_bpe_dir_is_read_without_trying_the_network(monkeypatch):
    import tiktoken

    import tokenizer
    monkeypatch.setenv("GPT2_BPE_DIR", tokenizer.offline_gpt2_folder())

    def no_network(name):
        raise AssertionError("tiktoken.get_encoding tried first")
    monkeypatch.setattr(tiktoken, "get_encoding", no_network)
    assert tokenizer._load_tiktoken("gpt2").encode_ordinary("Hello world") == [15496, 995]


def test_124m_configs_leave_wandb_off_where_it_is_not_installed(monkeypatch, capsys):
    import importlib.util

    from configurator import load_config
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    monkeypatch.delenv("RANK", raising=False)
    assert load_config([os.path.join(ROOT, "config/kron_124m.py")])["wandb_log"] is False
    assert capsys.readouterr().out.count("wandb is not installed") == 1
    with pytest.raises(train.ConfigError, match="wandb_log=True but wandb is not installed"):
        train.train(dict(train.DEFAULTS, wandb_log=True, device="cpu"))


def test_benchmarks_use_trainings_precision_and_steps_1_works(tmp_path, monkeypatch):
    """bench_train and bench_embed take train.py's flags (runtime.use_fast_matmul) and autocast, and
    bench_train runs with --steps 1."""
    from scripts import bench_embed, bench_train
    seen = []
    for mod in (bench_train, bench_embed):
        monkeypatch.setattr(mod, "use_fast_matmul", lambda device_type, mod=mod: seen.append((mod.__name__, device_type)))
    bench_train.main(["--device", "cpu", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
                      "--batch-size", "2", "--steps", "1", "--warmup", "0", "--arms", "bpe_tied", "kron",
                      "--out", str(tmp_path / "train.json")])
    assert json.load(open(tmp_path / "train.json"))["meta"]["dtype"] == "float32"
    bench_embed.main(["--devices", "cpu", "--shapes", "tiny", "--impls", "fused", "cached", "--no-tied-head",
                      "--dtype", "bfloat16", "--out", str(tmp_path / "embed.json")])
    res = json.load(open(tmp_path / "embed.json"))
    assert res["meta"]["dtype"] == {"cpu": "bfloat16"}
    assert seen == [("scripts.bench_train", "cpu"), ("scripts.bench_embed", "cpu")]


def test_bench_train_variants_never_fall_back_to_eager():
    """Past Dynamo's recompile limit a compiled function silently runs eagerly; bench_train raises the
    limit to cover its variants and makes hitting it an error."""
    import torch._dynamo
    import torch._dynamo.config as dynamo_config

    from scripts import bench_train
    compiled = []

    def counting_backend(gm, example_inputs):
        compiled.append(gm)
        return gm.forward
    with dynamo_config.patch(recompile_limit=8, fail_on_recompile_limit_hit=False):  # the defaults, restored after
        torch._dynamo.reset()
        assert bench_train.allow_recompiles(3) == 12

        @torch.compile(backend=counting_backend, dynamic=False)
        def f(x):
            return x * 2 + 1
        for n in range(1, 11):  # ten shapes: ten compilations (the default limit, 8, would stop at 8)
            f(torch.ones(n))
        assert len(compiled) == 10
        for n in range(11, 13):
            f(torch.ones(n))
        with pytest.raises(Exception, match="(?i)limit"):
            f(torch.ones(13))
        torch._dynamo.reset()
