"""analysis.py on synthetic logs and probe outputs with known answers: a study's scale read from the
logs' config records, robustness over seeds paired per seed, contrasts added to a comparison."""

import json

import pytest

import analysis
from tests.conftest import write_run


def write_log(root, name, seed, curve, max_iters=20, n_layer=2, n_embd=16, batch_size=4, block_size=8, accum=2):
    d = root / f"{name}-s{seed}"
    d.mkdir(parents=True)
    config = {
        "n_layer": n_layer,
        "n_embd": n_embd,
        "block_size": block_size,
        "batch_size": batch_size,
        "gradient_accumulation_steps": accum,
        "max_iters": max_iters,
        "seed": seed,
        "embedding": name.split("-")[0],
        "data_dir": "data/x",
    }
    with open(d / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"kind": "config", "step": 0, "config": config, "n_train_tokens": 123_456, "dtype": "float32"}) + "\n")
        for step, v in curve:
            f.write(json.dumps({"kind": "eval", "step": step, "val_loss": v, "wte_std": 0.02, "emb_rms": 1.0}) + "\n")
    return d


def test_a_studys_scale_is_read_from_its_logs_and_mixed_scales_are_refused(tmp_path):
    for seed in (1, 2):
        write_log(tmp_path / "a", "bpe_tied", seed, [(0, 5.0), (20, 4.0)])
        write_log(tmp_path / "a", "kron", seed, [(0, 5.0), (20, 3.9)])
    sc = analysis.study_scale(analysis.find_runs([str(tmp_path / "a")]))
    assert sc["n_layer"] == 2 and sc["n_embd"] == 16 and sc["max_iters"] == 20
    assert sc["tokens_per_step"] == 4 * 8 * 2 and sc["tokens"] == 20 * 64 and sc["train_tokens"] == 123_456
    assert sc["seeds"] == [1, 2]
    write_log(tmp_path / "a", "bpe_untied", 1, [(0, 5.0), (40, 4.0)], max_iters=40)
    with pytest.raises(ValueError, match="runs of different scales in one study: .*max_iters"):
        analysis.study_scale(analysis.find_runs([str(tmp_path / "a")]))


def write_probe(root, seed, survival, kl, baseline=0.5, kl_offsets=(0.0, 0.01, 0.02, 0.03)):
    """A robustness.json as probes/robustness.py writes it: per model, overall rates and per-pair outcomes
    (each pair's KL is the model's mean KL plus, for kron, kl_offsets[pair])."""
    d = root / f"s{seed}"
    d.mkdir(parents=True)
    models = {
        m: {"overall": {"top1_match_rate": sum(s) / len(s), "mean_kl": kl[m], "unrelated_top1_agreement": baseline}}
        for m, s in survival.items()
    }
    per_pair = [
        {
            "model": m,
            "records": [
                {"top1_match": x, "clean": f"clean {i}", "typo": f"typo {i}", "kl": kl[m] + (kl_offsets[i] if m == "kron" else 0.0)}
                for i, x in enumerate(s)
            ],
        }
        for m, s in survival.items()
    ]
    (d / "robustness.json").write_text(json.dumps({"models": models, "per_pair": per_pair}))


def test_robustness_over_seeds_pairs_each_seed_and_pools_mcnemar(tmp_path):
    # 4 pairs per seed; kron keeps 3 of 4 and bpe_tied 2 of 4 on seed 1, 4 and 2 on seed 2
    write_probe(tmp_path, 1, {"bpe_tied": [1, 1, 0, 0], "kron": [1, 1, 1, 0]}, {"bpe_tied": 0.20, "kron": 0.30})
    write_probe(tmp_path, 2, {"bpe_tied": [1, 0, 1, 0], "kron": [1, 1, 1, 1]}, {"bpe_tied": 0.10, "kron": 0.30})
    r = analysis.robustness_over_seeds(str(tmp_path), [("kron vs bpe_tied", "bpe_tied", "kron"), ("absent", "x", "y")])
    assert r["seeds"] == [1, 2] and r["pairs"] == [4]
    assert r["groups"]["kron"]["top1_match_rate"] == [0.75, 1.0]
    c = r["contrasts"]["kron vs bpe_tied"]
    assert "absent" not in r["contrasts"]
    assert c["survival"][0] == pytest.approx((0.25 + 0.5) / 2)  # mean of the per-seed differences
    assert c["kl"][0] == pytest.approx((0.10 + 0.20) / 2) and c["kl_ref"] == pytest.approx(0.15)
    # pooled: kron alone keeps 1 (seed 1) + 2 (seed 2) pairs, bpe_tied alone none -> p = 2 * 0.5^3
    assert c["mcnemar"]["only_first"] == 3 and c["mcnemar"]["only_second"] == 0
    assert c["mcnemar"]["p_value"] == pytest.approx(0.25)
    # per prompt, KL_kron - KL_bpe averaged over the seeds: 0.15 + offset -> 0.15, 0.16, 0.17, 0.18
    k = c["kl_prompts"]
    assert k["prompts"] == 4 and k["mean"] == pytest.approx(0.165) and k["higher"] == 4 and k["lower"] == 0
    assert k["p_sign"] == pytest.approx(0.125)  # 4 of 4 higher: exact two-sided 2 / 2^4
    assert k["higher_per_seed"] == [4, 4] and k["lower_per_seed"] == [0, 0]
    # survival per prompt averaged over seeds: (0, 0, 1, 0) and (0, 1, 0, 1) -> 0, .5, .5, .5: 3 higher, none lower
    s = c["survival_prompts"]
    assert (s["higher"], s["lower"]) == (3, 0) and s["p_sign"] == pytest.approx(0.25)
    # Holm over the family {survival 0.25, KL 0.125}: 0.125 x 2 = 0.25, then max(0.25, 0.25 x 1)
    assert s["p_holm"] == pytest.approx(0.25) and k["p_holm"] == pytest.approx(0.25)
    assert analysis.robustness_over_seeds(str(tmp_path / "none"), []) is None


