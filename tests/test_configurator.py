"""configurator.py: unknown keys, types and ranges refused naming key and value, overrides, config files."""

import glob
import os
import re

import pytest

import train
from configurator import ConfigError, load_config
from tests.conftest import ROOT


def test_configurator_errors(tmp_path):
    defaults = {"n_layer": 12, "learning_rate": 6e-4, "out_dir": "out", "compile": False, "wandb_run_name": None}
    with pytest.raises(ConfigError, match="unknown config key 'n_layers'.*n_layer"):
        load_config(["--n_layers=4"], defaults)
    with pytest.raises(ConfigError, match="'n_layer'.*'four'.*int"):
        load_config(["--n_layer=four"], defaults)
    with pytest.raises(ConfigError, match="'compile'.*expected bool"):
        load_config(["--compile=1"], defaults)
    with pytest.raises(ConfigError, match="not found"):
        load_config(["config/nope.py"], defaults)
    with pytest.raises(ConfigError, match="--key=value"):
        load_config(["--n_layer"], defaults)
    bad = tmp_path / "bad.py"
    bad.write_text("n_layer = 4\nlearnig_rate = 1e-3\n")
    with pytest.raises(ConfigError, match="learnig_rate.*bad.py"):
        load_config([str(bad)], defaults)
    cfg = load_config(["--learning_rate=1", "--out_dir=out/x", "--wandb_run_name=run-1"], defaults)
    assert cfg["learning_rate"] == 1.0 and isinstance(cfg["learning_rate"], float)
    assert cfg["out_dir"] == "out/x" and cfg["wandb_run_name"] == "run-1"


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("gradient_accumulation_steps", 0, "integer >= 1"),
        ("batch_size", 0, "integer >= 1"),
        ("batch_size", -1, "integer >= 1"),
        ("eval_interval", 0, "integer >= 1"),
        ("max_iters", -5, "integer >= 0"),
        ("learning_rate", -1e-3, "number > 0"),
        ("beta2", 1.0, r"\[0, 1\)"),
        ("dropout", 1.5, r"\[0, 1\)"),
        ("device", "gpu", "'cuda:N'"),
        ("seed", -1, "2\\*\\*63"),
        ("lr_decay_iters", 0, "None or an integer >= 1"),
    ],
)
def test_settings_out_of_range_are_refused_with_key_and_value(key, value, expected):
    with pytest.raises(ConfigError, match=f"'{key}' = " + re.escape(repr(value)) + f": expected .*{expected}"):
        load_config([f"--{key}={value}"])


def test_an_unknown_arm_and_a_bad_width_are_refused_by_the_model_config_alone():
    """One owner for each check (GPTConfig), surfaced as a ConfigError naming the value."""
    with pytest.raises(ConfigError, match="embedding='kronn': expected one of .*'bpe_tied', 'kron'"):
        load_config(["--embedding=kronn"])
    with pytest.raises(ConfigError, match="n_embd=100 must be divisible by n_head=3"):
        load_config(["--n_embd=100", "--n_head=3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("--bias=None", "'bias' in --bias: got None, expected bool"),
        ("--kron_shuffle_seed=True", "'kron_shuffle_seed' = True: expected None, an integer >= 0, or 'seed'"),
        ("--learning_rate=1e999", "'learning_rate' = inf: expected a finite number > 0"),
        ("--weight_decay=1e999", "'weight_decay' = inf: expected a finite number >= 0"),
    ],
)
def test_flags_that_used_to_pass_silently_are_refused(override, message):
    from configurator import load_config

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(["--embedding=kron", override])


def test_config_file_may_import_helpers(tmp_path):
    cfg = tmp_path / "c.py"
    cfg.write_text("from math import pi\nimport math\nlearning_rate = pi / 1000\nmax_iters = math.ceil(9.5)\n")
    c = load_config([str(cfg)])
    assert c["learning_rate"] == pytest.approx(0.0031416, rel=1e-4) and c["max_iters"] == 10


def test_all_shipped_configs_load():
    for name in os.listdir(os.path.join(ROOT, "config")):
        cfg = load_config([os.path.join(ROOT, "config", name)])
        assert cfg["embedding"] in ("bpe_tied", "kron", "bpe_untied", "kron_tied")
    kron = load_config([os.path.join(ROOT, "config", "kron_124m.py")])
    assert kron["batch_size"] * kron["block_size"] * kron["gradient_accumulation_steps"] == 524_288
    assert kron["max_iters"] == 4768 and kron["kron_pos_dim"] == 16


@pytest.mark.parametrize("world", [1, 2, 4])
def test_cpu_configs_divide_accumulation_among_1_2_or_4_processes(world):
    from configurator import load_config

    for name in glob.glob(os.path.join(ROOT, "config", "*_cpu.py")):
        if name.endswith("study_cpu.py"):  # keeps the published study's batches; one process a run
            continue
        c = load_config([name])
        assert c["gradient_accumulation_steps"] % world == 0, name


def test_124m_configs_leave_wandb_off_where_it_is_not_installed(monkeypatch, capsys):
    import importlib.util

    from configurator import load_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    monkeypatch.delenv("RANK", raising=False)
    assert load_config([os.path.join(ROOT, "config/kron_124m.py")])["wandb_log"] is False
    assert capsys.readouterr().out.count("wandb is not installed") == 1
    with pytest.raises(train.ConfigError, match="wandb_log=True but wandb is not installed"):
        train.train(dict(train.DEFAULTS, wandb_log=True, device="cpu"))
