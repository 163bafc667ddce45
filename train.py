"""Train a GPT arm (bpe_tied, kron, bpe_untied, ...) nanoGPT-style.

    python train.py config/kron_cpu.py                          # CPU or one GPU, plain process
    python train.py config/kron_124m.py --seed=1338              # overrides after the config file
    torchrun --standalone --nproc_per_node=8 train.py config/kron_124m.py          # one node, 8 GPUs
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d \
             --rdzv_endpoint=HOST:29500 train.py config/kron_124m.py              # several nodes

Batches are a function of (seed, step), so arms with the same seed see the same data in the same
order, and `init_from='resume'` continues a run with exactly the losses it would have had.
Checkpoints (<out_dir>/ckpt.pt) are written atomically at every evaluation, at the end, and on
SIGINT/SIGTERM; metrics go to <out_dir>/metrics.jsonl and, with wandb_log=True, to wandb.

Read top to bottom: the learning-rate schedule, the run's state (`Run`), setup, then `train()`,
whose loop is the whole of training; the helpers below it each do one thing the loop names.
"""

import importlib.util
import math
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field, replace

import torch

import checkpoint
from configurator import DEFAULTS, ConfigError, TrainConfig, load_config, wsd_cooldown  # noqa: F401 (DEFAULTS: re-exported)
from errors import UserError, run_cli
from hf_import import hf_path, load_hf_into, shape_settings
from model import GPT, GPTConfig, approx_param_count, peak_flops_of
from runlog import RunLock, RunLogger
from runtime import Runtime, machine_facts
from shards import TokenData, data_fingerprint
from step import TrainStep
from tokenizer import bits_per_byte, text_byte_counts

CPU_STEP_LIMIT_S = 60  # a config whose estimated CPU step is longer is called GPU-sized
CPU_FLOPS = 1e11  # an optimistic CPU (fp32, a few cores), for that estimate only


class DivergedError(UserError, FloatingPointError):
    """A loss that is NaN or inf: the run stops without writing a checkpoint; the message says where."""


def get_lr(it, c):
    """The learning rate of step `it`. Both schedules warm up linearly, lr = learning_rate * (it + 1) /
    (warmup_iters + 1) for it < warmup_iters; then
      cosine: lr = min_lr + (learning_rate - min_lr) * (1 + cos(pi * (it - W) / (L - W))) / 2 until
              L = lr_decay_iters (or max_iters), min_lr after;
      wsd (warmup-stable-decay): lr = learning_rate until S = max_iters - K, then
              lr = min_lr + (learning_rate - min_lr) * (max_iters - it) / K, reaching min_lr at max_iters,
              with K = round(cooldown_frac * max_iters) (configurator.wsd_cooldown).
    Why a fraction, not a number of steps: the cool-down's share of the run is what the WSD literature
    holds fixed across budgets (Hägele et al. 2024: 20 % matches cosine), so one config serves every
    budget with only max_iters changed, and each budget's branch point S is read off its own max_iters.
    A wsd run's lr before S depends on neither max_iters nor K, so a run to any longer budget passes
    through the same states up to S: one stable run gives every shorter budget's branch point."""
    if not c.decay_lr:
        return c.learning_rate
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    if c.lr_schedule == "wsd":
        cooldown = wsd_cooldown(c.max_iters, c.cooldown_frac)
        if it < c.max_iters - cooldown:
            return c.learning_rate
        return c.min_lr + (c.learning_rate - c.min_lr) * (c.max_iters - it) / cooldown if it < c.max_iters else c.min_lr
    decay_iters = c.lr_decay_iters or c.max_iters
    if it >= decay_iters:
        return c.min_lr
    ratio = (it - c.warmup_iters) / max(1, decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.learning_rate - c.min_lr)


