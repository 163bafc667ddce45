# The English study at the long horizon, redone as a reviewer asked (issue 27): 500 steps of 16 x 256
# tokens (2.05M tokens per run, as config/study_english_long.py), now with
#   - paired initialisation: for a seed, every arm's body (and an own head) starts from the same weights;
#   - CPU bf16 autocast: one full 500-step run agreed with fp32 to 0.0003 nats (the median seed-to-seed
#     gap is 0.0075; results/bf16_check/precision.md) and steps 1.46-1.50x faster at this shape
#     (results/bf16_check/bench_*.json, python -m scripts.compare_bench ... --vary dtype);
#   - the scale control that controls (bpe_untied with input_scale=50: a 0.02 table whose output is
#     multiplied to the Kron input's RMS) and the parameter-matched learned table (bpe_lowrank, r = 10).
# Groups and the loop: results/study_english_paired/README.md. Logs are not comparable with the unpaired
# fp32 studies' (compare within this study only).
include("study_english_long.py")
paired_init = True
dtype = "bfloat16"
out_dir = "runs/study_english_paired/{embedding}-s{seed}"
