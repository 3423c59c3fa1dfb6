"""Fixtures shared by the test files (a test file never imports another): one intra-op thread, the tiny
command-line search on digits, per-candidate batch-norm statistics, the real datasets beside the
repository, and a tiny generated text corpus for the recurrent runs."""

import random
from pathlib import Path

import pytest
import torch

# The real datasets, read-only, beside the repository (CI clones it with ../shared next to it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A search small enough for the CPU: 320 digits, a 3-cell supernet of 4 initial channels.
TINY_SEARCH = [
    "dataset=digits",
    "subset=320",
    "batch_size=32",
    "init_channels=4",
    "layers=3",
    "lr=0.1",
    "arch_lr=0.01",
    "progress=false",
]


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # The suite's tensors are tiny: a second intra-op thread only adds synchronisation, and on a
    # shared 2-core host a spinning OpenMP thread can slow a step down a hundredfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------
# Searches through the command line on scikit-learn's digits


@pytest.fixture
def tiny_search():
    """The `--set` items of the tiny search (a fresh list: a test may extend it)."""
    pytest.importorskip("sklearn")
    return list(TINY_SEARCH)


@pytest.fixture
def cli_search(tiny_search):
    """run(out, *extra, name="run") -> the run folder of `dartsnas search` with the tiny settings plus `extra`."""
    from dartsnas.cli import main

    def run(out, *extra, name="run"):
        args = ["search", "--out", str(out), "--name", name]
        for item in tiny_search + list(extra):
            args += ["--set", item]
        assert main(args) == 0
        (run_dir,) = [p for p in Path(out).iterdir() if p.name.startswith(name + "-")]
        return run_dir

    return run


# ---------------------------------------------------------------------------------------------------
# Supernet internals


def _op_buffers(model):
    out = {}
    for c, cell in enumerate(model.cells):
        e = 0
        for i in range(cell.nodes):
            for j in range(2 + i):
                edge = cell.edges[e]
                ops = [(model.ops[k], op) for k, op in zip(edge.index, edge.ops)]
                if cell.shared is not None:
                    ops += list(cell.shared[j].ops.items())
                for name, op in ops:
                    for b, t in op.named_buffers():
                        out[c, e, name, b] = t
                e += 1
    return out


@pytest.fixture
def op_buffers():
    """op_buffers(supernet) -> every candidate's BN statistics, per (cell, edge, op name, buffer): a state's
    shared candidates (supernet.SharedOps, exact mode) stand for each of its outgoing edges."""
    return _op_buffers


# ---------------------------------------------------------------------------------------------------
# Data


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data beside the repository; tests of the real datasets skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"checks real data files from ../shared/data beside the repository; {SHARED_DATA} is absent")
    return SHARED_DATA


# A small grammar with agreement (a singular subject takes "sees", a plural one "see", across an optional
# adjective and prepositional phrase) over a lexicon drawn with Zipf's law, as words are in real text:
# structure a small recurrent model learns in a few epochs (word frequencies first, then the grammar),
# unlike random words. As in Penn Treebank, every line is one sentence and rare words are <unk>.
_NOUNS = (
    "cat dog bird girl boy horse cow pig duck frog king queen farmer teacher doctor student baker "
    "sailor friend rabbit snake lion tiger monkey parrot robot pilot singer painter driver"
).split()
_VERBS = "see like chase follow help find call meet know love hear feed greet visit need want paint draw".split()
_STILL = "sleep run sing swim jump walk laugh smile".split()
_ADJECTIVES = "small red old quick happy tall green young brave quiet big lazy clever angry kind".split()
_DETERMINERS = (["the", "a", "this", "that", "every"], ["the", "some", "these", "those", "many"])
_PREPOSITIONS = ["near", "with", "behind", "under", "beside"]


def _zipf(rng, words):
    return rng.choices(words, weights=[1 / (rank + 1) for rank in range(len(words))])[0]


def _noun_phrase(rng, depth=0):
    plural = rng.random() < 0.4
    words = [_zipf(rng, _DETERMINERS[plural])]
    if rng.random() < 0.3:
        words.append(_zipf(rng, _ADJECTIVES))
    noun = _zipf(rng, _NOUNS)
    words.append("<unk>" if rng.random() < 0.03 else noun + "s" if plural else noun)
    if depth == 0 and rng.random() < 0.25:
        words += [_zipf(rng, _PREPOSITIONS)] + _noun_phrase(rng, depth + 1)[0]
    return words, plural


def _sentence(rng):
    subject, plural = _noun_phrase(rng)
    if rng.random() < 0.3:
        verb = _zipf(rng, _STILL)
        return subject + [verb if plural else verb + "s"]
    verb = _zipf(rng, _VERBS)
    return subject + [verb if plural else verb + "s"] + _noun_phrase(rng)[0]


def write_tiny_corpus(folder, lines=None, seed=0):
    """train.txt, valid.txt and test.txt of generated sentences (the layout recurrent/text.py reads)."""
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (lines or {"train": 300, "valid": 60, "test": 60}).items():
        text = "".join(" ".join(_sentence(rng)) + "\n" for _ in range(count))
        (folder / f"{split}.txt").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A word-level corpus of a few KB made here (no ../shared needed): a folder for `data_dir`."""
    return write_tiny_corpus(tmp_path_factory.mktemp("tiny-corpus"))
