"""scripts/fair_q4.py and analysis.q4_*: the fair study's Q4 (amendment 2), typo robustness at matched
validation loss: the matching rule, the per-prompt sign tests with Holm and the verdict, and the script
end to end on tiny trained runs (kept checkpoints, probes, a rerun that probes nothing again)."""

import json
import os
import shutil
import sys

import pytest

import analysis
import train
from scripts import fair_choose, fair_q4
from tests.conftest import tiny_config
from tests.test_fair_choose import write_phases_1_2


def test_each_checkpoint_meets_the_tables_closest_and_counts_within_the_tolerance():
    a = {100: 5.00, 200: 4.50, 300: 3.00}
    table = {100: 5.01, 200: 4.70, 300: 4.49, 400: 4.40}
    got = analysis.q4_matches(a, table)
    assert [(sa, st, counted) for sa, st, _, counted in got] == [(100, 100, True), (200, 300, True), (300, 400, False)]
    assert got[2][2] == pytest.approx(1.40)


def records(values):
    """Probe records of 20 prompts: (top1_match, kl) per prompt."""
    return [{"clean": f"p{i}", "typo": f"q{i}", "top1_match": m, "kl": kl} for i, (m, kl) in enumerate(values)]


@pytest.mark.parametrize(
    "arm_values, verdict",
    [
        ([(True, 0.1)] * 20, "kron more robust at matched loss"),  # survives where the table does not, and moves less
        ([(False, 0.9)] * 20, "table more robust at matched loss"),
        ([(True, 0.9)] * 20, "not resolved"),  # survives more, but moves more: the two metrics disagree
        ([(True, 0.1), (False, 0.9)] * 10, "not resolved"),  # survival ties on every prompt: no sign test
    ],
)
def test_the_verdict_needs_both_metrics_on_one_side_after_holm(arm_values, verdict):
    table = records([(i % 2 == 0, 0.5) for i in range(20)])
    pairs = [(records(arm_values), table)] * 6
    out = analysis.q4_test(pairs, "kron")
    assert out["verdict"] == verdict and out["pairs"] == 6
    assert out["survival"]["prompts"] == 20 and out["kl"]["p_holm"] >= out["kl"]["p_sign"]
    assert analysis.q4_test(pairs[:4], "kron")["verdict"] == "not asked (fewer than 5 counted pairs)"


