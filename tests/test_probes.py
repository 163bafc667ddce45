"""Probes: metric functions on hand-made inputs, and every probe end to end on tiny checkpoints."""

import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from probes import clustering, generation, layered, robustness, run_all
from probes.common import canonical, load_all
from tests.conftest import ROOT

# --------------------------------------------------------------------------- metric functions


def test_kl_and_pair_metrics_known_answers():
    logits = torch.tensor([1.0, 2.0, 0.5])
    same = robustness.pair_metrics(logits, logits.clone(), torch.ones(4), torch.ones(4))
    assert same["kl"] == pytest.approx(0.0, abs=1e-7) and same["top1_match"] and same["logprob_drop"] == pytest.approx(0.0, abs=1e-7)
    assert same["cos_hidden"] == pytest.approx(1.0)
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    m = robustness.pair_metrics(p.log(), q.log(), torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert m["kl"] == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1), rel=1e-5)
    assert m["cos_hidden"] == pytest.approx(0.0, abs=1e-7)
    assert m["logprob_drop"] == pytest.approx(math.log(0.5) - math.log(0.9), rel=1e-5)  # top-1 of p is id 0


def test_aggregate():
    recs = [{"kl": k, "top1_match": t, "cos_hidden": 1.0, "logprob_drop": 0.0} for k, t in [(0.0, True), (1.0, False), (2.0, True)]]
    agg = robustness.aggregate(recs)
    assert agg["top1_match_rate"] == pytest.approx(2 / 3) and agg["mean_kl"] == 1.0 and agg["median_kl"] == 1.0


def test_canonical_forms():
    assert canonical("Ġrun") == canonical(" Run.") == canonical("RUN") == canonical("(run") == canonical("▁run") == "run"
    assert canonical("runs") != "run"


def test_layered_scores_known_list():
    family = {"run", "runs", "runner", "ran"}
    s = layered.scores([" run", "Run", "runs", "runner", "fun", "rung", "ran", "sun", "ru", "gun"], "run", "run", family)
    assert s["L"] == pytest.approx(8 / 10)  # ' run' and 'Run' share the probe's canonical form
    assert s["M"] == pytest.approx(5 / 10)  # run, run, runs, runner, rung
    assert s["S"] == pytest.approx(5 / 10)  # run, run, runs, runner, ran


def test_typographic_fraction_on_a_hand_made_space():
    from tokenizer import get_tokenizer

    tok = get_tokenizer("gpt2")
    words = ["run", " run", "Run", " Run", "runs", " running", " runner"]
    assert all(len(tok.encode(w)) == 1 for w in words)
    ids = [tok.encode(w)[0] for w in words]
    g = torch.Generator().manual_seed(0)
    table = torch.randn(tok.n_vocab, 64, generator=g)
    target, drift = torch.randn(64, generator=g), torch.randn(64, generator=g)
    for rank, i in enumerate(ids):
        table[i] = target + 0.05 * rank * drift  # cosine to 'run' falls with rank: its top-5 are the next five words
    space = clustering.TableSpace("toy", tok, table)
    idx, _ = space.neighbours("run", 5)
    strs = [clustering.token_str(tok, i) for i in idx]
    assert sorted(strs) == sorted(words[1:6])
    assert sum(canonical(s) == "run" for s in strs) / 5 == pytest.approx(3 / 5)


def test_degenerate_rule_counts_occurrences_not_runs():
    assert generation.degenerate([1, 2, 1, 3, 1, 4, 1, 5, 1])
    assert not generation.degenerate([1, 1, 1, 1, 2, 2, 2, 2])


def test_typo_generator():
    rng = random.Random(0)
    for kind in ("swap", "drop", "double", "substitute"):
        t = robustness.make_typo("running", rng, kind)
        assert t != "running" or kind == "swap" and t[0] == "r"
        assert t[0] == "r" and abs(len(t) - len("running")) <= 1
    pairs = robustness.generate_pairs(["The quick brown fox jumps over the lazy dog"], 5)
    assert len(pairs) == 5 and all(p["clean"] != p["typo"] or "mm" in p["clean"] for p in pairs)
    with pytest.raises(ValueError, match="too short"):
        robustness.make_typo("ab", rng)


