# The English study at a bit more than 4x its horizon: 500 steps of 16 x 256 tokens = 2.05M tokens per run
# (the short runs: 120 steps, 0.49M). Warm-up and the cosine decay scale with the horizon (15/120 -> 62/500
# steps, decay to min_lr at the last step); evaluations every 50 steps. Same model, data, batches per seed.
include("study_english.py")
max_iters = 500
warmup_iters = 62
eval_interval = 50
out_dir = "runs/study_english_long/{embedding}-s{seed}"