@pytest.mark.slow
def test_the_script_matches_probes_and_keeps_each_pair_once_and_retrains_a_lost_run(data_dir, tmp_path, monkeypatch, capsys):
    logs, runs, out = tmp_path / "logs", tmp_path / "runs", tmp_path / "q4"
    # phases 1-2 (synthetic): every arm best at the sqrt(d) point, lr 2e-3; bpe_untied (x13.86) the best table
    write_phases_1_2(logs, {"bpe_tied": 6.0, "bpe_untied": 5.0, "bpe_lowrank": 6.1, "kron": 5.2, "kron_shuffled": 5.3})
    # phase 3 (real, one seed): each arm at its chosen setting, keeping checkpoints at its evaluations
    phase3 = {
        "kron-s2001": dict(embedding="kron", input_scale=0.2771),
        "kron-kron_shuffle_seedseed-s2001": dict(embedding="kron", kron_shuffle_seed="seed", input_scale=0.2771),
        "bpe_untied-input_scale13.86-s2001": dict(embedding="bpe_untied", input_scale=13.86),
    }
    for kw in phase3.values():
        kw.update(learning_rate=2e-3, min_lr=2e-4, final_eval=True)
    for name, kw in phase3.items():
        train.train(tiny_config(data_dir, runs / name, seed=2001, keep_ckpt_steps=[4, 8], **kw))
        (logs / name).mkdir()
        shutil.copy(runs / name / "metrics.jsonl", logs / name / "metrics.jsonl")
    argv = ["--logs", str(logs), "--runs", str(runs), "--out", str(out)]
    monkeypatch.setattr(analysis, "Q4_TOLERANCE", 100.0)  # tiny runs' losses differ: count every pair here
    monkeypatch.setattr(analysis, "Q4_MIN_PAIRS", 2)
    result = fair_q4.main(argv)
    assert result["table"] == "bpe_untied"
    kron = result["arms"]["kron"]
    assert [m["step"] for m in kron["matches"]] == [4, 8, 12] and kron["pairs"] == 3
    verdicts = ("kron more robust at matched loss", "table more robust at matched loss", "not resolved")
    assert kron["survival"]["prompts"] == 110 and kron["verdict"] in verdicts
    kept = sorted(p.parent.name for p in (out / "kron").glob("*/robustness.json"))
    assert kept == sorted(f"s2001-a{m['step']}-t{m['table_step']}" for m in kron["matches"])
    kept_json = json.loads((out / "q4.json").read_text())
    assert kept_json["arms"]["kron_shuffled"]["pairs"] == 3 and kept_json["redone"] == {}

    def no_probe(*a):
        raise AssertionError("a kept pair was probed again")

    real_probe = fair_q4.probe
    monkeypatch.setattr(fair_q4, "probe", no_probe)
    assert fair_q4.main(argv)["arms"]["kron"]["survival"] == kron["survival"]
    shutil.rmtree(runs / "kron-s2001")  # a lost workspace: every pair's probe is kept, so no checkpoint is needed
    assert fair_q4.main(argv)["arms"]["kron"]["survival"] == kron["survival"]

    # a kept probe lost too: kron-s2001's checkpoints are needed again
    shutil.rmtree(out / "kron" / kept[0])
    with pytest.raises(
        fair_q4.RedoError, match=r"kron-s2001 lost their checkpoints; a redo trains into .*runs/study_fair: give that --runs"
    ):
        fair_q4.main(argv)  # --runs is not where the runner's commands train
    monkeypatch.setattr(fair_q4, "REDO_ROOT", str(runs))
    asked = []

    def retrain(commands, lanes):  # the runner, as the tiny run: same config, same seed
        asked.extend(commands)
        train.train(tiny_config(data_dir, runs / "kron-s2001", seed=2001, keep_ckpt_steps=[4, 8], **phase3["kron-s2001"]))

    monkeypatch.setattr(fair_q4, "retrain", retrain)
    checked = []  # the command is checked against the kept log before training (on real logs: the test below)
    monkeypatch.setattr(fair_q4, "planned", lambda cmd, run, logs: checked.append((cmd, run["name"])))
    fair_q4.main(argv + ["--dry-run"])
    assert asked == [] and not (runs / "kron-s2001").exists()
    kept_log = (logs / "kron-s2001" / "metrics.jsonl").read_bytes()
    monkeypatch.setattr(fair_q4, "probe", real_probe)
    again = fair_q4.main(argv)
    choice = fair_choose.settled_choice(str(logs))
    assert asked == [
        fair_choose.command("kron", choice["kron"]["chosen"], 2001, [fair_choose.KEEP_CKPTS], python=sys.executable, keep=False)
    ]
    assert "--keep-logs" not in asked[0] and "--out-root runs/study_fair" in asked[0] and checked == [(asked[0], "kron-s2001")]
    assert again["arms"]["kron"]["survival"] == kron["survival"]  # the same checkpoints again, on this machine
    assert (logs / "kron-s2001" / "metrics.jsonl").read_bytes() == kept_log
    assert "redone kron-s2001: its evaluations differ from its kept log by at most 0.00e+00 nats" in capsys.readouterr().out
    assert again["redone"] == {"kron-s2001": 0.0} == json.loads((out / "redone.json").read_text())

    # a folder that is there without a checkpoint a pair needs: refused, named
    shutil.rmtree(out / "kron" / kept[0])
    for f in (runs / "bpe_untied-input_scale13.86-s2001").glob("ckpt_step*"):
        f.unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"bpe_untied-input_scale13.86-s2001: the checkpoints of steps \[4, 8\] that Q4 needs are missing from this finished run",
    ):
        fair_q4.main(argv)


def test_a_diverged_phase_three_run_is_left_out_by_name(tmp_path):
    from tests.test_fair_choose import write_label

    write_phases_1_2(tmp_path, {"bpe_untied": 5.0})
    write_label(tmp_path, "kron-s2001", "kron", 0.2771, 2001, 5.1)
    write_label(tmp_path, "kron-s2002", "kron", 0.2771, 2002, None)  # diverged: no final record
    found, choice, diverged = fair_q4.phase3_runs(str(tmp_path))
    assert analysis.fair_best_table(choice) == "bpe_untied" and diverged == ["kron-s2002"]
    assert ("kron", 2001) in found and ("kron", 2002) not in found


def test_a_run_is_trained_again_when_its_folder_is_gone_or_holds_an_interrupted_redo(tmp_path):
    run = {"name": "kron-s2001"}
    folder = tmp_path / "kron-s2001"
    assert not fair_q4.lost(run, {100: (str(tmp_path / "a.pt"), 5.0)}, str(tmp_path))  # every checkpoint there
    needs = {100: (None, 5.0), 500: (None, 4.0)}
    assert fair_q4.lost(run, needs, str(tmp_path))  # the folder is gone
    folder.mkdir()
    sidecar = {"config": {}, "model_args": {}, "val_loss": None, "best_val_loss": None}
    (folder / "ckpt.json").write_text(json.dumps(dict(sidecar, step=300, finished=False)))
    assert fair_q4.lost(run, needs, str(tmp_path))  # a redo that stopped at step 300: the runner resumes it
    (folder / "ckpt.json").write_text(json.dumps(dict(sidecar, step=500, finished=True)))
    with pytest.raises(FileNotFoundError, match=r"kron-s2001: the checkpoints of steps \[100, 500\] that Q4 needs are missing"):
        fair_q4.lost(run, needs, str(tmp_path))


