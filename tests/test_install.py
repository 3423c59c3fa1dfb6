"""The README's commands work from a pip install in any folder: the wheel is built from the package, installed
into a fresh virtual environment outside the checkout (which borrows this environment's torch and the other
dependencies through a path line, so nothing is downloaded), and its own `dartsnas` runs the README's searches
in an empty folder with only the data location given ($DARTSNAS_DATA, holding small files in the official
layouts written here). A new README command is one more entry of COMMANDS."""

import gzip
import os
import pickle
import shutil
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# The README's commands, shortened by --set to a few seconds each: (command line, files its run folder holds).
COMMANDS = [
    (
        ["search", "--config", "quick", "--set", "epochs=1", "--set", "subset=64", "--set", "batch_size=16"],
        ["config.yaml", "genotype.json", "checkpoint.pt", "metrics.jsonl"],
    ),
    (
        ["search", "--config", "nb201-quick", "--set", "epochs=1", "--set", "subset=64", "--set", "batch_size=16"],
        ["config.yaml", "genotype.json", "checkpoint.pt", "metrics.jsonl"],
    ),
]
FAST = ["--set", "plot=false", "--no-progress"]  # pictures are drawn from the run folder later, if wanted


def write_fashion_mnist(folder: Path, count=80) -> None:
    """Fashion-MNIST's four IDX files (28 x 28 random images, ten classes) under their official names."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", count), ("t10k", count // 4)):
        for kind, array in (("images", rng.integers(0, 256, (n, 28, 28))), ("labels", np.arange(n) % 10)):
            header = bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
            dims = "idx3" if kind == "images" else "idx1"
            with gzip.open(folder / f"{prefix}-{kind}-{dims}-ubyte.gz", "wb") as f:
                f.write(header + array.astype(np.uint8).tobytes())


def write_cifar10(folder: Path, per_batch=16) -> None:
    """CIFAR-10's official python layout: cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": (np.arange(per_batch) % 10).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
        }
        (batches / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (batches / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240, **kwargs)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the venv's bin folder, the venv) with the wheel built from this checkout installed into it."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"  # built from a copy: pip builds in place and would leave build/ in the checkout
    shutil.copytree(ROOT / "dartsnas", source / "dartsnas", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(source)])
    (wheel,) = (tmp / "dist").glob("dartsnas-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # torch, numpy, yaml ... from this environment, after the venv's own packages (so the wheel's dartsnas
    # comes first); the path line does not run this environment's .pth files, so its editable dartsnas stays out.
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "borrowed.pth").write_text("".join(f"{p}\n" for p in ours))
    run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    return venv / "bin", venv


@pytest.mark.slow
def test_the_wheel_runs_the_readmes_searches_in_an_empty_folder(installed, tmp_path):
    bin_dir, venv = installed
    data = tmp_path / "data"
    write_fashion_mnist(data / "fashion_mnist")
    write_cifar10(data / "cifar10")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DARTSNAS_", "VIRTUAL_ENV"))}
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "DARTSNAS_DATA": str(data),
        "DARTSNAS_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    where = run(["python", "-c", "import dartsnas; print(dartsnas.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), f"dartsnas imported from {where}, not the installed wheel"

    for argv, files in COMMANDS:
        result = run([str(bin_dir / "dartsnas"), *argv, *FAST], cwd=work, env=env)
        assert "downloading" not in result.stderr  # found under DARTSNAS_DATA, though nb201-quick says download
        name = argv[argv.index("--config") + 1]
        (run_dir,) = (work / "runs").glob(f"{name}-*")
        for file in files:
            assert (run_dir / file).is_file(), f"{' '.join(argv)}: no {file} in {run_dir}: {result.stderr[-2000:]}"
    assert sorted(p.name for p in work.iterdir()) == ["runs"]  # nothing else written where the user stands
