"""Train a GPT arm (bpe_tied, kron, bpe_untied) nanoGPT-style.

    python train.py config/kron_cpu.py                          # CPU or one GPU, plain process
    python train.py config/kron_124m.py --seed=1338              # overrides after the config file
    torchrun --standalone --nproc_per_node=8 train.py config/kron_124m.py          # one node, 8 GPUs
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d \
             --rdzv_endpoint=HOST:29500 train.py config/kron_124m.py              # several nodes

Batches are a function of (seed, step), so arms with the same seed see the same data in the same
order, and `init_from='resume'` continues a run with exactly the losses it would have had.
Checkpoints (<out_dir>/ckpt.pt) are written atomically at every evaluation, at the end, and on
SIGINT/SIGTERM; metrics go to <out_dir>/metrics.jsonl and, with wandb_log=True, to wandb.
"""
import math
import os
import signal
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch

from configurator import ConfigError, load_config
from data.shards import TokenData
from model import GPT, GPTConfig, model_args_of, plain_state_dict
from runlog import MetricsLog
from tokenizer import get_tokenizer

DEFAULTS = dict(
    # I/O
    out_dir="out", eval_interval=250, log_interval=10, eval_iters=20, eval_only=False,
    init_from="scratch",  # 'scratch' | 'resume' (needs <out_dir>/ckpt.pt) | 'auto' (resume if present)
    # wandb
    wandb_log=False, wandb_project="kronecker-embeddings", wandb_run_name=None, wandb_group=None,
    # data
    data_dir="data/pydoc", batch_size=12, block_size=1024, gradient_accumulation_steps=1,
    # model
    embedding="bpe_tied", n_layer=12, n_head=12, n_embd=768, dropout=0.0, bias=True, vocab_size=50304,
    tokenizer="gpt2", kron_pos_dim=16, kron_mode="fused", kron_byte_source="exact",
    kron_length_norm=True, kron_z_norm=True,
    # optimiser: AdamW, linear warmup then cosine decay to min_lr at lr_decay_iters
    learning_rate=6e-4, max_iters=4768, weight_decay=0.1, beta1=0.9, beta2=0.95, grad_clip=1.0,
    decay_lr=True, warmup_iters=175, lr_decay_iters=None, min_lr=6e-5,
    # system
    device="auto", dtype="auto", compile=False, backend="auto", seed=1337, num_threads=None, peak_flops=None,
)
CKPT = "ckpt.pt"
MODEL_KEYS = ("embedding", "n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias", "tokenizer",
              "kron_pos_dim", "kron_byte_source", "kron_length_norm", "kron_z_norm")
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def get_lr(it, c):
    """Linear warmup to learning_rate over warmup_iters, cosine decay to min_lr at lr_decay_iters."""
    if not c["decay_lr"]:
        return c["learning_rate"]
    if it < c["warmup_iters"]:
        return c["learning_rate"] * (it + 1) / (c["warmup_iters"] + 1)
    decay_iters = c["lr_decay_iters"] or c["max_iters"]
    if it >= decay_iters:
        return c["min_lr"]
    ratio = (it - c["warmup_iters"]) / max(1, decay_iters - c["warmup_iters"])
    return c["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c["learning_rate"] - c["min_lr"])


def save_checkpoint(path, state):
    """torch.save to a temp file, then an atomic rename: a failed write (disk full, a kill) leaves
    the previous checkpoint as it was."""
    tmp = path + ".tmp"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise RuntimeError(f"writing checkpoint {path} failed ({e}); the previous checkpoint is intact") from e
        raise


@torch.no_grad()
def norm_stats(model):
    """Norm-drift statistics. BPE arms: std and mean row L2 norm of the input table. Kron: std(W)*sqrt(D)
    of the projection. All arms: RMS and mean row norm of the embeddings the input layer produces over
    the real vocabulary, and std / mean row norm of the output head."""
    n_real = get_tokenizer(model.config.tokenizer).n_vocab
    wte, out = model.transformer.wte, {}
    if model.config.embedding == "kron":
        out["proj_std_sqrtD"] = (wte.weight.float().std() * math.sqrt(wte.D)).item()
        emb = wte.all_embeddings()[:n_real].float()
    else:
        emb = wte.weight[:n_real].float()
        out["wte_std"] = emb.std().item()
        out["wte_row_norm"] = emb.norm(dim=1).mean().item()
    out["emb_rms"] = emb.pow(2).mean().sqrt().item()
    out["emb_row_norm"] = emb.norm(dim=1).mean().item()
    head = model.lm_head.weight[:n_real].float()
    out["head_std"] = head.std().item()
    out["head_row_norm"] = head.norm(dim=1).mean().item()
    return out


class Trainer:
    def __init__(self, c):
        c = dict(c)
        try:  # out_dir may name other settings, e.g. "out/124m-{embedding}-s{seed}"
            c["out_dir"] = c["out_dir"].format(**c)
        except (KeyError, IndexError) as e:
            raise ConfigError(f"out_dir={c['out_dir']!r} names an unknown setting {e}") from None
        self.c = c
        self.setup_distributed()
        self.setup_device()
        self.stop_signal = None

    # --- setup

    def setup_distributed(self):
        c = self.c
        self.ddp = int(os.environ.get("RANK", -1)) != -1
        if self.ddp:
            import torch.distributed as dist
            backend = c["backend"] if c["backend"] != "auto" else ("nccl" if torch.cuda.is_available() and c["device"] != "cpu" else "gloo")
            dist.init_process_group(backend=backend)
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        else:
            self.rank, self.world, self.local_rank = 0, 1, 0
        self.master = self.rank == 0
        if c["gradient_accumulation_steps"] % self.world:
            raise ConfigError(f"gradient_accumulation_steps={c['gradient_accumulation_steps']} must be divisible by "
                              f"the number of processes ({self.world})")
        self.accum = c["gradient_accumulation_steps"] // self.world

    def setup_device(self):
        c = self.c
        device = c["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and self.ddp:
            device = f"cuda:{self.local_rank}"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ConfigError(f"device={device!r} but CUDA is not available")
            torch.cuda.set_device(device)
        self.device, self.device_type = device, "cuda" if device.startswith("cuda") else "cpu"
        dtype = c["dtype"]
        if dtype == "auto":
            dtype = "bfloat16" if self.device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype={dtype!r}: expected 'auto', 'float32', 'bfloat16' or 'float16'")
        self.dtype = dtype
        ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.autocast = nullcontext() if dtype == "float32" else torch.autocast(device_type=self.device_type, dtype=ptdtype)
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=(dtype == "float16"))
        if c["num_threads"]:
            torch.set_num_threads(c["num_threads"])
        if self.device_type == "cpu":
            keep_freed_memory()
        if self.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def build(self):
        c = self.c
        mcfg = GPTConfig.from_dict(c)  # the model's settings are the config keys named like GPTConfig's fields
        self.data = TokenData(c["data_dir"], c["block_size"], c["vocab_size"])
        self.val = self.data.val_batches(c["batch_size"], c["eval_iters"])
        ckpt_path = os.path.join(c["out_dir"], CKPT)
        resume = c["init_from"] == "resume" or (c["init_from"] == "auto" and os.path.exists(ckpt_path))
        if c["init_from"] not in ("scratch", "resume", "auto"):
            raise ConfigError(f"init_from={c['init_from']!r}: expected 'scratch', 'resume' or 'auto'")
        if c["init_from"] == "scratch" and os.path.exists(ckpt_path) and not c["eval_only"]:
            raise ConfigError(f"{ckpt_path} exists; use --init_from=resume to continue it, or another out_dir")
        torch.manual_seed(c["seed"])
        self.model = GPT(mcfg).to(self.device)
        self.optimizer = self.configure_optimizer()
        self.iter_num, self.best_val, self.wandb_id, ckpt = 0, float("inf"), None, None
        if resume:
            ckpt = self.load_resume(ckpt_path, mcfg)
        if self.master:
            print(self.model.describe())
            print(f"data: {self.data.n_train_tokens:,} train / {self.data.n_val_tokens:,} val tokens in {c['data_dir']}; "
                  f"{len(self.val)} val batches of {c['batch_size']}x{c['block_size']}")
            self.log = MetricsLog(c["out_dir"], keep_until_step=self.iter_num if ckpt else None)
            self.log.write("config", step=self.iter_num, config=c, params=self.model.param_groups_by_role(),
                           world_size=self.world, device=self.device, dtype=self.dtype, resumed=bool(ckpt),
                           n_train_tokens=self.data.n_train_tokens, n_val_tokens=self.data.n_val_tokens)
        self.raw_model = self.model
        if c["compile"]:
            self.model = torch.compile(self.model)
        if self.ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP
            dev = [self.local_rank] if self.device_type == "cuda" else None
            self.model = DDP(self.model, device_ids=dev, broadcast_buffers=False)  # buffers are deterministic
        self.tokens_per_step = c["batch_size"] * c["block_size"] * c["gradient_accumulation_steps"]
        self.flops_per_token = self.raw_model.flops_per_token()
        self.peak_flops = c["peak_flops"] or self.detect_peak_flops()

    def configure_optimizer(self):
        c = self.c
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": c["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
        fused = self.device_type == "cuda"
        return torch.optim.AdamW(groups, lr=c["learning_rate"], betas=(c["beta1"], c["beta2"]), fused=fused)

    def load_resume(self, path, mcfg):
        if not os.path.exists(path):
            raise FileNotFoundError(f"init_from='resume' but there is no checkpoint at {path}")
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        theirs, ours = ckpt["model_args"], model_args_of(mcfg)
        diff = {k: (theirs.get(k), ours[k]) for k in MODEL_KEYS if theirs.get(k) != ours[k]}
        if diff:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"checkpoint {path} is of another arm or shape ({detail}); "
                              f"resume it with its own config or use another out_dir")
        self.model.load_state_dict(plain_state_dict(ckpt["model"]))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.iter_num, self.best_val = ckpt["iter_num"], ckpt["best_val_loss"]
        self.wandb_id = ckpt.get("wandb_id")
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        if self.device_type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"].cpu())
        np.random.set_state(rng["numpy"])
        if self.master:
            print(f"resumed {path} at step {self.iter_num}")
        return ckpt

    def detect_peak_flops(self):
        if self.device_type != "cuda" or self.dtype == "float32":
            return None
        name = torch.cuda.get_device_name()
        return next((f for k, f in PEAK_BF16_FLOPS.items() if k in name), None)

    # --- pieces of a step

    def all_reduce(self, values, op="sum"):
        if not self.ddp:
            return values
        import torch.distributed as dist
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return t.tolist()

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        total, count = 0.0, 0
        for i, (x, y) in enumerate(self.val):
            if i % self.world != self.rank:
                continue
            x, y = (torch.from_numpy(a).to(self.device) for a in (x, y))
            with self.autocast:
                _, loss = self.model(x, y)
            total, count = total + loss.item(), count + 1
        total, count = self.all_reduce([total, count])
        self.model.train()
        return total / count

    def checkpoint_state(self, finished=False):
        return {
            "model": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "model_args": model_args_of(self.raw_model.config), "config": self.c,
            "iter_num": self.iter_num, "best_val_loss": self.best_val, "finished": finished,
            "wandb_id": self.wandb_id,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "cuda": torch.cuda.get_rng_state() if self.device_type == "cuda" else None},
        }

    def save(self, finished=False):
        if self.master:
            save_checkpoint(os.path.join(self.c["out_dir"], CKPT), self.checkpoint_state(finished))

    def install_signal_handlers(self):
        def handler(signum, frame):
            if self.stop_signal is not None:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.stop_signal = signal.Signals(signum).name
            if self.master:
                print(f"\n{self.stop_signal}: finishing this step, writing a checkpoint and exiting "
                      f"(press Ctrl-C again to abort without one)", flush=True)
        self.previous_handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def init_wandb(self):
        import wandb
        c = self.c
        mode = os.environ.get("WANDB_MODE") or ("online" if _wandb_logged_in() else "offline")
        self.wandb_id = self.wandb_id or wandb.util.generate_id()
        self.wandb = wandb.init(project=c["wandb_project"], group=c["wandb_group"] or c["embedding"],
                                name=c["wandb_run_name"] or f"{c['embedding']}-s{c['seed']}", config=c,
                                dir=c["out_dir"], mode=mode, id=self.wandb_id, resume="allow")
        if mode == "offline":
            print(f"wandb: offline mode (no login found); upload later with `wandb sync {c['out_dir']}/wandb/offline-run-*`")

    # --- the loop

    def run(self):
        self.build()
        self.wandb = None
        if self.master and self.c["wandb_log"]:
            self.init_wandb()
        self.install_signal_handlers()
        try:
            self.loop()
        finally:
            for s, h in self.previous_handlers.items():
                signal.signal(s, h)
            if self.wandb:
                self.wandb.finish()
            if self.ddp:
                import torch.distributed as dist
                dist.destroy_process_group()
        return self

    def loop(self):
        c = self.c
        model, t0 = self.model, time.time()
        while True:
            lr = get_lr(self.iter_num, c)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            if self.iter_num % c["eval_interval"] == 0 or self.iter_num >= c["max_iters"] or c["eval_only"]:
                self.eval_and_checkpoint(finished=self.iter_num >= c["max_iters"])
                if self.iter_num >= c["max_iters"] or c["eval_only"]:
                    break
                t0 = time.time()  # step times exclude evaluation
            if self.all_reduce([1.0 if self.stop_signal else 0.0], op="max")[0] > 0:
                self.save()
                if self.master:
                    print(f"stopped by {self.stop_signal or 'another rank'} at step {self.iter_num}; checkpoint written "
                          f"to {os.path.join(c['out_dir'], CKPT)}; continue with --init_from=resume")
                break
            loss_sum = 0.0
            for micro in range(self.accum):
                x, y = self.data.train_batch(c["batch_size"], c["seed"], self.iter_num, self.rank * self.accum + micro)
                x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
                if self.ddp:
                    model.require_backward_grad_sync = micro == self.accum - 1
                with self.autocast:
                    _, loss = model(x, y)
                    loss = loss / self.accum
                loss_sum += loss.item()
                self.scaler.scale(loss).backward()
            loss_mean = self.all_reduce([loss_sum])[0] / self.world
            if not math.isfinite(loss_mean):
                self.optimizer.zero_grad(set_to_none=True)
                where = os.path.join(c["out_dir"], CKPT)
                raise FloatingPointError(f"training loss is {loss_mean} at step {self.iter_num}; stopping. The last good "
                                         f"checkpoint ({where}) is left as it was.")
            if c["grad_clip"] > 0:
                self.scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"]).item()
            else:
                grad_norm = float("nan")
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.device_type == "cuda":
                torch.cuda.synchronize()
            t1 = time.time()
            dt, t0 = t1 - t0, t1
            self.log_step(loss_mean, lr, grad_norm, dt)
            self.iter_num += 1

    def log_step(self, loss, lr, grad_norm, dt):
        if not self.master:
            return
        tps = self.tokens_per_step / dt
        mfu = self.flops_per_token * tps / self.peak_flops if self.peak_flops else None
        rec = dict(step=self.iter_num, loss=loss, lr=lr, grad_norm=grad_norm, dt_ms=dt * 1000, tokens_per_s=tps, mfu=mfu,
                   tokens=(self.iter_num + 1) * self.tokens_per_step)
        if self.device_type == "cuda":
            rec["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        self.log.write("train", **rec)
        if self.wandb:
            self.wandb.log({f"train/{k}": v for k, v in rec.items() if k != "step" and v is not None}, step=self.iter_num)
        if self.iter_num % self.c["log_interval"] == 0:
            mfu_s = f" | mfu {100 * mfu:.1f}%" if mfu is not None else ""
            print(f"step {self.iter_num:>6}/{self.c['max_iters']} | loss {loss:.4f} | lr {lr:.2e} | "
                  f"{dt * 1000:.0f} ms | {tps:,.0f} tok/s{mfu_s}", flush=True)

    def eval_and_checkpoint(self, finished):
        val_loss = self.evaluate()
        if self.master:
            norms = norm_stats(self.raw_model)
            self.log.write("eval", step=self.iter_num, val_loss=val_loss, **norms)
            if self.wandb:
                self.wandb.log({"val/loss": val_loss, **{f"norms/{k}": v for k, v in norms.items()}}, step=self.iter_num)
            drift = " | ".join(f"{k} {v:.4g}" for k, v in norms.items())
            print(f"eval step {self.iter_num}: val loss {val_loss:.4f} | {drift}", flush=True)
        if not math.isfinite(val_loss):
            raise FloatingPointError(f"validation loss is {val_loss} at step {self.iter_num}; not writing a checkpoint")
        self.best_val = min(self.best_val, val_loss)
        self.last_val = val_loss
        if not self.c["eval_only"]:
            self.save(finished=finished)
            if finished and self.master:  # a small marker, so tools can see a finished run without loading ckpt.pt
                import json
                with open(os.path.join(self.c["out_dir"], "DONE.json"), "w") as f:
                    json.dump({"step": self.iter_num, "val_loss": val_loss, "best_val_loss": self.best_val}, f)


def keep_freed_memory():
    """glibc hands big freed blocks (the ~800 MB logits of a CPU step at V=50304) back to the OS and
    page-faults them in again every step; keeping them in the heap roughly doubles CPU throughput."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-4, 0)  # M_MMAP_MAX: serve large allocations from the heap
            libc.mallopt(-1, 2 ** 31 - 1)  # M_TRIM_THRESHOLD: do not give the heap back
        except OSError:
            pass


def _wandb_logged_in():
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = os.path.expanduser("~/.netrc")
    return os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read()


def main(argv=None):
    try:
        cfg = load_config(DEFAULTS, sys.argv[1:] if argv is None else argv)
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    return Trainer(cfg).run()


if __name__ == "__main__":
    main()
