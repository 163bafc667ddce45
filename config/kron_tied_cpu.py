# CPU-sized kron_tied arm (config/base_cpu.py): the Kronecker layer as input and, tied, as output
# head (logits = s * h @ E(W)^T): no V x d matrix anywhere.
include("base_cpu.py")
embedding = "kron_tied"
kron_pos_dim = 16
