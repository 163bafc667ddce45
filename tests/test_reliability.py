"""Issue 39's bad cases: a pack never deletes a user's folder or writes outside its destination, an
archive cannot expand into memory, weights are checked before use, data that is not what it claims is
named, and a killed export leaves nothing behind for good."""

import json
import os
import re
import warnings

import numpy as np
import pytest
import torch

import checkpoint
from checkpoint import CheckpointError
from scripts.reliability_cases import tar_gz


def test_pack_out_never_deletes_a_folder_it_did_not_write(tmp_path):
    from scripts.pack_gpu import refuse_foreign

    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(SystemExit, match="not a pack this script wrote"):
        refuse_foreign(str(mine))
    (mine / "thesis.tex").write_text("years of work")
    (mine / "MANIFEST.json").write_text("{}")
    with pytest.raises(SystemExit, match="holds thesis.tex, which no pack writes"):
        refuse_foreign(str(mine))
    (mine / "thesis.tex").unlink()
    (mine / "data").mkdir()
    (mine / "data" / "notes.txt").write_text("mine too")  # inside a folder a pack has: still refused
    with pytest.raises(SystemExit, match="holds data/notes.txt"):
        refuse_foreign(str(mine))
    assert (mine / "data" / "notes.txt").read_text() == "mine too"


def test_unpack_stops_a_shard_that_expands_past_its_token_count(tmp_path):
    import lzma

    from scripts.pack_gpu import decompress_bounded

    src = tmp_path / "x.bin.xz"
    with lzma.open(src, "wb") as f:
        f.write(b"\0" * 10_000)
    with pytest.raises(SystemExit, match="expands past the 5,000 bytes"):
        decompress_bounded(str(src), str(tmp_path / "x.bin"), 5000)
    assert not (tmp_path / "x.bin").exists()
    decompress_bounded(str(src), str(tmp_path / "x.bin"), 10_000)
    assert (tmp_path / "x.bin").stat().st_size == 10_000


@pytest.mark.parametrize("name", ["../evil.bin", "/tmp/evil.bin", "sub/evil.bin", "..", "evil.sh"])
def test_unpack_refuses_a_manifest_name_that_leaves_the_destination(tmp_path, name):
    from scripts.pack_gpu import unpack

    pack = tmp_path / "pack"
    (pack / "data").mkdir(parents=True)
    (pack / "MANIFEST.json").write_text(json.dumps({"data": {name: {"tokens": 1, "sha256": "0" * 64}}}))
    with pytest.raises(SystemExit, match="expected a shard file name"):
        unpack(str(pack), str(tmp_path / "dest"))
    assert not (tmp_path / "evil.bin").exists()


def test_unpack_does_not_write_through_a_link(tmp_path):
    from scripts.pack_gpu import safe_name

    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(tmp_path / "elsewhere.bin", dest / "x_val_000000.bin")
    with pytest.raises(SystemExit, match="symbolic link"):
        safe_name("x_val_000000.bin", str(dest))


def test_an_archive_member_is_bounded_before_it_is_read(tmp_path, monkeypatch):
    from scripts import gpu_report

    monkeypatch.setattr(gpu_report, "MAX_MEMBER", 1000)
    path = tmp_path / "a.tar.gz"
    tar_gz(str(path), {"logs/device.json": b"x" * 10, "logs/bench_train.log": b"x" * 5000})
    with pytest.raises(ValueError, match="bench_train.log holds 5,000 bytes, over the bound"):
        gpu_report.import_archive(str(path), results=str(tmp_path / "r"))


@pytest.mark.parametrize("bad", ["nan", "int"])
def test_weights_are_checked_before_any_tool_uses_them(tiny_checkpoints, tmp_path, bad):
    ckpt = torch.load(tiny_checkpoints["kron"], weights_only=True)
    name = "transformer.h.0.mlp.c_fc.weight"
    w = ckpt["model"][name]
    ckpt["model"][name] = torch.full_like(w, float("nan")) if bad == "nan" else w.to(torch.int64)
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    expected = "holds .* non-finite values" if bad == "nan" else "is torch.int64, expected a float tensor"
    with pytest.raises(CheckpointError, match=f"weight {name} {expected}"):
        checkpoint.load_model(str(path))


