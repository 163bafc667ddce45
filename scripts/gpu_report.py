"""Keep a GPU check's results and render the README's GPU section from the kept files.

    python -m scripts.gpu_report --archive gpu_check.tar.gz   # -> results/gpu/<device>/, then the README section
    python -m scripts.gpu_report                              # re-render the README section from results/gpu/
    python -m scripts.gpu_report --check                      # exit 1 when the README's section is stale
    python -m scripts.gpu_report --study-archive gpu_study.tar.gz   # -> results/gpu_124m/ (RESULTS.md via make_results.py)

The archive is what scripts/gpu_check.sh leaves: logs/ with device.json, bench_train.json,
bench_embed_*.json, resume.json, stages.tsv and each stage's log. Only those names are taken (no
paths from the archive are trusted). A CPU smoke archive is refused unless --allow-cpu (tests).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.gpu_report", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import gzip
import lzma
import os
import re
import sys
import tarfile
import zlib

import report
from analysis import load_gpu_study
from checks import is_int, is_number
from errors import run_cli
from runlog import parse_json, read_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results", "gpu")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- gpu-report:start -->", "<!-- gpu-report:end -->"
KEPT = re.compile(r"^(device|bench_train|bench_embed_gpt2|bench_embed_large|resume)\.json$|^stages\.tsv$|^[a-z_0-9]+\.log$")
ARMS = ("bpe_tied", "kron", "bpe_untied", "kron_tied")


def open_archive(archive):
    """The tar archive a GPU script wrote, or one line saying the file is not one."""
    try:
        return tarfile.open(archive)
    except tarfile.ReadError:  # tarfile's own message lists every compression it tried, one per line
        raise ValueError(
            f"{archive!r} ({os.path.getsize(archive):,} bytes) is not a tar archive written by scripts/gpu_check.sh or gpu_study.sh"
        ) from None


MAX_MEMBER = 256 * 2**20  # bytes of one kept file (a GPU check's logs are a few MB)
MAX_TOTAL = 1024 * 2**20  # bytes of all kept files together


def read_members(archive, tar, members):
    """{name: bytes} of the chosen members, each size (from its header) checked before it is read:
    at most MAX_MEMBER each and MAX_TOTAL together, so a small archive cannot expand into memory."""
    total = sum(m.size for m in members.values())
    big = next((n for n, m in members.items() if m.size > MAX_MEMBER), None)
    if big or total > MAX_TOTAL:
        what = f"{big} holds {members[big].size:,} bytes" if big else f"its kept files hold {total:,} bytes"
        raise ValueError(
            f"{archive}: {what}, over the bound of {MAX_MEMBER // 2**20} MB a file and "
            f"{MAX_TOTAL // 2**20} MB in all: not a GPU script's archive"
        )
    return {name: tar.extractfile(m).read() for name, m in members.items()}


READ_ERRORS = (EOFError, tarfile.TarError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)  # what a cut or damaged archive raises


def damaged(archive, e):
    """The message refusing an archive whose compressed stream or tar blocks break off while read."""
    return f"{archive!r} is truncated or damaged ({type(e).__name__}: {str(e)[:160]}): copy the archive again"


# device.json: what render_device reads of it (scripts/gpu_facts.py writes them all), key: (check, expected)
DEVICE_FACTS = {
    "device": (lambda v: isinstance(v, str), "a string"),
    "torch": (lambda v: isinstance(v, str), "torch's version string"),
    "matmul": (
        lambda v: isinstance(v, dict) and is_number(v.get("tflops")) and is_int(v.get("n")) and isinstance(v.get("dtype"), str),
        "an object with n, dtype and tflops",
    ),
}


def device_facts(data, where):
    """A device.json's facts, checked before anything is kept: an object with the keys gpu_facts.py
    writes and render_device reads, each of its type; otherwise one line naming the member and key."""
    device = parse_json(data, where)
    if not isinstance(device, dict):
        raise ValueError(f"{where} holds a JSON {type(device).__name__}, expected the object scripts/gpu_facts.py writes")
    for key, (ok, expected) in DEVICE_FACTS.items():
        if key not in device:
            raise ValueError(f"{where} has no {key!r} entry (expected {expected}): not written by scripts/gpu_facts.py")
        if not ok(device[key]):
            raise ValueError(f"{where}: {key} = {str(device[key])[:80]!r}, expected {expected}")
    return device


def import_archive(archive, results=RESULTS, allow_cpu=False):
    """Extract the kept files of a gpu_check archive into results/<device slug>/; returns that folder."""
    try:
        with open_archive(archive) as tar:
            members = {
                os.path.basename(m.name): m
                for m in tar.getmembers()
                if m.isfile() and m.name.startswith("logs/") and KEPT.match(os.path.basename(m.name))
            }
            if "device.json" not in members:
                sys.exit(f"error: {archive} has no logs/device.json: not a scripts/gpu_check.sh archive")
            files = read_members(archive, tar, members)
    except READ_ERRORS as e:
        raise ValueError(damaged(archive, e)) from None
    device = device_facts(files["device.json"], f"{archive}: logs/device.json")
    if device.get("device") != "cuda" and not allow_cpu:
        sys.exit(f"error: {archive} was measured on {device.get('device')!r}, not a GPU (a --smoke run?); not kept")
    slug = re.sub(r"[^a-z0-9]+", "-", (device.get("gpu") or device.get("device") or "unknown").lower()).strip("-")
    folder = os.path.join(results, slug)
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(f"kept {len(files)} files in {folder}")
    return folder


STUDY_RESULTS = os.path.join(ROOT, "results", "gpu_124m")
STUDY_KEPT = re.compile(
    r"^logs/(?:(?:runs|probes)/[a-z_]+-s[0-9]+/(?:metrics\.jsonl|ckpt\.json|robustness\.json|robustness\.md)"
    r"|[a-z_0-9.-]+\.(?:log|tsv)|device\.json)$"
)


def import_study_archive(archive, results=STUDY_RESULTS, allow_cpu=False):
    """Extract what scripts/gpu_study.sh kept (device facts, metric logs, sidecars, probe outputs, logs)
    into results/gpu_124m/, by names matched one by one; returns the number of files."""
    try:
        with open_archive(archive) as tar:
            chosen = {m.name.removeprefix("logs/"): m for m in tar.getmembers() if m.isfile() and STUDY_KEPT.match(m.name)}
            files = read_members(archive, tar, chosen)
    except READ_ERRORS as e:
        raise ValueError(damaged(archive, e)) from None
    if "device.json" not in files or not any(n.endswith("metrics.jsonl") for n in files):
        sys.exit(f"error: {archive} holds no device.json or no metric log: not a scripts/gpu_study.sh archive")
    device = parse_json(files["device.json"], f"{archive}: logs/device.json")
    if not isinstance(device, dict):
        raise ValueError(
            f"{archive}: logs/device.json holds a JSON {type(device).__name__}, expected the object scripts/gpu_facts.py writes"
        )
    if device.get("device") != "cuda" and not allow_cpu:
        sys.exit(f"error: {archive} was measured on {device.get('device')!r}, not a GPU (a --smoke run?); not kept")
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(results, name)), exist_ok=True)
        with open(os.path.join(results, name), "wb") as f:
            f.write(data)
    print(f"kept {len(files)} files in {results}; now run python -m scripts.make_results")
    return len(files)


def _load(folder, name):
    path = os.path.join(folder, name)
    return read_json(path) if os.path.isfile(path) else None


def _or_dash(v):
    return "-" if v is None else v


def nanogpt_ms(folder):
    """nanoGPT bench.py's 'time per iteration' (ms, mean of 20 steps after 10), or None."""
    path = os.path.join(folder, "nanogpt.log")
    m = re.search(r"time per iteration: ([0-9.]+)ms", open(path).read()) if os.path.isfile(path) else None
    return float(m.group(1)) if m else None