@dataclass(eq=False)
class Run:
    """Everything the loop reads or changes; train() returns it (tests and notebooks read it)."""

    c: TrainConfig
    rt: Runtime
    model: GPT = None  # the raw model: evaluation, checkpoints, norms
    optimizer: torch.optim.Optimizer = None
    data: TokenData = None
    val: list = None  # the fixed validation batches [(x, y, source)]
    hellaswag: list = None  # examples scored at hellaswag_interval, or None
    step: TrainStep = None  # one optimizer step on the compiled / DDP-wrapped model
    log: RunLogger = None  # rank 0 of a run that writes; None otherwise
    lock: RunLock = None
    iter_num: int = 0
    best_val: float = float("inf")
    last_val: float = None  # the latest validation loss, measured at step last_val_step
    last_val_step: int = None
    val_by_source: dict = None
    wandb_id: str = None
    finished_before: bool = False
    branched_from: dict = None  # init_from='branch:PATH': {"path", "step", "max_iters"} of the kept checkpoint
    created_out_dir: bool = False
    peak_flops: float = None
    pending: list = field(default_factory=list)  # (step, loss, grad_norm, lr), device tensors until a log step
    t_last: float = 0.0

    @property
    def tokens_per_step(self):
        return self.c.batch_size * self.c.block_size * self.c.gradient_accumulation_steps

    @property
    def accum(self):
        """Micro-batches per step in this process."""
        return self.c.gradient_accumulation_steps // self.rt.world

    def batch(self, step, micro):
        x, y = self.data.train_batch(self.c.batch_size, self.c.seed, step, self.rt.rank * self.accum + micro)
        return self.rt.to_device(x), self.rt.to_device(y)

    def fetch(self, micro):
        """Micro-batch `micro` of this step; micro == accum is the first of the next step."""
        return self.batch(self.iter_num, micro) if micro < self.accum else self.batch(self.iter_num + 1, 0)


def resolve_config(c):
    """c: a TrainConfig, or a {key: value} dict of settings (missing ones take their defaults)."""
    c = c if isinstance(c, TrainConfig) else TrainConfig.from_dict(c)
    try:  # out_dir may name other settings, e.g. "out/124m-{embedding}-s{seed}"
        c = replace(c, out_dir=c.out_dir.format(**c.to_dict()))
    except (KeyError, IndexError) as e:
        raise ConfigError(f"out_dir={c.out_dir!r} names an unknown setting {e}") from None
    if hf_path(c.init_from):  # the shape, the arm and the tokenizer are the folder's (nanoGPT's init_from='gpt2')
        c = replace(c, **shape_settings(hf_path(c.init_from)))
    if c.wandb_log and importlib.util.find_spec("wandb") is None:
        raise ConfigError("wandb_log=True but wandb is not installed: `pip install wandb`, or pass --wandb_log=False")
    return c


