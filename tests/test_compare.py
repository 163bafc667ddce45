"""scripts/compare.py on synthetic logs with known answers: gaps, intervals, crossings, contrasts, sources."""

import json
import statistics

import pytest

from scripts import compare, run_study
from tests.conftest import write_run

# t_{0.975} with 2 degrees of freedom in closed form, (2p - 1) * sqrt(2 / (4 p (1 - p))) = 4.30265...:
# a check of stats.py's scipy quantile that does not use scipy
T975_DF2 = 0.95 * (2 / (4 * 0.975 * 0.025)) ** 0.5


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
    half = T975_DF2 * 0.01 / 3**0.5  # t_{0.975, 2} * sd / sqrt(3)
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


def test_compare_reports_each_source_when_logs_have_them(tmp_path):
    for seed, (b, k) in {1: (5.0, 4.8), 2: (5.2, 4.9)}.items():
        for name, v in (("bpe_tied", b), ("kron", k)):
            d = tmp_path / f"{name}-s{seed}"
            d.mkdir()
            by = {"prose": v, "dict": v - 1}
            (d / "metrics.jsonl").write_text(
                json.dumps({"kind": "eval", "step": 10, "val_loss": v, "wte_std": 0.02, "emb_rms": 1.0, "val_loss_by_source": by}) + "\n"
            )
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
            (d / "metrics.jsonl").write_text(
                json.dumps({"kind": "eval", "step": 10, "val_loss": v, "wte_std": 0.02, "emb_rms": 1.0}) + "\n"
            )
    (tmp_path / "kron-s4").mkdir()  # an unpaired seed is left out
    (tmp_path / "kron-s4" / "metrics.jsonl").write_text(
        json.dumps({"kind": "eval", "step": 10, "val_loss": 1.0, "wte_std": 0.02, "emb_rms": 1.0}) + "\n"
    )
    res = compare.main(
        [
            str(tmp_path),
            "--baseline",
            "kron",
            "--out",
            str(tmp_path / "cmp"),
            "--contrast",
            "codec=bpe_untied:kron",
            "--contrast",
            "none=kron_tied:kron",
        ]
    )
    c = res["contrasts"]["codec"]
    assert c["seeds"] == [1, 2, 3] and c["gap_mean"] == pytest.approx(0.2)
    half = T975_DF2 * 0.1 / 3**0.5  # t_{0.975, 2} * sd / sqrt(n), gaps 0.2, 0.3, 0.1
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
    (partial / "metrics.jsonl").write_text(
        "".join(json.dumps({"kind": "eval", "step": s, "val_loss": 9.0, "wte_std": 0.02, "emb_rms": 1.0}) + "\n" for s in (0, 6))
    )
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
    (keep / "kron-s1" / "metrics.jsonl").write_text(
        json.dumps({"kind": "config", "step": 0, "config": {}, "n_train_tokens": 999, "n_val_tokens": 4096}) + "\n"
    )
    with pytest.raises(SystemExit, match=r"was trained on 999 train / 4,096 val tokens, but .* now holds 134,920 / 4,096"):
        run_study.main(
            [
                "--base",
                "config/kron_cpu.py",
                "--arms",
                "kron",
                "--seeds",
                "1",
                "--keep-logs",
                str(keep),
                "--out-root",
                str(tmp_path / "runs"),
                "--dry-run",
                "--",
                f"--data_dir={data_dir}",
            ]
        )
