# The fair-comparison study (issue 38; its plan, committed before any of its runs:
# results/study_fair/PLAN.md). Every arm at its own best input multiplier, embedding norm and learning
# rate, found by the same search. The sweep scale is the small-vocabulary study's: a byte-level BPE of
# 8,192 tokens (data/english_bpe8k/tokenizer.json), 6 layers d=192, 500 steps of 16 x 256 tokens (2.05M tokens),
# paired initialisation. Unlike the kept studies: fp32 (no precision question to settle), the chunked
# loss, evaluations during training on a fixed random sample of every source, and at the end every
# validation window once, in a dev half (for choosing settings) and a test half (for the verdicts).
# Data: python -m data.english.prepare --out-dir data/english_bpe8k_val3 --val-percent 3 \
#           --tokenizer data/english_bpe8k/tokenizer.json
include("study_small_vocab.py")
data_dir = "data/english_bpe8k_val3"  # 3 % of each source held out: 859,622 validation tokens
dtype = "float32"
loss_chunk = 1024
val_sample = "random"
final_eval = True
eval_interval = 100
out_dir = "runs/study_fair/{embedding}-s{seed}"