def setup(run):
    """Checks, then the folder's lock, then data, model, optimizer and (if any) the checkpoint's state.
    Sizes are checked before anything is allocated or written; the lock comes before any write."""
    c, rt = run.c, run.rt
    if c.gradient_accumulation_steps % rt.world:
        raise ConfigError(
            f"gradient_accumulation_steps={c.gradient_accumulation_steps} must be divisible by "
            f"the number of processes ({rt.world}); the CPU configs use 4 (1, 2 or 4 processes)"
        )
    ckpt_path = check_start(c)
    cfg = GPTConfig.from_dict(c.to_dict())
    refuse_oversized(cfg, rt)
    with torch.device("meta"):
        refuse_gpu_sized_on_cpu(GPT(cfg), c, rt, run.tokens_per_step)
    if rt.master and not c.eval_only:
        run.created_out_dir = not os.path.exists(c.out_dir)
        run.lock = RunLock(c.out_dir).acquire()
        for name in checkpoint.remove_stale_temp_files(c.out_dir):
            print(f"removed {os.path.join(c.out_dir, name)}, left by a save that was killed")
    torch.manual_seed(c.seed)
    model = GPT(cfg)  # every setting of the run applies, whatever the weights start from
    if hf_path(c.init_from) and ckpt_path is None:
        load_hf_into(model, hf_path(c.init_from))
    elif c.paired_init:
        model.paired_init_(c.seed)
    run.model = model.to(rt.device)
    run.data = TokenData(c.data_dir, c.block_size, c.vocab_size, c.tokenizer)
    if c.hellaswag_interval and rt.master:  # read (and checked) at the start, not at the first evaluation
        run.hellaswag = read_hellaswag(c)
    run.val = run.data.val_batches(c.batch_size, c.eval_iters, c.val_sample)
    run.optimizer = run.model.configure_optimizers(c.weight_decay, c.learning_rate, (c.beta1, c.beta2), rt.device_type, c.embedding_lr_mult)
    resume = ckpt_path is not None
    if resume:
        load_resume(run, ckpt_path)
    elif branch_path(c.init_from):
        load_branch(run, branch_path(c.init_from))
    if rt.master:
        print(run.model.describe())
        print(
            f"data: {run.data.n_train_tokens:,} train / {run.data.n_val_tokens:,} val tokens in {c.data_dir}; "
            f"{len(run.val)} val batches of {c.batch_size}x{c.block_size}"
        )
    if rt.master and not c.eval_only and not run.finished_before:
        run.log = RunLogger(c.out_dir, keep_until_step=run.iter_num if resume else None, log_interval=c.log_interval, max_iters=c.max_iters)
        run.log.config(
            step=run.iter_num,
            config=c.to_dict(),
            params=run.model.param_groups_by_role(),
            world_size=rt.world,
            device=rt.device,
            dtype=rt.dtype,
            resumed=resume,
            n_train_tokens=run.data.n_train_tokens,
            n_val_tokens=run.data.n_val_tokens,
            data=data_fingerprint_of(run),
            machine=machine_facts(),
            scale=scale_record(run),
            **({"branched_from": run.branched_from} if run.branched_from else {}),
        )
    run.peak_flops = c.peak_flops or gpu_peak_flops(rt)
    run.step = TrainStep(rt.wrap(run.model, c.compile), run.optimizer, run.accum, c.grad_clip, rt.autocast, rt.scaler, ddp=rt.data_parallel)
    return run


def train(c):
    """Train (or resume, or evaluate) the run configured by c; returns its Run."""
    c = resolve_config(c)
    run = Run(c, Runtime(c.device, c.dtype, c.num_threads, c.backend, c.cpu_keep_freed_memory))
    try:
        setup(run)
        if run.finished_before:
            say(
                run,
                f"{c.out_dir} already finished at step {run.iter_num} (max_iters={c.max_iters}); "
                f"nothing to do. Raise --max_iters to train further.",
            )
            return run
        if c.eval_only:
            run.last_val = evaluate(run)
            say(run, f"eval_only: val loss {run.last_val:.4f} at step {run.iter_num} of {c.out_dir} (nothing written)")
            return run
        if run.log and c.wandb_log:
            run.wandb_id = run.log.start_wandb(c.to_dict(), run.wandb_id or uuid.uuid4().hex[:12])
        with StopGuard(run.rt.master) as stop:
            run.t_last = time.time()
            batch = run.batch(run.iter_num, 0)
            while True:
                lr = get_lr(run.iter_num, c)
                for g in run.optimizer.param_groups:
                    g["lr"] = lr * g.get("lr_mult", 1.0)
                last = run.iter_num >= c.max_iters
                if run.iter_num % c.eval_interval == 0 or last:
                    flush_log(run)
                    evaluate_and_checkpoint(run, finished=last)
                    if last:
                        break
                    run.t_last = time.time()  # step times exclude evaluation
                if run.iter_num in (c.keep_ckpt_steps or ()):  # a branch point (after the step's evaluation, if any)
                    flush_log(run)
                    save(run, kept_step=run.iter_num)
                    run.t_last = time.time()
                if stop_requested(run, stop):
                    flush_log(run)
                    save(run)
                    say(
                        run,
                        f"stopped by {stop.signal or 'another rank'} at step {run.iter_num}; checkpoint written "
                        f"to {checkpoint.paths(c.out_dir)[0]}; continue with --init_from=resume",
                    )
                    break
                loss, grad_norm, batch = run.step(batch, run.fetch)
                run.pending.append((run.iter_num, loss, grad_norm, lr))
                run.iter_num += 1
                if run.iter_num % c.log_interval == 0:
                    flush_log(run)
        run.rt.barrier()  # every rank done before the group is torn down (rank 0 was still saving)
    finally:
        teardown(run)
    return run


