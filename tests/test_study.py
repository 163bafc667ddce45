"""Study tools: compare.py on synthetic logs with known answers; run_study's skip/resume logic."""
import json
import os
import statistics

import pytest

import analysis
import train
from scripts import compare, param_table, run_study
from tests.conftest import tiny_config

# t_{0.975} with 2 degrees of freedom in closed form, (2p - 1) * sqrt(2 / (4 p (1 - p))) = 4.30265...:
# a check of stats.py's scipy quantile that does not use scipy
T975_DF2 = 0.95 * (2 / (4 * 0.975 * 0.025)) ** 0.5


def write_run(root, name, seed, curve, key="wte_std"):
    d = root / f"{name}-s{seed}"
    d.mkdir(parents=True)
    with open(d / "metrics.jsonl", "w") as f:
        for step, v in curve:
            f.write(json.dumps({"kind": "eval", "step": step, "val_loss": v, key: 1.0 + step / 1000, "emb_rms": 1.0}) + "\n")
            f.write(json.dumps({"kind": "train", "step": step, "loss": v, "tokens_per_s": 1000.0, "dt_ms": 10.0}) + "\n")
    return d


def test_compare_known_gap_spread_and_crossing(tmp_path):
    steps = list(range(0, 101, 10))
    offsets = {1: 0.01, 2: 0.0, 3: -0.01}
    kron_gaps = {1: 0.06, 2: 0.05, 3: 0.04}  # mean 0.05, std 0.01
    for seed, off in offsets.items():
        write_run(tmp_path, "bpe_tied", seed, [(s, 5 - s / 100 + off) for s in steps])
        write_run(tmp_path, "kron", seed, [(s, 5 - s / 100 + off - kron_gaps[seed]) for s in steps], key="proj_std_sqrtD")
        write_run(tmp_path, "bpe_untied", seed, [(s, 5.5 - s / 200) for s in steps])
    res = compare.main([str(tmp_path), "--out", str(tmp_path / "cmp")])
    k = res["groups"]["kron"]
    assert res["baseline_final_mean"] == pytest.approx(4.0)
    assert k["gap_nats_mean"] == pytest.approx(0.05) and k["gap_nats_std"] == pytest.approx(0.01)
    half = T975_DF2 * 0.01 / 3 ** 0.5  # t_{0.975, 2} * sd / sqrt(3)
    assert k["gap_nats_ci95"] == pytest.approx([0.05 - half, 0.05 + half])
    assert k["gap_pct_mean"] == pytest.approx(100 * statistics.mean([0.06 / 4.01, 0.05 / 4.0, 0.04 / 3.99]))
    # kron's mean curve is 4.95 - s/100: it reaches 4.0 at step 95, between the evaluations at 90 and 100
    assert k["steps_to_baseline_final"] == pytest.approx(95.0)
    assert k["step_ratio"] == pytest.approx(100 / 95)
    assert all(t["gap_mean"] == pytest.approx(0.05) for t in k["gap_trajectory"])
    assert res["groups"]["bpe_untied"]["steps_to_baseline_final"] is None  # never reaches 4.0
    assert res["groups"]["bpe_tied"]["final_val_std"] == pytest.approx(0.01)
    for f in ("compare.json", "compare.md", "val_curves.png", "gap.png", "norm_drift.png"):
        assert (tmp_path / "cmp" / f).exists()


def test_first_crossing_edges():
    assert analysis.first_crossing([0, 10], [3.0, 2.0], 3.5) == 0.0
    assert analysis.first_crossing([0, 10, 20], [5.0, 4.0, 3.0], 3.5) == pytest.approx(15.0)
    assert analysis.first_crossing([0, 10], [5.0, 4.0], 1.0) is None


def test_compare_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs"):
        analysis.find_runs([str(tmp_path)])
    write_run(tmp_path, "kron", 1, [(0, 5.0)])
    with pytest.raises(ValueError, match="baseline group 'bpe_tied' not found"):
        analysis.compare(analysis.find_runs([str(tmp_path)]), "bpe_tied")


def test_plan_grid_only_varies_kron_keys():
    runs = run_study.plan(["bpe_tied", "kron"], [1, 2], run_study.parse_grid(["kron_pos_dim=16,32"]), "r")
    names = [(r["name"], r["seed"]) for r in runs]
    assert names == [("bpe_tied", 1), ("kron-kron_pos_dim16", 1), ("kron-kron_pos_dim32", 1),
                     ("bpe_tied", 2), ("kron-kron_pos_dim16", 2), ("kron-kron_pos_dim32", 2)]


