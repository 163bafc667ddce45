"""scripts/make_results.py: RESULTS.md rebuilt byte for byte from the kept logs and quoted right by the README; kept logs never replaced."""

import json
import os
import shutil

import pytest

import checkpoint


@pytest.mark.slow
def test_results_md_regenerates_byte_identical_from_committed_logs(tmp_path):
    """RESULTS.md is rebuilt from the metric logs kept in results/study_cpu/runs and
    results/study_english/runs (no training, no checkpoints) into a scratch folder and must equal the
    committed file byte for byte; so must the README once its summary block is refreshed from it (the
    README's summary says no more, and nothing other, than RESULTS.md's opening)."""
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
    for part in ("runs", "probes"):  # the paired study's logs and per-seed probe outputs
        shutil.copytree(os.path.join(root, "results", "study_english_paired", part), tmp_path / "paired" / part)
    shutil.copytree(os.path.join(root, "results", "study_small_vocab", "runs"), tmp_path / "small_vocab" / "runs")
    shutil.copy(os.path.join(root, "README.md"), tmp_path / "README.md")
    if os.path.isdir(os.path.join(root, "results", "gpu_124m")):  # the 124M GPU study, once it has run
        shutil.copytree(os.path.join(root, "results", "gpu_124m"), tmp_path / "gpu_124m")
    make_results.main(
        [
            "--runs-dir",
            str(tmp_path / "no_runs"),
            "--results-dir",
            str(tmp_path / "study_cpu"),
            "--english-dir",
            str(tmp_path / "study_english"),
            "--english-long-dir",
            str(tmp_path / "study_english_long"),
            "--params-dir",
            str(tmp_path / "params"),
            "--out",
            str(tmp_path / "RESULTS.md"),
            "--gpu-dir",
            str(tmp_path / "gpu_124m"),
            "--paired-dir",
            str(tmp_path / "paired"),
            "--small-vocab-dir",
            str(tmp_path / "small_vocab"),
            "--readme",
            str(tmp_path / "README.md"),
        ]
    )
    assert (tmp_path / "RESULTS.md").read_bytes() == open(os.path.join(root, "RESULTS.md"), "rb").read()
    assert (tmp_path / "README.md").read_bytes() == open(os.path.join(root, "README.md"), "rb").read(), (
        "README.md's results summary differs from RESULTS.md's opening: run python -m scripts.make_results"
    )


def test_readme_quotes_only_intervals_results_md_has():
    """The README's headline copies gaps with their intervals from RESULTS.md; a regenerated RESULTS.md
    must not leave the README quoting numbers it no longer has."""
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # whitespace collapsed, so a figure broken across two lines of the README is still checked
    readme, results = (" ".join(open(os.path.join(root, f), encoding="utf-8").read().split()) for f in ("README.md", "RESULTS.md"))
    quoted = re.findall(r"[+-]\d+\.\d+ nats \[95 % CI [^\]]+\], \d+ seeds", readme)
    assert quoted, "the README's study headline quotes no interval"
    missing = [q for q in quoted if q not in results]
    assert not missing, f"README.md quotes intervals RESULTS.md does not have: {missing}"
    # and the other figures its disagreements quote: prompt counts and drift ratios
    counts = re.findall(r"\d+ of \d+ prompts", readme)
    ratios = [r for pair in re.findall(r"(\d+\.\d+×) vs (\d+\.\d+×)", readme) for r in pair]
    assert counts and ratios, "the README's disagreements quote no prompt count or drift ratio"
    missing = [q for q in counts + ratios if q not in results]
    assert not missing, f"README.md quotes figures RESULTS.md does not have: {missing}"


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