# --- what the loop calls


def say(run, message):
    if run.rt.master:
        print(message, flush=True)


@torch.no_grad()
def evaluate(run, batches=None):
    """Mean validation loss per token over the fixed batches (or `batches`); bits per byte in
    run.val_bpb; with several sources (one val shard each) both per source, in run.val_by_source and
    run.val_bpb_by_source (None for one source)."""
    loss, bpb, per_loss, per_bpb = losses_by_source(run, run.val if batches is None else batches)
    run.val_by_source = per_loss if len(per_loss) > 1 else None
    run.val_bpb_by_source = per_bpb if len(per_bpb) > 1 else None
    run.val_bpb = bpb
    return loss


@torch.no_grad()  # final_evaluation calls it too: a graph kept over every window took 19 GB
def losses_by_source(run, batches):
    """(loss per token, bits per byte, {source: loss}, {source: bits per byte}) over the batches.
    Bits per byte: the loss summed over tokens / (ln 2 * the UTF-8 bytes those tokens stand for),
    comparable across tokenizers. One read-back for all of it. Eager (the raw model): a compiled
    model would compile a second, inference graph for a few batches."""
    model, rt = run.model, run.rt
    text_bytes = text_byte_counts(run.c.tokenizer, run.c.vocab_size)
    model.eval()
    sources = sorted({src for _, _, src in batches})
    sums = torch.zeros(3 * len(sources), device=rt.device, dtype=torch.float64)  # [loss sum, tokens, bytes] per source
    for i, (x, y, src) in enumerate(batches):
        if i % rt.world != rt.rank:
            continue
        with rt.autocast:
            _, loss = model(rt.to_device(x), rt.to_device(y))
        k = 3 * sources.index(src)
        sums[k] += loss.double() * y.size  # exact for the full batches of a power-of-two size the studies use
        sums[k + 1] += y.size
        sums[k + 2] += int(text_bytes[y].sum())
    sums = rt.all_reduce(sums.tolist())
    model.train()
    loss_sum, tokens, nbytes = sums[0::3], sums[1::3], sums[2::3]
    per_loss = {src: loss_sum[k] / tokens[k] for k, src in enumerate(sources) if tokens[k]}
    per_bpb = {src: bits_per_byte(loss_sum[k], nbytes[k]) for k, src in enumerate(sources) if nbytes[k]}
    bpb = bits_per_byte(sum(loss_sum), sum(nbytes)) if sum(nbytes) else None
    return sum(loss_sum) / sum(tokens), bpb, per_loss, per_bpb


def final_evaluation(run):
    """final_eval: the whole validation split (shards' all_val_windows), per source and per half
    (dev: to choose settings on; test: to report on), logged once as a "final" record. A half's loss
    and bits per byte are means over its sources, each source weighing the same, as during training."""
    _, _, per_loss, per_bpb = losses_by_source(run, run.data.val_batches(run.c.batch_size, None, "all"))
    loss, bpb, mean = {}, {}, {}
    for half in ("dev", "test"):
        loss[half] = {s.split("/")[0]: v for s, v in per_loss.items() if s.endswith("/" + half)}
        bpb[half] = {s.split("/")[0]: v for s, v in per_bpb.items() if s.endswith("/" + half)}
        mean[half] = sum(loss[half].values()) / len(loss[half]) if loss[half] else None
        mean[half + "_bpb"] = sum(bpb[half].values()) / len(bpb[half]) if bpb[half] else None
    if any(m is not None and not math.isfinite(m) for m in (mean["dev"], mean["test"])):  # the last update broke the weights
        diverged(run, run.iter_num, f"final evaluation loss is dev {mean['dev']}, test {mean['test']} at step {run.iter_num}")
    if run.log:
        run.log.final(run.iter_num, mean["dev"], mean["test"], loss, mean["dev_bpb"], mean["test_bpb"], bpb)


