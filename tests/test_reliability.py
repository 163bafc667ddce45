"""Issue 39's bad cases: a pack never deletes a user's folder or writes outside its destination, an
archive cannot expand into memory, weights are checked before use, data that is not what it claims is
named, and a killed export leaves nothing behind for good."""

import io
import json
import os
import tarfile
import warnings

import numpy as np
import pytest
import torch

import checkpoint
from checkpoint import CheckpointError


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
    with tarfile.open(path, "w:gz") as tar:
        for name, size in (("logs/device.json", 10), ("logs/bench_train.log", 5000)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"x" * size))
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
