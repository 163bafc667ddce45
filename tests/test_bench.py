"""scripts/bench_train.py and bench_embed.py: training's precision, --steps 1, Dynamo's limit, refused flags."""

import json
import os

import pytest

from tests.conftest import ROOT


def test_benchmarks_use_trainings_precision_and_steps_1_works(tmp_path, monkeypatch):
    """bench_train and bench_embed take train.py's flags (runtime.use_fast_matmul) and autocast, and
    bench_train runs with --steps 1."""
    from scripts import bench_embed, bench_train

    seen = []
    for mod in (bench_train, bench_embed):
        monkeypatch.setattr(mod, "use_fast_matmul", lambda device_type, mod=mod: seen.append((mod.__name__, device_type)))
    bench_train.main(
        [
            "--device",
            "cpu",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "32",
            "--block-size",
            "16",
            "--batch-size",
            "2",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--arms",
            "bpe_tied",
            "kron",
            "--out",
            str(tmp_path / "train.json"),
        ]
    )
    assert json.load(open(tmp_path / "train.json"))["meta"]["dtype"] == "float32"
    bench_embed.main(
        [
            "--devices",
            "cpu",
            "--shapes",
            "tiny",
            "--impls",
            "fused",
            "cached",
            "--no-tied-head",
            "--dtype",
            "bfloat16",
            "--out",
            str(tmp_path / "embed.json"),
        ]
    )
    res = json.load(open(tmp_path / "embed.json"))
    assert res["meta"]["dtype"] == {"cpu": "bfloat16"}
    assert seen == [("scripts.bench_train", "cpu"), ("scripts.bench_embed", "cpu")]


def test_bench_train_variants_never_fall_back_to_eager():
    """Past Dynamo's recompile limit a compiled function silently runs eagerly; bench_train raises the
    limit to cover its variants and makes hitting it an error."""
    import torch._dynamo
    import torch._dynamo.config as dynamo_config

    from scripts import bench_train

    compiled = []

    def counting_backend(gm, example_inputs):
        compiled.append(gm)
        return gm.forward

    with dynamo_config.patch(recompile_limit=8, fail_on_recompile_limit_hit=False):  # the defaults, restored after
        torch._dynamo.reset()
        assert bench_train.allow_recompiles(3) == 12

        @torch.compile(backend=counting_backend, dynamic=False)
        def f(x):
            return x * 2 + 1

        for n in range(1, 11):  # ten shapes: ten compilations (the default limit, 8, would stop at 8)
            f(torch.ones(n))
        assert len(compiled) == 10
        for n in range(11, 13):
            f(torch.ones(n))
        with pytest.raises(Exception, match="(?i)limit"):
            f(torch.ones(13))
        torch._dynamo.reset()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--repeats", "0"], "--repeats 0: expected an integer >= 1"),
        (["--threads", "0"], "--threads 0: expected an integer >= 1"),
        (["--no-tied-head", "--only-tied-head"], "exclude each other"),
    ],
)
def test_bench_embed_flags_that_used_to_be_ignored(tmp_path, capsys, argv, message):
    from scripts import bench_embed

    with pytest.raises(SystemExit):
        bench_embed.main(argv + ["--out", str(tmp_path / "x.json")])
    assert message in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_cpu_peak_rss_measures_each_variant_in_its_own_process(tmp_path):
    """--cpu-peak-rss starts `python -m scripts.bench_train` per variant (a child started as a file could
    not import the library: it failed with 'No module named errors')."""
    from scripts import bench_train

    bench_train.main(
        [
            "--device",
            "cpu",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "32",
            "--block-size",
            "16",
            "--batch-size",
            "2",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--arms",
            "bpe_tied",
            "--cpu-peak-rss",
            "--quiet",
            "--out",
            str(tmp_path / "train.json"),
        ]
    )
    rss = json.load(open(tmp_path / "train.json"))["results"]["bpe_tied"]
    assert rss["peak_mem_bytes"] > 50 * 2**20  # the child's own peak: torch and a model, at least 50 MiB


def test_each_variant_is_timed_at_its_own_loss_chunk():
    """A variant's name carries its loss_chunk; timed alone (the peak-memory child) it keeps it."""
    from scripts.bench_train import parse_args, split_variant, variant_names

    args = parse_args(["--arms", "kron", "--loss-chunks", "0", "512", "--device", "cpu"])
    assert [split_variant(n, args.loss_chunks) for n in variant_names(args)] == [("kron", 0), ("kron", 512)]
    alone = parse_args(["--arms", "kron", "--loss-chunks", "512", "--device", "cpu"])
    assert [split_variant(n, alone.loss_chunks) for n in variant_names(alone)] == [("kron", 512)]


def test_the_speed_tables_are_rendered_from_the_kept_json():
    """The README's speed block and results/bench_cpu/README.md are what scripts.bench_cpu renders
    from the kept JSON: no number in them is typed by hand."""
    from scripts.bench_cpu import OUT, README_BLOCK, render, render_summary

    start, end = README_BLOCK
    body = open(os.path.join(ROOT, "README.md")).read()
    assert body.split(start, 1)[1].split(end, 1)[0] == "\n" + render_summary()
    assert open(os.path.join(OUT, "README.md")).read() == "# CPU speed and memory\n\n" + render()