def diverged(run, step, message):
    """Log the divergence as the run's last record (the master process), then stop with DivergedError."""
    if run.log:
        run.log.diverged(step, message)
    raise DivergedError(message)


def evaluate_and_checkpoint(run, finished):
    if finished and run.c.final_eval:
        final_evaluation(run)
    val_loss = evaluate(run)
    if run.log:
        stats = run.model.norm_stats()
        if run.hellaswag and (finished or run.iter_num % run.c.hellaswag_interval == 0):
            stats.update(score_hellaswag(run))
        stats["tokens"] = run.iter_num * run.tokens_per_step  # seen before this evaluation
        run.log.eval(run.iter_num, val_loss, stats, by_source=run.val_by_source, bpb=run.val_bpb, bpb_by_source=run.val_bpb_by_source)
    if not math.isfinite(val_loss):
        diverged(run, run.iter_num, f"validation loss is {val_loss} at step {run.iter_num}; not writing a checkpoint")
    run.best_val = min(run.best_val, val_loss)
    run.last_val, run.last_val_step = val_loss, run.iter_num
    every = run.c.ckpt_interval
    if finished or every is None or run.iter_num % every == 0:
        save(run, finished=finished)


def save(run, finished=False, kept_step=None):
    """ckpt.pt (or, with kept_step, the kept ckpt_step{N}.pt beside it) from rank 0."""
    if run.rt.master:
        checkpoint.save_run(
            run.c.out_dir,
            run.model,
            run.optimizer,
            run.c.to_dict(),
            run.iter_num,
            best_val=run.best_val,
            finished=finished,
            wandb_id=run.wandb_id,
            val_loss=run.last_val if run.last_val_step == run.iter_num else None,  # measured here, or none
            device_type=run.rt.device_type,
            branched_from=run.branched_from,
            kept_step=kept_step,
        )


def stop_requested(run, stop):
    """Whether any rank was asked to stop (SIGINT/SIGTERM). Alone, that is a flag read; across ranks
    it takes an all-reduce and a host-device sync, so they agree only on log steps (and a signalled
    rank finishes up to log_interval - 1 more steps first)."""
    if not run.rt.data_parallel:
        return stop.signal is not None
    if run.iter_num % run.c.log_interval:
        return False
    return run.rt.all_reduce([1.0 if stop.signal else 0.0], op="max")[0] > 0


def flush_log(run):
    """Read back the pending steps' losses in one transfer, stop on a non-finite one, and log them.
    Step times are the interval's wall time over its steps (the device ran asynchronously)."""
    if not run.pending:
        return
    values = torch.stack([torch.stack((p[1].float(), p[2].float())) for p in run.pending]).tolist()  # one sync
    steps, lrs, run.pending = [p[0] for p in run.pending], [p[3] for p in run.pending], []
    now = time.time()
    dt, run.t_last = (now - run.t_last) / len(steps), now
    for step, (loss, grad_norm), lr in zip(steps, values, lrs):
        if not math.isfinite(loss):
            diverged(
                run,
                step,
                f"training loss is {loss} at step {step}; stopping. The last good checkpoint "
                f"({checkpoint.paths(run.c.out_dir)[0]}) is left as it was.",
            )
        if run.log:
            run.log.train(step_record(run, step, loss, lr, grad_norm, dt))


def step_record(run, step, loss, lr, grad_norm, dt):
    tps = run.tokens_per_step / dt
    mfu = run.model.estimate_mfu(tps, run.peak_flops, run.rt.world) if run.peak_flops else None
    rec = dict(
        step=step,
        loss=loss,
        lr=lr,
        grad_norm=grad_norm,
        dt_ms=dt * 1000,
        tokens_per_s=tps,
        mfu=mfu,
        tokens=(step + 1) * run.tokens_per_step,
    )
    if run.rt.device_type == "cuda":
        rec["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return rec


@torch.no_grad()
def score_hellaswag(run):
    """HellaSwag acc and acc_norm of the raw model now (eager, under training's autocast)."""
    import hellaswag
    from tokenizer import get_tokenizer

    with run.rt.autocast:
        res = hellaswag.evaluate(run.model, get_tokenizer(run.c.tokenizer), run.hellaswag, run.rt.device, progress=False)
    run.model.train()
    return {"hellaswag_acc": res["acc"], "hellaswag_acc_norm": res["acc_norm"]}


def teardown(run):
    """Close the log, drop a lock that guarded nothing, release the folder, tear the group down."""
    if run.log:
        run.log.finish()
    if run.lock:
        remove_if_nothing_written(run)  # while the lock is still held: no other run can be starting here
        run.lock.release()
    run.step = None  # the DDP wrapper (and its reducer's pending gloo/NCCL work) goes before the group
    run.rt.close()


# --- setup's helpers


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
                print(
                    f"\n{self.signal}: finishing this step, writing a checkpoint and exiting (press Ctrl-C again to abort without one)",
                    flush=True,
                )

        self.previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)


