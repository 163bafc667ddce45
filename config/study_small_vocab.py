# The small-vocabulary scale (issue 27, item 5): proportions closer to GPT-2 124M's than the 50,304-row
# CPU studies. A byte-level BPE of 8,192 tokens trained on the English corpus's training documents
# (data/english_bpe8k/tokenizer.json, committed; prepare the shards with
#   python -m data.english.prepare --out-dir data/english_bpe8k --train-tokenizer 8192
# which reuses that file) and a 6-layer d=192 body:
#   - bpe_tied's input table is 37 % of its parameters (124M: 31 %; the 4-layer d=128 CPU studies: ~90 %);
#   - 500 steps of 16 x 256 tokens = 2.05M tokens, ~250 occurrences per table row on average (124M at
#     2.5B tokens: ~50,000; the CPU studies: ~40);
#   - the Kron projection (D = 256 x 16 = 4,096 rows) is half the table here (V / D = 2), where at 124M
#     it is 12x smaller: at this vocabulary the byte code saves few parameters by construction.
# Paired initialisation and CPU bf16 autocast as config/study_english_paired.py. Groups and the loop:
# results/study_small_vocab/README.md.
include("study_english_paired.py")
data_dir = "data/english_bpe8k"
tokenizer = "data/english_bpe8k/tokenizer.json"
vocab_size = 8192
n_layer, n_head, n_embd = 6, 6, 192
out_dir = "runs/study_small_vocab/{embedding}-s{seed}"
