# The scaling forecast (results/forecast/PLAN.md): warmup-stable-decay runs of several sizes and token
# budgets at GPT-2's vocabulary, fp32, paired initialisation, on the fair study's V = 50,304 data
# (python -m data.english.prepare --out-dir data/english_val3 --val-percent 3). Sizes, arms, seeds and
# budgets are given to the runner (results/forecast/run.sh: python -m scripts.run_forecast ...).
include("study_fair_v50k.py")
lr_schedule = "wsd"
cooldown_frac = 0.2  # the last 20 % of every budget decays linearly to min_lr (2e-4)
out_dir = "runs/forecast/{embedding}-s{seed}"
