"""tokenizer.py: token bytes of tokenizer.json files, and GPT-2's offline BPE files read first."""

from kron_embed import token_byte_table
from tokenizer import get_tokenizer


def test_hf_tokenizer_json_bytes(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE(byte_fallback=False))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(["the running runner runs", "naïve café 感謝"] * 50, trainer)
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    tok = get_tokenizer(str(path))
    assert tok.token_bytes(tok.eot_id) == b"<|endoftext|>"
    vocab = hf.get_vocab()
    # a single byte of a multi-byte character is a partial UTF-8 token: exact keeps it, decode loses it
    e9 = vocab["Ã"]  # byte-level symbol for 0xC3, the lead byte of 'ï' and 'é'
    assert tok.token_bytes(e9) == b"\xc3" and tok.decoded_bytes(e9) == "\ufffd".encode()
    table, lengths, _ = token_byte_table(str(path), 8)
    assert bytes(table[e9, : lengths[e9]]) == b"\xc3"
    ids = tok.encode("the runner")
    assert b"".join(tok.token_bytes(i) for i in ids) == b"the runner"


def test_byte_fallback_pieces(tmp_path):
    from tokenizers import Tokenizer, models

    vocab = {"<unk>": 0, "<0x41>": 1, "\u2581the": 2, "ab": 3}
    hf = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    path = tmp_path / "tok.json"
    hf.save(str(path))
    tok = get_tokenizer(str(path))
    assert tok.token_bytes(1) == b"A" and tok.token_bytes(2) == b" the" and tok.token_bytes(3) == b"ab"


def test_gpt2_bpe_dir_is_read_without_trying_the_network(monkeypatch):
    import tiktoken

    import tokenizer

    monkeypatch.setenv("GPT2_BPE_DIR", tokenizer.offline_gpt2_folder())

    def no_network(name):
        raise AssertionError("tiktoken.get_encoding tried first")

    monkeypatch.setattr(tiktoken, "get_encoding", no_network)
    assert tokenizer._load_tiktoken("gpt2").encode_ordinary("Hello world") == [15496, 995]
