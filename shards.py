"""Token shards: the one place that writes, reads, validates and samples them.

Format (llm.c / modded-nanogpt, so their pre-tokenised FineWeb shards load as they are):
a header of 256 int32 (magic 20240520, version 1, token count, rest 0) followed by the tokens as
uint16. A data folder holds `<name>_val_NNNNNN.bin` (the validation split) and
`<name>_train_NNNNNN.bin`. A nanoGPT data folder (`train.bin` and `val.bin`: raw uint16 tokens, no
header, as nanoGPT's prepare.py scripts write them) is read as it is.

Batches are a pure function of (seed, step, micro-step): window starts come from a generator seeded
with those numbers. Every arm run with the same seed therefore sees the same batches in the same
order, a resumed run continues exactly where it stopped, and N ranks with A accumulation steps see
the same windows as one process with N*A steps (rank r takes micro-steps r*A .. r*A+A-1).
"""

import glob
import os
import sys

import numpy as np

from errors import UserError

MAGIC, VERSION, HEADER_INTS = 20240520, 1, 256
HEADER_BYTES = HEADER_INTS * 4


class ShardError(UserError, ValueError):
    """A shard or data folder that cannot be used as it is."""


def write_shard(path, tokens):
    """Write tokens (values < 65536) atomically: a temp file renamed into place."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise ShardError(f"{path}: token ids must be in [0, 65535] for uint16 shards, got [{tokens.min()}, {tokens.max()}]")
    header = np.zeros(HEADER_INTS, dtype=np.int32)
    header[:3] = (MAGIC, VERSION, tokens.size)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(np.uint16).tobytes())
    os.replace(tmp, path)


def read_shard(path, vocab_size=None):
    """Memory-map a shard's tokens after checking its header, its size and (given vocab_size) that
    every id is < vocab_size."""
    if not os.path.isfile(path):
        raise ShardError(f"shard {path!r} does not exist")
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise ShardError(f"shard {path!r} is {size} bytes, shorter than its {HEADER_BYTES}-byte header: truncated or not a shard")
    header = np.fromfile(path, dtype=np.int32, count=HEADER_INTS)
    if header[0] != MAGIC:
        raise ShardError(f"shard {path!r} has magic {header[0]}, expected {MAGIC}: not an llm.c-format token shard")
    if header[1] != VERSION:
        raise ShardError(f"shard {path!r} has version {header[1]}, expected {VERSION}")
    n = int(header[2])
    expected = HEADER_BYTES + 2 * n
    if size != expected:
        raise ShardError(
            f"shard {path!r} is {size} bytes but its header promises {n} tokens ({expected} bytes): "
            f"the file is {'truncated' if size < expected else 'longer than its header says'}"
        )
    tokens = np.memmap(path, dtype=np.uint16, mode="r", offset=HEADER_BYTES, shape=(n,))
    if vocab_size is not None and n:
        top = int(tokens.max())
        if top >= vocab_size:
            where = int(np.argmax(tokens >= vocab_size))
            raise ShardError(
                f"shard {path!r} holds token id {top} (first bad one at position {where}), beyond the model's vocab_size {vocab_size}"
            )
    return tokens


TOKENIZER_RECORD = "shards_tokenizer.json"  # which tokenizer made a folder's shards (a record, not a tokenizer file)


def tokenizer_identity(name):
    """What identifies a tokenizer across machines: a tiktoken name as it is; a tokenizer.json by the
    sha256 of its content (its path may differ)."""
    import hashlib

    from tokenizer import get_tokenizer

    tok = get_tokenizer(name)
    if os.path.isfile(tok.name):
        with open(tok.name, "rb") as f:
            return {"tokenizer": name, "sha256": hashlib.sha256(f.read()).hexdigest(), "n_vocab": tok.n_vocab}
    return {"tokenizer": tok.name, "n_vocab": tok.n_vocab}


def record_tokenizer(data_dir, name):
    """Write which tokenizer made this folder's shards (every prepare script calls this)."""
    import json

    with open(os.path.join(data_dir, TOKENIZER_RECORD), "w") as f:
        json.dump(tokenizer_identity(name), f, indent=1)


