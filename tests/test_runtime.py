"""runtime.py and the CUDA path, checked on a CPU: device resolution with torch.cuda mocked, and one
process under torchrun without a DDP wrapper."""

import os
import re
import socket
import subprocess
import sys

import pytest
import torch

import runtime
import train
from tests.conftest import ROOT


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


@pytest.mark.parametrize(
    "setting, env, expected",
    [
        ("cuda", {}, "cuda:0"),  # one GPU, plain process: the README's one-GPU command
        ("auto", {}, "cuda:0"),
        ("cuda:1", {}, "cuda:1"),
        ("cuda", {"RANK": "3", "LOCAL_RANK": "3", "WORLD_SIZE": "4"}, "cuda:3"),  # torchrun: this process's GPU
        ("cuda:2", {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda:2"),
    ],
)
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
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    rt = runtime.Runtime("cpu", "float32", backend="gloo")
    try:
        assert rt.distributed and not rt.data_parallel and dist.is_initialized()
        model = torch.nn.Linear(2, 2)
        assert rt.wrap(model, compile=False) is model
        assert rt.all_reduce([1.0, 2.0]) == [1.0, 2.0]
    finally:
        rt.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc allocator setting")
@pytest.mark.parametrize("keep", [True, False])
def test_cpu_keep_freed_memory_decides_whether_a_freed_block_stays_resident(keep):
    """cpu_keep_freed_memory does what its name says: a freed 400 MB block stays in the process (True,
    the fast default) or goes back to the OS (False). Its own process: the setting is process-wide."""
    code = (
        "import runtime, torch\n"
        f"runtime.Runtime('cpu', 'float32', cpu_keep_freed_memory={keep})\n"
        "import os\nrss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        "before = rss(); x = torch.ones(100_000_000); del x\n"
        "print((rss() - before) / 1e6)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    kept_mb = float(out.stdout.split()[-1])
    assert (kept_mb > 300) if keep else (kept_mb < 50), kept_mb
