"""Tests for dartsnas.data: loaders on tiny data made here (and the real files where this machine has them),
downloads from file:// URLs, and augmentation checked against slow per-sample references."""

import gzip
import hashlib
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dartsnas.data import folder as image_folder
from dartsnas.data import locate
from dartsnas.data.batches import Augment, batches, channel_stats
from dartsnas.data.images import DataError, ImageSet, load_images

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep every download and decoded-image cache inside the test's tmp_path, never in ~/.cache."""
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DARTSNAS_DATA", raising=False)


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------- registry


def test_unknown_name_split_and_option_are_clear_errors():
    with pytest.raises(DataError, match="valid names: .*cifar10.*fashion_mnist"):
        load_images("cifar11")
    with pytest.raises(DataError, match="valid splits: train, test"):
        load_images("digits", "val")
    with pytest.raises(DataError, match="no option colour; its options are: shape, num_classes, size"):
        load_images("fake", colour=True)


def test_fake_is_deterministic_and_shaped():
    a = load_images("fake", "train", shape=(1, 8, 6), num_classes=3, size=20)
    b = load_images("fake", "train", shape=[1, 8, 6], num_classes=3, size=20)
    assert a.images.shape == (20, 1, 8, 6) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.num_classes == 3 and a.labels.max() < 3
    test = load_images("fake", "test", shape=(1, 8, 6), size=20)
    assert not torch.equal(a.images, test.images)


def test_imageset_helpers():
    d = ImageSet(torch.zeros(4, 3, 5, 5, dtype=torch.uint8), torch.arange(4), ["a", "b", "c", "d"])
    assert (d.in_channels, d.size, d.resolution, d.num_classes, len(d)) == (3, (5, 5), 5, 4, 4)
    sub = d.subset(torch.tensor([3, 1]))
    assert sub.labels.tolist() == [3, 1] and sub.classes == d.classes
    assert d.to("cpu").images.device.type == "cpu"


# ------------------------------------------------------------------------------------------------ Fashion-MNIST


