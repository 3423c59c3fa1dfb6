"""Tests of dartsnas.text: corpora read from tiny folders made here and from the real PTB where this
machine has it, downloads from file:// URLs, batches checked against their plain definitions."""

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch

from dartsnas.recurrent import text
from dartsnas.data.download import DataError
from dartsnas.recurrent.text import batchify, load_corpus, segment, seq_length, windows


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DARTSNAS_DATA", raising=False)


# The real corpora in ../shared/data (conftest's `shared_data`): the tests that use them check the official
# files themselves (md5s, token counts, vocabularies), which no generated corpus can stand in for.


@pytest.fixture
def real_ptb(shared_data):
    if not (shared_data / "ptb").is_dir():
        pytest.skip(
            f"checks the real Penn Treebank files (md5s, counts, 10,000 words); {shared_data / 'ptb'} is absent"
        )
    return shared_data / "ptb"


@pytest.fixture
def real_wikitext2(shared_data):
    if not (shared_data / "wikitext-2").is_dir():
        pytest.skip(
            f"checks the real WikiText-2 files (md5s, counts, 33,278 words); {shared_data / 'wikitext-2'} is absent"
        )
    return shared_data / "wikitext-2"


def write_corpus(
    folder: Path,
    train="a b c\nb c <unk>\n",
    valid="c a\nzz b\n",
    test="b\n",
    names=("train.txt", "valid.txt", "test.txt"),
):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in zip(names, (train, valid, test)):
        (folder / name).write_text(content, encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------------------------- reading


def test_vocabulary_from_training_file_in_order_with_eos_per_line(tmp_path):
    corpus = load_corpus("text", write_corpus(tmp_path / "c"))
    assert corpus.vocab == ["a", "b", "c", "<eos>", "<unk>"]
    assert corpus.train.tolist() == [0, 1, 2, 3, 1, 2, 4, 3]
    # 'zz' is not a training word: it is read as <unk>.
    assert corpus.valid.tolist() == [2, 0, 3, 4, 1, 3]
    assert corpus.test.tolist() == [1, 3] and len(corpus) == 5
    assert corpus.train.dtype == torch.int64


def test_every_layout_of_file_names(tmp_path):
    for names in (
        ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
        ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
    ):
        folder = write_corpus(tmp_path / names[0], names=names)
        assert load_corpus("text", folder).vocab[:3] == ["a", "b", "c"]


def test_max_lines_keeps_the_first_lines_and_their_vocabulary(tmp_path):
    corpus = load_corpus("text", write_corpus(tmp_path / "c"), max_lines={"train": 1, "valid": 1})
    assert corpus.vocab == ["a", "b", "c", "<eos>"]
    assert corpus.valid.tolist() == [2, 0, 3]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_folder", "does not exist"),
        ("missing_file", "no valid file"),
        ("empty", "holds no words"),
        ("blank_lines", "holds no words"),
        ("latin1", "not UTF-8 text .*line 2"),
        ("no_unk", "'zz', which the training file never uses"),
        ("two_train_files", "two train files"),
    ],
)
def test_bad_corpora_end_in_one_clear_message(tmp_path, case, message):
    folder = tmp_path / "c"
    if case != "missing_folder":
        write_corpus(folder)
    if case == "missing_file":
        (folder / "valid.txt").unlink()
    elif case == "empty":
        (folder / "test.txt").write_text("")
    elif case == "blank_lines":
        (folder / "train.txt").write_text("\n\n  \n")
    elif case == "latin1":
        (folder / "train.txt").write_bytes("a b\ncaf\xe9 c\n".encode("latin-1"))
    elif case == "no_unk":
        (folder / "train.txt").write_text("a b c\n")
    elif case == "two_train_files":
        (folder / "ptb.train.txt").write_text("a\n")
    with pytest.raises(DataError, match=message):
        load_corpus("text", folder)


def test_unknown_corpus_and_text_without_folder():
    with pytest.raises(DataError, match="valid names: ptb, wikitext2, text"):
        load_corpus("penn")
    with pytest.raises(DataError, match="data_dir"):
        load_corpus("text")
    with pytest.raises(DataError, match="download=true"):
        load_corpus("ptb")  # nothing in the (private) cache


def test_real_penn_treebank(real_ptb):
    corpus = load_corpus("ptb", real_ptb)
    # The counts SOURCES.md states: whitespace words plus one <eos> per line; vocabulary 10,000.
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929_589, 73_760, 82_430)
    assert len(corpus) == 10_000 and "<unk>" in corpus.vocab and corpus.vocab[corpus.train[0]] == "aer"


def test_shared_ptb_files_are_the_official_ones(real_ptb):
    for name, md5 in text.SOURCES["ptb"]["files"].items():
        assert hashlib.md5((real_ptb / name).read_bytes()).hexdigest() == md5