def test_contrasts_are_paired_gaps_on_shared_seeds(tmp_path):
    for seed, gap in ((1, 0.1), (2, 0.3), (3, 0.2)):
        write_log(tmp_path, "bpe_tied", seed, [(0, 5.0), (20, 4.0)])
        write_log(tmp_path, "kron", seed, [(0, 5.0), (20, 4.0 - gap)])
    write_log(tmp_path, "bpe_untied", 1, [(0, 5.0), (20, 3.5)])
    res, data = analysis.compare(analysis.find_runs([str(tmp_path)]), "bpe_tied")
    c = analysis.add_contrasts(
        res, data, [("total", "bpe_tied", "kron"), ("untie", "bpe_tied", "bpe_untied"), ("none", "bpe_tied", "missing")]
    )
    assert c["total"]["gap_mean"] == pytest.approx(0.2) and c["total"]["seeds"] == [1, 2, 3]
    assert c["untie"]["seeds"] == [1] and c["untie"]["ci95"] is None  # one seed: no interval
    assert c["none"] is None and res["contrasts"] is c


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


def test_step_ratios_per_seed_pair_each_run_with_its_own_seeds_baseline(tmp_path):
    # baseline seed 1 ends at 4.0, seed 2 at 3.9; kron crosses them at steps 50 and 80 (linear between evaluations)
    write_log(tmp_path, "bpe_tied", 1, [(0, 5.0), (100, 4.0)])
    write_log(tmp_path, "bpe_tied", 2, [(0, 5.0), (100, 3.9)])
    write_log(tmp_path, "kron", 1, [(0, 5.0), (50, 4.0), (100, 3.5)])
    write_log(tmp_path, "kron", 2, [(0, 5.0), (40, 4.5), (100, 3.75)])  # 4.5 -> 3.75 reaches 3.9 at 40 + 60 * 0.8 = 88
    write_log(tmp_path, "bpe_untied", 1, [(0, 5.0), (100, 4.5)])
    write_log(tmp_path, "bpe_untied", 2, [(0, 5.0), (100, 3.0)])
    res, _ = analysis.compare(analysis.find_runs([str(tmp_path)]), "bpe_tied")
    k = res["groups"]["kron"]
    assert k["step_ratio_per_seed"] == pytest.approx({1: 2.0, 2: 100 / 88})
    assert k["step_ratio_seed_mean"] == pytest.approx((2.0 + 100 / 88) / 2) and k["step_ratio_ci95"] is not None
    u = res["groups"]["bpe_untied"]  # seed 1 never reaches 4.0: per-seed ratios, no mean or interval
    assert u["step_ratio_per_seed"][1] is None and u["step_ratio_seed_mean"] is None and u["step_ratio_ci95"] is None


def test_input_drift_is_final_over_initial_of_each_quantity_averaged_over_seeds(tmp_path):
    """Each arm's own metric (wte_std for a table, proj_std_sqrtD for Kron) and the two quantities every arm
    shares (the produced embeddings' RMS and mean row norm), final / initial, then the mean over seeds."""

    def log(name, seed, evals):
        d = tmp_path / f"{name}-s{seed}"
        d.mkdir()
        (d / "metrics.jsonl").write_text("".join(json.dumps({"kind": "eval", "step": i, **e}) + "\n" for i, e in enumerate(evals)))

    log("bpe_tied", 1, [{"wte_std": 0.02, "emb_rms": 0.02, "emb_row_norm": 0.2}, {"wte_std": 0.06, "emb_rms": 0.06, "emb_row_norm": 0.5}])
    log("bpe_tied", 2, [{"wte_std": 0.02, "emb_rms": 0.02, "emb_row_norm": 0.2}, {"wte_std": 0.04, "emb_rms": 0.04, "emb_row_norm": 0.3}])
    log(
        "kron",
        1,
        [
            {"proj_std_sqrtD": 1.0, "wte_std": 9.0, "emb_rms": 1.0, "emb_row_norm": 10.0},
            {"proj_std_sqrtD": 1.5, "wte_std": 1.0, "emb_rms": 4.0, "emb_row_norm": 30.0},
        ],
    )
    drift = analysis.input_drift(str(tmp_path))
    assert drift["bpe_tied"] == pytest.approx(("wte_std", 2.5, 2.5, 2.0, 2))
    assert drift["kron"] == pytest.approx(("proj_std_sqrtD", 1.5, 4.0, 3.0, 1))  # its own metric, not wte_std
