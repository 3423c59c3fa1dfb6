"""Files are data, never code: a checkpoint, CIFAR batch, cache or config carrying a pickled object whose
unpickling would run something is refused before it runs (the marker file it would create never appears), and
a damaged or foreign checkpoint is one clear error line with exit status 2. An AST scan keeps every loader in
dartsnas/ on the safe path (no eval, exec, pickle.load, yaml.load, or torch.load without weights_only=True)."""

import ast
import hashlib
import io
import json
import os
import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dartsnas.cli import main

PACKAGE = Path(__file__).resolve().parents[2] / "dartsnas"
TINY = [
    "dataset=digits",
    "subset=64",
    "batch_size=16",
    "init_channels=4",
    "layers=3",
    "epochs=1",
    "progress=false",
    "plot=false",
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DARTSNAS_DATA", raising=False)


class Touch:
    """Unpickling it creates `marker`: the proof that a loader ran what a file carried."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


class System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def saved(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def checkpoints(marker: Path) -> dict:
    """name -> bytes of a checkpoint.pt no dartsnas command may use (and must say so in one line)."""
    real = saved({"format": 2, "model": {"w": torch.zeros(3, 3)}, "epoch": 1})
    return {
        "torch-save-with-touch": saved({"format": 2, "model": {"w": torch.zeros(1)}, "x": Touch(marker)}),
        "torch-save-with-system": saved({"format": 2, "model": System(marker)}),
        "raw-pickle-touch": pickle.dumps({"model": Touch(marker)}),
        "raw-pickle-system": pickle.dumps(System(marker), protocol=2),
        "truncated": real[: len(real) // 2],
        "zero-bytes": b"",
        "random-bytes": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"this is a checkpoint, honest\n",
        "plain-tensor": saved(torch.zeros(3)),
        "list": saved([torch.zeros(1), 2]),
        "model-not-a-dict": saved({"format": 2, "model": 5}),
        "no-model": saved({"format": 2, "epoch": 1}),
        "other-version": saved({"format": 1, "model": {}}),
    }


@pytest.fixture(scope="module")
def run_template(tmp_path_factory):
    """A search run's files, and a training run's, without their checkpoints (made, not searched: fast)."""
    pytest.importorskip("sklearn")
    from dartsnas.conv.config import load_config
    from dartsnas.core.config import save_config

    run = tmp_path_factory.mktemp("template")
    save_config(load_config(None, TINY), run / "config.yaml")
    (run / "alphas.jsonl").write_text("{}\n")
    (run / "network.json").write_text(
        json.dumps({"net": "cifar10", "num_classes": 10, "in_channels": 1, "init_channels": 4, "layers": 3})
    )
    (run / "genotype.json").write_text(
        json.dumps(
            {
                "normal": [["skip_connect", 0], ["skip_connect", 1]],
                "normal_concat": [2],
                "reduce": [["skip_connect", 0], ["skip_connect", 1]],
                "reduce_concat": [2],
            }
        )
    )
    return run


def snapshot(folder: Path) -> dict:
    """Every file but the log (which a failed command may append its error to): digest and mtime."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "log.txt"
    }


def make_run(template: Path, folder: Path, name: str, blob: bytes) -> Path:
    folder.mkdir()
    for f in template.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / name).write_bytes(blob)
    return folder


COMMANDS = {
    "search-resume": (lambda run: ["search", "--resume", str(run)], "checkpoint.pt"),
    "derive": (lambda run: ["derive", str(run), "--rule", "argmax", "--device", "cpu"], "checkpoint.pt"),
    "export": (lambda run: ["export", str(run), "--format", "pt2"], "checkpoint.pt"),
    "export-best": (lambda run: ["export", str(run), "--format", "pt2", "--best"], "best.pt"),
}


def cases():
    for command in COMMANDS:
        for name in checkpoints(Path("marker")):
            yield pytest.param(command, name, id=f"{command}-{name}")