def recorded_tokenizer(data_dir):
    """The tokenizer record of a data folder: its own file, else a documents_to_shards progress file's
    name; None for shards from elsewhere (e.g. llm.c's), which carry no record."""
    import json

    path = os.path.join(data_dir, TOKENIZER_RECORD)
    try:
        if os.path.isfile(path):
            with open(path) as f:
                rec = json.load(f)
        else:
            progress = sorted(glob.glob(os.path.join(data_dir, "*_progress.json")))
            rec = {"tokenizer": json.load(open(progress[0])).get("tokenizer")} if progress else None
    except (OSError, ValueError) as e:
        raise ShardError(f"{path}: unreadable tokenizer record ({e}); delete it or prepare the folder again") from None
    if rec is not None and (not isinstance(rec, dict) or not isinstance(rec.get("tokenizer"), str)):
        raise ShardError(f"{path}: a tokenizer record must be a JSON object with a 'tokenizer' name, got {str(rec)[:80]!r}")
    return rec


def check_tokenizer(data_dir, name):
    """Refuse shards made by another tokenizer than the model's, naming both: ids from one vocabulary
    fed to a model of another train without a word and mean nothing."""
    rec = recorded_tokenizer(data_dir)
    if rec is None or rec.get("tokenizer") is None:
        return
    want = tokenizer_identity(name)
    same = rec.get("sha256") == want.get("sha256") if "sha256" in rec or "sha256" in want else rec["tokenizer"] == want["tokenizer"]
    if not same:
        raise ShardError(
            f"{data_dir!r} was tokenised with {rec['tokenizer']!r} ({rec.get('n_vocab', '?')} tokens), but the "
            f"model's tokenizer is {name!r} ({want['n_vocab']} tokens): prepare the data with that tokenizer, "
            f"or set --tokenizer={rec['tokenizer']}"
        )


def read_nanogpt_bin(path, vocab_size=None):
    """Memory-map a nanoGPT train.bin / val.bin (raw uint16 tokens, no header), refusing what is not one."""
    size = os.path.getsize(path)
    if size % 2:
        raise ShardError(f"{path!r} is {size} bytes, not a whole number of uint16 tokens: not a nanoGPT .bin file")
    if size >= 4 and int(np.fromfile(path, dtype=np.int32, count=1)[0]) == MAGIC:
        raise ShardError(
            f"{path!r} starts with the llm.c shard header: name it <name>_{os.path.basename(path)[:-4]}_000000.bin "
            f"to be read as a shard, or write nanoGPT's raw uint16 tokens"
        )
    tokens = np.memmap(path, dtype=np.uint16, mode="r") if size else np.zeros(0, np.uint16)
    head = np.asarray(tokens[:8192])
    if len(head) >= 64 and not head[1::2].any() and head[0::2].any():  # every other uint16 zero: wider integers
        raise ShardError(
            f"{path!r} looks like uint32/int64 tokens (every second uint16 is 0); nanoGPT's .bin files "
            f"are uint16: write them with np.uint16"
        )
    if vocab_size is not None and len(tokens):
        top = int(tokens.max())
        if top >= vocab_size:
            raise ShardError(f"{path!r} holds token id {top}, beyond the model's vocab_size {vocab_size}")
    if len(head) >= 1024 and looks_like_text(head):
        import warnings

        warnings.warn(
            f"{path}: its first {len(head):,} uint16 values read as ASCII text (both bytes printable), not as token "
            f"ids: nanoGPT's .bin files hold tokenised text (np.uint16 ids); check how it was written",
            stacklevel=2,
        )
    return tokens


def looks_like_text(values):
    """Whether uint16 values are text bytes read two at a time: over 90 % of them with both bytes
    printable ASCII or whitespace (English text and code: 98-100 %; GPT-2 and 8k-BPE token streams: 2-8 %)."""
    lo, hi = values & 0xFF, values >> 8
    printable = lambda b: ((b >= 32) & (b < 127)) | (b == 9) | (b == 10) | (b == 13)  # noqa: E731
    return float(np.mean(printable(lo) & printable(hi))) > 0.9


def read_tokens(path, vocab_size=None):
    """A split file's tokens, whichever of the two formats it is."""
    if os.path.basename(path) in ("train.bin", "val.bin"):
        return read_nanogpt_bin(path, vocab_size)
    return read_shard(path, vocab_size)


