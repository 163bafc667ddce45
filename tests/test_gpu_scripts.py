"""scripts/gpu_check.sh, gpu_study.sh and gpu_report.py: both GPU scripts end to end on a CPU, and the README's GPU section."""

import json
import re
import sys

import pytest

from runlog import read_metrics
from tests.conftest import run


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_stage_on_cpu(data_dir, tmp_path):
    """scripts/gpu_check.sh --smoke: the GPU issue's script end to end on CPU at a tiny shape, so
    that on a GPU only CUDA itself is new; its archive is what scripts/gpu_report.py keeps and renders."""
    import json
    import tarfile

    out, work = tmp_path / "gc", tmp_path / "work"
    r = run(["bash", "scripts/gpu_check.sh", "--smoke", data_dir], timeout=600, OUT=str(out), WORK=str(work), PYTHON=sys.executable)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.tar.gz", "stages.tsv"]  # checkpoints stay in WORK
    stages = [ln.split("\t") for ln in open(out / "stages.tsv").read().splitlines()[1:]]
    assert [s[0] for s in stages] == [
        "facts",
        "bench_train",
        "nanogpt",
        "bench_embed_gpt2",
        "bench_embed_large",
        "torchrun",
        "eval_here",
        "eval_cpu",
        "resume_cpu",
    ]
    assert all(s[1] in ("0", "skipped") for s in stages)
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        assert "logs/resume.json" in tar.getnames() and not any(n.endswith(".pt") for n in tar.getnames())
    bench = json.load(open(work / "logs" / "bench_train.json"))
    assert set(bench["results"]) == {"bpe_tied", "kron", "bpe_untied", "kron_tied"}
    assert all(v["graph_breaks"] == 0 for v in bench["results"].values())
    assert json.load(open(work / "logs" / "resume.json"))["ok"]
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- gpu-report:start -->\n<!-- gpu-report:end -->\ny\n")
    r = run(
        [
            sys.executable,
            "-m",
            "scripts.gpu_report",
            "--archive",
            str(out / "gpu_check.tar.gz"),
            "--results",
            str(tmp_path / "results"),
            "--readme",
            str(readme),
        ],
        timeout=60,
    )
    assert r.returncode != 0 and "not a GPU" in r.stderr  # a smoke run is never kept as a GPU result
    r = run(
        [
            sys.executable,
            "-m",
            "scripts.gpu_report",
            "--archive",
            str(out / "gpu_check.tar.gz"),
            "--results",
            str(tmp_path / "results"),
            "--readme",
            str(readme),
            "--allow-cpu",
        ],
        timeout=60,
    )
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

    from scripts import gpu_report

    out = tmp_path / "gs"
    r = run(
        ["bash", "scripts/gpu_study.sh", "--smoke", data_dir],
        timeout=600,
        OUT=str(out),
        WORK=str(tmp_path / "work"),
        PYTHON=sys.executable,
        STUDY_BUDGET_S="0",
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "kron-s1338 skipped" in r.stdout  # no time left in a budget of 0 s
    with tarfile.open(out / "gpu_study.tar.gz") as tar:
        names = tar.getnames()
    for arm in gpu_report.GPU_ARMS:
        assert f"logs/runs/{arm}-s1337/metrics.jsonl" in names and f"logs/probes/{arm}-s1337/robustness.json" in names
    assert not any(n.endswith(".pt") for n in names)
    kept = tmp_path / "gpu_124m"
    r = run(
        [
            sys.executable,
            "-m",
            "scripts.gpu_report",
            "--study-archive",
            str(out / "gpu_study.tar.gz"),
            "--study-results",
            str(kept),
            "--allow-cpu",
        ],
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    text = "\n".join(gpu_report.study_markdown(str(kept)))
    assert "one seed (1337), no interval" in text and "| kron | " in text and "kron − bpe_untied" in text
    assert "CPU forecast" not in text  # no forecast kept: nothing set beside the measured gap
    f3 = {"also": [{"target": {"N": 85e6, "D": 30.1e6}, "gap": 0.05, "interval95": [0.01, 0.09]}]}
    line = next(ln for ln in gpu_report.study_markdown(str(kept), f3) if "CPU forecast" in ln)
    final = {r: read_metrics(str(kept / "runs" / f"{r}-s1337"), "eval")[-1]["val_loss"] for r in ("bpe_tied", "kron")}
    measured = final["bpe_tied"] - final["kron"]
    assert "85M parameters, 30.1M tokens): bpe_tied − kron forecast +0.050 [+0.010, +0.090], measured" in line
    assert f"measured {measured:+.3f}" in line
    # an arm the device call cut short: its partial log is kept, named, and never compared
    log = kept / "runs" / "kron-s1337" / "metrics.jsonl"
    records = [json.loads(ln) for ln in open(log)]
    last_eval = max(i for i, r in enumerate(records) if r["kind"] == "eval")
    log.write_text("".join(json.dumps(r) + "\n" for r in records[:last_eval]))
    meta = json.load(open(kept / "runs" / "kron-s1337" / "ckpt.json"))
    (kept / "runs" / "kron-s1337" / "ckpt.json").write_text(json.dumps(dict(meta, finished=False)))
    text = "\n".join(gpu_report.study_markdown(str(kept)))
    assert "Not finished, so left out: kron (stopped at step 2 of 4)" in text and "| kron | " not in text
    assert re.search(r"bpe_untied − bpe_tied [+-]\d", text) and not re.search(r"kron − bpe_tied [+-]\d", text)
