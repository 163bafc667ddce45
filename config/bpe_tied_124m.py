# The paper's baseline arm: GPT-2 124M, nn.Embedding tied to the output head, FineWeb-Edu.
include("base_124m.py")
embedding = "bpe_tied"