def test_a_nanogpt_bin_of_text_is_named_and_a_folder_of_both_formats_refused(tmp_path):
    from shards import ShardError, read_nanogpt_bin, shard_paths

    text = (b"The quick brown fox jumps over the lazy dog.\n" * 200)[:8000]
    (tmp_path / "train.bin").write_bytes(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_nanogpt_bin(str(tmp_path / "train.bin"))
    assert any("read as ASCII text" in str(w.message) for w in caught)
    np.arange(2000, dtype=np.uint16).tofile(tmp_path / "ids.bin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_nanogpt_bin(str(tmp_path / "ids.bin"))  # token ids: no warning
    (tmp_path / "x_train_000000.bin").write_bytes(b"")
    with pytest.raises(ShardError, match="holds both llm.c shards .* and nanoGPT's train.bin"):
        shard_paths(str(tmp_path), "train")


def test_an_export_killed_mid_write_is_cleaned_up_by_the_next(tmp_path):
    from scripts.export_hf import remove_stale_exports

    out = tmp_path / "hf"
    dead = tmp_path / "hf.tmp999999999"  # no such process
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"half")
    live = tmp_path / f"hf.tmp{os.getpid()}"
    live.mkdir()
    foreign = tmp_path / "hf.tmp999999998"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not an export's")
    assert remove_stale_exports(str(out)) == [str(dead)]
    assert live.exists() and foreign.exists() and not dead.exists()


def test_a_preparation_killed_in_the_middle_of_a_shard_reruns_to_the_same_shards(tmp_path, monkeypatch):
    """A kill while a shard is being written leaves <shard>.tmp<pid> half full and the progress at
    the shard before; the rerun removes the half-written file and ends byte-identical to a clean run."""
    from pydoc_data.topics import topics

    import shards

    docs = [topics[k] for k in sorted(topics)][:40]
    kw = dict(shard_tokens=20_000, val_tokens=5_000, num_proc=1)
    shards.documents_to_shards(docs, str(tmp_path / "clean"), "t", **kw)
    real, calls = shards.write_shard, []

    def killed_on_the_third(path, tokens):
        calls.append(path)
        if len(calls) == 3:  # half of it on disk under the temp name, then the process "dies"
            with open(f"{path}.tmp999999999", "wb") as f:
                f.write(b"\0" * 100)
            raise KeyboardInterrupt
        real(path, tokens)

    monkeypatch.setattr(shards, "write_shard", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        shards.documents_to_shards(docs, str(tmp_path / "killed"), "t", **kw)
    monkeypatch.setattr(shards, "write_shard", real)
    shards.documents_to_shards(docs, str(tmp_path / "killed"), "t", **kw)
    clean = sorted(p.name for p in (tmp_path / "clean").glob("t_*.bin"))
    assert sorted(p.name for p in (tmp_path / "killed").iterdir() if "tmp" in p.name) == []
    assert clean == sorted(p.name for p in (tmp_path / "killed").glob("t_*.bin")) and len(clean) >= 4
    for name in clean:
        assert (tmp_path / "clean" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes()


# The battery's cases made clear (scripts/reliability_cases.py reruns them end to end): each refusal is
# one line naming the bad value or file, or the right behaviour.


def one_line(main, argv=(), capsys=None):
    """run_cli's refusal of main(argv): its message, checked to be one `error: ...` line."""
    from errors import run_cli

    with pytest.raises(SystemExit) as e:
        run_cli(main, list(argv), also=(ValueError,))
    message = str(e.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def argparse_error(main, argv, capsys):
    """The last stderr line of an argparse refusal (exit 2)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_an_os_error_naming_its_path_is_one_line_and_one_without_keeps_its_traceback():
    import errno

    from errors import run_cli

    def read_only(argv):
        raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run")

    assert one_line(read_only) == "error: '/mnt/ro/run': read-only file system"

    def no_path(argv):
        raise OSError(errno.EPIPE, "Broken pipe")

    with pytest.raises(OSError):
        run_cli(no_path, [])


def test_json_nested_too_deep_or_not_utf8_is_named(tmp_path):
    from runlog import parse_json, read_metrics

    with pytest.raises(ValueError, match="x.json: not a JSON file this repository wrote .nested too deep"):
        parse_json("[" * 200_000 + "]" * 200_000, "x.json")
    run = tmp_path / "run"
    run.mkdir()
    (run / "ckpt.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CheckpointError, match="ckpt.json is not readable JSON .nested too deep"):
        checkpoint.read_meta(str(run))
    (run / "metrics.jsonl").write_bytes(b'{"kind": "config"}\n{"kind": "caf\xff"}\n{"kind": "eval"}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not UTF-8 text \(byte 0xff at column 14\)"):
        read_metrics(str(run))


def test_a_torn_last_metrics_line_is_dropped_on_resume_and_one_in_the_middle_refused(tmp_path, capsys):
    from errors import UserError
    from runlog import DamagedFileError, MetricsLog, read_metrics

    assert issubclass(DamagedFileError, UserError)

    log = tmp_path / "metrics.jsonl"
    good = [json.dumps({"kind": "train", "step": s, "loss": 1.0}) + "\n" for s in range(4)]
    log.write_text("".join(good) + '{"kind": "train", "step": 4, "lo')  # killed in the middle of a write
    with pytest.raises(ValueError, match=r"metrics.jsonl:5: not a JSON line"):
        read_metrics(str(tmp_path))  # a reader that is not resuming still says so
    MetricsLog(str(tmp_path), keep_until_step=3)
    assert "metrics.jsonl:5: not a JSON line" in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [0, 1, 2]  # nothing else lost
    log.write_text(good[0] + '{"kind": "train", "st\n' + "".join(good[1:]))
    with pytest.raises(DamagedFileError, match=r"metrics.jsonl:2: not a JSON line"):  # a UserError: one line
        MetricsLog(str(tmp_path), keep_until_step=3)
    assert len(log.read_text().splitlines()) == 5  # refused: the file is left as it was


def test_a_config_with_a_syntax_error_or_an_include_cycle_is_one_line(tmp_path):
    from configurator import ConfigError, load_config

    bad = tmp_path / "bad.py"
    bad.write_text("n_layer = 1\nn_head = = 2\n")
    with pytest.raises(ConfigError, match=r"bad.py:2: syntax error in the config file: invalid syntax \('n_head = = 2'\)"):
        load_config([str(bad)])
    me = tmp_path / "me.py"
    me.write_text('include("me.py")\n')
    with pytest.raises(ConfigError, match=r"me.py: include\('me.py'\) includes itself \(me.py -> me.py\)"):
        load_config([str(me)])
    (tmp_path / "a.py").write_text('include("b.py")\n')
    (tmp_path / "b.py").write_text('include("a.py")\n')
    with pytest.raises(ConfigError, match=r"is part of an include cycle \(a.py -> b.py -> a.py\)"):
        load_config([str(tmp_path / "a.py")])


@pytest.mark.parametrize(
    "override, expected",
    [
        (f"--num_threads={10**30}", "'num_threads' = 10000.*: expected None or an integer in \\[1, 4096\\]"),
        (f"--kron_pos_dim={10**30}", "'kron_pos_dim' = 10000.*: expected an integer in \\[1, 1024\\]"),
        (f"--seed={2**70}", "'seed' = 1180591620717411303424: expected an integer in \\[0, 2\\*\\*63\\)"),
    ],
)
def test_huge_integers_are_refused_by_the_ranges(override, expected):
    from configurator import ConfigError, load_config

    with pytest.raises(ConfigError, match=expected):
        load_config([override])


def test_a_checkpoint_whose_model_args_are_out_of_range_is_refused_before_building(tiny_checkpoints, tmp_path):
    ckpt = torch.load(tiny_checkpoints["kron"], weights_only=True)
    ckpt["model_args"]["kron_pos_dim"] = 10**6  # a 50304 x 10**6 byte table otherwise
    torch.save(ckpt, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match=r"huge.pt: model_args kron_pos_dim = '1000000', expected an integer in \[1, 1024\]"):
        checkpoint.load_model(str(tmp_path / "huge.pt"))


@pytest.mark.parametrize("fault", ["optimizer", "rng", "shape"])
def test_resume_of_a_checkpoint_missing_state_or_of_another_shape_names_file_and_entry(finished_run, data_dir, fault):
    import train
    from tests.conftest import tiny_config

    path = finished_run / "ckpt.pt"
    ckpt = torch.load(path, weights_only=True)
    if fault == "shape":
        ckpt["model"]["transformer.h.0.attn.c_attn.weight"] = torch.randn(3, 5)
    else:
        del ckpt[fault]
    torch.save(ckpt, path)
    expected = {
        "optimizer": "has no 'optimizer' entry",
        "rng": "has no 'rng' entry",
        "shape": "its weights do not fit .*size mismatch for transformer.h.0.attn.c_attn.weight",
    }[fault]
    cfg = tiny_config(data_dir, finished_run, max_iters=8, eval_interval=2, lr_decay_iters=8, init_from="resume")
    message = one_line(lambda argv: train.train(cfg))
    assert re.search(f"{re.escape(str(path))}:? {expected}", message), message


def test_a_diverged_run_is_one_line(data_dir, tmp_path):
    import train
    from errors import UserError
    from tests.conftest import tiny_config

    assert issubclass(train.DivergedError, (UserError, FloatingPointError))
    cfg = tiny_config(data_dir, tmp_path / "run", learning_rate=1e30, min_lr=0.0, grad_clip=0.0, max_iters=4)
    assert re.match(r"error: (training|validation) loss is nan at step \d+", one_line(lambda argv: train.train(cfg)))


def test_kron_tied_without_bytes_for_real_tokens_is_a_user_error_naming_kron_pos_dim():
    from arms import ArmSettingError
    from errors import UserError
    from model import GPT, GPTConfig

    with pytest.raises(ArmSettingError, match="embedding='kron_tied' with kron_pos_dim=2: 255 real tokens") as e:
        GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, embedding="kron_tied", kron_pos_dim=2))
    assert isinstance(e.value, UserError)


def test_a_device_string_is_checked_by_every_tool_before_a_checkpoint_is_read(capsys):
    import sample
    from probes import generation, hellaswag
    from scripts import bench_embed, bench_train

    expected = "argument --device: 'tpu' is not a device: expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
    assert argparse_error(sample.parse_args, ["--ckpt", "x.pt", "--device", "tpu"], capsys).endswith(expected)
    assert argparse_error(generation.main, ["x.pt", "--out", "o", "--device", "tpu"], capsys).endswith(expected)
    assert argparse_error(hellaswag.main, ["--ckpt", "x.pt", "--device", "tpu"], capsys).endswith(expected)
    assert argparse_error(bench_train.main, ["--device", "tpu"], capsys).endswith(expected)
    assert argparse_error(bench_embed.main, ["--devices", "tpu"], capsys).endswith(expected.replace("--device", "--devices"))
    assert argparse_error(sample.parse_args, ["--seed", str(2**70)], capsys).endswith(
        "--seed 1180591620717411303424: expected an integer in [0, 2**63)"
    )


@pytest.mark.parametrize("n", ["0", "-5"])
def test_robustness_refuses_a_count_of_pairs_below_one(n, capsys, tmp_path):
    from probes import robustness

    (tmp_path / "p.txt").write_text("The quick brown fox\n")
    last = argparse_error(robustness.main, ["x.pt", "--out", "o", "--generate", str(tmp_path / "p.txt"), "--n", n], capsys)
    assert last.endswith(f"error: --n {n}: expected an integer >= 1 (pairs to generate)")


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"ctx": "c", "endings": ["a", "b", "c", "d"], "label": "²"}\n'.encode(), r"h.jsonl:1: 'label' = '²', expected 0, 1, 2 or 3"),
        (bytes(range(0x85, 0x100)) + b"\n", r"h.jsonl:1: not UTF-8 text \(byte 0x85 at column 1\)"),
        (b'{"ctx": "c", "endings": ["a", "b", "c", "d"], "label": 0}\n{"ctx": "caf\xff"}\n', r"h.jsonl:2: not UTF-8 text"),
        (b"[" * 200_000 + b"]" * 200_000 + b"\n", r"h.jsonl:1: not a JSON line \(nested too deep to read\)"),
    ],
)
def test_a_malformed_hellaswag_file_is_named_with_its_line(tmp_path, content, expected):
    from hellaswag import read_examples

    (tmp_path / "h.jsonl").write_bytes(content)
    with pytest.raises(ValueError, match=expected):
        read_examples(str(tmp_path / "h.jsonl"))


def test_compare_bench_says_a_file_is_not_a_benchmark(tmp_path):
    from scripts import compare_bench

    (tmp_path / "x.json").write_text('{"hello": [1, 2]}')
    message = one_line(compare_bench.main, ["--before", str(tmp_path / "x.json"), "--after", str(tmp_path / "x.json")])
    assert f"{tmp_path / 'x.json'} is not a benchmark JSON of scripts.bench_train" in message


def test_gpu_report_names_an_odd_device_json_or_a_truncated_archive_and_keeps_nothing(tmp_path):
    from scripts import gpu_report

    res = tmp_path / "res"
    cases = [
        (b"[1, 2]", "logs/device.json holds a JSON list, expected the object scripts/gpu_facts.py writes"),
        (b'{"device": "cpu", "gpu": null}', "logs/device.json has no 'torch' entry"),
        (
            b'{"device": "cpu", "torch": "2", "matmul": {"n": 8}}',
            "logs/device.json: matmul = .*expected an object with n, dtype and tflops",
        ),
    ]
    for i, (device, expected) in enumerate(cases):
        tar_gz(tmp_path / f"{i}.tar.gz", {"logs/device.json": device})
        with pytest.raises(ValueError, match=expected):
            gpu_report.import_archive(str(tmp_path / f"{i}.tar.gz"), results=str(res), allow_cpu=True)
    tar_gz(tmp_path / "whole.tar.gz", {"logs/device.json": b"{}", "logs/stage.log": os.urandom(20_000)})
    (tmp_path / "cut.tar.gz").write_bytes((tmp_path / "whole.tar.gz").read_bytes()[:4000])
    with pytest.raises(ValueError, match="cut.tar.gz' is truncated or damaged"):
        gpu_report.import_archive(str(tmp_path / "cut.tar.gz"), results=str(res), allow_cpu=True)
    assert not res.exists()


def test_unpack_of_a_corrupt_xz_or_a_list_manifest_is_one_line_and_leaves_no_part(tmp_path):
    import lzma

    from scripts.pack_gpu import unpack

    pack = tmp_path / "pack"
    (pack / "data").mkdir(parents=True)
    blob = bytearray(lzma.compress(os.urandom(4000)))
    blob[40:60] = b"\0" * 20
    (pack / "data" / "x_val_000000.bin.xz").write_bytes(bytes(blob))
    (pack / "MANIFEST.json").write_text(json.dumps({"data": {"x_val_000000.bin": {"tokens": 2000, "sha256": "0" * 64}}}))
    with pytest.raises(SystemExit, match=r"x_val_000000.bin.xz is not a whole .xz file \(Corrupt input data\)"):
        unpack(str(pack), str(tmp_path / "dest"))
    assert os.listdir(tmp_path / "dest") == []
    (pack / "MANIFEST.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="MANIFEST.json is not a pack's manifest: expected a JSON object with a 'data' object"):
        unpack(str(pack), str(tmp_path / "dest"))


def test_export_refuses_a_link_or_an_unwritable_out_before_building_and_names_out(tmp_path, monkeypatch):
    import errno

    from safetensors import SafetensorError

    from scripts import export_hf

    monkeypatch.setattr(export_hf, "load_model", lambda *a: pytest.fail("built the model before checking --out"))
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(export_hf.ExportError, match=r"--out '.*dangling' is a symbolic link \(to '.*nowhere'\)"):
        export_hf.export("ckpt.pt", str(tmp_path / "dangling"))
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(export_hf.ExportError, match=r"--out '.*ro/hf': its folder '.*ro' cannot be written"):
        export_hf.export("ckpt.pt", str(tmp_path / "ro" / "hf"))
    full = export_hf.write_failed("hf", SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert str(full).startswith("--out 'hf': no space left on device while writing the export")
    assert (
        str(export_hf.write_failed("hf", OSError(errno.EROFS, "x", "hf.tmp12")))
        == "--out 'hf': read-only file system while writing the export (nothing kept)"
    )


def test_hf_weights_that_are_garbage_or_a_pickle_are_named_and_never_unpickled(tmp_path):
    import pickle

    from hf_import import read_weights
    from probes.clustering import load_hf_embeddings

    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "model.safetensors").write_bytes(b"\xff" * 64)
    for read in (read_weights, load_hf_embeddings):
        with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
            read(str(tmp_path / "st"))
    flag = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(flag)!r}, 'w')",))

    (tmp_path / "bin").mkdir()
    torch.save({"x": Evil()}, tmp_path / "bin" / "pytorch_model.bin", pickle_module=pickle)
    for read in (read_weights, load_hf_embeddings):
        with pytest.raises(CheckpointError, match="pytorch_model.bin: refused: it holds Python objects") as e:
            read(str(tmp_path / "bin"))
        assert "weights_only" not in str(e.value)
    assert not flag.exists()


def test_convert_trusted_on_a_missing_input_is_one_line(tmp_path):
    message = one_line(checkpoint.main, ["--convert-trusted", str(tmp_path / "missing.pt"), str(tmp_path / "out.pt")])
    assert (
        message
        == f"error: --convert-trusted: checkpoint {str(tmp_path / 'missing.pt')!r} does not exist (expected a ckpt.pt file you trust)"
    )