def test_the_opening_concludes_only_from_five_seeds_and_says_which_group_is_better():
    from scripts.make_results import CONCLUDE_SEEDS, TOTAL, reading

    seeds = list(range(CONCLUDE_SEEDS))
    assert reading(TOTAL, None) == "no paired runs"
    assert reading(TOTAL, {"seeds": seeds[:-1], "ci95": [0.05, 0.2]}) == f"open ({CONCLUDE_SEEDS - 1} of {CONCLUDE_SEEDS} seeds)"
    assert reading(TOTAL, {"seeds": seeds, "ci95": [0.05, 0.2]}) == "kron better than bpe_tied"  # positive: the second group
    assert reading(TOTAL, {"seeds": seeds, "ci95": [-0.2, -0.05]}) == "bpe_tied better than kron"
    assert reading(TOTAL, {"seeds": seeds, "ci95": [-0.03, 0.07]}) == "no difference resolved (95 % CI within ±0.070 nats)"


def test_below_five_seeds_no_section_states_a_verdict_and_without_studies_the_opening_says_so():
    from scripts.make_results import CONCLUDE_SEEDS, evidence_opening, verdict

    assert verdict({"seeds": [1, 2], "ci95": [0.05, 0.2]}) == f"open (2 of {CONCLUDE_SEEDS} seeds)"
    assert verdict({"seeds": list(range(CONCLUDE_SEEDS)), "ci95": [0.05, 0.2]}) == "helps"
    lines, summary = evidence_opening([("a study", "what it is", None)])
    assert summary is None and "No study's logs are kept yet" in "\n".join(lines)


def test_the_readme_summary_block_is_replaced_and_nothing_else(tmp_path):
    from scripts.make_results import README_BLOCK, refresh_readme

    start, end = README_BLOCK
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{start}\n- an old claim\n{end}\nrest\n", encoding="utf-8")
    refresh_readme(str(readme), ["- a", "- b"])
    assert readme.read_text(encoding="utf-8") == f"intro\n{start}\n- a\n- b\n{end}\nrest\n"
    readme.write_text("no block here\n", encoding="utf-8")
    from scripts import make_results

    with pytest.raises(ValueError, match="expected one"):  # refused before RESULTS.md is written
        make_results.main(["--runs-dir", str(tmp_path / "none"), "--out", str(tmp_path / "R.md"), "--readme", str(readme)])
    assert not (tmp_path / "R.md").exists()
    with pytest.raises(ValueError, match="expected one"):
        refresh_readme(str(readme), ["- a"])
    assert readme.read_text(encoding="utf-8") == "no block here\n"


def test_a_study_reading_states_only_clauses_whose_contrasts_are_concluded():
    from scripts.make_results import BEYOND_UNTYING, BYTES_VS_X50, CONCLUDE_SEEDS, OWN_BYTES, SCALE_X50, TOTAL, UNTYING, study_reading

    five, two, sc = list(range(CONCLUDE_SEEDS)), [1, 2], {"max_iters": 120, "tokens": 491_520}
    c = {
        TOTAL[0]: {"seeds": five, "ci95": [0.03, 0.17]},
        UNTYING[0]: {"seeds": five, "ci95": [0.05, 0.18]},
        BEYOND_UNTYING[0]: {"seeds": five, "ci95": [-0.06, 0.02]},
        SCALE_X50[0]: {"seeds": five, "ci95": [-0.11, -0.04]},
        BYTES_VS_X50[0]: {"seeds": five, "ci95": [0.006, 0.1]},
        OWN_BYTES[0]: {"seeds": two, "ci95": [0.1, 0.3]},
    }
    (line,) = study_reading("English study", c, None, sc)
    assert line.startswith("- Reading the English study (120 steps, 0.49M tokens") and "Untying the head alone" in line
    assert "(95 % CI -0.060 to +0.020 nats)" in line
    assert "this scale-up does not explain kron" in line and "shuffled among tokens" not in line  # 2 seeds: open, so not stated
    c[BEYOND_UNTYING[0]] = {"seeds": two, "ci95": [-0.2, -0.05]}  # open: no untying clause
    c[BYTES_VS_X50[0]] = {"seeds": five, "ci95": [-0.01, 0.05]}  # kron not resolved better than the scaled table
    assert study_reading("English study", c, None, sc) == []


