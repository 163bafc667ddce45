# The Python-docs study (results/study_cpu/README.md, a pipeline check): a 4-layer d=128 GPT on the Python 3.11 documentation
# (data/python_docs, ~3.3M train tokens), 120 steps of 4,096 tokens (~0.49M tokens, ~0.15 epochs) per run.
# Run every arm x seed with: python -m scripts.run_study --base config/study_cpu.py --out-root runs/study_cpu
# Small-scale CPU runs: compare with the paper only with the scale stated.
data_dir = "data/python_docs"
out_dir = "runs/study_cpu/{embedding}-s{seed}"

n_layer, n_head, n_embd, block_size, vocab_size = 4, 4, 128, 256, 50304
dropout, bias = 0.0, True

batch_size = 16
gradient_accumulation_steps = 1  # the published study's batches: run each study run in one process
loss_chunk = 0  # the kept studies ran the plain output layer (loss.py); a study keeps one setting throughout
max_iters = 120
learning_rate, min_lr = 2e-3, 2e-4
warmup_iters = 15
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0

eval_interval = 20
eval_iters = 8
log_interval = 25
seed = 1337