@pytest.mark.parametrize("command,name", list(cases()))
def test_bad_checkpoint_is_refused_unrun(command, name, run_template, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    argv, file = COMMANDS[command]
    run = make_run(run_template, tmp_path / "run", file, checkpoints(marker)[name])
    before = snapshot(run)
    status = main(argv(run))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert not marker.exists(), "the file's pickled code ran"
    assert status == 2, (status, err[-800:])
    assert lines[-1].startswith(f"dartsnas {argv(run)[0]}: error: ") and "Traceback" not in err, err[-800:]
    assert len([line for line in lines if "error" in line]) == 1, err[-800:]
    assert snapshot(run) == before  # the checkpoint, config and records are as they were; nothing added


def test_refusal_of_a_pickled_object_gives_no_unsafe_advice(run_template, tmp_path, capsys):
    run = make_run(
        run_template, tmp_path / "run", "checkpoint.pt", checkpoints(tmp_path / "M")["torch-save-with-touch"]
    )
    assert main(["export", str(run), "--format", "pt2"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "False" not in err


def test_a_config_yaml_carrying_python_objects_is_refused_unrun(run_template, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    run = make_run(
        run_template, tmp_path / "run", "config.yaml", f"!!python/object/apply:os.system ['touch {marker}']\n".encode()
    )
    status = main(["search", "--resume", str(run)])
    err = capsys.readouterr().err
    assert not marker.exists() and status == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("dartsnas search: error: ")


@pytest.mark.parametrize("payload", ["touch", "system"])
@pytest.mark.parametrize("file", ["data_batch_1", "batches.meta", "test_batch"])
def test_a_cifar_batch_carrying_code_is_refused_unrun(payload, file, tmp_path):
    from dartsnas.data.images import DataError, load_images

    marker = tmp_path / "MARKER"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
    evil = Touch(marker) if payload == "touch" else System(marker)
    (folder / file).write_bytes(pickle.dumps({b"data": evil, b"labels": [0], b"label_names": [evil]}))
    with pytest.raises(DataError, match=f"{file}.*refused unrun"):
        load_images("cifar10", "test" if file == "test_batch" else "train", root=folder)
    assert not marker.exists()


def test_a_poisoned_image_cache_is_ignored_unrun(tmp_path):
    from PIL import Image

    from dartsnas.data.images import load_images

    marker = tmp_path / "MARKER"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "images" / split / c).mkdir(parents=True)
            Image.new("RGB", (4, 4), (c == "a") * 255).save(tmp_path / "images" / split / c / "0.png")
    first = load_images("imagefolder", "train", root=tmp_path / "images")
    (cache,) = (tmp_path / "cache" / "imagefolder").glob("*-train.pt")
    cache.write_bytes(saved({"images": Touch(marker), "labels": [], "classes": []}))
    with pytest.warns(UserWarning, match="ignoring unreadable cache"):
        again = load_images("imagefolder", "train", root=tmp_path / "images")
    assert not marker.exists() and torch.equal(again.images, first.images)


# ------------------------------------------------------------------------------------------------ AST scan

UNSAFE_CALLS = {  # module.function -> why it is refused
    "pickle.load": "runs code a file carries",
    "pickle.loads": "runs code a file carries",
    "pickle.Unpickler": "runs code a file carries, unless find_class is restricted",
    "marshal.load": "loads code objects",
    "marshal.loads": "loads code objects",
    "yaml.load": "builds arbitrary objects; use yaml.safe_load",
    "yaml.unsafe_load": "builds arbitrary objects",
    "yaml.full_load": "builds arbitrary objects",
    "shelve.open": "unpickles",
    "dill.load": "unpickles",
    "torch.jit.load": "runs TorchScript code",
    "os.system": "runs a shell",
    "os.popen": "runs a shell",
}


def dotted(node) -> str:
    """'torch.jit.load' for the expression torch.jit.load; '' for anything not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def keyword_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            where = f"line {node.lineno}: {ast.unparse(node)[:80]}"
            if isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec", "compile", "__import__"):
                found.append(f"{where} ({node.func.id} runs text as code)")
            elif name in UNSAFE_CALLS:
                found.append(f"{where} ({UNSAFE_CALLS[name]})")
            elif name == "torch.load" and not keyword_true(node, "weights_only"):
                found.append(f"{where} (torch.load without weights_only=True unpickles code)")
            elif name in ("np.load", "numpy.load") and keyword_true(node, "allow_pickle"):
                found.append(f"{where} (allow_pickle=True unpickles code)")
            elif keyword_true(node, "shell"):
                found.append(f"{where} (shell=True runs a shell)")
        elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "marshal", "shelve", "dill"):
            found.append(f"line {node.lineno}: from {node.module} import ... (import the module, so calls are seen)")
        elif isinstance(node, ast.ClassDef) and any(dotted(b) == "pickle.Unpickler" for b in node.bases):
            if not any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body):
                found.append(
                    f"line {node.lineno}: class {node.name}(pickle.Unpickler) without a restricting find_class"
                )
    return found


def test_no_unsafe_loading_anywhere_in_the_package():
    problems = {
        str(path.relative_to(PACKAGE.parent)): unsafe(ast.parse(path.read_text(), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    problems = {path: found for path, found in problems.items() if found}
    assert not problems, json.dumps(problems, indent=1)


@pytest.mark.parametrize(
    "source",
    [
        "eval(text)",
        "exec(text)",
        "compile(text, 'f', 'eval')",
        "__import__('os')",
        "pickle.load(f)",
        "pickle.loads(b)",
        "pickle.Unpickler(f).load()",
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "torch.load(path)",
        "torch.load(path, weights_only=False)",
        "torch.load(path, map_location='cpu')",
        "np.load(path, allow_pickle=True)",
        "marshal.loads(b)",
        "torch.jit.load(path)",
        "os.system(cmd)",
        "subprocess.run(cmd, shell=True)",
        "from pickle import load",
        "class U(pickle.Unpickler):\n    pass",
    ],
)
def test_the_scan_finds_each_unsafe_form(source):
    assert unsafe(ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "torch.load(path, weights_only=True)",
        "yaml.safe_load(text)",
        "model.eval()",
        "re.compile('x')",
        "torch.compile(model)",
        "np.load(path)",
        "subprocess.run(['git', 'status'])",
        "class U(pickle.Unpickler):\n    def find_class(self, module, name):\n        raise ValueError",
    ],
)
def test_the_scan_lets_safe_forms_pass(source):
    assert not unsafe(ast.parse(source))


@pytest.mark.slow
def test_a_real_search_run_refuses_a_swapped_checkpoint(cli_search, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    run = cli_search(tmp_path / "runs", "epochs=1", "plot=false")
    (run / "checkpoint.pt").write_bytes(saved({"format": 2, "model": Touch(marker)}))
    capsys.readouterr()
    before = snapshot(run)
    for argv in (["search", "--resume", str(run)], ["derive", str(run), "--rule", "argmax", "--device", "cpu"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith(f"dartsnas {argv[0]}: error: ") and "Traceback" not in err
    assert not marker.exists() and snapshot(run) == before
