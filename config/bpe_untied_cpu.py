# CPU-sized BPE-untied control arm (config/base_cpu.py).
include("base_cpu.py")
embedding = "bpe_untied"