def test_the_final_checkpoint_counts_only_once_the_run_in_the_folder_finished_there(tmp_path):
    """An interrupted redo's ckpt.pt holds earlier weights than the kept log's final step: not a checkpoint of it."""
    logs, runs = tmp_path / "logs", tmp_path / "runs"
    (logs / "kron-s2001").mkdir(parents=True)
    records = [{"kind": "config", "config": {"keep_ckpt_steps": [100, 200]}}]
    records += [{"kind": "eval", "step": s, "val_loss": 9.0 - s / 100} for s in (0, 100, 200, 300)]
    (logs / "kron-s2001" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    folder = runs / "kron-s2001"
    folder.mkdir(parents=True)
    for name in ("ckpt_step100.pt", "ckpt_step200.pt", "ckpt.pt"):
        (folder / name).write_bytes(b"weights")
    sidecar = {"config": {}, "model_args": {}, "val_loss": None, "best_val_loss": None}
    (folder / "ckpt.json").write_text(json.dumps(dict(sidecar, step=250, finished=False)))
    run = {"name": "kron-s2001"}
    got = fair_q4.checkpoints(str(logs), str(runs), run)
    assert sorted(got) == [100, 200, 300] and got[300] == (None, 6.0) and got[100] == (str(folder / "ckpt_step100.pt"), 8.0)
    assert fair_q4.lost(run, got, str(runs))  # resumed by the runner
    (folder / "ckpt.json").write_text(json.dumps(dict(sidecar, step=300, finished=True)))
    assert fair_q4.checkpoints(str(logs), str(runs), run)[300] == (str(folder / "ckpt.pt"), 6.0)
    records[0]["config"]["keep_ckpt_steps"] = None  # a run made without them: refused, named
    (logs / "kron-s2001" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ValueError, match="kron-s2001: kept no checkpoints; Q4 needs phase-3 runs made with --keep_ckpt_steps"):
        fair_q4.checkpoints(str(logs), str(runs), run)


def test_a_redo_is_checked_against_the_kept_log_and_named_before_it_trains(tmp_path, monkeypatch):
    """planned() on a real kept run of the study (its config only: no loss is read), then on a copy whose
    recorded config differs; and redo() names each run in redone.json before training, so an
    interrupted or failed redo is still reported."""
    name = "bpe_tied-input_scale1-s1338"
    real = os.path.join(fair_choose.ROOT, "results", "study_fair", "runs")
    cmd = fair_choose.command("bpe_tied", (False, 0.02, 2e-3), 1338, [fair_choose.KEEP_CKPTS], keep=False)
    fair_q4.planned(cmd, {"name": name}, real)  # the runner plans the very run the kept log records
    with pytest.raises(fair_q4.RedoError, match="bpe_tied-input_scale1-s1337: the runner would not train the run its kept log"):
        fair_q4.planned(cmd, {"name": "bpe_tied-input_scale1-s1337"}, real)  # another folder
    records = [json.loads(line) for line in open(os.path.join(real, name, "metrics.jsonl"))]
    records[0]["config"]["n_layer"] += 1
    (tmp_path / name).mkdir()
    (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(fair_q4.RedoError, match="its config or data changed"):
        fair_q4.planned(cmd, {"name": name}, str(tmp_path))

    def fails(commands, lanes):
        raise fair_q4.RedoError("training again for Q4's checkpoints failed (exit 1)")

    monkeypatch.setattr(fair_q4, "planned", lambda *a: None)
    monkeypatch.setattr(fair_q4, "retrain", fails)
    args = type("Args", (), {"runs": fair_q4.REDO_ROOT, "out": str(tmp_path / "q4"), "logs": real, "lanes": 2})
    choice = {"kron": {"chosen": (False, 1.0, 2e-3)}}
    with pytest.raises(fair_q4.RedoError, match="failed"):
        fair_q4.redo([{"name": "kron-input_scale1-s2001", "arm": "kron", "seed": 2001}], choice, args)
    assert json.loads((tmp_path / "q4" / "redone.json").read_text()) == {"kron-input_scale1-s2001": None}


def test_retrain_runs_each_command_and_names_the_one_that_failed(tmp_path):
    ok = f'{sys.executable} -c \'open("{tmp_path}/ran", "a").write("x")\''
    fair_q4.retrain([ok, ok], lanes=2)
    assert (tmp_path / "ran").read_text() == "xx"
    bad = f"{sys.executable} -c 'raise SystemExit(3)'"
    with pytest.raises(fair_q4.RedoError, match=r"failed \(exit 3\): .* -c 'raise SystemExit\(3\)'"):
        fair_q4.retrain([ok, bad], lanes=1)
