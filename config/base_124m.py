# GPT-2 124M on FineWeb-Edu: the paper's setting, shared by bpe_tied_124m.py, kron_124m.py and
# bpe_untied_124m.py (each names its arm), or any arm with --embedding=.
# arXiv 2605.29459 §6; settings the paper does not state are the standard nanoGPT / build-nanogpt
# choices (see README): block 1024, 524,288 tokens a step (32 x 1024 x 16 accumulation, split across
# GPUs by torchrun), 4768 steps = 2.5B tokens, AdamW betas (0.9, 0.95), lr 6e-4 -> 6e-5 cosine after
# 175 warmup steps, weight decay 0.1, clip 1.0. Seeds 1337/1338/1339: --seed=1338
import importlib.util  # imported names are helpers, not settings
import os

out_dir = "out/124m-{embedding}-s{seed}"
data_dir = "data/fineweb_edu"

n_layer, n_head, n_embd, block_size, vocab_size = 12, 12, 768, 1024, 50304
dropout, bias = 0.0, True

batch_size = 32
gradient_accumulation_steps = 16
max_iters = 4768
learning_rate, min_lr = 6e-4, 6e-5
warmup_iters = 175
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0

eval_interval = 250
eval_iters = 20
log_interval = 10
seed = 1337
compile = True
wandb_log = importlib.util.find_spec("wandb") is not None  # curves compared in wandb; off where it is not installed
if not wandb_log and os.environ.get("RANK", "0") == "0":
    print("config/base_124m.py: wandb is not installed, so wandb_log=False (metrics go to <out_dir>/metrics.jsonl)")
