"""Where data is found (dartsnas/data/locate.py), step by step: data_dir only when given; else
$DARTSNAS_DATA/<name>, the user's cache, the system folder; else, with download, the official files fetched
into $DARTSNAS_DATA/<name> or the cache. When nothing is found, or the download fails, one line names the
dataset, every place looked and the fix. Images and text corpora alike; never the network (file:// mirrors
and a refused urlopen stand in for it)."""

import gzip
import hashlib
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from dartsnas.data import locate
from dartsnas.data.download import DataError
from dartsnas.data.images import load_images
from dartsnas.recurrent import text
from dartsnas.recurrent.text import load_corpus

IDX = {
    "train-images-idx3-ubyte.gz": (3, 5, 7),
    "train-labels-idx1-ubyte.gz": (3,),
    "t10k-images-idx3-ubyte.gz": (2, 5, 7),
    "t10k-labels-idx1-ubyte.gz": (2,),
}


@pytest.fixture(autouse=True)
def private_places(tmp_path, monkeypatch):
    """The cache in tmp_path/cache, no DARTSNAS_DATA, the system folders in tmp_path/system, no mirror."""
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DARTSNAS_DATA", raising=False)
    for name in ("mnist", "fashion_mnist"):
        monkeypatch.setitem(locate.SYSTEM_DIRS, name, tmp_path / "system" / name)


def idx_files(folder: Path, fill: int) -> Path:
    """The four MNIST files, every pixel `fill`: which place a load read is seen in its pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, shape in IDX.items():
        array = np.full(shape, fill) if "images" in name else np.arange(shape[0]) % 10
        header = bytes((0, 0, 0x08, len(shape))) + struct.pack(f">{len(shape)}I", *shape)
        with gzip.open(folder / name, "wb") as f:
            f.write(header + array.astype(np.uint8).tobytes())
    return folder


def fill_of(name, **kwargs) -> int:
    return int(load_images(name, "train", **kwargs).images.max())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """mnist's official files served from a file:// folder (pixels 9)."""
    folder = idx_files(tmp_path / "mirror", 9)
    monkeypatch.setitem(locate.SOURCES, "mnist", {"url": folder.as_uri(), "files": {n: md5(folder / n) for n in IDX}})
    return folder


# ------------------------------------------------------------------------------------------- the order


def test_the_order_is_data_dir_then_the_variable_then_the_cache_then_the_system_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    idx_files(tmp_path / "system" / "mnist", 4)
    assert fill_of("mnist") == 4
    idx_files(tmp_path / "cache" / "data" / "mnist", 3)
    assert fill_of("mnist") == 3
    idx_files(tmp_path / "env" / "mnist", 2)
    assert fill_of("mnist") == 2
    assert fill_of("mnist", root=idx_files(tmp_path / "mine", 1)) == 1