def check_start(c):
    """The checkpoint this start resumes from (or evaluates), None for a fresh start; a start that
    contradicts what the folder holds is refused."""
    ckpt_path, _ = checkpoint.paths(c.out_dir)
    has_ckpt = os.path.exists(ckpt_path)
    if c.eval_only and not has_ckpt:
        raise ConfigError(f"eval_only=True needs a checkpoint to evaluate, and {c.out_dir!r} has no {checkpoint.CKPT_NAME}")
    if c.init_from == "resume" and not has_ckpt:
        raise ConfigError(f"init_from='resume' but there is no checkpoint at {ckpt_path}")
    if c.init_from == "scratch" and has_ckpt and not c.eval_only:
        raise ConfigError(f"{ckpt_path} exists; use --init_from=resume to continue it, or another out_dir")
    # hf: and branch: a run started from one goes on from its own checkpoint once it has one
    resumes = c.eval_only or c.init_from in ("resume", "auto") or hf_path(c.init_from) or branch_path(c.init_from)
    return ckpt_path if has_ckpt and resumes else None


def refuse_oversized(cfg, rt):
    """A model whose weights, gradients and AdamW moments (16 bytes a parameter) cannot fit in this
    machine's memory (the GPU's, or the host's) is refused before it is built."""
    if rt.device_type == "cuda":
        memory, where = torch.cuda.get_device_properties(rt.device).total_memory, "the GPU's"
    elif hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's"
    else:
        return
    need = 16 * approx_param_count(cfg)
    if need > memory:
        raise ConfigError(
            f"this model (n_layer={cfg.n_layer}, n_embd={cfg.n_embd}, vocab_size={cfg.vocab_size}: about "
            f"{approx_param_count(cfg) / 1e9:.1f}B parameters) needs about {need / 2**30:,.0f} GiB for weights, "
            f"gradients and AdamW state, more than {where} {memory / 2**30:,.0f} GiB"
        )


def refuse_gpu_sized_on_cpu(model, c, rt, tokens_per_step):
    """A GPU-sized config that landed on a CPU because no GPU was found says so instead of running
    for hours (or running out of memory); --device=cpu goes ahead deliberately.
    model: the model built on the meta device (shapes only)."""
    if rt.device_type != "cpu" or c.device == "cpu" or c.eval_only:
        return
    step_s = model.flops_per_token() * tokens_per_step / CPU_FLOPS
    if step_s > CPU_STEP_LIMIT_S:
        raise ConfigError(
            f"this config is GPU-sized ({model.param_groups_by_role()['total'] / 1e6:.0f}M parameters, "
            f"{tokens_per_step:,} tokens per step: {step_s * CPU_FLOPS:.1e} FLOPs, about {step_s / 60:.0f} min a step "
            f"at {CPU_FLOPS / 1e9:.0f} GFLOP/s) and no GPU "
            f"was found. Pass --device=cpu to run it on the CPU anyway, or use a CPU config (config/*_cpu.py)"
        )


def gpu_peak_flops(rt):
    """The GPU's bf16/fp16 dense peak for MFU, or None (CPU, fp32, unknown GPU)."""
    if rt.device_type != "cuda" or rt.dtype == "float32":
        return None
    return peak_flops_of(torch.cuda.get_device_name())


