"""An arm defined in a user's own module, outside this repository, works in every tool: each tool
runs in a subprocess with `--import <module>`, and without it refuses in one line naming the module."""

import json
import sys

import pytest

from tests.conftest import ROOT, run, tiny_config

ARM_MODULE = '''
import arms

class ScaledTable(arms.TableInput):
    """A learned table whose output is multiplied by 3, with its own head."""
    def forward(self, idx, byte_overrides=None):
        return 3.0 * super().forward(idx, byte_overrides)

arms.register("my_scaled", lambda cfg: (ScaledTable(cfg.vocab_size, cfg.n_embd), arms.LinearHead(cfg.n_embd, cfg.vocab_size)),
              doc="a learned table x 3, untied head")
'''


@pytest.fixture(scope="module")
def plugin(data_dir, tmp_path_factory):
    """(folder holding my_scaled_arm.py and a config, a trained run of the arm in it)."""
    home = tmp_path_factory.mktemp("plugin")
    (home / "my_scaled_arm.py").write_text(ARM_MODULE)
    settings = tiny_config(data_dir, "unused", max_iters=6, lr_decay_iters=6, eval_interval=3, embedding="my_scaled")
    (home / "cfg.py").write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items() if k != "out_dir"))
    out = home / "run"
    done = tool(home, "train.py", str(home / "cfg.py"), f"--out_dir={out}")
    assert done.returncode == 0, done.stderr[-500:]
    return home, out


def tool(home, *args, imports=True):
    """Run a tool the way a user would: `python <tool> --import my_scaled_arm ...` with their folder on PYTHONPATH."""
    script = ["-m", args[0]] if not args[0].endswith(".py") else [f"{ROOT}/{args[0]}"]
    flag = ["--import", "my_scaled_arm"] if imports else []
    return run([sys.executable, *script, *flag, *args[1:]], timeout=600, PYTHONPATH=str(home))


@pytest.mark.slow
def test_the_arm_resumes_samples_exports_and_is_probed(plugin, tmp_path):
    home, out = plugin
    ckpt = str(out / "ckpt.pt")
    resumed = tool(home, "train.py", str(home / "cfg.py"), f"--out_dir={out}", "--init_from=resume", "--max_iters=8", "--lr_decay_iters=8")
    assert resumed.returncode == 0 and "step" in resumed.stdout, resumed.stderr[-500:]
    sampled = tool(home, "sample.py", f"--ckpt={ckpt}", "--num_samples=1", "--max_new_tokens=5")
    assert sampled.returncode == 0, sampled.stderr[-500:]
    exported = tool(home, "scripts.export_hf", "--ckpt", ckpt, "--out", str(tmp_path / "hf"))
    assert exported.returncode == 0 and (tmp_path / "hf" / "model.safetensors").exists(), exported.stderr[-500:]
    probed = tool(home, "probes.run_all", f"mine={ckpt}", "--out", str(tmp_path / "report"))
    assert probed.returncode == 0, probed.stderr[-800:]
    assert json.load(open(tmp_path / "report" / "robustness.json"))["models"]["mine"]["arm"] == "my_scaled"


@pytest.mark.slow
def test_the_arm_runs_in_a_study(plugin, tmp_path):
    home, _ = plugin
    study = tool(
        home,
        "scripts.run_study",
        "--base",
        str(home / "cfg.py"),
        "--arms",
        "my_scaled",
        "--seeds",
        "1",
        "--out-root",
        str(tmp_path / "study"),
    )
    assert study.returncode == 0, study.stderr[-500:]
    assert (tmp_path / "study" / "my_scaled-s1" / "ckpt.pt").exists()


def test_without_the_import_a_tool_names_the_module_in_one_line(plugin, tmp_path):
    home, out = plugin
    ckpt = str(out / "ckpt.pt")
    for args in (("sample.py", f"--ckpt={ckpt}"), ("scripts.export_hf", "--ckpt", ckpt, "--out", str(tmp_path / "x"))):
        refused = tool(home, *args, imports=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert (
            refused.stderr.strip()
            .splitlines()[-1]
            .endswith(
                "registered by the module 'my_scaled_arm': pass --import my_scaled_arm (run from the folder that holds it, "
                "or put that folder on PYTHONPATH)"
            )
        )
    missing = tool(home, "sample.py", "--import", "no_such_module", f"--ckpt={out / 'ckpt.pt'}", imports=False)
    assert missing.returncode == 1 and "--import no_such_module: No module named 'no_such_module'" in missing.stderr
