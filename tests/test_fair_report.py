"""scripts/fair_report.py: RESULTS.md's fair-study answers stay "in progress" until phase 3 is complete
at both scales, then follow PLAN.md: Q1-Q3 at S and L in one Holm family, Q5 in its own, the sqrt(d)
point carried to L, a diverged run named and left out. Synthetic kept logs."""

import json
import shutil

import pytest

import analysis
from scripts import fair_choose, fair_report
from tests.test_fair_choose import write_phases_1_2

SOURCES = [f"src{i}" for i in range(8)]
# arm: (embedding, input_scale at S, shuffled, phase-1/2 dev, phase-3 test loss)
ARMS = {
    "bpe_tied": ("bpe_tied", 50, False, 5.60, 5.60),  # chosen at R 1 (an edge: its edge runs are worse)
    "bpe_untied": ("bpe_untied", 13.86, False, 5.50, 5.50),  # the best table; R 0.2772, the sqrt(d) point
    "bpe_lowrank": ("bpe_lowrank", 13.86, False, 5.70, 5.70),
    "kron": ("kron", 0.2771, False, 5.45, 5.40),  # 0.10 better than the best table
    "kron_shuffled": ("kron", 0.2771, True, 5.55, 5.40),  # no byte effect: equal to kron
    "hybrid": ("hybrid", 0.7071, False, 5.52, 5.52),  # chosen at R 1
    "kron_tied": ("kron_tied", 1, False, 6.0, 6.5),  # chosen at R 1
}


def write(root, name, arm, seed, dev=None, test=None, scale="S", m=None, norm=False, lr=2e-3):
    """A kept log; at L the multiplier is the one fair_choose's phase-3 command gives (the sqrt(d) point moved)."""
    embedding, chosen_m, shuffled, _, _ = ARMS[arm]
    m = chosen_m if m is None else m
    R = round(m * (1.0 if norm else analysis.fair_own_rms(arm)), 6)
    m = fair_choose.input_scale(arm, (norm, R, lr), scale)
    config = {"embedding": embedding, "input_scale": m, "input_norm": norm, "learning_rate": lr, "min_lr": lr / 10, "seed": seed}
    config["grad_clip"] = 1.0
    config["kron_shuffle_seed"] = "seed" if shuffled else None
    grad_norm = [10.0, 0.5, 0.5, 0.5] if arm == "kron_tied" else [0.5] * 4  # steps above the clip at 1.0: 25 % and none
    records = [{"kind": "config", "config": config}] + [{"kind": "train", "step": i, "grad_norm": g} for i, g in enumerate(grad_norm)]
    records += [{"kind": "eval", "step": k, "val_loss": 9.0 - k / 125, "emb_rms": 0.5 + k / 1000} for k in (0, 500)]
    if test is not None:  # None: diverged, no final record
        jitter = [0.01 * ((seed * 7 + i) % 5 - 2) for i in range(8)]
        by_source = {"test": {s: test + j for s, j in zip(SOURCES, jitter)}, "dev": {}}
        dev = test if dev is None else dev
        records.append({"kind": "final", "step": 500, "dev_loss": dev, "test_loss": test, "by_source": by_source})
    folder = root / f"{name}-s{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def write_phase12(root, name, arm, m, seed, dev, norm, lr):
    """write_phases_1_2's writer: the bpe_tied default point (R 0.02) at 6.25, the rest as it asks."""
    dev = 6.25 if arm == "bpe_tied" and (norm, m, lr) == (False, 1, 2e-3) else dev
    write(root, name.rsplit("-s", 1)[0], arm, seed, dev=dev, test=dev, m=m, norm=norm, lr=lr)


@pytest.fixture
def results(tmp_path):
    s, l_ = tmp_path / "study_fair" / "runs", tmp_path / "study_fair" / "runs_v50k"
    chosen = {arm: (False, round(m * analysis.fair_own_rms(arm), 6), 2e-3) for arm, (_, m, _, _, _) in ARMS.items()}
    write_phases_1_2(s, {arm: a[3] for arm, a in ARMS.items()}, chosen=chosen, write=write_phase12)
    for arm, (_, _, _, dev, test) in ARMS.items():
        for k, seed in enumerate(range(2001, 2006)):
            noise = 0.002 * (k - 2)
            write(s, arm, arm, seed, test=test + noise)
            write(l_, arm, arm, seed, test=test + 0.5 + noise, scale="L")
    return tmp_path


