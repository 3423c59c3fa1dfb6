"""Every bad dataset a user can give (image folders and their archives, CIFAR batches, text corpora) ends in one
clear DataError, and one error line with exit status 2 from the command line; and data is only ever read:
no loader, cache or run changes, adds or removes a file among the user's data."""

import hashlib
import io
import json
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from dartsnas.cli import main
from dartsnas.data import locate
from dartsnas.data.images import DataError, load_images
from dartsnas.recurrent.text import load_corpus

TINY = ["batch_size=4", "init_channels=4", "layers=3", "epochs=1", "progress=false", "plot=false"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Caches and downloads go to tmp_path/cache, never to ~/.cache; the user's data lies in tmp_path/user."""
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DARTSNAS_DATA", raising=False)
    (tmp_path / "user").mkdir()


def snapshot(folder: Path) -> dict:
    """SHA-256 and mtime of every file under `folder`, and every folder's listing (itself included)."""
    out = {".": sorted(p.name for p in folder.iterdir())}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_file():
            out[key] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_size)
        else:
            out[key] = sorted(c.name for c in p.iterdir())
    return out


def png(path: Path, size=(8, 8), mode="RGB", seed=0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def image_tree(root: Path, classes=("cat", "dog"), per_class=3) -> Path:
    for split in ("train", "test"):
        for c, cls in enumerate(classes):
            for i in range(per_class):
                png(root / split / cls / f"{i:02d}.png", seed=100 * c + i)
    return root


def tar_of(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


# ------------------------------------------------------------------------------------------ bad image folders


def cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


# Each breaks a good 2-class tree one way; `split` is the split whose loading must fail.
BREAKS = {
    "one-class": (lambda r: [__import__("shutil").rmtree(r / s / "dog") for s in ("train", "test")], "train"),
    "train-shows-one-class": (
        lambda r: [p.unlink() for p in (r / "train" / "dog").glob("*.png")] and (r / "train" / "dog").rmdir(),
        "train",
    ),
    "empty-class-folder": (lambda r: (r / "train" / "bird").mkdir(), "train"),
    "class-folder-of-text": (
        lambda r: (r / "train" / "bird").mkdir() or (r / "train" / "bird" / "a.txt").write_text("x"),
        "train",
    ),
    "no-test-folder": (lambda r: __import__("shutil").rmtree(r / "test"), "test"),
    "no-class-folders": (lambda r: [__import__("shutil").rmtree(r / "train" / c) for c in ("cat", "dog")], "train"),
    "truncated-png": (lambda r: cut(r / "train" / "cat" / "01.png", 30), "train"),
    "png-cut-in-its-data": (lambda r: cut(r / "train" / "cat" / "01.png", 70), "train"),
    "zero-byte-jpg": (lambda r: (r / "train" / "dog" / "09.jpg").write_bytes(b""), "train"),
    "text-named-jpg": (lambda r: (r / "test" / "dog" / "09.jpg").write_text("not an image"), "test"),
    "random-bytes-png": (lambda r: (r / "train" / "cat" / "09.png").write_bytes(bytes(range(256)) * 8), "train"),
    "truncated-jpeg": (lambda r: _truncated_jpeg(r / "train" / "dog" / "09.jpg"), "train"),
    "mixed-sizes": (lambda r: png(r / "train" / "dog" / "09.png", size=(9, 7)), "train"),
}


def _truncated_jpeg(path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


EXPECTED = {  # what each message must say: the problem, and the file or folder it is in
    "one-class": "needs at least 2 classes",
    "train-shows-one-class": "needs at least 2 classes",
    "empty-class-folder": "bird holds no images",
    "class-folder-of-text": "bird holds no images",
    "no-test-folder": "no 'test' folder",
    "no-class-folders": "no images in",
    "truncated-png": "01.png",
    "png-cut-in-its-data": "01.png",
    "zero-byte-jpg": "09.jpg",
    "text-named-jpg": "09.jpg",
    "random-bytes-png": "09.png",
    "truncated-jpeg": "09.jpg",
    "mixed-sizes": "size=N",
}
ARCHIVE_ALSO = [
    "one-class",
    "train-shows-one-class",
    "truncated-png",
    "zero-byte-jpg",
    "text-named-jpg",
    "random-bytes-png",
    "truncated-jpeg",
    "mixed-sizes",
    "no-class-folders",
]


def broken_tree(tmp_path, name) -> tuple[Path, str]:
    root = image_tree(tmp_path / "user" / "images")
    action, split = BREAKS[name]
    action(root)
    return root, split


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_broken_image_folder_is_a_clear_error(name, tmp_path):
    root, split = broken_tree(tmp_path, name)
    before = snapshot(tmp_path / "user")
    with pytest.raises(DataError, match=EXPECTED[name]) as caught:
        load_images("imagefolder", split, root=root)
    message = str(caught.value)
    assert "\n" not in message and "BytesIO" not in message
    if name in ("truncated-png", "zero-byte-jpg", "text-named-jpg", "random-bytes-png", "truncated-jpeg"):
        assert "remove or fix that file" in message
    assert snapshot(tmp_path / "user") == before


@pytest.mark.parametrize("name", ARCHIVE_ALSO)
def test_broken_image_archive_is_a_clear_error(name, tmp_path):
    root, split = broken_tree(tmp_path, name)
    archive = tar_of(root, tmp_path / "user" / "images.tar.gz")
    before = snapshot(tmp_path / "user")
    with pytest.raises(DataError, match=EXPECTED[name].replace("no images in", "no images under")):
        load_images("imagefolder", split, root=archive)
    assert snapshot(tmp_path / "user") == before


@pytest.mark.parametrize(
    "name", ["missing", "empty-folder", "truncated-tar", "not-a-tar", "empty-tar", "a-png", "tar-without-split"]
)
def test_bad_image_root_is_a_clear_error(name, tmp_path):
    user = tmp_path / "user"
    root = {
        "missing": user / "nope",
        "empty-folder": user / "empty",
        "truncated-tar": user / "cut.tar.gz",
        "not-a-tar": user / "x.tar.gz",
        "empty-tar": user / "empty.tar",
        "a-png": user / "one.png",
        "tar-without-split": user / "flat.tar",
    }[name]
    if name == "empty-folder":
        root.mkdir()
    elif name == "truncated-tar":
        archive = tar_of(image_tree(tmp_path / "src" / "images"), tmp_path / "whole.tar.gz")
        root.write_bytes(archive.read_bytes()[:300])
    elif name == "not-a-tar":
        root.write_bytes(b"\x1f\x8b" + b"x" * 200)
    elif name == "empty-tar":
        tarfile.open(root, "w").close()
    elif name == "a-png":
        png(root)
    elif name == "tar-without-split":
        png(tmp_path / "src" / "flat" / "cat" / "0.png")
        with tarfile.open(root, "w") as tar:
            tar.add(tmp_path / "src" / "flat", arcname="flat")
    before = snapshot(user)
    with pytest.raises(DataError) as caught:
        load_images("imagefolder", "train", root=root)
    assert str(root) in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(user) == before


@pytest.mark.parametrize(
    "option",
    [
        {"size": 0},
        {"size": -3},
        {"size": "8"},
        {"size": True},
        {"limit_per_class": 0},
        {"limit_per_class": -1},
        {"limit_per_class": "2"},
        {"colour": True},
    ],
)
def test_bad_image_folder_option_is_a_clear_error(option, tmp_path):
    root = image_tree(tmp_path / "user" / "images")
    with pytest.raises(DataError, match=next(iter(option))):
        load_images("imagefolder", "train", root=root, **option)


def test_mixed_colour_modes_and_sizes_with_size_work(tmp_path):
    root = image_tree(tmp_path / "user" / "images")
    png(root / "train" / "cat" / "09.png", mode="L")  # grayscale among RGB: converted
    png(root / "train" / "dog" / "09.png", size=(13, 5))  # another size: resized with size=N
    rgb = load_images("imagefolder", "train", root=root, size=8)
    grey = load_images("imagefolder", "train", root=root, size=8, grayscale=True)
    assert rgb.images.shape == (8, 3, 8, 8) and grey.images.shape == (8, 1, 8, 8)


# ------------------------------------------------------------------------------------------ through the CLI


def refused(capsys, argv, *untouched: Path) -> str:
    before = [snapshot(folder) for folder in untouched]
    start = time.perf_counter()
    status = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, (status, err[-500:])
    assert lines and lines[-1].startswith(f"dartsnas {argv[0]}: error: "), err[-500:]
    assert "Traceback" not in err
    assert [snapshot(folder) for folder in untouched] == before
    assert time.perf_counter() - start < 20
    return lines[-1]


@pytest.mark.parametrize(
    "name", ["one-class", "empty-class-folder", "truncated-png", "zero-byte-jpg", "mixed-sizes", "no-class-folders"]
)
def test_search_on_a_broken_image_folder_exits_2(name, tmp_path, capsys):
    root, _ = broken_tree(tmp_path, name)
    sets = [f"data_dir={root}", "dataset=imagefolder"] + TINY
    argv = ["search", "--out", str(tmp_path / "runs")] + [a for s in sets for a in ("--set", s)]
    line = refused(capsys, argv, tmp_path / "user")
    assert EXPECTED[name] in line


@pytest.mark.parametrize(
    "sets",
    [
        ["dataset=imagefolder"],
        ["dataset=imagefolder", "data_dir=/nonexistent/images"],
        ["dataset=cifar10", "data_dir=/nonexistent/cifar"],
        ["dataset=mnist", "data_dir=."],
        ["dataset=digits", "data_options={colour: true}"],
        ["dataset=imagenet"],
    ],
)
def test_search_on_a_missing_dataset_exits_2(sets, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path / "user")
    argv = ["search", "--out", str(tmp_path / "runs")] + [a for s in sets + TINY for a in ("--set", s)]
    refused(capsys, argv, tmp_path / "user")


# ------------------------------------------------------------------------------------------ CIFAR batches


def cifar_folder(folder: Path, **replace) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [0, 1]}
        (folder / name).write_bytes(replace.get(name, pickle.dumps(batch)))
    (folder / "batches.meta").write_bytes(replace.get("batches.meta", pickle.dumps({b"label_names": [b"a", b"b"]})))
    return folder


CIFAR_BREAKS = {
    "truncated": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})[:50],
    "empty": b"",
    "text": b"hello",
    "a-list": pickle.dumps([1, 2, 3]),
    "no-data": pickle.dumps({b"labels": [0, 1]}),
    "wrong-shape": pickle.dumps({b"data": np.zeros((2, 7), np.uint8), b"labels": [0, 1]}),
    "data-is-text": pickle.dumps({b"data": "pixels", b"labels": [0, 1]}),
    "a-set": pickle.dumps({b"data": {1, 2}, b"labels": [0, 1]}),
}