# Corpora renamed for their content; their shards keep the old file prefixes (pydoc_*, pydocs_*), so
# the data fingerprints recorded by runs on them stay valid.
RENAMED_CORPORA = {"pydoc": "python_help", "pydocs": "python_docs"}


def prepare_command(data_dir):
    """The command that prepares a data folder, for error messages: data/<name>/prepare.py when the
    folder is one of this repository's corpora, else where to look."""
    name = os.path.basename(os.path.normpath(data_dir))
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    if os.path.isfile(os.path.join(here, name, "prepare.py")):
        return f"python -m data.{name}.prepare"
    return f"the command in the comments of the config that names {data_dir} (e.g. python -m data.english.prepare --out-dir {data_dir})"


def shard_paths(data_dir, split):
    """Sorted shard files of a split ('train' or 'val') in data_dir: llm.c-format shards, or else
    nanoGPT's single <split>.bin."""
    if split not in ("train", "val"):
        raise ValueError(f"split={split!r}: expected 'train' or 'val'")
    if not os.path.isdir(data_dir):
        name, parent = os.path.basename(os.path.normpath(data_dir)), os.path.dirname(os.path.normpath(data_dir))
        renamed = RENAMED_CORPORA.get(name)
        old_name = next((o for o, n in RENAMED_CORPORA.items() if n == name), None)
        hint = (
            f"; data/{name} is now data/{renamed}: move its shards there, or prepare it with python -m data.{renamed}.prepare"
            if renamed
            else f"; {os.path.join(parent, old_name)} (its name before) exists: move its shards into {data_dir}"
            if old_name and os.path.isdir(os.path.join(parent, old_name))
            else ""
        )
        raise FileNotFoundError(f"data folder {data_dir!r} does not exist: prepare it first with {prepare_command(data_dir)}{hint}")
    paths = sorted(glob.glob(os.path.join(data_dir, f"*_{split}_*.bin")))
    nanogpt = os.path.join(data_dir, f"{split}.bin")
    if paths and os.path.isfile(nanogpt):
        raise ShardError(
            f"{data_dir!r} holds both llm.c shards ({os.path.basename(paths[0])}, ...) and nanoGPT's {split}.bin: "
            f"which one to train on is ambiguous; move one of them to another folder"
        )
    if not paths and os.path.isfile(nanogpt):
        paths = [nanogpt]
    if not paths:
        raise FileNotFoundError(
            f"no {split} shards (*_{split}_*.bin, or nanoGPT's {split}.bin) in {data_dir!r}: "
            f"prepare it first with {prepare_command(data_dir)}"
        )
    return paths


def data_fingerprint(data_dir, counts=None):
    """What identifies a data folder's content: token counts per split ({"train_tokens", "val_tokens"},
    counted here unless given) and a sha256 over each shard's name, size and first and last MiB (fast
    on gigabytes, and any re-preparation changes it)."""
    import hashlib

    h, counts = hashlib.sha256(), dict(counts or {})
    for split in ("train", "val"):
        paths = shard_paths(data_dir, split)
        if f"{split}_tokens" not in counts:
            counts[f"{split}_tokens"] = sum(len(read_tokens(p)) for p in paths)
        for p in paths:
            size = os.path.getsize(p)
            h.update(f"{os.path.basename(p)}:{size}".encode())
            with open(p, "rb") as f:
                h.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                h.update(f.read(1 << 20))
    return {**counts, "sha256": h.hexdigest()[:16]}


VAL_SAMPLES = ("first", "random")  # for the evaluations during training; "all" (every window) for the final one