def read_hellaswag(c):
    import hellaswag

    try:
        return hellaswag.read_examples(c.hellaswag_path, c.hellaswag_limit)
    except (OSError, ValueError) as e:
        raise ConfigError(f"hellaswag_path={c.hellaswag_path!r}: {e}") from None


def load_resume(run, path):
    """The checkpoint's weights (and, unless evaluating, its optimizer, RNG and counters) into run."""
    c = run.c
    ckpt = checkpoint.load(path, map_location=run.rt.device)
    check_resume_config(run, path, ckpt.get("config") or {}, ckpt["iter_num"])
    checkpoint.load_weights(run.model, ckpt, path)
    run.iter_num, run.best_val, run.wandb_id = ckpt["iter_num"], ckpt["best_val_loss"], ckpt.get("wandb_id")
    run.branched_from = ckpt.get("branched_from")
    if c.eval_only:
        return
    checkpoint.restore_training_state(run.optimizer, ckpt, path, run.rt.device_type)
    if ckpt.get("finished") and run.iter_num >= c.max_iters:
        run.finished_before = True
        if run.rt.master and checkpoint.ensure_meta(c.out_dir, ckpt):
            print(
                f"{checkpoint.paths(c.out_dir)[1]} did not match its checkpoint (a crash between the two "
                f"writes, or a run from before it existed): rewritten from {path}"
            )
    else:
        say(run, f"resumed {path} at step {run.iter_num}")


def check_resume_config(run, path, theirs, step):
    """Refuse settings that would make the checkpoint another run; name every other change."""
    ours = run.c
    fixed, changed = checkpoint.config_changes(theirs, ours.to_dict())
    if fixed:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in fixed.items())
        raise ConfigError(
            f"checkpoint {path} is another run ({detail}); these settings cannot change on resume "
            f"(model shape, tokenizer, seed): resume it with its own config or use another out_dir"
        )
    if changed and run.rt.master and not ours.eval_only:  # eval_only writes nothing: changes do not matter
        print("resume with changed settings: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()))
        schedule = ("learning_rate", "min_lr", "warmup_iters", "lr_decay_iters", "max_iters", "decay_lr", "lr_schedule", "cooldown_frac")
        before = get_lr(step, replace(ours, **{k: v for k, v in theirs.items() if k in schedule}))
        after = get_lr(step, ours)
        if any(k in changed for k in schedule) and before != after:
            print(f"  the learning-rate schedule changes: lr at step {step} was {before:.3g}, now {after:.3g}")


def branch_path(init_from):
    """The kept checkpoint of init_from='branch:PATH', or None."""
    return init_from[len("branch:") :] if init_from.startswith("branch:") else None


# What a branch may set otherwise than the run it branches from: how the run ends (max_iters, and the
# cool-down's length and floor, which the stable part never reads) and how it is evaluated or reported.
BRANCH_MAY_CHANGE = checkpoint.NOT_RESULTS + ("max_iters", "min_lr", "cooldown_frac", "eval_interval", "eval_iters", "final_eval")


def load_branch(run, path):
    """init_from='branch:PATH': continue a wsd run's kept checkpoint (weights, optimizer, RNG, and the
    step, which is the data position: batches are a function of (seed, step)) in a new folder, with
    this run's max_iters, so that it runs the cool-down. The result equals a from-scratch wsd run to
    max_iters step for step (tests/test_forecast.py holds it to that), hence the refusals in check_branch."""
    ckpt = checkpoint.load(path, map_location=run.rt.device)
    theirs, step = ckpt.get("config") or {}, ckpt["iter_num"]
    check_branch(run, path, theirs, step)
    run.model.load_state_dict(checkpoint.model_state(ckpt, path))
    checkpoint.restore_optimizer(run.optimizer, ckpt["optimizer"])
    checkpoint.restore_rng(ckpt, run.rt.device_type)
    run.iter_num, run.best_val = step, ckpt["best_val_loss"]
    run.branched_from = {"path": os.path.abspath(path), "step": step}
    run.branched_from.update({k: theirs.get(k) for k in ("max_iters", "out_dir")})
    say(run, f"branched from {path} at step {step}: cool-down to step {run.c.max_iters}")


def check_branch(run, path, theirs, step):
    """Refuse a branch that would not be the from-scratch run it stands for: another schedule, model,
    seed or data up to the branch point, a checkpoint from the source's own cool-down, or a branch
    point after this run's cool-down start S = max_iters - round(cooldown_frac * max_iters)."""
    c = run.c
    where = f"init_from={c.init_from!r}"
    if c.lr_schedule != "wsd":
        raise ConfigError(f"{where}: a branch cools down a wsd run, but lr_schedule={c.lr_schedule!r}; set lr_schedule='wsd'")
    fixed, changed = checkpoint.config_changes(theirs, c.to_dict(), ignore=BRANCH_MAY_CHANGE)
    differ = {**fixed, **changed}
    if differ:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in differ.items())
        raise ConfigError(f"{where}: {path} is from another run ({detail}); a branch changes only max_iters, min_lr and cooldown_frac")
    source_start = theirs["max_iters"] - wsd_cooldown(theirs["max_iters"], theirs["cooldown_frac"])
    if step > source_start:
        raise ConfigError(
            f"{where}: {path} is at step {step}, inside its own run's cool-down (from step {source_start}): not a stable-phase state"
        )
    start = c.max_iters - wsd_cooldown(c.max_iters, c.cooldown_frac)
    if step > start:
        raise ConfigError(
            f"{where}: the branch point, step {step}, is after this run's cool-down start, step {start} "
            f"(max_iters={c.max_iters}, cooldown_frac={c.cooldown_frac}): branch from a checkpoint at step {start} or before"
        )
    theirs_data = source_data(path)
    if theirs_data and theirs_data != data_fingerprint_of(run)["sha256"]:
        raise ConfigError(f"{where}: {path} was trained on data with fingerprint {theirs_data}, but {c.data_dir} now has another")


