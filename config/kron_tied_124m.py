# kron_tied at 124M (not in the paper: its future work): the Kronecker layer as input and, tied, as
# the output head, logits = s * h @ E(W)^T with E(W) rebuilt every step. 88,988,161 parameters.
include("base_124m.py")
embedding = "kron_tied"
kron_pos_dim = 16
kron_byte_source = "exact"