@pytest.mark.parametrize("name", sorted(CIFAR_BREAKS))
@pytest.mark.parametrize("file", ["data_batch_3", "batches.meta"])
def test_broken_cifar_batch_is_a_clear_error(name, file, tmp_path):
    folder = cifar_folder(tmp_path / "user" / "cifar-10-batches-py", **{file: CIFAR_BREAKS[name]})
    before = snapshot(tmp_path / "user")
    with pytest.raises(DataError, match=file):
        load_images("cifar10", "train", root=folder)
    assert snapshot(tmp_path / "user") == before


def test_cifar_tarball_in_a_users_folder_is_extracted_into_the_cache(tmp_path, monkeypatch):
    source = cifar_folder(tmp_path / "src" / "cifar-10-batches-py")
    user = tmp_path / "user" / "cifar"
    user.mkdir()
    tarball = user / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    md5 = hashlib.md5(tarball.read_bytes()).hexdigest()
    monkeypatch.setitem(locate.SOURCES, "cifar10", {"url": "file:///nowhere", "files": {tarball.name: md5}})
    before = snapshot(tmp_path / "user")
    for split in ("train", "test", "train"):  # the third reads the earlier extraction
        assert len(load_images("cifar10", split, root=user).labels) == (10 if split == "train" else 2)
    assert snapshot(tmp_path / "user") == before
    assert list((tmp_path / "cache" / "extracted").glob("cifar10-*/cifar-10-batches-py/test_batch"))


