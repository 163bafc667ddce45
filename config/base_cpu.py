# CPU scale, shared by bpe_tied_cpu.py, kron_cpu.py and bpe_untied_cpu.py: a 4-layer d=256 GPT on the
# embedded pydoc corpus (no download), 150 steps of 16 x 256 tokens. Small-scale only: not the
# paper's setting. The 16 sequences a step are 4 micro-batches of 4, so torchrun can split them
# among 1, 2 or 4 processes with identical batches.
out_dir = "out/cpu-{embedding}-s{seed}"
data_dir = "data/python_help"

n_layer, n_head, n_embd, block_size, vocab_size = 4, 4, 256, 256, 50304
dropout, bias = 0.0, True

batch_size = 4
gradient_accumulation_steps = 4
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
