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
import importlib.util
import math
import os
import signal
import sys
import time
import uuid
from dataclasses import replace

import torch

import checkpoint
from configurator import DEFAULTS, ConfigError, TrainConfig, load_config  # noqa: F401 (DEFAULTS: re-exported)
from data.shards import TokenData, data_fingerprint
from errors import run_cli
from model import GPT, GPTConfig, approx_param_count, peak_flops_of
from runlog import RunLock, RunLogger
from runtime import Runtime
from step import TrainStep

CPU_STEP_LIMIT_S = 60  # a config whose estimated CPU step is longer is called GPU-sized
CPU_FLOPS = 1e11       # an optimistic CPU (fp32, a few cores), for that estimate only


def get_lr(it, c):
    """Linear warmup to learning_rate over warmup_iters, cosine decay to min_lr at lr_decay_iters."""
    if not c.decay_lr:
        return c.learning_rate
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    decay_iters = c.lr_decay_iters or c.max_iters
    if it >= decay_iters:
        return c.min_lr
    ratio = (it - c.warmup_iters) / max(1, decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.learning_rate - c.min_lr)


class StopGuard:
    """SIGINT/SIGTERM ask the loop to finish its step, checkpoint and exit; a second Ctrl-C aborts."""

    def __init__(self, verbose):
        self.signal, self.verbose, self.previous = None, verbose, {}

    def __enter__(self):
        def handler(signum, frame):
            if self.signal is not None:
                raise KeyboardInterrupt
            self.signal = signal.Signals(signum).name
            if self.verbose:
                print(f"\n{self.signal}: finishing this step, writing a checkpoint and exiting "
                      f"(press Ctrl-C again to abort without one)", flush=True)
        self.previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)