class TokenData:
    """Train and validation shards of one folder, with deterministic batch sampling."""

    def __init__(self, data_dir, block_size, vocab_size, tokenizer=None):
        """tokenizer: the model's; shards recorded as made by another one are refused."""
        if tokenizer is not None and os.path.isdir(data_dir):
            check_tokenizer(data_dir, tokenizer)
        self.block_size = block_size
        self.train = [read_tokens(p, vocab_size) for p in shard_paths(data_dir, "train")]
        self.val_paths = shard_paths(data_dir, "val")
        self.val = [read_tokens(p, vocab_size) for p in self.val_paths]
        starts = np.array([max(len(s) - block_size, 0) for s in self.train], dtype=np.int64)
        if starts.sum() == 0:
            raise ShardError(f"train shards in {data_dir!r} are shorter than block_size+1 = {block_size + 1} tokens")
        self._cum_starts = np.cumsum(starts)
        self.n_train_tokens = sum(len(s) for s in self.train)
        self.n_val_tokens = sum(len(s) for s in self.val)

    def train_batch(self, batch_size, seed, step, micro_step):
        """(x, y) int64 arrays of shape (batch_size, block_size) for this (seed, step, micro_step)."""
        rng = np.random.Generator(np.random.PCG64([seed, step, micro_step]))
        flat = rng.integers(0, self._cum_starts[-1], size=batch_size)
        which = np.searchsorted(self._cum_starts, flat, side="right")
        offset = flat - np.concatenate([[0], self._cum_starts[:-1]])[which]
        T = self.block_size
        rows = [np.asarray(self.train[s][o : o + T + 1], dtype=np.int64) for s, o in zip(which, offset)]
        rows = np.stack(rows)
        return np.ascontiguousarray(rows[:, :-1]), np.ascontiguousarray(rows[:, 1:])

    def val_batches(self, batch_size, n_batches, sample="first"):
        """The fixed validation set, the same for every run, as a list of (x, y, source): non-overlapping
        windows of each val shard, its first ones (sample="first", what the kept studies used: often one
        or two documents) or a fixed random choice over the whole shard (sample="random": seed 0 whatever
        the run's seed, so every arm and seed sees the same windows). With several val shards (one per
        source) each gives an equal share of the n_batches, so the overall loss is balanced and a loss
        per source can be read; `source` is the shard's name between '_val_' and '.bin'."""
        if sample == "all":
            return self.all_val_windows(batch_size)
        if sample not in VAL_SAMPLES:
            raise ValueError(f"sample={sample!r}: expected one of {VAL_SAMPLES} or 'all'")
        T = self.block_size
        shards = [(p, s) for p, s in zip(self.val_paths, self.val) if len(s) > T]
        per_shard = max(1, n_batches // max(1, len(shards)))
        out = []
        for path, shard in shards:
            starts = np.arange(0, len(shard) - T, T)
            if sample == "random" and len(starts) > batch_size * per_shard:
                starts = np.sort(np.random.default_rng(0).choice(starts, batch_size * per_shard, replace=False))
            windows = [np.asarray(shard[i : i + T + 1], dtype=np.int64) for i in starts[: batch_size * per_shard]]
            source = os.path.basename(path).split("_val_", 1)[-1].removesuffix(".bin")
            for b in range(len(windows) // batch_size):
                w = np.stack(windows[b * batch_size : (b + 1) * batch_size])
                out.append((np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:]), source))
        if not out:
            raise ShardError(
                f"validation shards hold {self.n_val_tokens} tokens, fewer than one batch of "
                f"{batch_size} x {T + 1} in any shard; lower batch_size/block_size or prepare more validation data"
            )
        return out

    def all_val_windows(self, batch_size):
        """Every non-overlapping window of every val shard, as (x, y, "<source>/dev" or "<source>/test"):
        even windows are the dev half (to choose settings on), odd ones the test half (to report on),
        so a study can tune and test on disjoint tokens of the same sources. Batches of up to batch_size
        windows, each of one source and one half."""
        T, out = self.block_size, []
        for path, shard in zip(self.val_paths, self.val):
            source = os.path.basename(path).split("_val_", 1)[-1].removesuffix(".bin")
            starts = np.arange(0, len(shard) - T, T)
            for half, mine in (("dev", starts[0::2]), ("test", starts[1::2])):
                for b in range(0, len(mine), batch_size):
                    w = np.stack([np.asarray(shard[i : i + T + 1], dtype=np.int64) for i in mine[b : b + batch_size]])
                    out.append((np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:]), f"{source}/{half}"))
        return out


# ----------------------------------------------------------------------------- writing documents