@pytest.mark.slow
def test_run_study_skips_finished_and_resumes_interrupted(data_dir, tmp_path):
    base = tmp_path / "base.py"
    cfg = tiny_config(data_dir, "unused", max_iters=6, lr_decay_iters=6, eval_interval=3)
    base.write_text("\n".join(f"{k} = {cfg[k]!r}" for k in ("data_dir", "n_layer", "n_head", "n_embd", "block_size", "batch_size",
                                                          "max_iters", "lr_decay_iters", "eval_interval", "eval_iters",
                                                          "warmup_iters", "learning_rate", "min_lr")) + "\n")
    root = tmp_path / "study"
    # a finished run, and an interrupted one (stopped after step 2, as SIGTERM would)
    train.train(tiny_config(data_dir, root / "bpe_tied-s1", embedding="bpe_tied", seed=1, max_iters=6, lr_decay_iters=6,
                              eval_interval=3))
    finished_mtime = os.path.getmtime(root / "bpe_tied-s1" / "ckpt.pt")
    with pytest.MonkeyPatch.context() as mp:  # step 1 is done: the loop stops before step 2, as SIGTERM would
        mp.setattr(train, "stop_requested", lambda run, stop: run.iter_num == 2)
        train.train(tiny_config(data_dir, root / "kron-s1", embedding="kron", seed=1, max_iters=6, lr_decay_iters=6,
                                eval_interval=3, log_interval=1))
    assert json.load(open(root / "kron-s1" / "ckpt.json"))["step"] == 2
    args = ["--base", str(base), "--arms", "bpe_tied", "kron", "--seeds", "1", "2", "--out-root", str(root)]
    states = {f"{r['name']}-s{r['seed']}": r["state"] for r in run_study.main(args + ["--dry-run"])}
    assert states == {"bpe_tied-s1": "finished", "kron-s1": "interrupted", "bpe_tied-s2": "new", "kron-s2": "new"}
    kept = tmp_path / "kept"
    runs = run_study.main(args + ["--parallel", "2", "--keep-logs", str(kept)])
    assert all(r["state"] == "finished" for r in runs)
    assert sorted(os.listdir(kept)) == ["bpe_tied-s1", "bpe_tied-s2", "kron-s1", "kron-s2"]
    # a fresh clone has the kept logs but no checkpoints: the runner still skips those runs
    fresh = run_study.main(["--base", str(base), "--arms", "bpe_tied", "kron", "--seeds", "1", "2",
                            "--out-root", str(tmp_path / "elsewhere"), "--keep-logs", str(kept), "--dry-run"])
    assert all(r["state"] == "finished" for r in fresh)
    changed = run_study.main(["--base", str(base), "--arms", "kron", "--seeds", "1", "--out-root", str(tmp_path / "elsewhere"),
                              "--keep-logs", str(kept), "--dry-run", "--", "--learning_rate=0.01"])
    assert changed[0]["state"] == "new"  # a kept log of other settings does not count as done
    assert os.path.getmtime(root / "bpe_tied-s1" / "ckpt.pt") == finished_mtime  # skipped, untouched
    steps = [json.loads(line)["step"] for line in open(root / "kron-s1" / "metrics.jsonl") if '"train"' in line]
    assert steps == list(range(6))
    assert "resumed" in open(root / "kron-s1" / "train.log").read()


def test_param_table_matches_paper_counts(tmp_path):
    g, v = param_table.main(["--out", str(tmp_path)])
    by_arm = {r["arm"]: r for r in g}
    assert by_arm["bpe_tied"]["total"] == 124_475_904
    assert by_arm["kron (pos_dim 16, D 4096)"]["total"] == 127_621_632
    assert by_arm["kron_tied (pos_dim 16, D 4096)"]["total"] == 88_988_161  # no V x d matrix: +1 for the logit scale
    row = next(r for r in v if r["vocab"] == 131072 and r["d_model"] == 4096)
    assert row["dense_table"] == 536_870_912 and row["kron_projection"] == 33_554_432 and row["input_ratio"] == 16
    assert row["kron_non_trainable_bytes"] == 4_456_448