def test_a_study_reading_says_when_scale_alone_matches_krons_edge():
    from scripts.make_results import BEYOND_UNTYING, BYTES_VS_X50, CONCLUDE_SEEDS, SCALE_X50, TOTAL, study_reading

    five = list(range(CONCLUDE_SEEDS))
    c = {
        BEYOND_UNTYING[0]: {"seeds": five, "ci95": [0.05, 0.07]},
        SCALE_X50[0]: {"seeds": five, "ci95": [0.34, 0.38]},
        BYTES_VS_X50[0]: {"seeds": five, "ci95": [-0.33, -0.28]},
    }
    (line,) = study_reading("small-vocabulary study", c, None, {"max_iters": 500, "tokens": 2_048_000})
    assert "Kron beats the untied BPE table;" in line  # no total concluded: no "too"
    c[TOTAL[0]] = {"seeds": five, "ci95": [0.08, 0.11]}
    (line,) = study_reading("small-vocabulary study", c, None, {"max_iters": 500, "tokens": 2_048_000})
    assert "Kron beats the untied BPE table too" in line
    assert "helps, and that scaled table beats kron: scaling alone gains more over the plain table than kron does" in line
    # the untied table beats kron (the gaps add up: -0.15 = +0.075 - 0.225): no edge of kron's to compare with
    c.pop(TOTAL[0])
    c.update(
        {
            BEYOND_UNTYING[0]: {"seeds": five, "ci95": [-0.2, -0.1]},
            SCALE_X50[0]: {"seeds": five, "ci95": [0.05, 0.1]},
            BYTES_VS_X50[0]: {"seeds": five, "ci95": [-0.26, -0.19]},
        }
    )
    (line,) = study_reading("small-vocabulary study", c, None, {"max_iters": 500, "tokens": 2_048_000})
    assert "The untied BPE table beats kron" in line and "that scaled table beats kron." in line and "edge" not in line
    c[TOTAL[0]] = {"seeds": five, "ci95": [-0.04, -0.005]}  # and bpe_tied beats kron: said first
    (line,) = study_reading("small-vocabulary study", c, None, {"max_iters": 500, "tokens": 2_048_000})
    assert "concluded from 5+ seeds): Kron ends behind bpe_tied; the untied BPE table beats kron" in line


def test_a_study_reading_weighs_the_low_rank_table_with_the_logged_parameter_counts():
    from scripts.make_results import BEYOND_UNTYING, BYTES_VS_LOWRANK, CONCLUDE_SEEDS, LOW_RANK, ROOT, study_reading

    five, logs = list(range(CONCLUDE_SEEDS)), os.path.join(ROOT, "results", "study_english", "runs")
    c = {LOW_RANK[0]: {"seeds": five, "ci95": [-0.37, -0.26]}, BYTES_VS_LOWRANK[0]: {"seeds": five, "ci95": [0.22, 0.36]}}
    sc = {"max_iters": 120, "tokens": 491_520}
    (line,) = study_reading("English study", c, logs, sc)  # kron vs the full table not concluded: nothing said of it
    assert "(504,320 input parameters; kron's 524,288) is worse than both the full table and kron." in line
    for ci, said in (
        ([-0.06, 0.02], "while kron and the full table (6,438,912 input parameters, 12.3× kron's) differ by no resolved amount"),
        ([0.01, 0.05], "and kron beats the full table"),
        ([-0.05, -0.01], "though the full table"),
    ):
        c[BEYOND_UNTYING[0]] = {"seeds": five, "ci95": ci}
        assert said in study_reading("English study", c, logs, sc)[0]