def _encode_document(args):
    """[EOT] + tokens of one document (runs in a worker process)."""
    tokenizer_name, text = args
    from tokenizer import get_tokenizer

    tok = get_tokenizer(tokenizer_name)
    return np.array([tok.eot_id] + tok.encode(text), dtype=np.uint16)


def _load_progress(progress_path, out_dir, tokenizer):
    """documents_to_shards' saved progress (a fresh state when there is none); a folder prepared
    with another tokenizer is refused."""
    import json

    state = {"shard": 0, "docs": 0, "carry": 0, "tokens": 0, "done": False, "tokenizer": tokenizer}
    if not os.path.exists(progress_path):
        return state
    with open(progress_path) as f:
        state = json.load(f)
    if state.get("tokenizer", tokenizer) != tokenizer:
        raise ShardError(f"{out_dir!r} was prepared with tokenizer {state['tokenizer']!r}, not {tokenizer!r}; use another folder")
    if not state["done"]:
        print(f"{out_dir}: resuming at shard {state['shard']} after {state['docs']:,} documents")
    return state


class Stream:
    """Documents whose position can be saved and restored: a Hugging Face IterableDataset (its
    state_dict), so a resumed preparation continues where it stopped instead of re-reading every
    document already tokenised. Yields (text, position before it, position after it)."""

    def __init__(self, dataset, column="text", describe="the dataset"):
        self.ds, self.column, self.describe = dataset, column, describe
        self.loaded = None

    def state_dict(self):
        return self.ds.state_dict()

    def load_state_dict(self, state):
        self.ds.load_state_dict(state)
        self.loaded = state  # until iteration starts, the dataset reports its start, not this position

    def __iter__(self):
        before = self.loaded if self.loaded is not None else self.ds.state_dict()
        for row in self.ds:
            if self.column not in row:
                raise ShardError(f"documents need a {self.column!r} column; {self.describe} has columns {sorted(row)}")
            after = self.ds.state_dict()
            yield row[self.column], before, after
            before = after


class _ShardWriter:
    """Fills shards to capacity (the first, validation, holds val_tokens; the others shard_tokens) and
    records progress after each: documents consumed, tokens of the last one left for the next shard
    (carry) and the stream position to resume from."""

    def __init__(self, out_dir, name, state, progress_path, shard_tokens, val_tokens):
        self.out_dir, self.name, self.state, self.progress_path = out_dir, name, state, progress_path
        self.shard_tokens, self.val_tokens = shard_tokens, val_tokens
        self.parts, self.filled = [], 0

    def capacity(self):
        return self.val_tokens if self.state["shard"] == 0 else self.shard_tokens

    def add(self, doc, docs_done, before, after):
        while len(doc):
            room = self.capacity() - self.filled
            self.parts.append(doc[:room])
            self.filled += len(self.parts[-1])
            doc = doc[room:]
            if self.filled == self.capacity():  # resume at this document when part of it is left
                self.flush(docs_done, len(doc), before if len(doc) else after)

    def finish(self, docs_done, after):
        if self.state["shard"] == 0 and self.filled > 1:  # everything fit in the validation split: keep some to train on
            tokens, n_val = np.concatenate(self.parts), max(1, self.filled // 10)
            print(
                f"warning: the documents hold only {self.filled:,} tokens, fewer than val_tokens={self.val_tokens:,}; "
                f"using the first {n_val:,} for validation and the other {self.filled - n_val:,} for training "
                f"(choose with --val-tokens)",
                file=sys.stderr,
            )
            rest = tokens[n_val:]
            self.parts, self.filled = [tokens[:n_val]], n_val
            self.flush(docs_done, 0, after)
            self.parts, self.filled = [rest], len(rest)
        if self.filled:
            self.flush(docs_done, 0, after)
        self.state["done"] = True
        self.save()

    def flush(self, docs_done, carry, stream):
        split = "val" if self.state["shard"] == 0 else "train"
        tokens = np.concatenate(self.parts) if self.parts else np.zeros(0, np.uint16)
        write_shard(os.path.join(self.out_dir, f"{self.name}_{split}_{self.state['shard']:06d}.bin"), tokens)
        self.state.update(
            shard=self.state["shard"] + 1, docs=docs_done, carry=carry, tokens=self.state["tokens"] + len(tokens), stream=stream
        )
        self.save()
        self.parts, self.filled = [], 0
        print(
            f"  {os.path.basename(self.out_dir)}: shard {self.state['shard']} ({split}) written, {self.state['tokens']:,} tokens "
            f"from {docs_done:,} documents so far",
            flush=True,
        )

    def save(self):
        import json

        tmp = self.progress_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.progress_path)


