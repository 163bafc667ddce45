# The paper's Kronecker arm at 124M: fixed byte codec (pos_dim 16, D 4096) + learned projection, untied head.
include("base_124m.py")
embedding = "kron"
kron_pos_dim = 16  # D = 256 * 16 = 4096, the paper's 124M setting
kron_byte_source = "exact"  # "decode" reproduces the reference code's U+FFFD collisions
