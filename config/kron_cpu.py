# CPU-sized Kronecker arm (config/base_cpu.py), pos_dim 16, fused.
include("base_cpu.py")
embedding = "kron"
kron_pos_dim = 16