def test_the_evidence_figure_draws_every_study_and_skips_what_it_did_not_run(tmp_path):
    import report

    five = {"gap_mean": 0.1, "ci95": [0.03, 0.17], "seeds": [1, 2, 3, 4, 5]}
    one = {"gap_mean": -0.2, "ci95": None, "seeds": [1]}
    path = report.evidence_figure(
        [("total", "t"), ("own bytes", "o")],
        [("English, 120 steps", {"contrasts": {"t": five, "o": one}}), ("small, 500 steps", {"contrasts": {"t": one}})],
        str(tmp_path / "sub" / "e.png"),
        5,
    )
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_paired_study_section_says_in_progress_until_every_group_has_its_planned_seeds(tmp_path):
    from scripts.make_results import CONTRASTS, ROOT, load_study, paired_init_section

    shutil.copytree(os.path.join(ROOT, "results", "study_english", "runs"), tmp_path / "runs")  # 5 seeds in every group
    study = load_study(str(tmp_path), CONTRASTS)  # writes its comparison under tmp_path, not into the repository
    done = paired_init_section(study, "results/study_english", "A study", "config/x.py", CONTRASTS, 5, lambda sc: "")
    assert done[0] == "## A study" and "(complete; how to rerun it" in done[2]
    going = paired_init_section(study, "results/study_english", "A study", "config/x.py", CONTRASTS, 6, lambda sc: "")
    assert going[0] == "## A study (in progress)" and "seeds per group so far; how to continue it" in going[2]


def test_the_500_step_disagreements_come_only_from_concluded_contrasts_in_the_direction_they_state():
    from scripts.make_results import BEYOND_UNTYING, BYTES_VS_X50, CONCLUDE_SEEDS, SCALE_X50, TOTAL, horizon_disagreements

    five, four = list(range(CONCLUDE_SEEDS)), list(range(CONCLUDE_SEEDS - 1))
    trajectory = [{"step": s, "gap_mean": g} for s, g in ((0, 0.0), (100, 0.12), (500, -0.02))]

    def study(seeds, total, beyond, x50, bytes_vs_x50):
        c = {TOTAL[0]: {"seeds": seeds, "ci95": total, "gap_mean": sum(total) / 2, "trajectory": trajectory}}
        for contrast, ci in ((BEYOND_UNTYING, beyond), (SCALE_X50, x50), (BYTES_VS_X50, bytes_vs_x50)):
            c[contrast[0]] = {"seeds": seeds, "ci95": ci, "gap_mean": sum(ci) / 2}
        return {"cmp": {"contrasts": c}, "scale": {"max_iters": 500, "tokens": 2_048_000, "n_layer": 4, "n_embd": 128}}

    against = ([-0.04, 0.004], [-0.11, -0.07], [0.1, 0.14], [-0.22, -0.19])  # every 500-step contrast against the paper
    assert horizon_disagreements([("paired", study(four, *against)), ("none", None)]) == ([], [])  # 4 seeds: open
    lasts, source = horizon_disagreements([("paired", study(five, *against))])
    assert len(lasts) == 1 and "Does the gain last? (paired, 500 steps, 2.05M tokens)" in lasts[0]
    assert "kron and bpe_tied differ by no resolved amount: -0.018 nats [95 % CI -0.040, +0.004], 5 seeds" in lasts[0]
    assert "the gap crosses zero: +0.120 at step 100, -0.020 at step 500" in lasts[0]
    assert len(source) == 2 and "A learned table beats the codec" in source[0] and "scale does more than the bytes" in source[1]
    agrees = ([0.08, 0.11], [0.03, 0.07], [0.34, 0.37], [0.02, 0.05])  # kron ahead of both tables: nothing to list
    assert horizon_disagreements([("small", study(five, *agrees))]) == ([], [])


