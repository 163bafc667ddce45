"""A run folder under faults and hostile contents (runlog.py, checkpoint.py, train.py): nothing is
written through a link, an earlier run's log is moved aside rather than replaced, a sidecar torn from
its checkpoint by a crash is repaired, stale temp files are cleaned, and sizes are checked before
anything is allocated. Each case asserts the message and what is (still) on disk."""
import json
import os

import pytest
import torch

import checkpoint
import train
from configurator import ConfigError
from runlog import RunFolderError
from tests.conftest import tiny_config


@pytest.fixture
def finished_run(data_dir, tmp_path):
    out = tmp_path / "run"
    train.train(tiny_config(data_dir, out, max_iters=4, eval_interval=2, lr_decay_iters=4))
    return out


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl"])
def test_a_link_in_the_run_folder_is_never_written_through(data_dir, tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(victim, out / name)
    with pytest.raises(RunFolderError, match=f"{name} is a symbolic link .*refusing to write through it"):
        train.train(tiny_config(data_dir, out))
    assert victim.read_text() == "precious\n"


def test_a_linked_checkpoint_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.pt"
    victim.write_bytes(b"precious")
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(victim, out / "ckpt.pt")
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt is a symbolic link"):
        checkpoint.save(str(out), {"x": 1}, {"step": 0})
    assert victim.read_bytes() == b"precious" and os.path.islink(out / "ckpt.pt")


def test_an_earlier_runs_log_without_a_checkpoint_is_moved_aside_not_replaced(data_dir, finished_run, capsys):
    old_log = open(finished_run / "metrics.jsonl").read()
    os.remove(finished_run / "ckpt.pt")
    train.train(tiny_config(data_dir, finished_run, max_iters=0, init_from="auto"))
    aside = [f for f in os.listdir(finished_run) if f.startswith("metrics.jsonl.replaced-")]
    assert len(aside) == 1 and open(finished_run / aside[0]).read() == old_log
    assert f"moved it to {finished_run / aside[0]}" in capsys.readouterr().out


def test_a_sidecar_torn_from_its_checkpoint_is_repaired_on_the_next_start(data_dir, finished_run, capsys):
    """Killed between writing ckpt.pt (finished at step 4) and ckpt.json (still step 2)."""
    meta = checkpoint.read_meta(str(finished_run))
    checkpoint.save_meta(str(finished_run), dict(meta, step=2, finished=False))
    log = open(finished_run / "metrics.jsonl").read()
    train.train(tiny_config(data_dir, finished_run, max_iters=4, eval_interval=2, lr_decay_iters=4, init_from="auto"))
    repaired = checkpoint.read_meta(str(finished_run))
    assert repaired["step"] == 4 and repaired["finished"] and repaired["val_loss"] is None  # step 2's loss is not step 4's
    assert "did not match its checkpoint" in capsys.readouterr().out
    assert open(finished_run / "metrics.jsonl").read() == log  # the finished run's log is left as it was


def test_temp_files_of_a_killed_save_are_removed(data_dir, finished_run):
    for name in ("ckpt.pt.tmp4242", "ckpt.json.tmp77"):
        (finished_run / name).write_bytes(b"x" * 1000)
    (finished_run / "notes.tmp1").write_text("mine")  # not ours: kept
    train.train(tiny_config(data_dir, finished_run, max_iters=6, eval_interval=2, lr_decay_iters=6, init_from="resume"))
    names = os.listdir(finished_run)
    assert "ckpt.pt.tmp4242" not in names and "ckpt.json.tmp77" not in names and "notes.tmp1" in names


def test_an_absurd_model_is_refused_before_anything_is_allocated(data_dir, tmp_path, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("a model was built")
    monkeypatch.setattr(train, "GPT", no_build)
    with pytest.raises(ConfigError, match=r"n_layer=100000.*needs about [\d,]+ GiB .*more than this machine's"):
        train.train(tiny_config(data_dir, tmp_path / "run", n_layer=100000, n_embd=128, n_head=2, device="cpu"))


def test_a_checkpoint_whose_model_args_are_absurd_is_refused_before_building(finished_run, tmp_path):
    ckpt = checkpoint.load(str(finished_run / "ckpt.pt"))
    for args, message in ((dict(ckpt["model_args"], n_layer=10 ** 6), "blocks alone hold about"),
                          (dict(ckpt["model_args"], vocab_size=10 ** 12), "vocab_size 1,000,000,000,000"),
                          ("hello", "model_args = 'hello', expected a dict"),
                          (dict(ckpt["model_args"], embedding="nope"), "model_args are not a valid model")):
        torch.save(dict(ckpt, model_args=args), tmp_path / "bad.pt")
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.load_model(str(tmp_path / "bad.pt"))


def test_study_runner_refuses_a_parallelism_below_one(tmp_path, capsys):
    from scripts import run_study
    for value in ("0", "-2"):
        with pytest.raises(SystemExit):
            run_study.main(["--base", "config/kron_cpu.py", "--parallel", value, "--out-root", str(tmp_path / "s")])
        assert f"--parallel {value}: expected an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_make_results_never_replaces_a_kept_log_with_an_unfinished_runs(tmp_path, finished_run):
    from scripts import make_results
    kept = tmp_path / "kept"
    (kept / "run").mkdir(parents=True)
    (kept / "run" / "metrics.jsonl").write_text("kept\n")
    meta = checkpoint.read_meta(str(finished_run))
    checkpoint.save_meta(str(finished_run), dict(meta, finished=False))
    assert make_results.copy_logs(str(finished_run.parent), str(kept)) == 0
    assert (kept / "run" / "metrics.jsonl").read_text() == "kept\n"
    checkpoint.save_meta(str(finished_run), meta)
    assert make_results.copy_logs(str(finished_run.parent), str(kept)) == 1
    assert (kept / "run" / "metrics.jsonl").read_text() == open(finished_run / "metrics.jsonl").read()
    assert json.loads((kept / "run" / "metrics.jsonl").read_text().splitlines()[0])["kind"] == "config"


@pytest.mark.parametrize("override, message", [
    ("--bias=None", "'bias' in --bias: got None, expected bool"),
    ("--kron_shuffle_seed=True", "'kron_shuffle_seed' = True: expected None or an integer >= 0"),
    ("--learning_rate=1e999", "'learning_rate' = inf: expected a finite number > 0"),
    ("--weight_decay=1e999", "'weight_decay' = inf: expected a finite number >= 0"),
])
def test_flags_that_used_to_pass_silently_are_refused(override, message):
    from configurator import load_config
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(["--embedding=kron", override])


@pytest.mark.parametrize("meta, message", [
    ("hello", "holds a str, expected a JSON object"),
    ({"step": 4, "finished": True}, "has no 'config' entry"),
    ({"step": 4, "finished": "no", "config": {}}, "finished = 'no', expected true or false"),
    ({"step": 4, "finished": True, "config": "hello"}, "config = 'hello', expected a dict"),
])
def test_a_malformed_sidecar_stops_the_study_runner_naming_it(tmp_path, meta, message):
    from scripts import run_study
    run = tmp_path / "study" / "kron-s1337"
    run.mkdir(parents=True)
    (run / "ckpt.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match=message):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "kron", "--seeds", "1337",
                        "--out-root", str(tmp_path / "study")])
    assert os.listdir(run) == ["ckpt.json"] and json.loads((run / "ckpt.json").read_text()) == meta


def test_a_checkpoint_with_an_absurd_step_is_refused(finished_run, tmp_path):
    ckpt = checkpoint.load(str(finished_run / "ckpt.pt"))
    for key, value, message in (("iter_num", 10 ** 30, "iter_num = '1000000000000000000000000000000'"),
                                ("config", "hello", "config = 'hello', expected a dict")):
        torch.save(dict(ckpt, **{key: value}), tmp_path / "bad.pt")
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.load(str(tmp_path / "bad.pt"))


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats 0: expected an integer >= 1"),
    (["--threads", "0"], "--threads 0: expected an integer >= 1"),
    (["--no-tied-head", "--only-tied-head"], "exclude each other"),
])
def test_bench_embed_flags_that_used_to_be_ignored(tmp_path, capsys, argv, message):
    from scripts import bench_embed
    with pytest.raises(SystemExit):
        bench_embed.main(argv + ["--out", str(tmp_path / "x.json")])
    assert message in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_study_grid_without_values_is_refused(tmp_path, capsys):
    from scripts import run_study
    with pytest.raises(SystemExit):
        run_study.main(["--base", "config/kron_cpu.py", "--grid", "kron_pos_dim=,", "--out-root", str(tmp_path / "s")])
    assert "--grid 'kron_pos_dim=,': expected key=value1,value2 with at least one value" in capsys.readouterr().err


