"""What a new user runs, as written: wandb logging with the wandb pip installs today, the README's CPU
torchrun example, data preparation without network, the defaults that used to hurt, and every
command the README names."""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

import train
from runlog import read_metrics
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "fineweb_edu_sample.jsonl")
TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--eval_iters=1", "--log_interval=1"]


def run(args, timeout=300, **env):
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **env)
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


def test_wandb_offline_run_logs_loss_val_loss_and_norms_grouped_by_arm(data_dir, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = {}
    real_init = wandb.init

    def init(**kw):
        seen.update(kw)
        return real_init(**kw)
    monkeypatch.setattr(wandb, "init", init)
    out = tmp_path / "run"
    t = train.train(tiny_config(data_dir, out, embedding="kron", max_iters=4, eval_interval=2, wandb_log=True))
    assert seen["group"] == "kron" and seen["name"] == "kron-s1337" and seen["mode"] == "offline"
    wandb.teardown()  # the wandb-core service writes the run file asynchronously; a user's process flushes at exit
    folders = glob.glob(str(out / "wandb" / f"offline-run-*-{t.wandb_id}"))
    assert len(folders) == 1, os.listdir(out / "wandb")
    data = open(os.path.join(folders[0], f"run-{t.wandb_id}.wandb"), "rb").read()
    for key in (b"train/loss", b"val/loss", b"norms/proj_std_sqrtD", b"norms/emb_rms", b"kron-s1337"):
        assert key in data, key
    # a resumed run continues the same wandb run
    t2 = train.train(tiny_config(data_dir, out, embedding="kron", max_iters=6, eval_interval=2, lr_decay_iters=12,
                                   wandb_log=True, init_from="resume"))
    assert t2.wandb_id == t.wandb_id


def torchrun():
    exe = os.path.join(os.path.dirname(sys.executable), "torchrun")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_readme_cpu_torchrun_example_with_two_gloo_processes(data_dir, tmp_path):
    readme = open(os.path.join(ROOT, "README.md")).read()
    line = next(ln for ln in readme.splitlines() if ln.startswith("torchrun") and "_cpu.py" in ln)
    args = shlex.split(line.split("#")[0])
    assert args[:3] == ["torchrun", "--standalone", "--nproc_per_node=2"]
    out = tmp_path / "ddp"
    r = run(torchrun() + args[1:] + [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2", "--eval_interval=2",
                                     "--eval_iters=1"], OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert [rec["step"] for rec in read_metrics(str(out), "train")] == [0, 1]
    cfg = read_metrics(str(out), "config")[0]
    assert cfg["world_size"] == 2 and cfg["config"]["gradient_accumulation_steps"] == 4


@pytest.mark.parametrize("world", [1, 2, 4])
def test_cpu_configs_divide_accumulation_among_1_2_or_4_processes(world):
    from configurator import load_config
    for name in glob.glob(os.path.join(ROOT, "config", "*_cpu.py")):
        if name.endswith("study_cpu.py"):  # keeps the published study's batches; one process a run
            continue
        c = load_config([name])
        assert c["gradient_accumulation_steps"] % world == 0, name


def test_prepare_fineweb_offline_fails_fast_naming_alternatives(tmp_path):
    r = run([sys.executable, "-m", "data.fineweb_edu.prepare", "--out-dir", str(tmp_path)], timeout=60, HF_HUB_OFFLINE="1")
    assert r.returncode == 1
    assert "--data-files" in r.stderr and "llm.c" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_prepare_small_local_corpus_warns_and_writes_a_train_shard(tmp_path):
    r = run([sys.executable, "-m", "data.fineweb_edu.prepare", "--data-files", FIXTURE, "--out-dir", str(tmp_path), "--num-proc", "1"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"warning: the documents hold only [\d,]+ tokens, fewer than val_tokens=100,000,000", r.stderr)
    assert glob.glob(str(tmp_path / "*_train_*.bin")) and glob.glob(str(tmp_path / "*_val_*.bin"))
    from data.shards import TokenData
    assert TokenData(str(tmp_path), 32, 50304).n_train_tokens > 9 * TokenData(str(tmp_path), 32, 50304).n_val_tokens


def test_bare_train_py_refuses_with_the_list_of_configs():
    r = run([sys.executable, "train.py"], timeout=60)
    assert r.returncode == 1 and "config/kron_cpu.py" in r.stderr and "no config given" in r.stderr


def test_gpu_sized_config_on_cpu_asks_for_device_cpu(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    r = run([sys.executable, "train.py", "config/kron_124m.py", "--wandb_log=False", f"--out_dir={tmp_path / 'run'}"],
            timeout=120)
    assert r.returncode == 1 and "GPU-sized" in r.stderr and "--device=cpu" in r.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


# --------------------------------------------------------------------------- the README's commands

def readme_commands():
    """Every command line in the README's code blocks (continuations joined, comments dropped)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    cmds = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith(("python ", "bash ", "torchrun ")):
                cmds.append(line)
    return cmds


@pytest.mark.slow
def test_readme_commands_name_files_that_exist_and_scripts_that_answer_help():
    cmds = readme_commands()
    assert len(cmds) >= 10
    scripts = set()
    for cmd in cmds:
        words = shlex.split(cmd.replace("$HOST", "host"))
        for w in words:
            if re.fullmatch(r"[\w/.-]+\.(py|sh)", w):
                assert os.path.isfile(os.path.join(ROOT, w)), f"README names {w!r}, which does not exist: {cmd}"
                if w.endswith(".py") and not w.startswith("config/"):
                    scripts.add(w)
    for script in sorted(scripts):
        r = run([sys.executable, script, "--help"], timeout=120)
        assert r.returncode == 0 and "usage" in r.stdout.lower(), f"{script} --help: {r.stderr[-500:]}"


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_stage_on_cpu(data_dir, tmp_path):
    """scripts/gpu_check.sh --smoke: the GPU issue's script end to end on CPU at a tiny shape, so
    that on a GPU only CUDA itself is new; its archive is what scripts/gpu_report.py keeps and renders."""
    import json
    import tarfile
    out, work = tmp_path / "gc", tmp_path / "work"
    r = run(["bash", "scripts/gpu_check.sh", "--smoke", data_dir], timeout=600, OUT=str(out), WORK=str(work),
            PYTHON=sys.executable)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.tar.gz", "stages.tsv"]  # checkpoints stay in WORK
    stages = [ln.split("\t") for ln in open(out / "stages.tsv").read().splitlines()[1:]]
    assert [s[0] for s in stages] == ["facts", "bench_train", "nanogpt", "bench_embed_gpt2", "bench_embed_large",
                                      "torchrun", "eval_here", "eval_cpu", "resume_cpu"]
    assert all(s[1] in ("0", "skipped") for s in stages)
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        assert "logs/resume.json" in tar.getnames() and not any(n.endswith(".pt") for n in tar.getnames())
    bench = json.load(open(work / "logs" / "bench_train.json"))
    assert set(bench["results"]) == {"bpe_tied", "kron", "bpe_untied", "kron_tied"}
    assert all(v["graph_breaks"] == 0 for v in bench["results"].values())
    assert json.load(open(work / "logs" / "resume.json"))["ok"]
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- gpu-report:start -->\n<!-- gpu-report:end -->\ny\n")
    r = run([sys.executable, "-m", "scripts.gpu_report", "--archive", str(out / "gpu_check.tar.gz"), "--results",
             str(tmp_path / "results"), "--readme", str(readme)], timeout=60)
    assert r.returncode != 0 and "not a GPU" in r.stderr  # a smoke run is never kept as a GPU result
    r = run([sys.executable, "-m", "scripts.gpu_report", "--archive", str(out / "gpu_check.tar.gz"), "--results",
             str(tmp_path / "results"), "--readme", str(readme), "--allow-cpu"], timeout=60)
    assert r.returncode == 0, r.stderr
    text = readme.read_text()
    assert "| kron_tied |" in text and "resumed on the CPU for a step: ok" in text and text.endswith("y\n")


def test_readme_gpu_section_is_rendered_from_kept_results():
    r = run([sys.executable, "-m", "scripts.gpu_report", "--check"], timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_gpu_study_smoke_trains_probes_and_reports_on_cpu(data_dir, tmp_path):
    """scripts/gpu_study.sh --smoke: the 124M GPU study's path (3 arms on the same batches, the probe
    on each, one archive), then kept by gpu_report.py and written up by make_results' section."""
    import tarfile

    from scripts import make_results
    out = tmp_path / "gs"
    r = run(["bash", "scripts/gpu_study.sh", "--smoke", data_dir], timeout=600, OUT=str(out), WORK=str(tmp_path / "work"),
            PYTHON=sys.executable, STUDY_BUDGET_S="0")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "kron-s1338 skipped" in r.stdout  # no time left in a budget of 0 s
    with tarfile.open(out / "gpu_study.tar.gz") as tar:
        names = tar.getnames()
    for arm in make_results.GPU_ARMS:
        assert f"logs/runs/{arm}-s1337/metrics.jsonl" in names and f"logs/probes/{arm}-s1337/robustness.json" in names
    assert not any(n.endswith(".pt") for n in names)
    kept = tmp_path / "gpu_124m"
    r = run([sys.executable, "-m", "scripts.gpu_report", "--study-archive", str(out / "gpu_study.tar.gz"),
             "--study-results", str(kept), "--allow-cpu"], timeout=60)
    assert r.returncode == 0, r.stderr
    text = "\n".join(make_results.gpu_study_section(str(kept)))
    assert "one seed (1337), no interval" in text and "| kron | " in text and "kron − bpe_untied" in text
    # an arm the device call cut short: its partial log is kept, named, and never compared
    log = kept / "runs" / "kron-s1337" / "metrics.jsonl"
    records = [json.loads(ln) for ln in open(log)]
    last_eval = max(i for i, r in enumerate(records) if r["kind"] == "eval")
    log.write_text("".join(json.dumps(r) + "\n" for r in records[:last_eval]))
    meta = json.load(open(kept / "runs" / "kron-s1337" / "ckpt.json"))
    (kept / "runs" / "kron-s1337" / "ckpt.json").write_text(json.dumps(dict(meta, finished=False)))
    text = "\n".join(make_results.gpu_study_section(str(kept)))
    assert "Not finished, so left out: kron (stopped at step 2 of 4)" in text and "| kron | " not in text
    assert re.search(r"bpe_untied − bpe_tied [+-]\d", text) and not re.search(r"kron − bpe_tied [+-]\d", text)
