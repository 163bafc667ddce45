# The CPU-scale study on the offline English corpus (data/english, ~24.5M train tokens, 8 sources;
# prepare it with python -m data.english.prepare): the same model and horizon as config/study_cpu.py,
# a 4-layer d=128 GPT, 120 steps of 16 x 256 tokens (~0.49M tokens). Validation: 8 batches split
# evenly over the 8 per-source shards; metrics.jsonl records the loss per source too.
# Arms and controls: see README ("The arms", "Controls") and scripts/run_study.py.
include("study_cpu.py")
data_dir = "data/english"
eval_iters = 16  # 2 batches per source
out_dir = "runs/study_english/{embedding}-s{seed}"
