# The paper's model for minutes on one GPU (scripts/gpu_study.sh): GPT-2 124M, block 1024, bf16, compiled,
# the paper's AdamW settings (base_124m.py), one arm per run (--embedding=bpe_tied / kron / bpe_untied),
# seed 1337: the same batches for every arm.
# Budget: 920 steps of 8 x 1024 x 4 = 32,768 tokens = 30.1M tokens per arm, 1.23 epochs of the English
# corpus's 24.45M training tokens. Sized from an estimate, not a measurement (no GPU has run this repo yet):
# 0.86 GFLOP a token at ~35 % of an H200's 989 TFLOP/s datasheet peak is ~400k tokens/s, so ~75 s of
# training per arm, plus ~60 s of compilation (evaluation runs eager: no second graph), start-up and the
# probe: ~2.5-3 min an arm, three arms in ~8-9 minutes. The checkpoint (1.5 GB with AdamW's state) is
# written once, at the end (ckpt_interval), not at each of the 10 evaluations.
# Schedule scaled to the budget as the paper's 124M setting is: warm-up 3.7 % of the steps (175 / 4768 there,
# 34 / 920 here), cosine decay to min_lr at the last step. Micro-batch 8 (not 16) so that every one of the
# English corpus's 8 per-source validation shards holds at least one 8 x 1025 batch: an evaluation every
# 92 steps (10 along the run) reads the loss overall and per source.
include("base_124m.py")
out_dir = "out/gpu_study/{embedding}-s{seed}"
data_dir = "data/english"
batch_size = 8
gradient_accumulation_steps = 4
max_iters = 920
warmup_iters = 34
lr_decay_iters = 920
eval_interval = 92
eval_iters = 16
log_interval = 20
ckpt_interval = 920