def render_device(folder):
    """The markdown for one kept GPU check."""
    dev, train = _load(folder, "device.json"), _load(folder, "bench_train.json")
    lines = [
        f"**{dev.get('gpu') or dev['device']}** (driver {dev.get('driver_version', '?')}, torch {dev['torch']}, "
        f"CUDA {dev.get('cuda')}): {dev['matmul']['dtype']} {dev['matmul']['n']}³ matmul "
        f"{dev['matmul']['tflops']:.3g} TFLOP/s measured"
        + (f", {dev['datasheet_peak_tflops']:.0f} datasheet" if dev.get("datasheet_peak_tflops") else "")
        + "."
    ]
    targets = []
    if train:
        a = train["meta"]["args"]
        lines += [
            "",
            f"Training step (`scripts/bench_train.py`, train.py's own step): {a['n_layer']} layers, d {a['n_embd']}, "
            f"block {a['block_size']}, micro-batch {a['batch_size']}, {train['meta']['dtype']}, "
            f"{'compiled' if a['compile'] else 'eager'}, median of {a['steps']} steps after {a['warmup']}.",
            "",
            "| arm | step ms [IQR] | tokens/s | vs bpe_tied | MFU (datasheet) | MFU (measured matmul) "
            "| peak GB | syncs/step | graph breaks |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in train["results"].items():

            def pct(v):
                return f"{100 * v:.1f} %" if v is not None else "-"

            gb = f"{r['peak_mem_bytes'] / 2**30:.1f}" if r.get("peak_mem_bytes") else "-"
            lines.append(
                f"| {name} | {r['median_ms']:.1f} [{r['q1_ms']:.1f}, {r['q3_ms']:.1f}] | {r['tokens_per_s']:,.0f} | "
                f"{r['ratio_to_first']:.3f}× | {pct(r.get('mfu'))} | {pct(r.get('mfu_vs_measured_matmul'))} | {gb} | "
                f"{_or_dash(r.get('syncs_per_step'))} | {_or_dash(r.get('graph_breaks'))} |"
            )
        res = train["results"]
        ms = {k: res[k]["median_ms"] for k in ARMS if k in res}
        if res.get("bpe_tied", {}).get("mfu") is not None:
            targets.append(
                ("bpe_tied MFU >= 40 % of the datasheet peak", f"{100 * res['bpe_tied']['mfu']:.1f} %", res["bpe_tied"]["mfu"] >= 0.40)
            )
        if {"kron", "bpe_untied"} <= set(ms):
            r = ms["kron"] / ms["bpe_untied"]
            targets.append(("kron step <= 1.01x bpe_untied's", f"{r:.3f}×", r <= 1.01))
        for arm, label in (("kron", "kron"), ("kron_tied", "kron_tied")):
            if arm in ms and "bpe_tied" in ms:
                r = ms[arm] / ms["bpe_tied"]
                targets.append((f"{label} step <= 1.05x bpe_tied's", f"{r:.3f}×", r <= 1.05))
        breaks = [r.get("graph_breaks") for r in res.values() if r.get("graph_breaks") is not None]
        if breaks:
            targets.append(("0 graph breaks (every arm)", str(max(breaks)), max(breaks) == 0))
        syncs = [r["syncs_per_step"] for r in res.values() if r.get("syncs_per_step") is not None]
        if syncs:
            targets.append(("<= 1 host-device sync per step (most of any arm)", str(max(syncs)), max(syncs) <= 1))
        nano = nanogpt_ms(folder)
        if nano and "bpe_tied" in ms:
            lines += [
                "",
                f"nanoGPT's `bench.py` on the same shape and micro-batch (bias on, compiled, mean of 20 steps "
                f"after 10, a `loss.item()` each step, no clipping): {nano:.1f} ms; our bpe_tied median "
                f"{ms['bpe_tied']:.1f} ms ({ms['bpe_tied'] / nano:.3f}×).",
            ]
            targets.append(("our bpe_tied step no slower than nanoGPT's", f"{ms['bpe_tied'] / nano:.3f}×", ms["bpe_tied"] <= nano))
    for shape in ("gpt2", "large"):
        emb = _load(folder, f"bench_embed_{shape}.json")
        if not emb:
            continue
        for device, shapes in emb["results"].items():
            for sname, res in shapes.items():
                impls = {k: v for k, v in res.items() if k != "tied_head"}
                base = impls.get("embedding", {}).get("fwd_bwd_median_ms")
                lines += [
                    "",
                    f"Input layer alone (`scripts/bench_embed.py`, {sname}: V {emb['shapes'][sname]['V']:,}, "
                    f"d {emb['shapes'][sname]['d']}, {emb['shapes'][sname]['tokens']:,} tokens, "
                    f"{emb['meta'].get('dtype', {}).get(device, '?')}):",
                    "",
                    "| layer | fwd+bwd ms | vs nn.Embedding | non-trainable MB |",
                    "|---|---|---|---|",
                ]
                for impl, r in impls.items():
                    vs = f"{r['fwd_bwd_median_ms'] / base:.2f}×" if base else "-"
                    lines.append(f"| {impl} | {r['fwd_bwd_median_ms']:.2f} | {vs} | {r['non_trainable_bytes'] / 1e6:.3f} |")
                if sname == "gpt2" and train and "fused" in impls and "kron" in train["results"]:
                    a = train["meta"]["args"]  # scaled from the layer benchmark's tokens to the step's
                    step_tokens = a["batch_size"] * a["block_size"] * a["accum"]
                    layer_ms = impls["fused"]["fwd_bwd_median_ms"] * step_tokens / emb["shapes"][sname]["tokens"]
                    share = layer_ms / train["results"]["kron"]["median_ms"]
                    targets.append(
                        ("fused layer fwd+bwd <= 1 % of the kron step (scaled to the step's tokens)", f"{100 * share:.2f} %", share <= 0.01)
                    )
    resume = _load(folder, "resume.json")
    if resume:
        lines += [
            "",
            f"torchrun (1 process, NCCL) trained kron_tied (2 layers, d 256) 3 steps; its checkpoint's validation "
            f"loss was {resume['val_loss_here']} on the GPU (float32, TF32 matmuls) and {resume['val_loss_cpu']} on the "
            f"CPU (float32), and it resumed on the CPU for a step: {'ok' if resume['ok'] else 'FAILED'}.",
        ]
    if targets:
        lines += ["", "Targets (from the GPU issue; reported, never asserted):", ""]
        lines += [f"- [{'met' if ok else 'MISSED'}] {what}: {value}" for what, value, ok in targets]
    return "\n".join(lines)


def render(results=RESULTS):
    folders = sorted(os.path.join(results, d) for d in os.listdir(results)) if os.path.isdir(results) else []
    folders = [f for f in folders if os.path.isfile(os.path.join(f, "device.json"))]
    if not folders:
        return (
            "No GPU measurement is kept yet: no GPU has been lent to the sessions that built this repo. "
            "`bash scripts/gpu_check.sh` measures everything above in one call (about 6-7 minutes on one H200), "
            "and `python -m scripts.gpu_report --archive ...` keeps its files in `results/gpu/` and writes this section."
        )
    return "\n\n".join(
        f"Measured by `scripts/gpu_check.sh`, kept in `{os.path.relpath(f, ROOT)}/`:\n\n" + render_device(f) for f in folders
    )


def readme_with(section, text):
    return report.replace_marked(text, START, END, section, "README.md")


GPU_ARMS = ("bpe_tied", "kron", "bpe_untied")


def study_markdown(gpu_dir, forecast=None):
    """RESULTS.md's "124M on one GPU" (scripts/make_results.py): the finished arms' final losses and gaps, the gap along the run,
    steps to bpe_tied's final loss and robustness, labelled with its one seed and its token count; an
    arm that did not finish is named, never compared. forecast: forecast.json's F1 entry, whose F3 target
    is set beside the measured gap."""
    runs = load_gpu_study(gpu_dir)
    lines = []
    main = {arm: runs.get(f"{arm}-s1337") for arm in GPU_ARMS}
    done = {arm: r for arm, r in main.items() if r and r["finished"]}
    unfinished = [
        f"{arm} (stopped at step {r['evals'][-1]['step'] if r['evals'] else 0} of {r['config'].get('config', {}).get('max_iters', '?')})"
        for arm, r in main.items()
        if r and not r["finished"]
    ]
    if "bpe_tied" not in done or len(done) < 2:
        if runs:
            lines += [
                f"Incomplete: finished {', '.join(done) or 'none'}; not finished: "
                f"{', '.join(unfinished + [a for a in GPU_ARMS if not main[a]]) or 'none'}. No comparison is drawn.",
                "",
            ]
        return lines + [
            "Not run to the end yet: no GPU has been lent to the sessions that built this repo.\n\n`bash scripts/gpu_study.sh` "
            "(one H200, about 8-9 minutes, estimated) trains bpe_tied, kron and bpe_untied at GPT-2 124M on the "
            "same batches for 30.1M tokens each (`config/gpu_study_124m.py`); `python -m scripts.gpu_report "
            "--study-archive ...` keeps its logs in `results/gpu_124m/`, and `python -m scripts.make_results` "
            "writes this section from them.",
            "",
        ]
    cfg = done["bpe_tied"]["config"]
    c, p = cfg["config"], cfg["params"]
    step_tokens = c["batch_size"] * c["block_size"] * c["gradient_accumulation_steps"]
    final = {arm: r["evals"][-1] for arm, r in done.items()}
    steps, tokens = c["max_iters"], c["max_iters"] * step_tokens
    device = read_json(os.path.join(gpu_dir, "device.json")) if os.path.isfile(os.path.join(gpu_dir, "device.json")) else {}
    loss = {arm: f["val_loss"] for arm, f in final.items()}
    pairs = {
        "kron − bpe_tied": ("kron", "bpe_tied"),
        "bpe_untied − bpe_tied": ("bpe_untied", "bpe_tied"),
        "kron − bpe_untied": ("kron", "bpe_untied"),
    }
    gap = {k: (loss[a] - loss[b], 100 * (loss[a] - loss[b]) / loss[b]) for k, (a, b) in pairs.items() if a in loss and b in loss}
    lines += [
        f"**Scale, stated plainly: one seed (1337), no interval.** A GPT of {p['total'] / 1e6:.1f}M parameters as bpe_tied "
        f"({c['n_layer']} layers, d {c['n_embd']}, block {c['block_size']}), {steps} steps of {step_tokens:,} tokens = "
        f"{tokens / 1e6:.1f}M tokens per arm, {tokens / cfg['n_train_tokens']:.2f} epochs of the English corpus "
        f"({cfg['n_train_tokens'] / 1e6:.2f}M training tokens), the same batches for every arm, on "
        f"{device.get('gpu') or cfg.get('device')} in {cfg.get('dtype')}. The paper: 2.5B FineWeb-Edu tokens × 3 seeds.",
        "",
    ]
    if unfinished or len(done) < len(GPU_ARMS):
        lines += [f"Not finished, so left out: {', '.join(unfinished + [a for a in GPU_ARMS if not main[a]])}.", ""]
    lines += [
        f"What it adds to the CPU answer (a model whose input table is {100 * p['input'] / p['total']:.0f} % of bpe_tied's "
        "parameters, where the CPU studies' is ~90 %): "
        + "; ".join(f"{k} {d:+.3f} nats ({pc:+.2f} %)" for k, (d, pc) in gap.items())
        + " (the paper: kron − bpe_tied −0.083 ± 0.007 nats, −2.5 ± 0.2 %).",
        "",
    ]
    if forecast and "kron" in loss:  # F3: the CPU grid's forecast at this run's N and D (results/forecast/PLAN.md)
        f3 = forecast["also"][0]
        lines += [
            f"Against the CPU forecast (F3 of results/forecast/PLAN.md, 85M parameters, {f3['target']['D'] / 1e6:.1f}M tokens): "
            f"bpe_tied − kron forecast {f3['gap']:+.3f} [{f3['interval95'][0]:+.3f}, {f3['interval95'][1]:+.3f}], measured "
            f"{loss['bpe_tied'] - loss['kron']:+.3f} (one seed; its sampled validation loss, where the forecast's is the test half).",
            "",
        ]
    lines += [
        "| arm | final val loss | vs bpe_tied (nats) | first eval step at or below bpe_tied's final loss | typo top-1 kept | mean KL |",
        "|---|---|---|---|---|---|",
    ]
    for arm, r in done.items():
        reach = next((e["step"] for e in r["evals"] if e["val_loss"] <= loss["bpe_tied"]), None)
        rob = r["robustness"] or {}
        lines.append(
            f"| {arm} | {loss[arm]:.4f} | {loss[arm] - loss['bpe_tied']:+.4f} | {reach if reach is not None else 'not reached'} | "
            + (f"{100 * rob['top1_match_rate']:.1f} % | {rob['mean_kl']:.3f} |" if rob else "- | - |")
        )
    arms = list(done)
    lines += [
        "",
        f"Evaluations every {c['eval_interval']} steps, so the step column has that resolution.",
        "",
        "The gap along the run (validation loss):",
        "",
        "| step | " + " | ".join(arms) + " | " + " | ".join(f"{a} − bpe_tied" for a in arms[1:]) + " |",
        "|---" * (2 * len(arms)) + "|",
    ]
    by_step = {arm: {e["step"]: e["val_loss"] for e in r["evals"]} for arm, r in done.items()}
    for step in sorted(set.intersection(*(set(v) for v in by_step.values()))):
        v = {arm: by_step[arm][step] for arm in arms}
        lines.append(
            f"| {step} | "
            + " | ".join(f"{v[a]:.4f}" for a in arms)
            + " | "
            + " | ".join(f"{v[a] - v['bpe_tied']:+.4f}" for a in arms[1:])
            + " |"
        )
    sources = sorted(final["bpe_tied"].get("val_loss_by_source") or {})
    if sources:
        lines += ["", "Final validation loss per source:", "", "| source | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
        lines += [f"| {s} | " + " | ".join(f"{final[a]['val_loss_by_source'][s]:.4f}" for a in arms) + " |" for s in sources]
    extra = {n: r for n, r in runs.items() if n.endswith("-s1338") and r["finished"]}
    if extra:
        lines += [
            "",
            "Seed 1338 (ran because device time remained): "
            + "; ".join(f"{n} {r['evals'][-1]['val_loss']:.4f} at step {r['evals'][-1]['step']}" for n, r in extra.items())
            + ".",
        ]
    return lines + [""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archive", help="a gpu_check.tar.gz to keep under --results first")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--study-archive", help="a gpu_study.tar.gz to keep under --study-results (then run make_results.py)")
    p.add_argument("--study-results", default=STUDY_RESULTS)
    p.add_argument("--readme", default=README)
    p.add_argument("--allow-cpu", action="store_true", help="keep a CPU smoke archive (tests only)")
    p.add_argument("--check", action="store_true", help="exit 1 when the README's section differs from the kept files")
    args = p.parse_args(argv)
    if args.study_archive:
        return import_study_archive(args.study_archive, args.study_results, args.allow_cpu)
    if args.archive:
        import_archive(args.archive, args.results, args.allow_cpu)
    text = open(args.readme).read()
    new = readme_with(render(args.results), text)
    if args.check:
        if new != text:
            sys.exit(f"{args.readme}: the GPU section is stale; run python -m scripts.gpu_report")
        return
    if new != text:
        with open(args.readme, "w") as f:
            f.write(new)
    print(f"{args.readme}: GPU section rendered")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