def test_fashion_mnist_from_system_package():
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} absent (apt-get install -y dataset-fashion-mnist)")
    train, test = load_images("fashion_mnist", "train"), load_images("fashion_mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert set(train.labels.tolist()) == set(range(10)) and train.num_classes == 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"


def test_missing_dataset_names_every_path_and_how_to_get_it(tmp_path, monkeypatch):
    nowhere = tmp_path / "nowhere"
    monkeypatch.setitem(locate.SYSTEM_DIRS, "fashion_mnist", nowhere)
    with pytest.raises(DataError) as caught:
        load_images("fashion_mnist")
    message = str(caught.value)
    assert str(tmp_path / "cache" / "data" / "fashion_mnist") in message and str(nowhere) in message
    assert "apt-get install -y dataset-fashion-mnist" in message and "download=true" in message

    with pytest.raises(DataError) as caught:
        load_images("cifar10", root=tmp_path / "c10")
    message = str(caught.value)
    assert str(tmp_path / "c10") in message and str(tmp_path / "c10" / "cifar-10-batches-py") in message
    assert "cifar-10-python.tar.gz" in message and "download=true" in message


# ---------------------------------------------------------------------------------------------- IDX / download


def write_idx(path, array):
    header = bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_mirror(tmp_path):
    """A folder holding the four MNIST files (tiny: 6 train, 4 test images of 5x7) and their md5s."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 5, 7)),
        "train-labels-idx1-ubyte.gz": np.arange(6) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (4, 5, 7)),
        "t10k-labels-idx1-ubyte.gz": np.arange(4),
    }
    for name, array in arrays.items():
        write_idx(mirror / name, array)
    return mirror, arrays, {name: md5(mirror / name) for name in arrays}


def test_idx_parsing(idx_mirror):
    mirror, arrays, _ = idx_mirror
    train = load_images("mnist", "train", root=mirror)
    assert train.images.shape == (6, 1, 5, 7) and train.classes == [str(d) for d in range(10)]
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte.gz"])
    assert train.labels.tolist() == list(range(6))


def test_idx_bad_magic_and_truncation_are_clear(idx_mirror):
    mirror, _, _ = idx_mirror
    with gzip.open(mirror / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + b"\x00" * 20)  # a labels header where images belong
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is not an IDX file"):
        load_images("mnist", "test", root=mirror)
    with gzip.open(mirror / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 4, 5, 7) + b"\x00" * 10)
    with pytest.raises(DataError, match="truncated"):
        load_images("mnist", "test", root=mirror)


def test_download_verifies_md5(idx_mirror, tmp_path, monkeypatch):
    mirror, arrays, sums = idx_mirror
    monkeypatch.setitem(locate.SOURCES, "mnist", {"url": mirror.as_uri() + "/", "files": sums})
    got = load_images("mnist", "test", root=tmp_path / "dl", download=True)
    assert np.array_equal(got.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte.gz"])
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]

    wrong = dict(sums, **{"train-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(locate.SOURCES, "mnist", {"url": mirror.as_uri(), "files": wrong})
    with pytest.raises(DataError, match="corrupt.*md5"):
        load_images("mnist", "train", root=tmp_path / "bad", download=True)
    assert list((tmp_path / "bad").iterdir()) == []  # nothing half-written is left behind

    monkeypatch.setitem(locate.SOURCES, "mnist", {"url": (tmp_path / "nothing-here").as_uri(), "files": sums})
    with pytest.raises(DataError, match="could not download"):
        load_images("mnist", "train", root=tmp_path / "bad", download=True)


# ------------------------------------------------------------------------------------------------------- CIFAR


def make_cifar10(folder, per_batch=2):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches_written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
        batches_written[name] = batch
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return batches_written


def test_cifar10_from_official_batches(tmp_path):
    written = make_cifar10(tmp_path / "cifar-10-batches-py")
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):  # the parent or the extracted folder itself
        train = load_images("cifar10", "train", root=root)
        assert train.images.shape == (10, 3, 32, 32) and train.classes[1] == "automobile"
    first = written["data_batch_1"]
    # Row layout of the official format: 1024 red, 1024 green, 1024 blue values, each row-major.
    assert np.array_equal(train.images[0, 1, 0].numpy(), first[b"data"][0, 1024:1056])
    assert train.labels[:2].tolist() == first[b"labels"]
    assert load_images("cifar10", "test", root=tmp_path).images.shape == (2, 3, 32, 32)


def test_cifar10_download_and_extract(tmp_path, monkeypatch):
    make_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    sums = {"cifar-10-python.tar.gz": md5(mirror / "cifar-10-python.tar.gz")}
    monkeypatch.setitem(locate.SOURCES, "cifar10", {"url": mirror.as_uri(), "files": sums})
    test = load_images("cifar10", "test", download=True)  # default root under $DARTSNAS_CACHE/data
    assert test.images.shape == (2, 3, 32, 32)
    assert (tmp_path / "cache" / "data" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()


# ------------------------------------------------------------------------------------------------------ digits


def test_digits_split_is_fixed_and_disjoint():
    train, test = load_images("digits", "train"), load_images("digits", "test")
    assert len(train) + len(test) == 1797 and 250 < len(test) < 350
    assert train.images.shape[1:] == (1, 8, 8) and train.images.max() == 255
    rows = lambda d: {(bytes(x.numpy()), int(y)) for x, y in zip(d.images, d.labels)}  # noqa: E731
    assert not rows(train) & rows(test)
    torch.manual_seed(123)  # the split must not follow the global seed
    again = load_images("digits", "test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)


# ------------------------------------------------------------------------------------------------- imagefolder


def make_png_tree(root, sizes=None):
    from PIL import Image

    rng = np.random.default_rng(2)
    pixels = {}
    for split, count in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                name = f"{split}/{cls}/{i:02d}.png"
                h, w = (sizes or {}).get(name, (6, 6))
                array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(array).save(root / name)
                pixels[name] = array
    (root / "train" / "cat" / "notes.txt").write_text("not an image, ignored")
    return pixels


def test_imagefolder_from_folder_and_archive(tmp_path):
    pixels = make_png_tree(tmp_path / "tree")
    train = load_images("imagefolder", "train", root=tmp_path / "tree")
    assert train.images.shape == (6, 3, 6, 6) and train.classes == ["cat", "dog"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(train.images[4].permute(1, 2, 0).numpy(), pixels["train/dog/01.png"])

    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="tree")
    from_archive = load_images("imagefolder", "train", root=archive)
    assert torch.equal(from_archive.images, train.images) and torch.equal(from_archive.labels, train.labels)

    grey = load_images("imagefolder", "test", root=archive, grayscale=True, size=4, limit_per_class=1)
    assert grey.images.shape == (2, 1, 4, 4) and grey.labels.tolist() == [0, 1]


def test_imagefolder_mixed_sizes_name_the_odd_file(tmp_path):
    make_png_tree(tmp_path / "tree", sizes={"train/dog/01.png": (9, 7)})
    with pytest.raises(DataError, match=r"01.png is 7x9 .* size=N"):
        load_images("imagefolder", "train", root=tmp_path / "tree")
    assert load_images("imagefolder", "train", root=tmp_path / "tree", size=5).images.shape == (6, 3, 5, 5)


def test_imagefolder_layout_and_unreadable_errors(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no 'test' folder"):
        load_images("imagefolder", "test", root=tmp_path / "empty")
    with pytest.raises(DataError, match="no images in"):
        load_images("imagefolder", "train", root=tmp_path / "empty")
    make_png_tree(tmp_path / "tree")
    (tmp_path / "tree" / "test" / "dog" / "01.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read image .*dog/01.png"):
        load_images("imagefolder", "test", root=tmp_path / "tree")


def test_imagefolder_second_load_comes_from_cache(tmp_path, monkeypatch):
    make_png_tree(tmp_path / "tree")
    first = load_images("imagefolder", "train", root=tmp_path / "tree")
    assert len(list((tmp_path / "cache" / "imagefolder").glob("*-train.pt"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(image_folder, "_decode_image", no_decoding)
    second = load_images("imagefolder", "train", root=tmp_path / "tree")
    assert torch.equal(second.images, first.images) and second.classes == first.classes
    with pytest.raises(DataError, match="cannot read image"):  # another option is another cache entry
        load_images("imagefolder", "train", root=tmp_path / "tree", limit_per_class=2)


@pytest.mark.slow
def test_imagefolder_real_archive_quick_read(shared_data):
    archive = shared_data / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"reads the real CIFAR-10 JPEG archive; {archive} is absent")
    train = load_images("imagefolder", "train", root=archive, limit_per_class=5)
    assert train.images.shape == (50, 3, 32, 32) and train.num_classes == 10
    assert train.labels.bincount().tolist() == [5] * 10 and train.classes[0] == "airplane"


# ------------------------------------------------------------------------------------------------ augmentation


def test_channel_stats_match_direct_computation():
    images = torch.randint(0, 256, (37, 3, 9, 9), dtype=torch.uint8)
    mean, std = channel_stats(images)
    x = images.double() / 255
    assert np.allclose(mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-12)
    assert np.allclose(std, x.transpose(0, 1).reshape(3, -1).std(dim=1, correction=0).numpy(), atol=1e-9)


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def normalised(images):
    return (images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def random_batch(n=64, h=8, w=10):
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))


def test_augment_off_is_plain_normalisation():
    images = random_batch()
    plain = Augment(MEAN, STD)(images, torch.Generator().manual_seed(0))
    assert plain.dtype == torch.float32 and plain.shape == images.shape
    assert torch.allclose(plain, normalised(images), atol=1e-6)
    evaluation = Augment(MEAN, STD, crop_padding=4, flip=True, cutout=4)(images, None)
    assert torch.allclose(evaluation, normalised(images), atol=1e-6)


def test_crop_takes_windows_of_the_padded_image():
    images, p = random_batch(), 2
    out = Augment(MEAN, STD, crop_padding=p)(images, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (p, p, p, p))
    expected = normalised(padded)
    offsets = []
    for i in range(len(images)):  # slow reference: find the window each sample was cut from
        hits = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.allclose(out[i], expected[i, :, dy : dy + 8, dx : dx + 10], atol=1e-6)
        ]
        assert len(hits) == 1, f"sample {i} is not a window of its padded image"
        offsets.append(hits[0])
    assert len(set(offsets)) > 5  # offsets vary per sample


def test_flip_flips_about_half():
    images = random_batch()
    out = Augment(MEAN, STD, flip=True)(images, torch.Generator().manual_seed(0))
    same = [torch.allclose(o, n, atol=1e-6) for o, n in zip(out, normalised(images))]
    mirrored = [torch.allclose(o, n, atol=1e-6) for o, n in zip(out, normalised(images.flip(3)))]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54


def test_cutout_zeroes_a_clipped_square():
    images = torch.full((200, 3, 12, 12), 255, dtype=torch.uint8)
    out = Augment((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), cutout=6)(images, torch.Generator().manual_seed(0))
    holes = out == 0
    assert torch.equal(holes, holes[:, :1].expand_as(holes))  # same square in every channel
    assert torch.all(out[~holes] == 1.0)
    counts = holes[:, 0].sum(dim=(1, 2))
    assert counts.min() >= 9 and counts.max() == 36  # a 6x6 square, clipped to at least 3x3 at a corner
    for hole in holes[:, 0]:  # a rectangle: its bounding box is all hole
        ys, xs = hole.nonzero(as_tuple=True)
        assert hole[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()


def test_augment_is_reproducible_and_stays_on_the_batch_device():
    augment = Augment(MEAN, STD, crop_padding=4, flip=True, cutout=4)
    images = random_batch()
    a = augment(images, torch.Generator().manual_seed(7))
    b = augment(images, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and not torch.equal(a, augment(images, torch.Generator().manual_seed(8)))
    # The meta device has no data but checks devices: a CPU tensor mixed into the ops would fail here.
    on_meta = augment(images.to("meta"), torch.Generator().manual_seed(7))
    assert on_meta.device.type == "meta" and on_meta.shape == images.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_cpu():
    augment = Augment(MEAN, STD, crop_padding=4, flip=True, cutout=4)
    images = random_batch()
    on_cpu = augment(images, torch.Generator().manual_seed(3))
    on_gpu = augment(images.cuda(), torch.Generator().manual_seed(3))
    assert on_gpu.is_cuda and torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-6)


# ----------------------------------------------------------------------------------------------------- batches


def numbered(n=10):
    return ImageSet(
        torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous(),
        torch.arange(n),
        [str(i) for i in range(n)],
    )


def test_batches_cover_every_index_once():
    seen = []
    for x, y in batches(numbered(), 4, torch.Generator().manual_seed(0)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.allclose(x[:, 0, 0, 0] * 255, y.float())  # images stay with their labels
        seen += y.tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    assert [len(y) for _, y in batches(numbered(), 4, None, shuffle=False)] == [4, 4, 2]


def test_batches_drop_last_and_reproducible():
    sizes = [len(y) for _, y in batches(numbered(), 4, torch.Generator().manual_seed(0), drop_last=True)]
    assert sizes == [4, 4]
    augment = Augment((0.5,), (0.5,), crop_padding=1, flip=True)
    runs = [[(x, y) for x, y in batches(numbered(), 3, torch.Generator().manual_seed(9), augment)] for _ in range(2)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(*runs))