# ------------------------------------------------------------------------------------------ text corpora

GOOD_TEXT = "the cat sees a dog\nthe <unk> runs\na dog sees the cat\n"


def corpus(folder: Path, **files) -> Path:
    folder.mkdir(parents=True)
    for name, content in ({"train.txt": GOOD_TEXT, "valid.txt": GOOD_TEXT, "test.txt": GOOD_TEXT} | files).items():
        if content is not None:
            (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


CORPUS_BREAKS = {
    f"{split}-{kind}": ({f"{split}.txt": content}, f"{split}.txt" if content is not None else split)
    for split in ("train", "valid", "test")
    for kind, content in (
        ("empty", ""),
        ("blank", " \n\n\t\n"),
        ("latin1", "caf\xe9 au lait\n".encode("latin-1")),
        ("binary", bytes(range(256)) * 16),
        ("nul", "a b\x00c\n"),
        ("missing", None),
    )
}
CORPUS_BREAKS |= {
    "two-train-files": ({"ptb.train.txt": GOOD_TEXT}, "two train files"),
    "unknown-word-no-unk": ({"train.txt": "a b\n", "valid.txt": "a c\n"}, "valid.txt has the word 'c'"),
    "png-as-train": (None, "train.txt"),
}


@pytest.mark.parametrize("name", sorted(CORPUS_BREAKS))
def test_broken_corpus_is_a_clear_error(name, tmp_path):
    files, expected = CORPUS_BREAKS[name]
    if files is None:  # an image saved under the corpus's name
        files = {"train.txt": png(tmp_path / "src" / "x.png").read_bytes()}
    folder = corpus(tmp_path / "user" / "corpus", **files)
    before = snapshot(tmp_path / "user")
    with pytest.raises(DataError, match=expected) as caught:
        load_corpus("text", folder)
    assert "\n" not in str(caught.value)
    assert snapshot(tmp_path / "user") == before


@pytest.mark.parametrize("name", ["missing", "a-file", "empty-folder"])
def test_bad_corpus_folder_is_a_clear_error(name, tmp_path):
    root = tmp_path / "user" / "corpus"
    if name == "a-file":
        root.write_text(GOOD_TEXT)
    elif name == "empty-folder":
        root.mkdir()
    with pytest.raises(DataError, match="corpus"):
        load_corpus("text", root)


@pytest.mark.parametrize("name", ["train-empty", "valid-binary", "test-missing", "train-latin1"])
def test_recurrent_search_on_a_broken_corpus_exits_2(name, tmp_path, capsys):
    folder = corpus(tmp_path / "user" / "corpus", **CORPUS_BREAKS[name][0])
    argv = [
        "search",
        "--task",
        "text",
        "--config",
        "quick",
        "--out",
        str(tmp_path / "runs"),
        "--set",
        f"data_dir={folder}",
        "--set",
        "progress=false",
    ]
    refused(capsys, argv, tmp_path / "user")


# ------------------------------------------------------------------------------------------ data never changed


@pytest.fixture
def user_data(tmp_path):
    """A user's image folder, its archive, a text corpus and a genotype.json, each in tmp_path/user."""
    user = tmp_path / "user"
    images = image_tree(user / "images", per_class=4)
    archive = tar_of(images, user / "images.tar.gz")
    text = corpus(user / "corpus")
    genotype = user / "genotype" / "genotype.json"
    genotype.parent.mkdir()
    genotype.write_text(
        json.dumps(
            {
                "normal": [["skip_connect", 0], ["sep_conv_3x3", 1]],
                "normal_concat": [2],
                "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]],
                "reduce_concat": [2],
            }
        )
    )
    return {"images": images, "archive": archive, "corpus": text, "genotype": genotype}


def test_loaders_never_change_the_data(user_data, tmp_path, capsys):
    user = tmp_path / "user"
    before = snapshot(user)
    for root in (user_data["images"], user_data["archive"]):
        for split in ("train", "test"):
            for options in ({}, {"grayscale": True, "size": 4}, {"limit_per_class": 2}, {"cache": False}):
                load_images("imagefolder", split, root=root, **options)
                load_images("imagefolder", split, root=root, **options)  # the second comes from the cache
    load_corpus("text", user_data["corpus"])
    load_corpus("text", user_data["corpus"], max_lines={"train": 2, "valid": 1})
    for spec in (user_data["genotype"], user_data["genotype"].parent):
        assert main(["genotype", str(spec)]) == 0
        assert main(["info", str(spec)]) == 0
    capsys.readouterr()
    assert snapshot(user) == before
    assert list((tmp_path / "cache" / "imagefolder").glob("*.pt"))  # the caches went to the cache folder


@pytest.mark.slow
def test_a_search_and_a_training_never_change_the_data(user_data, tmp_path, capsys):
    user = tmp_path / "user"
    before = snapshot(user)
    sets = ["dataset=imagefolder", f"data_dir={user_data['images']}"] + TINY
    assert (
        main(["search", "--out", str(tmp_path / "runs"), "--name", "s"] + [a for s in sets for a in ("--set", s)]) == 0
    )
    sets = (
        ["dataset=imagefolder", f"data_dir={user_data['archive']}", "net=cifar10"]
        + TINY[:2]
        + ["layers=3", "epochs=1", "valid_portion=0", "progress=false", "plot=false"]
    )
    assert (
        main(
            [
                "train",
                str(user_data["genotype"].parent),
                "--config",
                "quick",
                "--out",
                str(tmp_path / "runs"),
                "--name",
                "t",
            ]
            + [a for s in sets for a in ("--set", s)]
        )
        == 0
    )
    capsys.readouterr()
    assert snapshot(user) == before
