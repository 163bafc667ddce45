"""Rerun the bad-input battery (issue 39): build each case's fixture in a temp folder, run the case as
a subprocess and classify what it did.

    python -m scripts.reliability_cases                       # all cases -> results/reliability/cases.md
    python -m scripts.reliability_cases --only NH_ NG_        # cases whose id starts so, table on stdout

Verdicts: a case expected to be refused is *clear* when it exits nonzero with a one-line `error: ...`
(ours or argparse's) naming what its `names` list asks for, *unclear* when it shows a traceback or its
message misses those names, *bad* when it exits 0 (or its `check` finds lost data). A case expected
to succeed (`ok`) is clear when it exits 0 and its check holds. Cases that need mounts (a read-only or
full filesystem) run inside `unshare -m`; where that is not allowed they are skipped, saying so.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.reliability_cases", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
W = "<work>"  # the scratch folder, as the table shows it

TINY = """\
data_dir = {data!r}
n_layer = 1
n_head = 2
n_embd = 64
block_size = 32
batch_size = 4
max_iters = 4
eval_interval = 2
eval_iters = 2
log_interval = 1
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 1
lr_decay_iters = 4
embedding = "kron"
device = "cpu"
"""


def train_cmd(out, *extra):
    return f"{PY} train.py {W}/cfg/tiny.py --out_dir={W}/out/{out} " + " ".join(extra)


BASE = f"{W}/out/base/ckpt.pt"
GR = f"{PY} -m scripts.gpu_report --results {W}/gr/res --readme {W}/gr/README.md --allow-cpu --archive {W}/gpu"
RO = "mount -t tmpfs -o ro tmpfs {path}"  # a read-only filesystem over an (empty) folder
RO_BIND = "mount --bind {path} {path} && mount -o remount,bind,ro {path}"  # the folder as it is, read-only
FULL = "mount -t tmpfs -o size=256k tmpfs {path}"

# id, what, command, expect ('error' or 'ok'), names (what the error line must mention), and optionally
# mounts [(template, path)] run first inside `unshare -m`, and check(work) -> None or what went wrong.
CASES = [
    dict(
        id="A_convert_missing",
        what="--convert-trusted on a missing input",
        cmd=f"{PY} checkpoint.py --convert-trusted /nonexistent.pt {W}/x.pt",
        names=["/nonexistent.pt"],
    ),
    dict(
        id="E_resume_wrong_weight_shape",
        what="resume a ckpt with one weight of the wrong shape",
        cmd=train_cmd("E_wrongshape", "--init_from=resume --max_iters=8"),
        names=["ckpt.pt", "c_attn"],
    ),
    dict(
        id="J_deep",
        what="run_study: ckpt.json nested 200k deep",
        cmd=f"{PY} -m scripts.run_study --base {W}/cfg/tiny.py --arms kron --seeds 1337 --out-root {W}/sj_deep",
        names=["ckpt.json"],
    ),
    dict(
        id="T_resume_missing_optimizer",
        what="resume a ckpt without 'optimizer'",
        cmd=train_cmd("T_missing_optimizer", "--init_from=resume --max_iters=8"),
        names=["ckpt.pt", "optimizer"],
    ),
    dict(
        id="T_resume_missing_rng",
        what="resume a ckpt without 'rng'",
        cmd=train_cmd("T_missing_rng", "--init_from=resume --max_iters=8"),
        names=["ckpt.pt", "rng"],
    ),
    dict(
        id="T_resume_nan_weights",
        what="resume a ckpt whose first weight is NaN",
        cmd=train_cmd("T_nan_weights", "--init_from=resume --max_iters=8"),
        names=["ckpt.pt"],
    ),
    dict(
        id="T_nan_loss",
        what="a run whose loss turns NaN (--learning_rate=1e30; extra case)",
        cmd=train_cmd("T_nan_loss", "--learning_rate=1e30 --min_lr=0 --grad_clip=0"),
        names=["loss is nan"],
    ),
    dict(id="B_num_threads_huge", what="--num_threads=10**30", cmd=train_cmd("B_nt", f"--num_threads={10**30}"), names=["num_threads"]),
    dict(
        id="B_run_kron_pos_dim_huge",
        what="--kron_pos_dim=10**30",
        cmd=train_cmd("B_kpd", f"--kron_pos_dim={10**30}"),
        names=["kron_pos_dim"],
    ),
    dict(
        id="B_spot_cfg_syntax",
        what="config file with a syntax error",
        cmd=f"{PY} train.py {W}/cfg/tiny.py {W}/cfg/syntax_err.py",
        names=["syntax_err.py:2"],
    ),
    dict(
        id="B_spot_include_self",
        what="config that include()s itself",
        cmd=f"{PY} train.py {W}/cfg/include_self.py",
        names=["include_self.py", "includes itself"],
    ),
    dict(
        id="E_kron_tied_posdim2",
        what="kron_tied with kron_pos_dim=2",
        cmd=train_cmd("E_kt2", "--embedding=kron_tied --kron_pos_dim=2"),
        names=["kron_tied", "kron_pos_dim"],
    ),
    dict(
        id="C_ro_new",
        what="new run in a read-only out_dir",
        cmd=train_cmd("rofs/newrun"),
        mounts=[(RO, f"{W}/out/rofs")],
        names=["rofs/newrun"],
    ),
    dict(
        id="C_ro_probe_out",
        what="probe --out on a read-only filesystem",
        cmd=f"{PY} -m probes.robustness kron={BASE} --out {W}/rofs2/probe_out",
        mounts=[(RO, f"{W}/rofs2")],
        names=["probe_out"],
    ),
    dict(
        id="C_ro_resume",
        what="resume in a read-only out_dir",
        cmd=train_cmd("ro_run", "--init_from=resume --max_iters=8"),
        mounts=[(RO_BIND, f"{W}/out/ro_run")],
        names=["ro_run"],
    ),
    dict(
        id="C_torn_metrics_resume",
        what="resume with a torn last line in metrics.jsonl",
        expect="ok",
        cmd=train_cmd("C_torn", "--init_from=resume --max_iters=8"),
        check="torn",
    ),
    dict(
        id="C_torn_metrics_middle",
        what="resume with a torn line in the middle of metrics.jsonl (extra case)",
        cmd=train_cmd("C_torn_mid", "--init_from=resume --max_iters=8"),
        names=["metrics.jsonl:"],
    ),
    dict(
        id="D_bench_embed_device_bad",
        what="bench_embed --devices tpu",
        cmd=f"{PY} -m scripts.bench_embed --shapes tiny --out {W}/pout/be.json --repeats 1 --devices tpu",
        names=["tpu", "cpu"],
    ),
    dict(
        id="D_bench_train_device_bad",
        what="bench_train --device tpu",
        cmd=f"{PY} -m scripts.bench_train --n-layer 1 --n-head 2 --n-embd 32 --block-size 32 --batch-size 2 --arms kron "
        f"--out {W}/pout/bt.json --steps 1 --warmup 0 --device tpu",
        names=["tpu", "cpu"],
    ),
    dict(
        id="D_clustering_hf_badst",
        what="clustering --hf dir with a garbage model.safetensors",
        cmd=f"{PY} -m probes.clustering --hf x={W}/hf_badst --out {W}/pout/D_hf",
        names=["model.safetensors"],
    ),
    dict(
        id="D_clustering_hf_evil",
        what="clustering --hf dir with a pickle pytorch_model.bin",
        cmd=f"{PY} -m probes.clustering --hf x={W}/hf_evil --out {W}/pout/D_hf",
        names=["pytorch_model.bin"],
        check="not_pwned",
    ),
    dict(
        id="D_compare_bench_notbench",
        what="compare_bench on unrelated JSON",
        cmd=f"{PY} -m scripts.compare_bench --before {W}/din/notbench.json --after {W}/din/notbench.json",
        names=["notbench.json", "benchmark"],
    ),
    dict(
        id="D_gen_n0",
        what="robustness --generate --n 0",
        cmd=f"{PY} -m probes.robustness kron={BASE} --out {W}/pout/D --generate {W}/din/prompts.txt --n 0",
        names=["--n"],
    ),
    dict(
        id="D_gen_nneg",
        what="robustness --generate --n -5",
        cmd=f"{PY} -m probes.robustness kron={BASE} --out {W}/pout/D --generate {W}/din/prompts.txt --n -5",
        names=["--n"],
    ),
    dict(
        id="D_generation_device_bad",
        what="probes.generation --device tpu",
        cmd=f"{PY} -m probes.generation kron={BASE} --device tpu --out {W}/pout/D_gen",
        names=["--device", "tpu"],
    ),
    dict(
        id="NS_args_posdim_huge",
        what="sample.py: model_args kron_pos_dim=10**6 (ulimit -v 6 GB)",
        cmd=f"ulimit -v 6000000; {PY} sample.py --ckpt {W}/tamper/args_posdim_huge.pt --num_samples=1 --max_new_tokens=3",
        names=["kron_pos_dim"],
    ),
    dict(
        id="NS_int_weights",
        what="sample.py: an int64 weight",
        names=["c_attn"],
        cmd=f"{PY} sample.py --ckpt {W}/tamper/int_weights.pt --num_samples=1 --max_new_tokens=3",
    ),
    dict(
        id="NS_nan_all",
        what="sample.py: all-NaN weights",
        names=["non-finite"],
        cmd=f"{PY} sample.py --ckpt {W}/tamper/nan_all.pt --num_samples=1 --max_new_tokens=5",
    ),
    dict(
        id="NS_nan_greedy",
        what="sample.py: all-NaN weights, greedy",
        names=["non-finite"],
        cmd=f"{PY} sample.py --ckpt {W}/tamper/nan_all.pt --num_samples=1 --max_new_tokens=5 --temperature=0",
    ),
    dict(
        id="NS_nan_one",
        what="sample.py: one NaN tensor (wte)",
        names=["non-finite"],
        cmd=f"{PY} sample.py --ckpt {W}/tamper/nan_weights.pt --num_samples=1 --max_new_tokens=5",
    ),
    dict(
        id="NS_seed_huge",
        what="sample.py --seed=2**70",
        names=["--seed"],
        cmd=f"{PY} sample.py --ckpt {BASE} --seed={2**70} --num_samples=1 --max_new_tokens=3",
    ),
    dict(
        id="NS_device_tpu",
        what="sample.py --device=tpu",
        names=["--device", "tpu"],
        cmd=f"{PY} sample.py --ckpt {BASE} --device=tpu --num_samples=1 --max_new_tokens=3",
    ),
    dict(
        id="NE_args_posdim_huge",
        what="export_hf: model_args kron_pos_dim=10**6 (ulimit -v 6 GB)",
        cmd=f"ulimit -v 6000000; {PY} -m scripts.export_hf --ckpt {W}/tamper/args_posdim_huge.pt --out {W}/hf/args_posdim_huge",
        names=["kron_pos_dim"],
    ),
    dict(
        id="NE_nan_all",
        what="export_hf: all-NaN weights",
        names=["non-finite"],
        cmd=f"{PY} -m scripts.export_hf --ckpt {W}/tamper/nan_all.pt --out {W}/hf/nan_all",
    ),
    dict(
        id="NE_out_dangling_symlink",
        what="export_hf --out a dangling symlink",
        names=["--out", "hf/dangling"],
        cmd=f"{PY} -m scripts.export_hf --ckpt {BASE} --out {W}/hf/dangling",
        check="no_tmp_hf",
    ),
    dict(
        id="NE_out_ro",
        what="export_hf --out on a read-only filesystem",
        names=["rofs3/hf'"],
        cmd=f"{PY} -m scripts.export_hf --ckpt {BASE} --out {W}/rofs3/hf",
        mounts=[(RO, f"{W}/rofs3")],
    ),
    dict(
        id="NE_out_full",
        what="export_hf --out on a 256 KB filesystem (ENOSPC)",
        names=["no space", "fullfs/hf"],
        cmd=f"{PY} -m scripts.export_hf --ckpt {BASE} --out {W}/fullfs/hf",
        mounts=[(FULL, f"{W}/fullfs")],
    ),
    dict(
        id="NH_label_sup",
        what="hellaswag: label '²'",
        names=["label_sup.jsonl:1", "label"],
        cmd=f"{PY} -m probes.hellaswag --ckpt {BASE} --data {W}/hs/label_sup.jsonl",
    ),
    dict(
        id="NH_binary",
        what="hellaswag: a binary file",
        names=["binary.jsonl:1"],
        cmd=f"{PY} -m probes.hellaswag --ckpt {BASE} --data {W}/hs/binary.jsonl",
    ),
    dict(
        id="NH_nonutf8",
        what="hellaswag: a non-UTF-8 line",
        names=["nonutf8.jsonl:2"],
        cmd=f"{PY} -m probes.hellaswag --ckpt {BASE} --data {W}/hs/nonutf8.jsonl",
    ),
    dict(
        id="NH_deep",
        what="hellaswag: a line nested 200k deep",
        names=["deep.jsonl:1"],
        cmd=f"{PY} -m probes.hellaswag --ckpt {BASE} --data {W}/hs/deep.jsonl",
    ),
    dict(
        id="NG_minimal",
        what="gpu_report --archive whose device.json holds only device and gpu (notes: NG_good)",
        names=["good.tar.gz", "'torch'"],
        cmd=f"{GR}/good.tar.gz",
    ),
    dict(
        id="NG_device_list", what="gpu_report --archive whose device.json is a list", names=["device.json"], cmd=f"{GR}/device_list.tar.gz"
    ),
    dict(id="NG_truncated", what="gpu_report --archive truncated .tar.gz", names=["truncated.tar.gz"], cmd=f"{GR}/truncated.tar.gz"),
    dict(
        id="NG_bomb",
        what="gpu_report --archive with a sparse 2 GB logs/big.log (ulimit -v 4 GB)",
        names=["big.log"],
        cmd=f"ulimit -v 4000000; {GR}/bomb.tar.gz",
    ),
    dict(
        id="NP_unpack_traversal",
        what="pack --unpack with MANIFEST name '../evil.bin'",
        names=["../evil.bin"],
        cmd=f"{PY} -m scripts.pack_gpu --out {W}/pack_trav --unpack {W}/unpacked/dest",
        check="no_evil",
    ),
    dict(
        id="NP_unpack_badxz",
        what="pack --unpack with a corrupt .xz",
        names=[".xz"],
        cmd=f"{PY} -m scripts.pack_gpu --out {W}/pack_badxz --unpack {W}/unpacked2",
        check="no_part",
    ),
    dict(
        id="NP_unpack_manifest_list",
        what="pack --unpack whose MANIFEST is a list",
        names=["MANIFEST.json"],
        cmd=f"{PY} -m scripts.pack_gpu --out {W}/pack_manifest_list --unpack {W}/unpacked5",
    ),
    dict(
        id="NP_pack_out_userdir",
        what="pack --out an existing user folder",
        names=["userdir"],
        cmd=f"{PY} -m scripts.pack_gpu --data {W}/data --out {W}/userdir --nanogpt ''",
        check="precious",
    ),
    dict(
        id="NK_export_tmp_leftover",
        what="export_hf to an --out beside a killed export's temp folder (notes: NK_export_kill9)",
        expect="ok",
        cmd=f"{PY} -m scripts.export_hf --ckpt {BASE} --out {W}/hfk/model",
        check="no_tmp_hfk",
    ),
]


def sh(cmd, work, timeout=600):
    return subprocess.run(cmd.replace(W, work), shell=True, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def tamper(work, src, dst, edit):
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    torch.save(ckpt, dst)


def run_copy(work, name, edit=None):
    """A copy of the base run as out/<name>, its checkpoint edited by edit(ckpt)."""
    dst = os.path.join(work, "out", name)
    shutil.copytree(os.path.join(work, "out", "base"), dst)
    if edit:
        tamper(work, os.path.join(dst, "ckpt.pt"), os.path.join(dst, "ckpt.pt"), edit)
    return dst


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def tar_gz(path, members):
    """A .tar.gz at path holding {name: bytes}."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def build(work):
    """Every case's fixture under work (a tiny corpus, a trained base run, tampered copies, files)."""
    from pydoc_data.topics import topics

    import torch

    sys.path.insert(0, ROOT)
    from shards import documents_to_shards

    data = os.path.join(work, "data")
    documents_to_shards([topics[k] for k in sorted(topics)], data, "pydoc", shard_tokens=10**9, val_tokens=4096, num_proc=1)
    write(f"{work}/cfg/tiny.py", TINY.format(data=data))
    write(f"{work}/cfg/syntax_err.py", "n_layer = 1\nn_head = = 2\n")
    write(f"{work}/cfg/include_self.py", 'include("include_self.py")\n')
    r = sh(train_cmd("base"), work)
    if r.returncode:
        sys.exit(f"error: the base run failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    base = os.path.join(work, "out", "base", "ckpt.pt")

    def first_weight(ckpt):
        return next(k for k, v in ckpt["model"].items() if v.is_floating_point() and v.dim() == 2)

    run_copy(work, "E_wrongshape", lambda c: c["model"].__setitem__(next(k for k in c["model"] if "c_attn.weight" in k), torch.randn(3, 5)))
    run_copy(work, "T_missing_optimizer", lambda c: c.pop("optimizer"))
    run_copy(work, "T_missing_rng", lambda c: c.pop("rng"))
    run_copy(work, "T_nan_weights", lambda c: c["model"][first_weight(c)].fill_(float("nan")))
    run_copy(work, "ro_run")
    for name, middle in (("C_torn", False), ("C_torn_mid", True)):
        log = os.path.join(run_copy(work, name), "metrics.jsonl")
        lines = open(log).read().splitlines(keepends=True)
        if middle:
            lines.insert(len(lines) // 2, '{"kind": "train", "step": 1, "lo\n')
        else:
            lines.append('{"kind": "train", "step": 5, "loss": 3.')  # a kill mid-write
        write(log, "".join(lines))
    os.makedirs(f"{work}/out/rofs", exist_ok=True)
    for d in ("rofs2", "rofs3", "fullfs", "pout", "hf", "hfk", "unpacked"):
        os.makedirs(f"{work}/{d}", exist_ok=True)

    tamper(
        work,
        base,
        f"{work}/tamper/int_weights.pt",
        lambda c: c["model"].__setitem__(
            next(k for k in c["model"] if "c_attn.weight" in k),
            torch.ones_like(c["model"][next(k for k in c["model"] if "c_attn.weight" in k)], dtype=torch.int64),
        ),
    )
    tamper(work, base, f"{work}/tamper/nan_all.pt", lambda c: [v.fill_(float("nan")) for v in c["model"].values() if v.is_floating_point()])
    tamper(work, base, f"{work}/tamper/nan_weights.pt", lambda c: c["model"][first_weight(c)].fill_(float("nan")))
    tamper(work, base, f"{work}/tamper/args_posdim_huge.pt", lambda c: c["model_args"].__setitem__("kron_pos_dim", 10**6))

    deep = "[" * 200_000 + "]" * 200_000
    write(f"{work}/sj_deep/kron-s1337/ckpt.json", deep)
    write(
        f"{work}/hf_badst/config.json",
        json.dumps({"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 64, "n_positions": 32, "vocab_size": 50257}),
    )
    write(f"{work}/hf_badst/model.safetensors", b"\xff" * 64)
    write(f"{work}/hf_evil/config.json", open(f"{work}/hf_badst/config.json").read())
    for d in ("hf_badst", "hf_evil"):  # a real tokenizer, so the weights file is what is judged
        shutil.copy(os.path.join(ROOT, "data", "english_bpe8k", "tokenizer.json"), f"{work}/{d}/tokenizer.json")
    evil = f"import os; open({os.path.join(work, 'PWNED_hf')!r}, 'w').write('x')"
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, (evil,))

    torch.save({"x": Evil()}, f"{work}/hf_evil/pytorch_model.bin", _use_new_zipfile_serialization=True, pickle_module=pickle)
    write(f"{work}/din/notbench.json", json.dumps({"hello": [1, 2, 3]}))
    write(f"{work}/din/prompts.txt", "The quick brown fox jumps over the lazy dog\nPython lists are mutable sequences\n")

    good = {"ctx": "A man sits", "endings": ["a", "b", "c", "d"], "label": 0}
    write(f"{work}/hs/label_sup.jsonl", json.dumps({**good, "label": "²"}, ensure_ascii=False) + "\n")
    write(f"{work}/hs/binary.jsonl", bytes(range(0x85, 0x100)) + b"\n")
    write(f"{work}/hs/nonutf8.jsonl", (json.dumps(good) + "\n").encode() + b'{"ctx": "caf\xff"}\n')
    write(f"{work}/hs/deep.jsonl", deep + "\n")

    tar_gz(f"{work}/gpu/good.tar.gz", {"logs/device.json": json.dumps({"device": "cpu", "gpu": None}).encode()})
    tar_gz(f"{work}/gpu/device_list.tar.gz", {"logs/device.json": b"[1, 2]"})
    full = open(f"{work}/gpu/good.tar.gz", "rb").read()
    tar_gz(
        f"{work}/gpu/big.tar.gz",
        {"logs/device.json": json.dumps({"device": "cpu", "gpu": None}).encode(), "logs/stage.log": os.urandom(20000)},
    )
    write(f"{work}/gpu/truncated.tar.gz", open(f"{work}/gpu/big.tar.gz", "rb").read()[:4000])
    del full
    sparse = f"{work}/gpu/big.log"
    with open(sparse, "wb") as f:
        f.truncate(2 * 2**30)
    with tarfile.open(f"{work}/gpu/bomb.tar.gz", "w:gz", compresslevel=1) as tar:
        tar.add(sparse, "logs/big.log")
        info = tarfile.TarInfo("logs/device.json")
        payload = json.dumps({"device": "cpu", "gpu": None}).encode()
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    os.remove(sparse)

    r = sh(f"{PY} -m scripts.pack_gpu --data {W}/data --out {W}/pack_ok --nanogpt ''", work)
    if r.returncode:
        sys.exit(f"error: packing the fixture failed:\n{r.stderr[-2000:]}")
    manifest = json.load(open(f"{work}/pack_ok/MANIFEST.json"))
    shard = next(iter(manifest["data"]))
    shutil.copytree(f"{work}/pack_ok", f"{work}/pack_trav")
    os.rename(f"{work}/pack_trav/data/{shard}.xz", f"{work}/pack_trav/data/../evil.bin.xz")
    write(f"{work}/pack_trav/MANIFEST.json", json.dumps({**manifest, "data": {"../evil.bin": manifest["data"][shard]}}))
    shutil.copytree(f"{work}/pack_ok", f"{work}/pack_badxz")
    xz = f"{work}/pack_badxz/data/{shard}.xz"
    blob = bytearray(open(xz, "rb").read())
    blob[40:60] = b"\x00" * 20
    write(xz, bytes(blob))
    shutil.copytree(f"{work}/pack_ok", f"{work}/pack_manifest_list")
    write(f"{work}/pack_manifest_list/MANIFEST.json", "[1, 2]")
    write(f"{work}/userdir/precious.txt", "years of work")
    os.symlink(f"{work}/nowhere", f"{work}/hf/dangling")
    os.makedirs(f"{work}/hfk/model.tmp999999")  # a killed export's temp folder (no such process)
    write(f"{work}/hfk/model.tmp999999/model.safetensors", b"partial")


CHECKS = {  # after the command: None when all is well, else what went wrong (makes the case bad)
    "torn": lambda w: (
        None if all(_json_ok(ln) for ln in open(f"{w}/out/C_torn/metrics.jsonl")) else "a torn line is still in metrics.jsonl"
    ),
    "not_pwned": lambda w: "the pickle ran code" if os.path.exists(f"{w}/PWNED_hf") else None,
    "no_tmp_hf": lambda w: f"left {os.listdir(f'{w}/hf')}" if any(".tmp" in n for n in os.listdir(f"{w}/hf")) else None,
    "no_tmp_hfk": lambda w: f"left {os.listdir(f'{w}/hfk')}" if any(".tmp" in n for n in os.listdir(f"{w}/hfk")) else None,
    "no_evil": lambda w: "wrote outside DEST" if os.path.exists(f"{w}/unpacked/evil.bin") else None,
    "no_part": lambda w: "left .part debris" if any(n.endswith(".part") for n in os.listdir(f"{w}/unpacked2")) else None,
    "precious": lambda w: None if os.path.isfile(f"{w}/userdir/precious.txt") else "deleted the user's precious.txt",
}


def _json_ok(line):
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def classify(case, rc, out, work):
    """(what happened, verdict): the last line of the output, judged as the module doc says."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    shown = (last[:200] + ("..." if len(last) > 200 else "")).replace(work, W).replace("|", "\\|")
    now = f"rc={rc}: {shown}"
    problem = CHECKS[case["check"]](work) if case.get("check") else None
    if problem:
        return f"{now} ({problem})", "bad"
    if case.get("expect", "error") == "ok":
        return now, "clear" if rc == 0 else "unclear" if rc != 0 and "Traceback" not in out else "bad"
    if rc == 0:
        return now, "bad"
    one_line = last.startswith("error:") or ": error: " in last
    named = all(n.replace(W, work) in last or n in last.replace(work, W) for n in case.get("names", []))
    return now, "clear" if one_line and named and "Traceback" not in out else "unclear"


def can_mount():
    probe = tempfile.mkdtemp()
    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {probe}"], capture_output=True).returncode == 0
    except OSError:
        return False
    finally:
        os.rmdir(probe)


def run_cases(cases, work):
    """[(case, now, verdict)] for each case, run from the repository root."""
    mount_ok = can_mount()
    rows = []
    for case in cases:
        cmd = case["cmd"]
        if case.get("mounts"):
            if not mount_ok:
                rows.append((case, "needs `unshare -m` and mount (root), not allowed here", "skipped"))
                continue
            setup = " && ".join(t.format(path=p) for t, p in case["mounts"])
            cmd = f"unshare -m sh -c {shquote(setup + ' && ' + cmd)}"
        r = sh(cmd, work)
        now, verdict = classify(case, r.returncode, r.stdout + r.stderr, work)
        print(f"{case['id']}: {verdict} ({now})", flush=True)
        rows.append((case, now, verdict))
    return rows


def shquote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


def table(rows):
    counts = {v: sum(1 for r in rows if r[2] == v) for v in ("clear", "unclear", "bad", "skipped")}
    out = [
        "# Bad-input battery (issue 39), rerun by scripts/reliability_cases.py",
        "",
        "Each case's fixture is built in a temp folder (`<work>`); the command runs from the repository root.",
        "clear: refused with one line `error: ...` naming what its row asks for (or, for an `ok` case, done right);",
        "unclear: a traceback, or a message that misses the names; bad: exit 0 where a refusal was due, or lost data.",
        "",
        f"**{len(rows)} cases: {counts['clear']} clear, {counts['unclear']} unclear, {counts['bad']} bad, {counts['skipped']} skipped.**",
        "",
        "| id | what | now | verdict |",
        "|---|---|---|---|",
    ]
    out += [f"| {c['id']} | {c['what']} | {now} | {v} |" for c, now, v in rows]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="*", help="run only the cases whose id starts with one of these (table to stdout)")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "reliability", "cases.md"))
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (its path is printed)")
    args = p.parse_args(argv)
    cases = [c for c in CASES if not args.only or any(c["id"].startswith(o) for o in args.only)]
    work = tempfile.mkdtemp(prefix="reliability-")
    try:
        build(work)
        text = table(run_cases(cases, work))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.only:
        print(text)
    else:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