def test_shared_wikitext2_files_are_the_official_ones(real_wikitext2):
    for name, md5 in text.SOURCES["wikitext2"]["files"].items():
        assert hashlib.md5((real_wikitext2 / name).read_bytes()).hexdigest() == md5


# ---------------------------------------------------------------------------------------------- download


def test_download_checks_md5_and_places_files(tmp_path, monkeypatch):
    mirror = write_corpus(tmp_path / "mirror", names=("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"))
    files = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setitem(text.SOURCES, "ptb", {"url": mirror.as_uri(), "files": files})
    corpus = load_corpus("ptb", download=True)
    assert corpus.vocab[:3] == ["a", "b", "c"]
    assert (tmp_path / "cache" / "data" / "ptb" / "ptb.train.txt").is_file()
    bad = dict(files, **{"ptb.test.txt": "0" * 32})
    monkeypatch.setitem(text.SOURCES, "ptb", {"url": mirror.as_uri(), "files": bad})
    with pytest.raises(DataError, match="corrupt"):
        load_corpus("ptb", tmp_path / "elsewhere", download=True)
    assert not (tmp_path / "elsewhere" / "ptb.test.txt").exists()


def test_download_of_an_archive_checks_every_file(tmp_path, monkeypatch):
    src = write_corpus(tmp_path / "src", names=("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"))
    (tmp_path / "mirror").mkdir()
    archive = tmp_path / "mirror" / "wikitext-2-v1.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in src.iterdir():
            z.write(p, f"wikitext-2/{p.name}")
    md5 = lambda p: hashlib.md5(Path(p).read_bytes()).hexdigest()  # noqa: E731
    files = {p.name: md5(p) for p in src.iterdir()}
    monkeypatch.setitem(
        text.SOURCES,
        "wikitext2",
        {"url": (tmp_path / "mirror").as_uri(), "archive": ("wikitext-2-v1.zip", md5(archive)), "files": files},
    )
    assert load_corpus("wikitext2", download=True).vocab[:3] == ["a", "b", "c"]
    monkeypatch.setitem(
        text.SOURCES,
        "wikitext2",
        {
            "url": (tmp_path / "mirror").as_uri(),
            "archive": ("wikitext-2-v1.zip", md5(archive)),
            "files": dict(files, **{"wiki.test.tokens": "0" * 32}),
        },
    )
    with pytest.raises(DataError, match="differs from the official file"):
        load_corpus("wikitext2", tmp_path / "other", download=True)


# ----------------------------------------------------------------------------------------------- batches


def test_batchify_puts_consecutive_text_down_each_column():
    ids = torch.arange(23)
    source = batchify(ids, 4)
    assert source.shape == (5, 4)
    for b in range(4):  # stream b is the b-th quarter of the first 20 tokens
        assert source[:, b].tolist() == list(range(5 * b, 5 * b + 5))
    with pytest.raises(DataError, match="smaller batch size"):
        batchify(torch.arange(7), 4)


def test_segment_targets_are_the_next_words():
    source = batchify(torch.arange(40), 2)
    x, y = segment(source, 3, 5)
    assert torch.equal(y[:-1], x[1:]) and torch.equal(y, source[4:9])


def test_windows_cover_the_stream_once():
    gen = torch.Generator().manual_seed(0)
    spans = list(windows(1000, 35, gen, jitter=5.0))
    assert spans[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))
    assert spans[-1][0] + spans[-1][1] == 999  # every row but the last is an input once
    fixed = list(windows(100, 35, variable=False))
    assert fixed == [(0, 35), (35, 35), (70, 29)]


def test_sequence_lengths_follow_the_official_rule():
    gen = torch.Generator().manual_seed(1)
    plain = torch.tensor([seq_length(35, gen, jitter=0.0) for _ in range(4000)])
    assert set(plain.tolist()) == {35, 17}  # the search script's rule: the base length as it is
    assert 0.035 < (plain == 17).float().mean().item() < 0.065  # bptt / 2 with probability 0.05
    lengths = torch.tensor([seq_length(35, gen, jitter=5.0) for _ in range(4000)], dtype=torch.float)
    assert lengths.min() >= 5 and lengths.max() <= 55 and lengths.std() > 4
    # 0.95 E[int(N(35, 5))] + 0.05 E[int(N(17.5, 5))] = 0.95 * 34.5 + 0.05 * 17 = 33.6 (int() truncates)
    assert 33.1 < lengths.mean().item() < 34.1


@pytest.mark.slow  # reads 2.5 million words
def test_real_wikitext2_vocabulary_is_its_training_files(real_wikitext2):
    corpus = load_corpus("wikitext2", real_wikitext2)
    assert len(corpus.train) == 2_088_628 and len(corpus.valid) == 217_646 and len(corpus.test) == 245_569
    assert len(corpus) == 33_278  # valid and test add no word: WikiText maps rare words to <unk> in all splits
