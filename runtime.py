"""Where and how a process computes: its place in a torchrun group, its device and its precision.

Everything that differs between a laptop CPU, one GPU and many GPUs is decided here, once, by
train.py's Runtime; the benchmarks take the same precision settings from here (use_fast_matmul,
autocast_for), so their timings measure the arithmetic training runs and their compiled graphs share
inductor's cache with train.py's (its keys include the TF32 flags).
"""

import os
import sys
from contextlib import nullcontext

import numpy as np
import torch

from errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class DeviceError(UserError, ValueError):
    """A device setting this machine cannot honour; the message names it."""


DEVICE_FORMS = "'cpu', 'cuda', 'cuda:N' or 'mps'"


def device_arg(text):
    """argparse `type=` of every tool's --device: a device string of a kind this repository runs on,
    checked before anything is loaded (torch would otherwise fail deep inside a checkpoint's reader
    and blame the file). Whether this machine has it is resolve_device's and the loaders' to say."""
    import argparse
    import re

    if not re.fullmatch(r"cpu|mps|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: expected {DEVICE_FORMS}")
    return text


def resolve_device(device, local_rank=0, distributed=False, cuda_available=None):
    """The concrete device string for a `device` setting: "cpu", "mps", or "cuda:N" (always with an
    index: torch.cuda.set_device("cuda") raises). "auto" is CUDA when there is one; under torchrun a
    bare "cuda" is this process's own GPU, cuda:LOCAL_RANK; an explicit "cuda:N" is kept as given."""
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if device == "auto":
        device = "cuda" if cuda_available else "cpu"
    if device.startswith("cuda"):
        if not cuda_available:
            raise DeviceError(f"device={device!r} but CUDA is not available on this machine (try --device=cpu)")
        if device == "cuda":
            device = f"cuda:{local_rank if distributed else 0}"
    return device


def keep_freed_memory():
    """A CPU speed setting for the whole process (train.py's Runtime and the benchmarks call it first).
    glibc hands big freed blocks (the ~800 MB logits of a CPU step at V=50304) back to the OS and
    page-faults them in again every step; keeping them in the heap roughly doubles CPU throughput. The
    price: resident memory stays near the heap's peak, fragmentation included (cpu_keep_freed_memory)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-4, 0)  # M_MMAP_MAX: serve large allocations from the heap
            libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: do not give the heap back
        except OSError:
            pass


def machine_facts():
    """What a run's numbers may depend on beyond its settings: the CPU model and the instruction set
    torch's CPU kernels chose, the thread count and library versions. Losses are identical where all
    of these are (tests/test_train.py); elsewhere kernels differ by path (attention, log-softmax, MKL's
    matmuls, GELU: scripts/isa_check.py), and so may the last digits."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def use_fast_matmul(device_type):
    """TF32 for fp32 matmuls and convolutions on CUDA (what autocast leaves in fp32); nothing on CPU."""
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast_for(device_type, dtype):
    """The autocast context training runs its forward under: none for float32."""
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=DTYPES[dtype])


def default_dtype(device_type):
    """bfloat16 on a GPU that has it, float32 elsewhere (dtype="auto")."""
    return "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"


class Runtime:
    """This process's rank and world, device, autocast and fp16 scaler (see the module doc).

    `distributed`: a torchrun process group exists; `data_parallel`: there is more than one process
    to average gradients with. One process under torchrun (nproc_per_node=1) keeps the group (for
    NCCL collectives) but no DDP wrapper: a wrapper there only splits the graph into buckets."""

    def __init__(self, device="auto", dtype="auto", num_threads=None, backend="auto", cpu_keep_freed_memory=True):
        self.init_distributed(backend, device)
        self.device = resolve_device(device, self.local_rank, self.distributed)
        self.device_type = self.device.split(":")[0]
        if self.device_type == "cuda":
            torch.cuda.set_device(torch.device(self.device))
        self.dtype = default_dtype(self.device_type) if dtype == "auto" else dtype
        self.autocast = autocast_for(self.device_type, self.dtype)
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=(self.dtype == "float16"))
        if num_threads:
            torch.set_num_threads(num_threads)
        if self.device_type == "cpu" and cpu_keep_freed_memory:
            keep_freed_memory()
        use_fast_matmul(self.device_type)

    def init_distributed(self, backend, device):
        self.distributed = int(os.environ.get("RANK", -1)) != -1
        if self.distributed:
            import torch.distributed as dist

            if backend == "auto":
                backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
            dist.init_process_group(backend=backend)
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        else:
            self.rank, self.world, self.local_rank = 0, 1, 0
        self.master = self.rank == 0
        self.data_parallel = self.distributed and self.world > 1

    def wrap(self, model, compile):
        """The model the loop calls: compiled and/or DDP-wrapped (the raw model stays the caller's)."""
        if compile:
            model = torch.compile(model)
        if self.data_parallel:
            import warnings

            from torch.nn.parallel import DistributedDataParallel as DDP

            with warnings.catch_warnings():  # newer torch deprecates broadcast_buffers, but its replacement still
                warnings.filterwarnings("ignore", message=".*broadcast_buffers")  # syncs at init, and gloo cannot
                # broadcast the Kron layer's int16 byte buffers. They are deterministic: no sync is needed.
                model = DDP(model, device_ids=[self.local_rank] if self.device_type == "cuda" else None, broadcast_buffers=False)
        return model

    def all_reduce(self, values, op="sum"):
        """Sum (or max) a list of floats over the group (one host-device sync); the list itself without one."""
        if not self.data_parallel:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return t.tolist()

    def to_device(self, array):
        t = torch.from_numpy(array)
        if self.device_type == "cuda":  # pinned memory: the copy runs while the GPU computes
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def barrier(self):
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self):
        """Tear the group down while the interpreter is fully alive. Why the gc: a DDP reducer left for
        interpreter shutdown can still hold gloo work whose destruction aborts the process
        ("terminate called without an active exception", seen once on a rank of the 2-process test)."""
        if self.distributed:
            import gc

            import torch.distributed as dist

            gc.collect()
            dist.destroy_process_group()