def test_shipped_pairs_and_malformed_file(tmp_path):
    pairs = robustness.load_pairs(robustness.DEFAULT_PAIRS)
    cats = {p["category"] for p in pairs}
    assert len(pairs) >= 110 and len(cats) >= 11
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"category": "a", "clean": "x", "typo": "y"}\nnot json\n{"category": "a", "clean": "x"}\n')
    with pytest.raises(ValueError, match="line 2: not JSON.*\n.*line 3: needs non-empty string fields \\['typo'\\]"):
        robustness.load_pairs(str(bad))
    with pytest.raises(FileNotFoundError, match="pairs file .*none.jsonl' does not exist"):
        robustness.load_pairs(str(tmp_path / "none.jsonl"))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_all([f"kron={tmp_path / 'nope.pt'}"])


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_every_probe_runs_on_tiny_checkpoints(tiny_checkpoints, tmp_path, monkeypatch):
    specs = [f"bpe={tiny_checkpoints['bpe_tied']}", f"kron={tiny_checkpoints['kron']}", f"kt={tiny_checkpoints['kron_tied']}"]
    # a family with a probe GPT-2 splits into several tokens: it must be skipped and reported
    fams = dict(layered.FAMILIES)
    fams["zz"] = (["zzqxjv", "run"], "zz", {"zzqxjv"})
    monkeypatch.setattr(layered, "FAMILIES", fams)
    # generation on a small input (one plain prompt, two with a novel word; 8 new tokens): it is the slow probe
    monkeypatch.setattr(generation, "PROMPTS", [generation.PROMPTS[0]] + [p for p in generation.PROMPTS if p[3]][:2])
    monkeypatch.setattr(generation, "SAMPLING", dict(generation.SAMPLING, max_new_tokens=8))
    report = run_all.main(specs + ["--out", str(tmp_path)])
    for name in run_all.PROBES:
        assert (tmp_path / f"{name}.json").exists() and (tmp_path / f"{name}.md").exists(), name
    for name in ("robustness", "clustering", "layered", "norm_drift", "tradeoff"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    text = open(report).read()
    assert "Spelling robustness" in text and "Layered" in text and "Norm drift" in text

    rob = json.load(open(tmp_path / "robustness.json"))
    assert rob["n_pairs"] == 110 and set(rob["models"]) == {"bpe", "kron", "kt"}
    assert set(rob["category_winner_top1"]) == {p["category"] for p in robustness.load_pairs(robustness.DEFAULT_PAIRS)}
    for lab in ("bpe", "kron", "kt"):  # a model wins or ties exactly where its top-1 rate is the best
        expect = sum(
            rob["models"][lab]["per_category"][c]["top1_match_rate"]
            == max(m["per_category"][c]["top1_match_rate"] for m in rob["models"].values())
            for c in rob["category_winner_top1"]
        )
        assert rob["wins_or_ties"][lab] == expect

    gen = json.load(open(tmp_path / "generation.json"))
    kron_oov = [r for r in gen["records"] if r["model"] == "kron" and r["condition"] == "forced_oov"]
    assert len(kron_oov) == 2 and all(r["oov_slot"] is not None and r["oov_slot"] in r["prompt_ids"] for r in kron_oov)
    assert all(len(r["sampled_ids"]) == 8 for r in gen["records"])
    assert all(r["bpe_oov_equivalent"] for r in gen["records"] if r["model"] == "bpe" and r["condition"] == "forced_oov")

    clu = json.load(open(tmp_path / "clustering.json"))
    codec = next(v for k, v in clu["spaces"].items() if k.startswith("codec"))
    random_space = clu["spaces"]["random (Gaussian)"]
    assert random_space["mean_morphological@5"] == 1.0  # a random table has no typographic neighbours
    assert codec["families"]["compute"]["in_family_cos_centred"] > 0.5

    lay = json.load(open(tmp_path / "layered.json"))
    skipped = lay["models"]["kron"]["skipped_probes"]
    assert "zzqxjv" in skipped and "run" not in skipped and len(skipped) == 7  # 6 paper probes GPT-2 splits either way
    assert lay["models"]["kron"]["probe_forms"]["compute"] == " compute"
    assert lay["models"]["bpe"]["depths"] == ["E_raw", "E_post", "L0", "L1"]

    trade = json.load(open(tmp_path / "tradeoff.json"))
    assert trade["pairs"]["compute/commute"]["codec"] == pytest.approx(6 / 7, abs=2e-3)  # z-norm shifts it slightly

    drift = json.load(open(tmp_path / "norm_drift.json"))
    assert drift["kron"]["input_scale_key"] == "proj_std_sqrtD" and drift["kron"]["input_scale"][0] == pytest.approx(1.0, abs=0.05)
    assert drift["bpe"]["input_scale"][0] == pytest.approx(0.02, rel=0.05)
    assert drift["kt"]["arm"] == "kron_tied" and drift["kt"]["input_scale_key"] == "proj_std_sqrtD"  # a Kron input space
    assert lay["models"]["kt"]["probe_forms"]["compute"] == " compute"
    kt_oov = [r for r in gen["records"] if r["model"] == "kt" and r["condition"] == "forced_oov"]
    assert len(kt_oov) == 2 and all(r["oov_slot"] is not None for r in kt_oov)  # byte slots work on the tied arm too


def test_clustering_on_a_local_hf_model_dir(tmp_path):
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    corpus = [
        "the runner runs running run ran computer compute computing computation computes",
        "magnet magnets magnetic magnetize magnetized nation station action rotation creation",
    ] * 20
    hf.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    d = tmp_path / "toy-hf"
    d.mkdir()
    hf.save(str(d / "tokenizer.json"))
    save_file({"model.embed_tokens.weight": torch.randn(hf.get_vocab_size(), 16)}, str(d / "model.safetensors"))
    res = clustering.main(["--hf", f"toy={d}", "--out", str(tmp_path / "out"), "--codec-pos-dim", "16"])
    assert "toy (HF)" in res["spaces"] and any(k.startswith("codec") for k in res["spaces"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        clustering.main(["--hf", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])


def test_mcnemar_and_unrelated_prompt_baseline_on_known_inputs():
    r = robustness.mcnemar([True] * 6 + [True, False], [False] * 6 + [True, False])
    assert (r["only_first"], r["only_second"]) == (6, 0) and r["p_value"] == pytest.approx(2 / 2**6)
    assert robustness.mcnemar([True, False], [True, False])["p_value"] == 1.0
    recs = [{"top1_clean": t} for t in (5, 5, 5, 9)]  # prompt i vs i+1: 5=5, 5=5, 5!=9, 9!=5
    assert robustness.unrelated_agreement(recs) == 0.5


def test_readme_probe_example_is_the_kept_output():
    """The README's robustness example is the table probes/run_all.py wrote on the quickstart checkpoints
    (kept in results/quickstart_cpu/probes/robustness.md): regenerated, not typed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kept = open(os.path.join(root, "results", "quickstart_cpu", "probes", "robustness.md")).read().split("\n\n")[1].strip()
    readme = open(os.path.join(root, "README.md")).read()
    assert "```\n" + kept + "\n```" in readme


def test_probe_inputs_that_are_not_what_they_claim(tmp_path, tiny_checkpoints):
    from probes import robustness

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"category": "a", "clean": "x y", "typo": "x z"}\n[1, 2]\n"text"\n')
    with pytest.raises(ValueError, match="line 2: a JSON list, expected an object.*\n.*line 3: a JSON str"):
        robustness.load_pairs(str(pairs))
    pairs.write_bytes(b'{"category": "a", "clean": "caf\xe9", "typo": "x"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl.*is not UTF-8 text \(byte 31"):
        robustness.load_pairs(str(pairs))
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n\n")
    ckpt = tiny_checkpoints["kron"]
    r = subprocess.run(
        [sys.executable, "-m", "probes.robustness", ckpt, "--generate", str(empty), "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "holds no prompts" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "probes.robustness", os.path.dirname(ckpt), "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "is a folder; expected a ckpt.pt" in r.stderr