def test_the_own_bytes_robustness_clause_reports_each_separated_per_prompt_test_in_its_direction():
    from scripts.make_results import CONCLUDE_SEEDS, own_bytes_robustness

    def test(higher, lower, p_holm):
        return {"higher": higher, "lower": lower, "prompts": 110, "p_sign": p_holm / 7, "p_holm": p_holm}

    five = list(range(CONCLUDE_SEEDS))
    own = {"seeds": five, "survival_prompts": test(34, 28, 1.0), "kl_prompts": test(88, 22, 1.2e-9)}
    said = own_bytes_robustness(own)  # kron's KL higher on 88 prompts: shuffled bytes move less
    assert said.startswith(f" Own vs shuffled bytes ({CONCLUDE_SEEDS} seeds): shuffled bytes move the next-token")
    assert "KL lower on 88 of 110 prompts" in said and "top-1" not in said and "not what a byte-level" in said
    own["kl_prompts"], own["survival_prompts"] = test(20, 90, 1e-9), test(40, 10, 0.001)  # both favour own bytes
    said = own_bytes_robustness(own)
    assert "own bytes keep the clean prompt's top-1" in said and "own bytes move" in said and "byte-level" not in said
    own.update(seeds=five[:2], kl_prompts=test(60, 50, 0.9), survival_prompts=test(12, 36, 0.005))
    assert "(2 seeds, not a finding): shuffled bytes keep" in own_bytes_robustness(own)
    own["survival_prompts"] = test(12, 36, 0.2)  # nothing Holm-separated: nothing said
    assert own_bytes_robustness(own) == ""


def test_norm_drift_is_read_per_study_with_its_seed_count_and_direction():
    from scripts.make_results import drift_disagreement

    drift = {
        "bpe_tied": ("wte_std", 2.91, 2.91, 2.9, 5),
        "bpe_untied": ("wte_std", 1.05, 1.05, 1.0, 5),
        "kron": ("proj_std_sqrtD", 1.45, 4.04, 4.0, 5),
    }
    (line,) = drift_disagreement("English study, 120 steps", drift)
    assert line.startswith("- **Norm drift (English study, 120 steps, 5 seeds).**")
    assert "the table drifts when it is also the output head" in line and "kron's input grows more than bpe_tied's" in line
    drift.update(bpe_tied=("wte_std", 1.3, 7.42, 7.0, 2), kron=("proj_std_sqrtD", 1.37, 2.68, 2.6, 5))
    (line,) = drift_disagreement("paired English study, 500 steps", drift)
    assert "(paired English study, 500 steps, 2 seeds: open, not a finding)" in line
    assert "output head" not in line and "grows less than bpe_tied's" in line  # 1.3x vs 1.05x: not put down to tying
    assert drift_disagreement("x", {"kron": drift["kron"]}) == []


def test_the_robustness_disagreement_names_the_direction_and_labels_too_few_seeds():
    from scripts.make_results import CONCLUDE_SEEDS, ROBUST_TOTAL, robustness_disagreement

    def prompts(higher, lower, p_holm, ci=None):
        return {
            "higher": higher,
            "lower": lower,
            "prompts": 110,
            "p_sign": p_holm,
            "p_holm": p_holm,
            "ci95": ci,
            "median": 0.01,
            "mean": 0.02,
            "lower_per_seed": [40, 45],
        }

    kb = {
        "seeds": [1, 2],
        "kl": (0.02, [0.002, 0.03]),
        "survival": (-0.05, [-0.09, -0.01]),
        "kl_ref": 0.2,
        "survival_prompts": prompts(10, 40, 0.001),
        "kl_prompts": prompts(70, 40, 0.03, ci=[-0.01, 0.04]),
    }
    (line,) = robustness_disagreement({ROBUST_TOTAL[0]: kb}, "somewhere")
    assert line.startswith("- **Typo robustness (somewhere, 2 seeds: open, not a finding).**")
    assert "more prompts keep it under bpe_tied, the opposite of the paper's direction" in line
    assert "higher on average, the opposite of the paper's mean (seeds varied" in line and "includes zero)" in line
    kb.update(seeds=list(range(CONCLUDE_SEEDS)), kl_prompts=prompts(70, 40, 0.03, ci=[0.01, 0.04]))
    (line,) = robustness_disagreement({ROBUST_TOTAL[0]: kb}, "somewhere")
    assert f"(somewhere, {CONCLUDE_SEEDS} seeds)." in line and "seeds varied" not in line  # both intervals agree
