"""Export of a trained network (torch.export, ONNX, safetensors): each file runs and matches the eager model."""

import json
import zipfile

import pytest
import torch

from dartsnas.conv import export as export_module
from dartsnas.cli import main
from dartsnas.conv.export import export_run, load_trained
from dartsnas.conv.network import count_parameters

pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow  # every test exports the network that one CLI training leaves

TINY = [
    "dataset=digits",
    "init_channels=8",
    "layers=3",
    "batch_size=16",
    "lr=0.05",
    "cutout=false",
    "epochs=1",
    "progress=false",
    "plot=false",
    "device=cpu",
]


def _train(root, *extra):
    args = ["train", "DARTS_V2", "--out", str(root), "--name", "run"]
    for item in TINY + list(extra):
        args += ["--set", item]
    assert main(args) == 0
    (run_dir,) = root.iterdir()
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("trained"), "valid_portion=0.2")


def _inputs(n=5):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(7))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.export.load: torch's own deprecation notice
def test_torch_export_program_matches_eager_at_any_batch_size(run_dir):
    (report,) = export_run(run_dir, ["pt2"])
    assert report["max_abs_diff"] < 1e-5
    program = torch.export.load(run_dir / "export" / "model.pt2").module()
    model, record = load_trained(run_dir)
    for n in (1, 5):
        torch.testing.assert_close(program(_inputs(n)), model(_inputs(n)), rtol=1e-5, atol=1e-5)
    with zipfile.ZipFile(run_dir / "export" / "model.pt2") as archive:  # network.json rides along
        (name,) = [n for n in archive.namelist() if n.endswith("network.json")]
        assert json.loads(archive.read(name)) == record
    assert record["in_channels"] == 1 and record["num_classes"] == 10 and len(record["mean"]) == 1


def test_safetensors_weights_rebuild_the_network(run_dir):
    safetensors = pytest.importorskip("safetensors.torch")
    (report,) = export_run(run_dir, ["safetensors"])
    assert report["max_abs_diff"] == 0.0
    weights = safetensors.load_file(run_dir / "export" / "model.safetensors")
    assert not any(k.startswith("auxiliary") for k in weights)
    model, _ = load_trained(run_dir)
    assert sum(v.numel() for k, v in weights.items() if k in dict(model.named_parameters())) == count_parameters(model)
    with open(run_dir / "export" / "model.safetensors", "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert "sep_conv_3x3" in header["__metadata__"]["genotype"]


def test_onnx_model_matches_eager_in_onnxruntime(run_dir):
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name)
    import onnxruntime

    (report,) = export_run(run_dir, ["onnx"])
    assert report["max_abs_diff"] < 1e-4
    session = onnxruntime.InferenceSession(str(run_dir / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": _inputs(4).numpy()})
    model, _ = load_trained(run_dir)
    torch.testing.assert_close(torch.from_numpy(got), model(_inputs(4)).detach(), rtol=1e-4, atol=1e-4)


def test_export_command_reports_each_format_and_best_weights(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "pt2", "--best"]) == 0
    out = capsys.readouterr().out
    assert "model.pt2" in out and "max |logit difference| against eager: 0" in out


def test_an_export_that_disagrees_with_eager_is_an_error(run_dir, monkeypatch, capsys):
    real = export_module._EXPORTERS["pt2"]

    def off_by_a_little(*args):
        path, got = real(*args)
        return path, got + 1e-2

    monkeypatch.setitem(export_module._EXPORTERS, "pt2", off_by_a_little)
    assert main(["export", str(run_dir), "--format", "pt2"]) == 2
    assert "disagrees with the eager model" in capsys.readouterr().err


def test_export_user_errors(tmp_path, run_dir, monkeypatch, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "network.json" in capsys.readouterr().err
    no_valid = _train(tmp_path, "valid_portion=0")
    assert main(["export", str(no_valid), "--best"]) == 2
    assert "drop --best" in capsys.readouterr().err
    monkeypatch.setattr(export_module, "available", lambda fmt: fmt == "pt2")
    assert main(["export", str(run_dir), "--format", "onnx"]) == 2
    assert "pip install 'dartsnas[onnx]'" in capsys.readouterr().err