@pytest.mark.slow
def test_results_md_regenerates_byte_identical_from_committed_logs(tmp_path):
    """RESULTS.md is rebuilt from the metric logs kept in results/study_cpu/runs and
    results/study_english/runs (no training, no checkpoints) into a scratch folder and must equal the
    committed file byte for byte."""
    import shutil

    from scripts import make_results
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kept = os.path.join(root, "results", "study_cpu")
    assert len(os.listdir(os.path.join(kept, "runs"))) == 9, "the study's 9 metric logs must be committed"
    shutil.copytree(kept, tmp_path / "study_cpu")
    for part in ("runs", "probes"):  # the English study's kept logs and per-seed probe outputs
        shutil.copytree(os.path.join(root, "results", "study_english", part), tmp_path / "study_english" / part)
    for part in ("runs", "probes"):  # the long runs' logs and probe outputs, once there are any
        kept_long = os.path.join(root, "results", "study_english_long", part)
        if os.path.isdir(kept_long):
            shutil.copytree(kept_long, tmp_path / "study_english_long" / part)
    if os.path.isdir(os.path.join(root, "results", "gpu_124m")):  # the 124M GPU study, once it has run
        shutil.copytree(os.path.join(root, "results", "gpu_124m"), tmp_path / "gpu_124m")
    make_results.main(["--runs-dir", str(tmp_path / "no_runs"), "--results-dir", str(tmp_path / "study_cpu"),
                       "--english-dir", str(tmp_path / "study_english"), "--english-long-dir", str(tmp_path / "study_english_long"),
                       "--params-dir", str(tmp_path / "params"), "--out", str(tmp_path / "RESULTS.md"),
                       "--gpu-dir", str(tmp_path / "gpu_124m")])
    assert (tmp_path / "RESULTS.md").read_bytes() == open(os.path.join(root, "RESULTS.md"), "rb").read()


def test_readme_quotes_only_intervals_results_md_has():
    """The README's headline copies gaps with their intervals from RESULTS.md; a regenerated RESULTS.md
    must not leave the README quoting numbers it no longer has."""
    import re
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    readme, results = (open(os.path.join(root, f), encoding="utf-8").read() for f in ("README.md", "RESULTS.md"))
    quoted = re.findall(r"[+-]\d+\.\d+ nats \[95 % CI [^\]]+\], \d+ seeds", readme)
    assert quoted, "the README's study headline quotes no interval"
    missing = [q for q in quoted if q not in results]
    assert not missing, f"README.md quotes intervals RESULTS.md does not have: {missing}"


def test_compare_reports_each_source_when_logs_have_them(tmp_path):
    for seed, (b, k) in {1: (5.0, 4.8), 2: (5.2, 4.9)}.items():
        for name, v in (("bpe_tied", b), ("kron", k)):
            d = tmp_path / f"{name}-s{seed}"
            d.mkdir()
            by = {"prose": v, "dict": v - 1}
            (d / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "step": 10, "val_loss": v, "wte_std": 0.02,
                                                         "emb_rms": 1.0, "val_loss_by_source": by}) + "\n")
    res = compare.main([str(tmp_path), "--out", str(tmp_path / "cmp")])
    k = res["groups"]["kron"]
    assert k["final_val_by_source"] == pytest.approx({"dict": 3.85, "prose": 4.85})
    assert k["gap_by_source"]["prose"]["gap_mean"] == pytest.approx(0.25)
    assert "| kron | 3.850 (+0.250) | 4.850 (+0.250) |" in open(tmp_path / "cmp" / "compare.md").read()


def test_contrast_is_paired_by_seed_with_a_t_interval(tmp_path):
    """compare --contrast: gap = L_ref - L_other over the seeds both groups have, 95 % t-interval."""
    for seed, (a, b) in {1: (5.0, 4.8), 2: (5.2, 4.9), 3: (5.1, 5.0)}.items():
        for name, v in (("bpe_untied", a), ("kron", b)):
            d = tmp_path / f"{name}-s{seed}"
            d.mkdir()
            (d / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "step": 10, "val_loss": v, "wte_std": 0.02,
                                                         "emb_rms": 1.0}) + "\n")
    (tmp_path / "kron-s4").mkdir()  # an unpaired seed is left out
    (tmp_path / "kron-s4" / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "step": 10, "val_loss": 1.0, "wte_std": 0.02,
                                                                    "emb_rms": 1.0}) + "\n")
    res = compare.main([str(tmp_path), "--baseline", "kron", "--out", str(tmp_path / "cmp"),
                        "--contrast", "codec=bpe_untied:kron", "--contrast", "none=kron_tied:kron"])
    c = res["contrasts"]["codec"]
    assert c["seeds"] == [1, 2, 3] and c["gap_mean"] == pytest.approx(0.2)
    half = T975_DF2 * 0.1 / 3 ** 0.5  # t_{0.975, 2} * sd / sqrt(n), gaps 0.2, 0.3, 0.1
    assert c["ci95"] == pytest.approx([0.2 - half, 0.2 + half])
    assert res["contrasts"]["none"] is None
    with pytest.raises(ValueError, match="expected LABEL=REF:OTHER"):
        compare.main([str(tmp_path), "--baseline", "kron", "--out", str(tmp_path / "c2"), "--contrast", "bad"])


