# The fair-comparison study at GPT-2's vocabulary (results/study_fair/PLAN.md, phase 3): each arm's
# setting chosen at V = 8,192 (config/study_fair.py), rerun on fresh seeds at V = 50,304 with the
# paired study's body (4 layers, d = 128) and GPT-2's tokenizer; the same schedule and evaluation.
# Data, prepared as the V = 8,192 data: python -m data.english.prepare --out-dir data/english_val3 --val-percent 3
include("study_fair.py")
data_dir = "data/english_val3"  # 3 % of each source held out: 800,304 validation tokens
tokenizer = "gpt2"
vocab_size = 50304
n_layer, n_head, n_embd = 4, 4, 128
out_dir = "runs/study_fair_v50k/{embedding}-s{seed}"