class Trainer:
    def __init__(self, c):
        """c: a TrainConfig, or a {key: value} dict of settings (missing ones take their defaults)."""
        c = c if isinstance(c, TrainConfig) else TrainConfig.from_dict(c)
        try:  # out_dir may name other settings, e.g. "out/124m-{embedding}-s{seed}"
            c = replace(c, out_dir=c.out_dir.format(**c.to_dict()))
        except (KeyError, IndexError) as e:
            raise ConfigError(f"out_dir={c.out_dir!r} names an unknown setting {e}") from None
        if c.wandb_log and importlib.util.find_spec("wandb") is None:
            raise ConfigError("wandb_log=True but wandb is not installed: `pip install wandb`, or pass --wandb_log=False")
        self.c = c
        self.rt = Runtime(c.device, c.dtype, c.num_threads, c.backend)
        if c.gradient_accumulation_steps % self.rt.world:
            raise ConfigError(f"gradient_accumulation_steps={c.gradient_accumulation_steps} must be divisible by "
                              f"the number of processes ({self.rt.world}); the CPU configs use 4 (1, 2 or 4 processes)")
        self.accum = c.gradient_accumulation_steps // self.rt.world
        self.master = self.rt.master
        self.stop = StopGuard(self.master)
        self.lock, self.log, self.finished_before, self.last_val, self.val_by_source = None, None, False, None, None
        self.last_val_step, self.created_out_dir = None, False
        self.pending = []  # (step, loss, grad_norm, lr) on device, read back at the next log step

    # --- setup

    def build(self):
        """Data, model and optimizer; the run's folder is claimed (lock) before anything is written."""
        c = self.c
        ckpt_path, _ = checkpoint.paths(c.out_dir)
        has_ckpt = os.path.exists(ckpt_path)
        if c.eval_only and not has_ckpt:
            raise ConfigError(f"eval_only=True needs a checkpoint to evaluate, and {c.out_dir!r} has no {checkpoint.CKPT_NAME}")
        if c.init_from == "resume" and not has_ckpt:
            raise ConfigError(f"init_from='resume' but there is no checkpoint at {ckpt_path}")
        if c.init_from == "scratch" and has_ckpt and not c.eval_only:
            raise ConfigError(f"{ckpt_path} exists; use --init_from=resume to continue it, or another out_dir")
        cfg = GPTConfig.from_dict(c.to_dict())
        self.tokens_per_step = c.batch_size * c.block_size * c.gradient_accumulation_steps
        self.refuse_oversized(cfg)  # sizes are checked before anything is allocated or written
        with torch.device("meta"):
            self.refuse_gpu_sized_on_cpu(GPT(cfg))
        if self.master and not c.eval_only:
            self.created_out_dir = not os.path.exists(c.out_dir)
            self.lock = RunLock(c.out_dir).acquire()
            for name in checkpoint.remove_stale_temp_files(c.out_dir):
                print(f"removed {os.path.join(c.out_dir, name)}, left by a save that was killed")
        resume = has_ckpt and (c.eval_only or c.init_from in ("resume", "auto"))
        torch.manual_seed(c.seed)
        self.model = GPT(cfg)
        if c.paired_init:
            self.model.paired_init_(c.seed)
        self.model = self.model.to(self.rt.device)
        self.data = TokenData(c.data_dir, c.block_size, c.vocab_size, c.tokenizer)
        self.hellaswag = None
        if c.hellaswag_interval and self.master:  # read (and checked) at the start, not at the first evaluation
            import hellaswag
            try:
                self.hellaswag = hellaswag.read_examples(c.hellaswag_path, c.hellaswag_limit)
            except (OSError, ValueError) as e:
                raise ConfigError(f"hellaswag_path={c.hellaswag_path!r}: {e}") from None
        self.val = self.data.val_batches(c.batch_size, c.eval_iters)
        self.optimizer = self.model.configure_optimizers(c.weight_decay, c.learning_rate, (c.beta1, c.beta2),
                                                         self.rt.device_type)
        self.iter_num, self.best_val, self.wandb_id = 0, float("inf"), None
        if resume:
            self.load_resume(ckpt_path)
        if self.master:
            print(self.model.describe())
            print(f"data: {self.data.n_train_tokens:,} train / {self.data.n_val_tokens:,} val tokens in {c.data_dir}; "
                  f"{len(self.val)} val batches of {c.batch_size}x{c.block_size}")
        if self.master and not c.eval_only and not self.finished_before:
            self.log = RunLogger(c.out_dir, keep_until_step=self.iter_num if resume else None,
                                 log_interval=c.log_interval, max_iters=c.max_iters)
            self.log.config(step=self.iter_num, config=c.to_dict(), params=self.model.param_groups_by_role(),
                           world_size=self.rt.world, device=self.rt.device, dtype=self.rt.dtype, resumed=resume,
                           n_train_tokens=self.data.n_train_tokens, n_val_tokens=self.data.n_val_tokens,
                           data=data_fingerprint(c.data_dir, {"train_tokens": self.data.n_train_tokens,
                                                              "val_tokens": self.data.n_val_tokens}))
        self.raw_model = self.model
        self.model = self.rt.wrap(self.model, c.compile)
        self.peak_flops = c.peak_flops or self.gpu_peak_flops()
        self.train_step = TrainStep(self.model, self.optimizer, self.accum, c.grad_clip, self.rt.autocast,
                                    self.rt.scaler, ddp=self.rt.data_parallel,
                                    output_matrix=self.raw_model.step_output_matrix())

    def refuse_oversized(self, cfg):
        """A model whose weights, gradients and AdamW moments (16 bytes a parameter) cannot fit in this
        machine's memory (the GPU's, or the host's) is refused before it is built."""
        if self.rt.device_type == "cuda":
            memory, where = torch.cuda.get_device_properties(self.rt.device).total_memory, "the GPU's"
        elif hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
            memory, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's"
        else:
            return
        need = 16 * approx_param_count(cfg)
        if need > memory:
            raise ConfigError(f"this model (n_layer={cfg.n_layer}, n_embd={cfg.n_embd}, vocab_size={cfg.vocab_size}: about "
                              f"{approx_param_count(cfg) / 1e9:.1f}B parameters) needs about {need / 2 ** 30:,.0f} GiB for weights, "
                              f"gradients and AdamW state, more than {where} {memory / 2 ** 30:,.0f} GiB")

    def refuse_gpu_sized_on_cpu(self, model):
        """A GPU-sized config that landed on a CPU because no GPU was found says so instead of
        running for hours (or running out of memory); --device=cpu goes ahead deliberately.
        model: the model built on the meta device (shapes only)."""
        if self.rt.device_type != "cpu" or self.c.device == "cpu" or self.c.eval_only:
            return
        step_s = model.flops_per_token() * self.tokens_per_step / CPU_FLOPS
        if step_s > CPU_STEP_LIMIT_S:
            raise ConfigError(
                f"this config is GPU-sized ({model.param_groups_by_role()['total'] / 1e6:.0f}M parameters, "
                f"{self.tokens_per_step:,} tokens per step: {step_s * CPU_FLOPS:.1e} FLOPs, about {step_s / 60:.0f} min a step "
                f"at {CPU_FLOPS / 1e9:.0f} GFLOP/s) and no GPU "
                f"was found. Pass --device=cpu to run it on the CPU anyway, or use a CPU config (config/*_cpu.py)")

    def gpu_peak_flops(self):
        """The GPU's bf16/fp16 dense peak for MFU, or None (CPU, fp32, unknown GPU)."""
        if self.rt.device_type != "cuda" or self.rt.dtype == "float32":
            return None
        return peak_flops_of(torch.cuda.get_device_name())

    def load_resume(self, path):
        ckpt = checkpoint.load(path, map_location=self.rt.device)
        self.check_resume_config(path, ckpt.get("config") or {}, ckpt["iter_num"])
        self.model.load_state_dict(checkpoint.model_state(ckpt))
        self.iter_num, self.best_val = ckpt["iter_num"], ckpt["best_val_loss"]
        self.wandb_id = ckpt.get("wandb_id")
        if self.c.eval_only:
            return
        checkpoint.restore_optimizer(self.optimizer, ckpt["optimizer"])
        checkpoint.restore_rng(ckpt, self.rt.device_type)
        if ckpt.get("finished") and self.iter_num >= self.c.max_iters:
            self.finished_before = True
            if self.master and checkpoint.ensure_meta(self.c.out_dir, ckpt):
                print(f"{checkpoint.paths(self.c.out_dir)[1]} did not match its checkpoint (a crash between the two "
                      f"writes, or a run from before it existed): rewritten from {path}")
        elif self.master:
            print(f"resumed {path} at step {self.iter_num}")

    def check_resume_config(self, path, theirs, step):
        """Refuse settings that would make the checkpoint another run; name every other change."""
        ours = self.c
        fixed, changed = checkpoint.config_changes(theirs, ours.to_dict())
        if fixed:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in fixed.items())
            raise ConfigError(f"checkpoint {path} is another run ({detail}); these settings cannot change on resume "
                              f"(model shape, tokenizer, seed): resume it with its own config or use another out_dir")
        if changed and self.master and not self.c.eval_only:  # eval_only writes nothing: changes do not matter
            print("resume with changed settings: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()))
            schedule = ("learning_rate", "min_lr", "warmup_iters", "lr_decay_iters", "max_iters", "decay_lr")
            before = get_lr(step, replace(ours, **{k: v for k, v in theirs.items() if k in schedule}))
            after = get_lr(step, ours)
            if any(k in changed for k in schedule) and before != after:
                print(f"  the learning-rate schedule changes: lr at step {step} was {before:.3g}, now {after:.3g}")

    # --- pieces of a step

    def fetch(self, micro):
        """Micro-batch `micro` of this step; micro == accum is the first of the next step."""
        return self.batch(self.iter_num, micro) if micro < self.accum else self.batch(self.iter_num + 1, 0)

    def batch(self, step, micro):
        x, y = self.data.train_batch(self.c.batch_size, self.c.seed, step, self.rt.rank * self.accum + micro)
        return self.rt.to_device(x), self.rt.to_device(y)

    @torch.no_grad()
    def evaluate(self):
        """Mean validation loss over the fixed batches; with several sources (one val shard each)
        also the loss per source, in self.val_by_source. One read-back for all of it. Eager (the raw
        model): a compiled model would compile a second, inference graph for a few batches."""
        model = self.raw_model
        model.eval()
        sources = sorted({src for _, _, src in self.val})
        sums = torch.zeros(2 * len(sources), device=self.rt.device, dtype=torch.float64)  # [loss sum, batches] per source
        for i, (x, y, src) in enumerate(self.val):
            if i % self.rt.world != self.rt.rank:
                continue
            with self.rt.autocast:
                _, loss = model(self.rt.to_device(x), self.rt.to_device(y))
            k = 2 * sources.index(src)
            sums[k] += loss.double()
            sums[k + 1] += 1
        sums = self.rt.all_reduce(sums.tolist())
        model.train()
        per = {src: sums[2 * k] / sums[2 * k + 1] for k, src in enumerate(sources) if sums[2 * k + 1]}
        self.val_by_source = per if len(per) > 1 else None
        return sum(sums[0::2]) / sum(sums[1::2])

    # --- checkpoints

    def save(self, finished=False):
        if self.master:
            checkpoint.save_run(self.c.out_dir, self.raw_model, self.optimizer, self.c.to_dict(), self.iter_num,
                                best_val=self.best_val, finished=finished, wandb_id=self.wandb_id,
                                val_loss=self.last_val if self.last_val_step == self.iter_num else None,  # measured here, or none
                                device_type=self.rt.device_type)

    def init_wandb(self):
        self.wandb_id = self.log.start_wandb(self.c.to_dict(), self.wandb_id or uuid.uuid4().hex[:12])

    @torch.no_grad()
    def score_hellaswag(self):
        """HellaSwag acc and acc_norm of the raw model now (eager, under training's autocast)."""
        import hellaswag
        from tokenizer import get_tokenizer
        with self.rt.autocast:
            res = hellaswag.evaluate(self.raw_model, get_tokenizer(self.c.tokenizer), self.hellaswag, self.rt.device,
                                     progress=False)
        self.raw_model.train()
        return {"hellaswag_acc": res["acc"], "hellaswag_acc_norm": res["acc_norm"]}

    def remove_if_nothing_written(self):
        """A start that failed before writing anything leaves no folder holding only a .lock."""
        out = self.c.out_dir
        if os.path.isdir(out) and os.listdir(out) == [".lock"]:
            os.remove(os.path.join(out, ".lock"))  # the open descriptor keeps the flock until release()
            if self.created_out_dir:
                os.rmdir(out)

    # --- the loop

    def run(self):
        try:
            self.build()
            if self.finished_before:
                if self.master:
                    print(f"{self.c.out_dir} already finished at step {self.iter_num} (max_iters={self.c.max_iters}); "
                          f"nothing to do. Raise --max_iters to train further.")
                return self
            if self.c.eval_only:
                self.last_val = self.evaluate()
                if self.master:
                    print(f"eval_only: val loss {self.last_val:.4f} at step {self.iter_num} of {self.c.out_dir} "
                          f"(nothing written)")
                return self
            if self.master and self.c.wandb_log:
                self.init_wandb()
            with self.stop:
                self.loop()
            self.rt.barrier()  # every rank done before the group is torn down (rank 0 was still saving)
        finally:
            if self.log:
                self.log.finish()
            if self.lock:
                self.remove_if_nothing_written()  # while the lock is still held: no other run can be starting here
                self.lock.release()
            if self.rt.data_parallel:  # the DDP wrapper (and its reducer's pending gloo/NCCL work) goes before the group
                self.model, self.train_step = getattr(self, "raw_model", None), None
            self.rt.close()
        return self

    def loop(self):
        c = self.c
        self.t_last = time.time()
        next_batch = self.batch(self.iter_num, 0)
        while True:
            lr = get_lr(self.iter_num, c)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            if self.iter_num % c.eval_interval == 0 or self.iter_num >= c.max_iters:
                self.flush_log()
                self.eval_and_checkpoint(finished=self.iter_num >= c.max_iters)
                if self.iter_num >= c.max_iters:
                    break
                self.t_last = time.time()  # step times exclude evaluation
            if self.stop_requested():
                self.flush_log()
                self.save()
                if self.master:
                    print(f"stopped by {self.stop.signal or 'another rank'} at step {self.iter_num}; checkpoint written "
                          f"to {checkpoint.paths(c.out_dir)[0]}; continue with --init_from=resume")
                break
            loss, grad_norm, next_batch = self.train_step(next_batch, self.fetch)
            self.pending.append((self.iter_num, loss, grad_norm, lr))
            self.iter_num += 1
            if self.iter_num % c.log_interval == 0:
                self.flush_log()

    def stop_requested(self):
        """Whether any rank was asked to stop (SIGINT/SIGTERM). Alone, that is a flag read; across
        ranks it takes an all-reduce and a host-device sync, so they agree only on log steps (and a
        signalled rank finishes up to log_interval - 1 more steps first)."""
        if not self.rt.data_parallel:
            return self.stop.signal is not None
        if self.iter_num % self.c.log_interval:
            return False
        return self.rt.all_reduce([1.0 if self.stop.signal else 0.0], op="max")[0] > 0

    def flush_log(self):
        """Read back the pending steps' losses in one transfer, stop on a non-finite one, and log them.
        Step times are the interval's wall time over its steps (the device ran asynchronously)."""
        if not self.pending:
            return
        steps = [p[0] for p in self.pending]
        values = torch.stack([torch.stack((p[1].float(), p[2].float())) for p in self.pending]).tolist()  # one sync
        lrs = [p[3] for p in self.pending]
        self.pending = []
        now = time.time()
        dt, self.t_last = (now - self.t_last) / len(steps), now
        for step, (loss, grad_norm), lr in zip(steps, values, lrs):
            if not math.isfinite(loss):
                where = checkpoint.paths(self.c.out_dir)[0]
                raise FloatingPointError(f"training loss is {loss} at step {step}; stopping. The last good "
                                         f"checkpoint ({where}) is left as it was.")
            self.log_step(step, loss, lr, grad_norm, dt)

    def log_step(self, step, loss, lr, grad_norm, dt):
        if not self.master:
            return
        tps = self.tokens_per_step / dt
        mfu = self.raw_model.estimate_mfu(tps, self.peak_flops, self.rt.world) if self.peak_flops else None
        rec = dict(step=step, loss=loss, lr=lr, grad_norm=grad_norm, dt_ms=dt * 1000, tokens_per_s=tps, mfu=mfu,
                   tokens=(step + 1) * self.tokens_per_step)
        if self.rt.device_type == "cuda":
            rec["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        self.log.train(rec)

    def eval_and_checkpoint(self, finished):
        val_loss = self.evaluate()
        if self.master:
            stats = self.raw_model.norm_stats()
            if self.hellaswag and (finished or self.iter_num % self.c.hellaswag_interval == 0):
                stats.update(self.score_hellaswag())
            self.log.eval(self.iter_num, val_loss, stats, by_source=self.val_by_source)
        if not math.isfinite(val_loss):
            raise FloatingPointError(f"validation loss is {val_loss} at step {self.iter_num}; not writing a checkpoint")
        self.best_val = min(self.best_val, val_loss)
        self.last_val, self.last_val_step = val_loss, self.iter_num
        every = self.c.ckpt_interval
        if finished or every is None or self.iter_num % every == 0:
            self.save(finished=finished)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    configs = sorted(f for f in os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "config"))
                     if f.endswith(".py"))
    usage = ("usage: python train.py config/<name>.py [--key=value ...]\nconfigs: " + ", ".join(f"config/{f}" for f in configs)
             + "\n(CPU: config/kron_cpu.py, a few minutes on 2 cores; GPU: config/kron_124m.py). Settings, defaults "
             "and ranges: configurator.py")
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip() + "\n\n" + usage)
        return None
    if not argv:
        sys.exit(usage + "\nno config given: the defaults alone are GPT-2 124M, too big for a CPU")
    return run_cli(lambda args: Trainer(load_config(args)).run(), argv)  # user errors: one line (--debug: traceback)


if __name__ == "__main__":
    main()
