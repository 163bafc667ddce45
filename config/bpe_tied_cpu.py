# CPU-sized BPE-tied arm (config/base_cpu.py): `python train.py config/bpe_tied_cpu.py`.
include("base_cpu.py")
embedding = "bpe_tied"