def test_data_dir_is_the_only_place_looked_when_given(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    idx_files(tmp_path / "env" / "mnist", 2)
    with pytest.raises(DataError) as caught:
        load_images("mnist", root=tmp_path / "mine")
    message = str(caught.value)
    assert str(tmp_path / "mine") in message and str(tmp_path / "env") not in message
    assert f"put train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz in {tmp_path / 'mine'}" in message


def test_an_empty_variable_is_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_DATA", "")
    idx_files(tmp_path / "cache" / "data" / "mnist", 3)
    assert fill_of("mnist") == 3


def test_the_variable_does_not_hide_the_cache(tmp_path, monkeypatch):
    # Before, DARTSNAS_DATA replaced the cache: data downloaded there earlier was no longer found.
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    idx_files(tmp_path / "cache" / "data" / "mnist", 3)
    assert fill_of("mnist") == 3


def test_a_place_missing_one_split_is_passed_over(tmp_path):
    cache = idx_files(tmp_path / "cache" / "data" / "mnist", 3)
    (cache / "train-images-idx3-ubyte.gz").unlink()
    idx_files(tmp_path / "system" / "mnist", 4)
    assert fill_of("mnist") == 4


# ---------------------------------------------------------------------------------------------- download


def test_download_goes_to_the_cache_or_to_the_variables_folder(tmp_path, monkeypatch, mirror):
    assert fill_of("mnist", download=True) == 9
    assert (tmp_path / "cache" / "data" / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache2"))
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    assert fill_of("mnist", download=True) == 9
    assert (tmp_path / "env" / "mnist" / "train-labels-idx1-ubyte.gz").is_file()
    assert not (tmp_path / "cache2" / "data").exists()


def test_download_is_the_last_step(tmp_path, mirror):
    idx_files(tmp_path / "system" / "mnist", 4)
    assert fill_of("mnist", download=True) == 4  # found: nothing fetched
    assert not (tmp_path / "cache" / "data" / "mnist").exists()


def test_no_network_is_one_line_with_every_place_and_the_fix(tmp_path, monkeypatch, mirror):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as caught:
        load_images("mnist", "test", download=True)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("mnist test split not found in ")
    for place in (tmp_path / "env" / "mnist", tmp_path / "cache" / "data" / "mnist", tmp_path / "system" / "mnist"):
        assert str(place) in message
    assert "could not download " + mirror.as_uri() in message and "name resolution" in message
    assert "set DARTSNAS_DATA=DIR with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in DIR/mnist/" in message
    assert "--set data_dir=DIR" in message
    assert not (tmp_path / "env" / "mnist").exists()  # no empty folder left by the failed download


def test_a_download_cut_short_is_the_same_line(tmp_path, monkeypatch, mirror):
    import http.client

    def cut(*args, **kwargs):
        raise http.client.IncompleteRead(b"partial")

    monkeypatch.setattr("urllib.request.urlopen", cut)
    with pytest.raises(DataError, match=r"mnist train split not found in .*could not download .*IncompleteRead"):
        load_images("mnist", download=True)


def test_nothing_found_names_every_place_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as caught:
        load_images("cifar10", "test")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cifar10 test split not found: looked for test_batch")
    for place in (tmp_path / "env" / "cifar10", tmp_path / "cache" / "data" / "cifar10"):
        assert f"{place}, " in message or f"{place} and" in message
        assert str(place / "cifar-10-batches-py") in message
    assert (
        "set DARTSNAS_DATA=DIR with cifar-10-python.tar.gz in DIR/cifar10/, or --set data_dir=DIR, or --set "
        "download=true on a machine with internet (fetches https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
        f"into {tmp_path / 'env' / 'cifar10'})"
    ) in message


def test_a_tarball_under_the_variable_is_read_and_extracted_into_the_cache(tmp_path, monkeypatch):
    source = tmp_path / "src" / "cifar-10-batches-py"
    source.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
        (source / name).write_bytes(pickle.dumps(batch))
    (source / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
    (tmp_path / "env" / "cifar10").mkdir(parents=True)
    tarball = tmp_path / "env" / "cifar10" / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    monkeypatch.setitem(locate.SOURCES, "cifar10", {"url": "file:///nowhere", "files": {tarball.name: md5(tarball)}})
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    assert len(load_images("cifar10", "test")) == 2
    assert sorted(p.name for p in tarball.parent.iterdir()) == [tarball.name]  # the user's folder is only read
    assert list((tmp_path / "cache" / "extracted").glob("cifar10-*/cifar-10-batches-py/test_batch"))


# ------------------------------------------------------------------------------------------- text corpora


def corpus(folder: Path, first: str) -> Path:
    folder.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (folder / f"ptb.{split}.txt").write_text(f"{first} b\n")
    return folder


def test_corpora_follow_the_same_order(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    corpus(tmp_path / "cache" / "data" / "ptb", "cached")
    assert load_corpus("ptb").vocab[0] == "cached"
    corpus(tmp_path / "env" / "ptb", "env")
    assert load_corpus("ptb").vocab[0] == "env"
    assert load_corpus("ptb", corpus(tmp_path / "mine", "mine")).vocab[0] == "mine"


def test_a_missing_corpus_is_one_line_with_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as caught:
        load_corpus("ptb")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("ptb not found: looked for its train, valid and test files")
    assert f"in {tmp_path / 'env' / 'ptb'} and {tmp_path / 'cache' / 'data' / 'ptb'}." in message
    assert "DIR/ptb/" in message and "--set data_dir=DIR" in message and "--set download=true" in message


def test_a_corpus_downloads_into_the_variables_folder_and_a_failed_one_is_one_line(tmp_path, monkeypatch):
    mirror = corpus(tmp_path / "mirror", "fetched")
    files = {f"ptb.{s}.txt": md5(mirror / f"ptb.{s}.txt") for s in ("train", "valid", "test")}
    monkeypatch.setitem(text.SOURCES, "ptb", {"url": mirror.as_uri(), "files": files})
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env"))
    assert load_corpus("ptb", download=True).vocab[0] == "fetched"
    assert (tmp_path / "env" / "ptb" / "ptb.test.txt").is_file()

    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "env2"))
    monkeypatch.setitem(text.SOURCES, "ptb", {"url": (tmp_path / "gone").as_uri(), "files": files})
    with pytest.raises(DataError, match=r"^ptb not found in .*env2/ptb and .*, and could not download .*gone"):
        load_corpus("ptb", download=True)
