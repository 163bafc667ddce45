# The quickstart (scripts/quickstart.py): a 2-layer d=128 GPT trained for about 1.5 minutes per arm on 2 CPU cores
# on the embedded pydoc corpus. The quickstart sets `embedding` per arm. A smoke test of the whole
# pipeline, far too small to say anything about the method.
out_dir = "out/quickstart-{embedding}-s{seed}"
data_dir = "data/python_help"
init_from = "auto"
loss_chunk = 0  # its kept table (results/quickstart_cpu) was made with the plain output layer

n_layer, n_head, n_embd, block_size, vocab_size = 2, 4, 128, 128, 50304
batch_size = 16
max_iters = 120
learning_rate, min_lr = 2e-3, 2e-4
warmup_iters = 10
eval_interval = 20
eval_iters = 8
log_interval = 20
seed = 1337
