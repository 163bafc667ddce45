# A control arm at 124M: nn.Embedding with its own, untied output head. It separates the effect of
# the Kronecker input layer from the effect of untying the head.
include("base_124m.py")
embedding = "bpe_untied"
