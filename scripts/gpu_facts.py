"""The machine a GPU measurement was taken on, and its measured matmul ceiling.

    python -m scripts.gpu_facts --out device.json             # on a GPU: bf16 8192^3 matmuls
    python -m scripts.gpu_facts --size 256 --out device.json  # anywhere (CPU: fp32), a smoke check

Records the GPU's name, driver, memory, torch and CUDA versions, the datasheet bf16 peak this repo
uses for MFU (model.peak_flops_of), and the TFLOP/s of back-to-back square matmuls (2 n^3 FLOPs
each; median of --repeats timed batches after warm-up): the practical ceiling that an MFU figure can
be read against.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.gpu_facts", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import torch

from errors import run_cli
from model import peak_flops_of
from runtime import use_fast_matmul

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nvidia_smi():
    """{name, driver_version, memory_total} from nvidia-smi, or {} where there is none."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    name, driver, memory = (v.strip() for v in out.splitlines()[0].split(","))
    return {"name": name, "driver_version": driver, "memory_total": memory}


def matmul_tflops(n, device, dtype, repeats=5, per_batch=10):
    """Median TFLOP/s of `per_batch` back-to-back n x n x n matmuls, over `repeats` timed batches."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(2):  # warm-up: cuBLAS picks its kernel
        a @ b
    sync()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(per_batch):
            a @ b
        sync()
        rates.append(2 * n**3 * per_batch / (time.perf_counter() - t) / 1e12)
    return statistics.median(rates)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=8192, help="matmul side n (n^3 multiply-adds)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.size < 1 or args.repeats < 1:
        p.error(f"--size {args.size} and --repeats {args.repeats}: expected integers >= 1")
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    use_fast_matmul(device)
    facts = {
        "device": device,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        **nvidia_smi(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "matmul": {"n": args.size, "dtype": str(dtype).removeprefix("torch.")},
    }
    peak = peak_flops_of(facts["gpu"]) if cuda else None
    facts["datasheet_peak_tflops"] = peak / 1e12 if peak else None
    facts["matmul"]["tflops"] = matmul_tflops(args.size, device, dtype, args.repeats)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(facts, f, indent=1)
    print(json.dumps(facts, indent=1))
    return facts


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