def test_no_answer_until_phase_three_is_complete_at_both_scales(results):
    (results / "study_fair" / "runs_v50k" / "hybrid-s2005" / "metrics.jsonl").unlink()
    (results / "study_fair" / "runs_v50k" / "hybrid-s2005").rmdir()
    assert fair_report.answers(str(results)) is None
    assert fair_report.section_markdown(None).startswith("In progress")


def test_the_answers_follow_the_plan(results):
    ans = fair_report.answers(str(results))
    assert ans["best"] == "bpe_untied" and ans["chosen"]["kron"] == (False, 0.2771, 2e-3)
    p = ans["primary"]
    assert list(p) == ["Q1 S", "Q1 L", "Q2 S", "Q2 L", "Q3 S", "Q3 L"]
    assert p["Q1 S"]["mean"] == pytest.approx(0.10) and p["Q1 L"]["verdict"] == "A better"  # found at L via R 0.2263
    assert p["Q2 S"]["verdict"] == "equivalent" and p["Q3 S"]["verdict"] == "B better"  # the hybrid 0.02 behind the table
    assert ans["secondary"]["Q5 S"]["verdict"] == "B better" and list(ans["secondary"]) == ["Q5 S", "Q5 L"]
    text = fair_report.section_markdown(ans)
    assert "| Q1: does kron beat the best learned table? | S | kron vs bpe_untied (the best table) | 5 | +0.100" in text
    assert "| kron | off, 0.2771, 0.002 | 5.400 | 5.900 | 5.550 → 5.450 | 0 % | 2.00× |" in text
    assert "| bpe_tied | off, 1, 0.002 | 5.600 | 6.100 | 6.250 → 5.600 | 0 % |" in text
    assert "| kron_tied | off, 1, 0.002 | 6.500 | 7.000 | 6.000 → 6.000 | 25 % |" in text
    n = sum(1 for folder in ("runs", "runs_v50k") for _ in (results / "study_fair" / folder).iterdir())
    assert "Runs by CPU model (fp32, 1 thread; " in text and text.count("not recorded") == 1 and f"not recorded {n}." in text


def test_runs_are_counted_by_the_cpu_model_each_start_recorded(results):
    runs = results / "study_fair" / "runs"
    for name, cpus in (("kron-s2001", ["AMD EPYC"]), ("kron-s2002", ["AMD EPYC", "Intel Xeon"])):  # s2002 resumed on another
        log = runs / name / "metrics.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines()]
        configs = [dict(records[0], machine={"cpu": cpu}) for cpu in cpus]
        log.write_text("".join(json.dumps(r) + "\n" for r in configs + records[1:]))
    counted = fair_report.machines(str(results / "study_fair"))
    total = sum(1 for folder in ("runs", "runs_v50k") for _ in (results / "study_fair" / folder).iterdir())
    assert counted == {"AMD EPYC": 1, "AMD EPYC + Intel Xeon": 1, "not recorded": total - 2}


def test_a_diverged_run_is_named_and_its_question_uses_the_seeds_both_finished(results):
    folder = results / "study_fair" / "runs" / "kron-s2003"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    write(results / "study_fair" / "runs", "kron", "kron", 2003, test=None)
    ans = fair_report.answers(str(results))
    assert ans["diverged"] == ["kron-s2003 at S"] and ans["primary"]["Q1 S"]["seeds"] == [2001, 2002, 2004, 2005]
    assert "Diverged (left out of their questions, n stated per row): kron-s2003 at S." in fair_report.section_markdown(ans)