def _remaining(texts, state):
    """(text, stream position before, after) of the documents not yet in a completed shard."""
    import itertools

    skip = state["docs"] - (1 if state["carry"] else 0)
    if isinstance(texts, Stream) and (state.get("stream") is not None or state["docs"] == 0):
        if state.get("stream") is not None:  # restore the stream's position: nothing already tokenised is read again
            texts.load_state_dict(state["stream"])
        return iter(texts)
    if isinstance(texts, Stream):  # progress saved without a position (older code): skip by reading past it
        return itertools.islice(iter(texts), skip, None)
    return ((t, None, None) for t in itertools.islice(iter(texts), skip, None))  # a plain iterable: read past what is done


def remove_half_written(out_dir, name):
    """<name>_*.bin.tmp<pid> files whose process is gone: shards a killed preparation was writing
    (write_shard renames only complete ones). Returns the paths removed."""
    import re

    stale = []
    for path in glob.glob(os.path.join(glob.escape(out_dir), f"{glob.escape(name)}_*.bin.tmp*")):
        m = re.fullmatch(r".*\.bin\.tmp(\d+)", path)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still being written
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        os.remove(path)
        stale.append(path)
    return stale


def documents_to_shards(
    texts, out_dir, name, tokenizer="gpt2", shard_tokens=100_000_000, val_tokens=None, num_proc=None, total_docs=None, max_tokens=None
):
    """Tokenise an iterable of document texts into shards, EOT before each document. The first shard
    (val_tokens long, default shard_tokens) is the validation split, the rest are training shards.

    Resumable: after every completed shard, `<name>_progress.json` records how many documents were
    consumed and how many tokens of the last one spill into the next shard, so a rerun skips what
    is done and produces byte-identical shards to an uninterrupted run."""
    import collections
    import multiprocessing as mp

    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    progress_path = os.path.join(out_dir, f"{name}_progress.json")
    state = _load_progress(progress_path, out_dir, tokenizer)
    record_tokenizer(out_dir, tokenizer)
    if state["done"]:
        print(f"{out_dir}: already prepared ({state['shard']} shards, {state['tokens']:,} tokens)")
        return state
    for stale in remove_half_written(out_dir, name):
        print(f"removed {stale}, a shard a killed preparation left half written")
    writer = _ShardWriter(out_dir, name, state, progress_path, shard_tokens, shard_tokens if val_tokens is None else val_tokens)
    items = _remaining(texts, state)
    positions = collections.deque()  # (before, after) of each document handed to the workers, in order
    after = state.get("stream")

    def tracked():
        for text, before, after in items:
            positions.append((before, after))
            yield text

    docs_done = state["docs"] - (1 if state["carry"] else 0)
    num_proc = num_proc or max(1, (os.cpu_count() or 2) // 2)
    pool = mp.Pool(num_proc) if num_proc > 1 else None
    jobs = ((tokenizer, t) for t in tracked())
    encoded = pool.imap(_encode_document, jobs, chunksize=16) if pool else map(_encode_document, jobs)
    bar = tqdm(total=total_docs, initial=docs_done, unit="doc", desc=f"tokenising {name}", disable=None)
    try:
        for i, doc in enumerate(encoded):
            before, after = positions.popleft()
            if i == 0 and state["carry"]:
                doc = doc[-state["carry"] :]  # the part of this document the last completed shard left out
            docs_done += 1
            bar.update(1)
            writer.add(doc, docs_done, before, after)
            if max_tokens is not None and state["tokens"] + writer.filled >= max_tokens:
                break
        writer.finish(docs_done, after)
    finally:
        bar.close()
        if pool:
            pool.terminate()
    print(f"{out_dir}: {state['shard']} shards, {state['tokens']:,} tokens from {docs_done:,} documents")
    return state