def test_compare_leaves_out_a_run_that_stopped_short(tmp_path, capsys):
    for seed in (1, 2):
        write_run(tmp_path, "bpe_tied", seed, [(s, 5.0 - s / 100) for s in range(0, 101, 10)])
        write_run(tmp_path, "kron", seed, [(s, 4.9 - s / 100 + seed / 1000) for s in range(0, 101, 10)])
    partial = tmp_path / "kron-s3"
    partial.mkdir()
    (partial / "metrics.jsonl").write_text("".join(json.dumps({"kind": "eval", "step": s, "val_loss": 9.0, "wte_std": 0.02,
                                                               "emb_rms": 1.0}) + "\n" for s in (0, 6)))
    res = compare.main([str(tmp_path), "--out", str(tmp_path / "cmp")])
    assert res["groups"]["kron"]["seeds"] == [1, 2] and res["left_out_unfinished"] == {"kron-s3": 6}
    assert "left out kron-s3: its last evaluation is at step 6" in capsys.readouterr().out


def test_runs_on_different_data_are_never_mixed(tmp_path, data_dir):
    """compare.py refuses logs whose recorded data differ; the study runner refuses a kept log trained
    on another version of the data than the folder holds now."""
    for seed, n in ((1, 24_450_633), (2, 24_451_227)):  # the two versions of the English corpus
        d = write_run(tmp_path / "logs", "kron", seed, [(0, 5.0), (10, 4.0)])
        with open(d / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"kind": "config", "step": 0, "n_train_tokens": n, "n_val_tokens": 1000}) + "\n")
    with pytest.raises(ValueError, match=r"trained on different data \(tokens\).*kron-s\d on \(2445\d+, 1000\)"):
        compare.main([str(tmp_path / "logs"), "--baseline", "kron", "--out", str(tmp_path / "cmp")])
    keep = tmp_path / "keep"
    (keep / "kron-s1").mkdir(parents=True)
    (keep / "kron-s1" / "metrics.jsonl").write_text(json.dumps(
        {"kind": "config", "step": 0, "config": {}, "n_train_tokens": 999, "n_val_tokens": 4096}) + "\n")
    with pytest.raises(SystemExit, match=r"was trained on 999 train / 4,096 val tokens, but .* now holds 134,920 / 4,096"):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "kron", "--seeds", "1", "--keep-logs", str(keep),
                        "--out-root", str(tmp_path / "runs"), "--dry-run", "--", f"--data_dir={data_dir}"])


def test_precision_check_compares_the_gap_with_seed_noise(tmp_path):
    from scripts import precision_check

    def run(name, curve, dtype="float32"):
        d = write_run(tmp_path, name, 1, [(s, v) for s, v in curve])
        with open(d / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"kind": "config", "step": 0, "config": {"dtype": dtype}}) + "\n")
        return str(d)
    steps = range(0, 101, 50)
    fp32 = run("fp32", [(s, 5 - s / 100) for s in steps])
    other = run("other", [(s, 5 - s / 100 + 0.01) for s in steps])
    close = run("bf16", [(s, 5 - s / 100 + 0.0005) for s in steps], "bfloat16")
    far = run("bf16far", [(s, 5 - s / 100 + 0.005) for s in steps], "bfloat16")
    assert precision_check.check(fp32, close, [other])["agrees"]
    assert not precision_check.check(fp32, far, [other])["agrees"]  # half the seed gap: not within a tenth
    with pytest.raises(ValueError, match="not trained with dtype=bfloat16"):
        precision_check.check(fp32, other, [other])