def test_shards_from_another_tokenizer_are_refused_naming_both(data_dir, tmp_path):
    """The session's shards were made with GPT-2 (documents_to_shards records it); a model with a
    300-token tokenizer.json must not train on them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from data.shards import ShardError
    hf = Tokenizer(models.BPE(unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 50,
                           trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    hf.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ShardError, match=r"tokenised with 'gpt2' \(50257 tokens\), but the model's tokenizer is .*tokenizer.json"):
        train.train(tiny_config(data_dir, tmp_path / "run", tokenizer=str(tmp_path / "tokenizer.json"),
                                  embedding="bpe_tied"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_failed_start_leaves_no_folder_holding_only_a_lock(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no train shards"):
        train.train(tiny_config(str(empty), tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_written_on_a_stop_does_not_pair_an_old_val_loss_with_its_step(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "stop_requested", lambda run, stop: run.iter_num == 3)
    train.train(tiny_config(data_dir, tmp_path / "run", max_iters=12, eval_interval=8))
    meta = checkpoint.read_meta(str(tmp_path / "run"))
    assert meta["step"] == 3 and meta["val_loss"] is None and meta["best_val_loss"] is not None


def test_eval_only_does_not_list_changed_settings(data_dir, finished_run, capsys):
    train.train(tiny_config(data_dir, finished_run, max_iters=150, eval_only=True))
    out = capsys.readouterr().out
    assert "eval_only: val loss" in out and "changed settings" not in out


@pytest.mark.slow
def test_user_errors_end_in_one_line_and_debug_shows_the_traceback(data_dir, finished_run):
    import subprocess
    import sys
    cmd = [sys.executable, "train.py", "config/kron_cpu.py", f"--data_dir={data_dir}", f"--out_dir={finished_run}",
           "--init_from=resume", "--max_iters=8", "--eval_only=True"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KRON_DEBUG="0")
    r = subprocess.run(cmd + ["--eval_only=False"], cwd=root, capture_output=True, text=True, env=env, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:") and "is another run (block_size" in lines[0]
    r = subprocess.run(cmd + ["--eval_only=False", "--debug"], cwd=root, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ConfigError" in r.stderr


def test_a_full_disk_is_named_as_such(tmp_path, monkeypatch):
    import errno
    import shutil

    from errors import describe
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 ** 9, 10 ** 9 - 5 * 2 ** 20, 5 * 2 ** 20))

    def failing_save(state, path):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 1234 vs 1200")
    monkeypatch.setattr(torch, "save", failing_save)
    full = r"unexpected pos.*no space left on device \(5 MB free\).*previous ckpt.pt is intact"
    with pytest.raises(checkpoint.CheckpointError, match=full):
        checkpoint.save(str(tmp_path), {"x": 1}, {"step": 0})
    assert describe(OSError(errno.ENOSPC, "No space left on device", "shard.bin")).startswith("no space left on device (shard.bin)")
