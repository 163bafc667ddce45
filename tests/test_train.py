"""Training end to end on tiny models: each arm learns, resume is exact, DDP matches accumulation,
and every fault named in the issue gives a clear error."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import checkpoint
import train
from configurator import ConfigError, load_config
from data.shards import ShardError, TokenData, documents_to_shards, read_shard, write_shard
from runlog import read_metrics
from tests.conftest import tiny_config
from tokenizer import get_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "fineweb_edu_sample.jsonl")


def tiny(data_dir, out_dir, **kw):
    return tiny_config(data_dir, out_dir, **kw)


def losses(out_dir):
    return {r["step"]: r["loss"] for r in read_metrics(str(out_dir), "train")}


@pytest.mark.parametrize("arm", ["bpe_tied", "kron", "bpe_untied"])
def test_each_arm_trains_with_falling_loss(data_dir, tmp_path, arm):
    train.train(tiny(data_dir, tmp_path, embedding=arm, max_iters=20, lr_decay_iters=20))
    loss = losses(tmp_path)
    assert len(loss) == 20
    assert np.mean([loss[s] for s in range(17, 20)]) < np.mean([loss[s] for s in range(3)]) - 0.5
    evals = read_metrics(str(tmp_path), "eval")
    assert [e["step"] for e in evals] == [0, 4, 8, 12, 16, 20]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    model, ckpt = checkpoint.load_model(str(tmp_path / "ckpt.pt"))
    assert ckpt["finished"] and ckpt["iter_num"] == 20 and model.config.embedding == arm
    key = "proj_std_sqrtD" if arm == "kron" else "wte_std"
    assert key in evals[0] and "head_std" in evals[0] and "emb_rms" in evals[0]
    if arm == "kron":
        assert evals[0]["proj_std_sqrtD"] == pytest.approx(1.0, abs=0.02)


def test_same_seed_same_batches_across_arms(data_dir):
    data = TokenData(data_dir, 32, 50304)
    a = data.train_batch(4, seed=1337, step=5, micro_step=1)
    b = data.train_batch(4, seed=1337, step=5, micro_step=1)
    c = data.train_batch(4, seed=1338, step=5, micro_step=1)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    assert np.array_equal(a[0][:, 1:], a[1][:, :-1])


def test_resume_matches_uninterrupted_run(data_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train.train(tiny(data_dir, full, dropout=0.1))
    train.train(tiny(data_dir, part, dropout=0.1, max_iters=6))  # stops at step 6 (not an eval step)
    train.train(tiny(data_dir, part, dropout=0.1, init_from="resume"))
    a, b = losses(full), losses(part)
    assert sorted(a) == sorted(b) == list(range(12))
    assert max(abs(a[s] - b[s]) for s in range(12)) < 1e-6
    va = [r["val_loss"] for r in read_metrics(str(full), "eval")]
    vb = [r["val_loss"] for r in read_metrics(str(part), "eval")]
    assert len(va) == len(vb) and np.allclose(va, vb, atol=1e-6)


def run_script(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def cli_args(cfg):
    keys = ["data_dir", "out_dir", "n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_iters",
            "eval_interval", "eval_iters", "log_interval", "learning_rate", "min_lr", "warmup_iters",
            "lr_decay_iters", "embedding", "gradient_accumulation_steps", "init_from"]
    return [f"--{k}={cfg[k]}" for k in keys]


@pytest.mark.slow
def test_ctrl_c_writes_checkpoint_and_resume_is_exact(data_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    cfg = tiny(data_dir, part, max_iters=40, lr_decay_iters=40, eval_interval=100, log_interval=1)
    train.train(dict(cfg, out_dir=str(full)))
    proc = run_script(["train.py", *cli_args(cfg)])
    metrics = part / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(losses(part)) >= 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "checkpoint written" in out
    ckpt = checkpoint.load(str(part / "ckpt.pt"))
    stopped = ckpt["iter_num"]
    assert 5 <= stopped < 40 and not ckpt["finished"]
    train.train(dict(cfg, init_from="resume"))
    a, b = losses(full), losses(part)
    assert sorted(b) == list(range(40))
    assert max(abs(a[s] - b[s]) for s in range(40)) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("arm", ["kron", "kron_tied"])  # kron_tied: its head matrix is shared over micro-batches
def test_ddp_matches_single_process_with_double_accumulation(data_dir, tmp_path, arm):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    cfg = tiny(data_dir, single, max_iters=4, eval_interval=2, gradient_accumulation_steps=4, embedding=arm)  # 2 per rank
    train.train(cfg)
    proc = run_script(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
                       *cli_args(dict(cfg, out_dir=str(ddp))), "--device=cpu", "--peak_flops=1e12"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    a, b = losses(single), losses(ddp)
    # token accounting counts both ranks; MFU divides by both ranks' peak
    from model import GPT, GPTConfig
    with torch.device("meta"):
        flops = GPT(GPTConfig.from_dict(cfg)).flops_per_token()
    for rec in read_metrics(str(ddp), "train"):
        assert rec["tokens"] == (rec["step"] + 1) * 4 * 32 * 4
        assert rec["mfu"] == pytest.approx(flops * rec["tokens_per_s"] / (1e12 * 2))
    assert sorted(a) == sorted(b) == [0, 1, 2, 3]
    assert max(abs(a[s] - b[s]) for s in a) < 1e-5
    va = [r["val_loss"] for r in read_metrics(str(single), "eval")]
    vb = [r["val_loss"] for r in read_metrics(str(ddp), "eval")]
    assert np.allclose(va, vb, atol=1e-5)


# --------------------------------------------------------------------------- data preparation

def test_prepare_fixture_shards_decode_back(tmp_path):
    from data.fineweb_edu.prepare import main as prepare
    prepare(["--data-files", FIXTURE, "--out-dir", str(tmp_path), "--shard-tokens", "1500", "--num-proc", "2"])
    docs = [json.loads(line)["text"] for line in open(FIXTURE)]
    tok = get_tokenizer("gpt2")
    paths = sorted((p for p in os.listdir(tmp_path) if p.endswith(".bin")), key=lambda p: p[-10:])
    assert paths[0].endswith("_val_000000.bin") and all("_train_" in p for p in paths[1:])
    tokens = np.concatenate([read_shard(str(tmp_path / p)) for p in paths])
    assert all(len(read_shard(str(tmp_path / p))) == 1500 for p in paths[:-1])
    pieces = tok.decode(tokens.tolist()).split("<|endoftext|>")
    assert pieces[0] == "" and pieces[1:] == docs


@pytest.mark.parametrize("num_proc", ["1", "2"])
def test_prepare_without_a_text_column_is_one_line(tmp_path, num_proc):
    from data.fineweb_edu.prepare import main as prepare
    rows = [{"id": i, "content": f"document {i}"} for i in range(3)]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match=r"error: documents need a 'text' column; .* has columns \['content', 'id'\]"):
        prepare(["--data-files", str(tmp_path / "x.jsonl"), "--out-dir", str(tmp_path / "out"), "--num-proc", num_proc])
    assert not list((tmp_path / "out").glob("*.bin"))  # no shard written


def fixture_docs():
    return [json.loads(line)["text"] for line in open(FIXTURE)]


def interrupted(docs, at=15):
    """The documents, with a kill (KeyboardInterrupt) when the at-th is reached."""
    for i, d in enumerate(docs):
        if i == at:
            raise KeyboardInterrupt
        yield d


def assert_same_shards(a, b):
    files = sorted(p for p in os.listdir(b) if p.endswith(".bin"))
    assert files == sorted(p for p in os.listdir(a) if p.endswith(".bin"))
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_prepare_resumes_exactly_after_interruption(tmp_path):
    docs = fixture_docs()
    with pytest.raises(KeyboardInterrupt):
        documents_to_shards(interrupted(docs), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    state = json.load(open(tmp_path / "a" / "fw_progress.json"))
    assert 0 < state["shard"] and not state["done"]
    documents_to_shards(docs, str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    documents_to_shards(docs, str(tmp_path / "b"), "fw", shard_tokens=1000, num_proc=1)
    assert_same_shards(tmp_path / "a", tmp_path / "b")


def test_prepare_from_a_stream_resumes_its_position_without_rereading(tmp_path):
    """FineWeb-Edu preparation killed mid-way resumes from the saved stream position (datasets'
    state_dict), reads only what was not done, and writes the same shards byte for byte."""
    from data.fineweb_edu.prepare import load_documents
    from data.shards import Stream
    n_docs = sum(1 for _ in open(FIXTURE))
    read = []

    class Counted(Stream):
        stop_at = None

        def __iter__(self):
            for i, item in enumerate(super().__iter__()):
                if i == self.stop_at:
                    raise KeyboardInterrupt
                read.append(item[0])
                yield item

    def stream(stop_at=None):
        s = load_documents(None, None, [FIXTURE])
        counted = Counted(s.ds, s.column, s.describe)
        counted.stop_at = stop_at
        return counted
    with pytest.raises(KeyboardInterrupt):
        documents_to_shards(stream(stop_at=15), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    state = json.load(open(tmp_path / "a" / "fw_progress.json"))
    assert 0 < state["shard"] and state["stream"] is not None
    read.clear()
    documents_to_shards(stream(), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    assert len(read) == n_docs - state["docs"] + (1 if state["carry"] else 0)  # only what was not done
    documents_to_shards(stream(), str(tmp_path / "b"), "fw", shard_tokens=1000, num_proc=2)
    assert_same_shards(tmp_path / "a", tmp_path / "b")


def test_a_stream_resumed_from_progress_without_a_position_skips_what_is_done(tmp_path):
    """Progress written without a stream position (by a plain iterable, or older code) is resumed by
    reading past the finished documents: the same shards as an uninterrupted run, nothing twice."""
    from data.fineweb_edu.prepare import load_documents
    docs = fixture_docs()
    with pytest.raises(KeyboardInterrupt):
        documents_to_shards(interrupted(docs), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    documents_to_shards(load_documents(None, None, [FIXTURE]), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    documents_to_shards(docs, str(tmp_path / "b"), "fw", shard_tokens=1000, num_proc=1)
    assert_same_shards(tmp_path / "a", tmp_path / "b")


def test_a_changed_weight_decay_takes_effect_on_resume(data_dir, tmp_path):
    train.train(tiny(data_dir, tmp_path, max_iters=4))
    t = train.train(tiny(data_dir, tmp_path, max_iters=6, init_from="resume", weight_decay=0.0, beta2=0.99))
    assert [g["weight_decay"] for g in t.optimizer.param_groups] == [0.0, 0.0]
    assert all(g["betas"] == (0.9, 0.99) for g in t.optimizer.param_groups)


# --------------------------------------------------------------------------- clear errors

def test_configurator_errors(tmp_path):
    defaults = {"n_layer": 12, "learning_rate": 6e-4, "out_dir": "out", "compile": False, "wandb_run_name": None}
    with pytest.raises(ConfigError, match="unknown config key 'n_layers'.*n_layer"):
        load_config(["--n_layers=4"], defaults)
    with pytest.raises(ConfigError, match="'n_layer'.*'four'.*int"):
        load_config(["--n_layer=four"], defaults)
    with pytest.raises(ConfigError, match="'compile'.*expected bool"):
        load_config(["--compile=1"], defaults)
    with pytest.raises(ConfigError, match="not found"):
        load_config(["config/nope.py"], defaults)
    with pytest.raises(ConfigError, match="--key=value"):
        load_config(["--n_layer"], defaults)
    bad = tmp_path / "bad.py"
    bad.write_text("n_layer = 4\nlearnig_rate = 1e-3\n")
    with pytest.raises(ConfigError, match="learnig_rate.*bad.py"):
        load_config([str(bad)], defaults)
    cfg = load_config(["--learning_rate=1", "--out_dir=out/x", "--wandb_run_name=run-1"], defaults)
    assert cfg["learning_rate"] == 1.0 and isinstance(cfg["learning_rate"], float)
    assert cfg["out_dir"] == "out/x" and cfg["wandb_run_name"] == "run-1"


def test_all_shipped_configs_load():
    for name in os.listdir(os.path.join(ROOT, "config")):
        cfg = load_config([os.path.join(ROOT, "config", name)])
        assert cfg["embedding"] in ("bpe_tied", "kron", "bpe_untied", "kron_tied")
    kron = load_config([os.path.join(ROOT, "config", "kron_124m.py")])
    assert kron["batch_size"] * kron["block_size"] * kron["gradient_accumulation_steps"] == 524_288
    assert kron["max_iters"] == 4768 and kron["kron_pos_dim"] == 16


def test_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*prepare"):
        train.train(tiny(str(tmp_path / "nope"), tmp_path / "out"))


def test_corrupt_truncated_and_out_of_vocab_shards(tmp_path):
    path = str(tmp_path / "x_train_000001.bin")
    write_shard(path, np.arange(100))
    assert len(read_shard(path)) == 100
    raw = bytearray(open(path, "rb").read())
    open(path, "wb").write(raw[:-10])
    with pytest.raises(ShardError, match="truncated"):
        read_shard(path)
    raw[0:4] = np.int32(1234).tobytes()
    open(path, "wb").write(raw)
    with pytest.raises(ShardError, match="magic 1234"):
        read_shard(path)
    open(path, "wb").write(b"abc")
    with pytest.raises(ShardError, match="shorter than"):
        read_shard(path)
    write_shard(path, np.array([1, 2, 60000, 3]))
    with pytest.raises(ShardError, match="token id 60000.*position 2.*50304"):
        read_shard(path, vocab_size=50304)


def test_checkpoint_from_another_arm_or_shape(data_dir, tmp_path):
    train.train(tiny(data_dir, tmp_path, max_iters=2, embedding="bpe_tied"))
    with pytest.raises(ConfigError, match="another run.*embedding: checkpoint 'bpe_tied' vs config 'kron'"):
        train.train(tiny(data_dir, tmp_path, init_from="resume", embedding="kron"))
    with pytest.raises(ConfigError, match="n_embd: checkpoint 32 vs config 64"):
        train.train(tiny(data_dir, tmp_path, init_from="resume", embedding="bpe_tied", n_embd=64))
    with pytest.raises(ConfigError, match="exists; use --init_from=resume"):
        train.train(tiny(data_dir, tmp_path, embedding="bpe_tied"))
    with pytest.raises(ConfigError, match="no checkpoint"):
        train.train(tiny(data_dir, tmp_path / "empty", init_from="resume"))


def test_nan_loss_stops_with_step_and_keeps_checkpoint(data_dir, tmp_path, monkeypatch):
    real_forward = train.GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None, **kw):
        logits, loss = real_forward(self, idx, targets, **kw)
        if self.training and targets is not None:
            calls["n"] += 1
            if calls["n"] > 5:  # training step 5 onwards
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(train.GPT, "forward", forward)
    with pytest.raises(FloatingPointError, match="loss is nan at step 5"):
        train.train(tiny(data_dir, tmp_path))
    ckpt = checkpoint.load(str(tmp_path / "ckpt.pt"))
    assert ckpt["iter_num"] == 4  # the evaluation checkpoint before the bad step
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_failed_checkpoint_write_keeps_previous(data_dir, tmp_path, monkeypatch):
    real_save = torch.save
    saves = {"n": 0}

    def save(obj, f, *a, **kw):
        saves["n"] += 1
        if saves["n"] == 2:
            with open(f, "wb") as fh:
                fh.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(train.torch, "save", save)
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt failed.*No space left.*previous ckpt.pt is intact"):
        train.train(tiny(data_dir, tmp_path))
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    assert checkpoint.load(str(tmp_path / "ckpt.pt"))["iter_num"] == 0


def test_checkpoint_loads_for_inference(data_dir, tmp_path):
    train.train(tiny(data_dir, tmp_path, max_iters=2))
    model, _ = checkpoint.load_model(str(tmp_path / "ckpt.pt"))
    out = model.generate(torch.tensor([[464, 1573]]), 4, temperature=0.0)
    assert out.shape == (1, 6) and int(out.max()) < 50257
    old = checkpoint.load(str(tmp_path / "ckpt.pt"))  # written when the Kron layer had modes: kron_mode is ignored
    old["model_args"]["kron_mode"] = "cached"
    torch.save(old, tmp_path / "old.pt")
    assert torch.equal(checkpoint.load_model(str(tmp_path / "old.pt"))[0].generate(torch.tensor([[464, 1573]]), 4, temperature=0.0), out)
    with pytest.raises(checkpoint.CheckpointError, match="missing.pt.*does not exist"):
        checkpoint.load_model(str(tmp_path / "missing.pt"))
    shutil.copy(FIXTURE, tmp_path / "not_a_ckpt.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not_a_ckpt.pt.*not a torch checkpoint"):
        checkpoint.load_model(str(tmp_path / "not_a_ckpt.pt"))


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


def test_cpu_bf16_autocast_trains(data_dir, tmp_path):
    t = train.train(tiny(data_dir, tmp_path, dtype="bfloat16", max_iters=8, lr_decay_iters=8))
    assert t.rt.dtype == "bfloat16"
    loss = losses(tmp_path)
    assert all(np.isfinite(v) for v in loss.values()) and loss[7] < loss[0]


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