def source_data(path):
    """The data fingerprint the kept checkpoint's own run logged beside it, or None."""
    from runlog import read_metrics

    folder = os.path.dirname(os.path.abspath(path))
    try:
        configs = read_metrics(folder, "config")
    except FileNotFoundError:
        return None
    return (configs[-1].get("data") or {}).get("sha256") if configs else None


def data_fingerprint_of(run):
    """The run's data fingerprint (shards.data_fingerprint), with the token counts already read."""
    counts = {"train_tokens": run.data.n_train_tokens, "val_tokens": run.data.n_val_tokens}
    return data_fingerprint(run.c.data_dir, counts)


def scale_record(run):
    """What a scaling fit reads off a run: non-embedding parameters (the body less the position table,
    as Kaplan et al. and Hoffmann et al. count N), tokens per step and the tokens the run trains on."""
    body = run.model.param_groups_by_role()["body"]
    return {
        "non_embedding_params": body - run.model.transformer.wpe.weight.numel(),
        "tokens_per_step": run.tokens_per_step,
        "tokens": run.c.max_iters * run.tokens_per_step,
    }


def remove_if_nothing_written(run):
    """A start that failed before writing anything leaves no folder holding only a .lock."""
    out = run.c.out_dir
    if os.path.isdir(out) and os.listdir(out) == [".lock"]:
        os.remove(os.path.join(out, ".lock"))  # the open descriptor keeps the flock until release()
        if run.created_out_dir:
            os.rmdir(out)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    configs = sorted(f for f in os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "config")) if f.endswith(".py"))
    usage = (
        "usage: python train.py config/<name>.py [--key=value ...]\nconfigs: "
        + ", ".join(f"config/{f}" for f in configs)
        + "\n(CPU: config/kron_cpu.py, a few minutes on 2 cores; GPU: config/kron_124m.py). Settings, defaults "
        "and ranges: configurator.py"
    )
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip() + "\n\n" + usage)
        return None
    if not argv:
        sys.exit(usage + "\nno config given: the defaults alone are GPT-2 124M, too big for a CPU")
    return run_cli(lambda args: train(load_config(args)), argv)  # user errors: one line (--debug: traceback)


if __name__ == "__main__":
    main()
