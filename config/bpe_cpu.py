# CPU-sized BPE-tied arm: a 4-layer d=256 GPT that trains in about 5 minutes on 2 cores
# (~1,500-2,000 tokens/s) on the embedded pydoc corpus. Small-scale only: not the paper's setting.
# For the CPU-scale study on a larger offline corpus see scripts/run_study.py and RESULTS.md.
embedding = "bpe_tied"
out_dir = "out/cpu-{embedding}-s{seed}"
data_dir = "data/pydoc"

n_layer, n_head, n_embd, block_size, vocab_size = 4, 4, 256, 256, 50304
dropout, bias = 0.0, True

batch_size = 4
gradient_accumulation_steps = 4  # 16 x 256 tokens a step; torchrun divides the 4 among 1, 2 or 4 processes
max_iters = 150
learning_rate, min_lr = 1e-3, 1e-4
warmup_iters = 10
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0

eval_interval = 25
eval_iters = 4
log_interval = 10
seed = 1337
compile = False
wandb_log = False