def test_an_arm_whose_runs_all_diverged_at_one_scale_is_shown_and_its_tests_stay_in_the_family(results):
    logs = results / "study_fair" / "runs_v50k"
    for seed in range(2001, 2006):
        shutil.rmtree(logs / f"hybrid-s{seed}")
        write(logs, "hybrid", "hybrid", seed, test=None, scale="L")
    ans = fair_report.answers(str(results))
    q3 = ans["primary"]["Q3 L"]
    assert q3["seeds"] == [] and q3["verdict"] == "unresolved" and q3["p_holm"] == 1.0
    smallest = min((t for t in ans["primary"].values() if t["p"] is not None), key=lambda t: t["p"])
    assert smallest["p_holm"] == pytest.approx(min(1.0, 6 * smallest["p"]))  # the untestable cell still counts: m = 6
    text = fair_report.section_markdown(ans)
    assert "| Q3: does the byte code add to a learned table? | L | hybrid vs bpe_untied (the best table) | 0 | — — |" in text
    assert "| hybrid | off, 0.99999, 0.002 | 5.520 | — |" in text  # R = 0.7071 x sqrt 2


def test_the_sqrt_d_point_keeps_each_arms_own_multiplier_at_s_and_moves_at_l():
    hybrid = (False, round(0.196 * 2**0.5, 6), 2e-3)  # as fair_runs logs phase 1's hybrid at input_scale 0.196
    assert fair_choose.input_scale("hybrid", hybrid) == 0.196 and fair_choose.input_scale("bpe_untied", (False, 0.2772, 2e-3)) == 13.86
    assert fair_choose.input_scale("hybrid", hybrid, "L") == 0.16 and fair_choose.input_scale("kron", (False, 0.2771, 2e-3), "L") == 0.2263
    edge = (False, round(0.02 / 3.6, 6), 2e-3)  # an edge run below the grid keeps its multiplier through phases 2 and 3
    assert fair_choose.input_scale("bpe_tied", edge) == 0.2778 and fair_choose.input_scale("bpe_tied", edge, "L") == 0.2778


def test_q4_is_reported_with_its_counts_and_diverged_runs():
    sign = {"higher": 70, "lower": 20, "prompts": 110, "p_sign": 1e-7, "p_holm": 2e-7}
    q4 = {
        "table": "bpe_untied",
        "diverged": ["kron-kron_shuffle_seedseed-input_scale0.2771-s2004"],
        "arms": {
            "kron": {"pairs": 12, "verdict": "kron more robust at matched loss", "survival": sign, "kl": dict(sign, higher=15, lower=80)},
            "kron_shuffled": {"pairs": 3, "verdict": "not asked (fewer than 5 counted pairs)"},
        },
    }
    assert fair_report.q4_text(q4) == (
        "Q4, typo robustness at matched loss (against bpe_untied; per prompt, averaged over every counted pair of every seed): "
        "kron: kron more robust at matched loss (12 counted pairs; its top-1 survival higher than the table's on 70 prompts, "
        "lower on 20, Holm p 2e-07; its KL lower on 80, higher on 15, Holm p 2e-07); "
        "kron_shuffled: not asked (fewer than 5 counted pairs) (3 counted pairs). "
        "Left out (diverged): kron-kron_shuffle_seedseed-input_scale0.2771-s2004."
    )
    q4["redone"] = {"kron-input_scale0.2771-s2002": 3e-5, "kron-input_scale0.2771-s2001": None}
    assert fair_report.q4_text(q4).endswith(
        "Left out (diverged): kron-kron_shuffle_seedseed-input_scale0.2771-s2004. Pairs are matched on the kept logs' losses; "
        "kron-input_scale0.2771-s2001, kron-input_scale0.2771-s2002 lost their checkpoints with a workspace and were trained "
        "again, so pairs probed after that saw the retrained weights, whose evaluations differ from the kept logs by at most "
        "3.00e-05 nats."
    )
    q4["redone"] = {"kron-input_scale0.2771-s2001": None}
    assert fair_report.q4_text(q4).endswith("differ from the kept logs by an amount not measured (their folders are gone).")


@pytest.mark.parametrize(
    "p, text", [(0.04996, "0.04996"), (0.0502, "0.0502"), (0.05, "0.05"), (0.3, "0.3"), (0.001234, "0.0012"), (None, "—")]
)
def test_a_p_value_never_prints_on_the_other_side_of_005(p, text):
    from report import fmt_p

    assert fmt_p(p) == text
