"""Export a trained network for deployment: a torch.export program (.pt2), ONNX, and safetensors weights.

Every export is the eval-mode network (no auxiliary head, no drop path) for inputs normalised with the
run's mean and std (RUN/network.json), batch size free. Each file is checked against the eager model
on random inputs of another batch size than the one it was traced with, and the largest absolute
difference of the logits is reported; beyond tolerance the export is an error.

    RUN/export/model.pt2           torch.export.load(...).module()(x); network.json inside (extra_files)
    RUN/export/model.onnx          onnxruntime, opset of torch.onnx (needs the onnx extra)
    RUN/export/model.safetensors   the weights, auxiliary head left out; network.json and genotype in metadata
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from pathlib import Path

import torch

from ..core.genotype import load_genotype
from .nb201.genotype import CellGenotype, is_nb201_text
from .network import build_network
from .ops import OPS
from ..core.checkpoints import RunError, load_checkpoint

FORMATS = {"pt2": None, "onnx": ("onnx", "onnxscript", "onnxruntime"), "safetensors": ("safetensors",)}
EXTRA = {"onnx": "onnx", "safetensors": "safetensors"}
ATOL, RTOL = 1e-4, 1e-4


class ExportError(RunError):
    """An export that cannot be made or does not match the eager model; says what to do."""


def load_trained(run_dir: Path, best: bool = False) -> tuple[torch.nn.Module, dict]:
    """The run's network in eval mode with its final (or best) weights, and its network.json record."""
    run_dir = Path(run_dir)
    record_path = run_dir / "network.json"
    if not record_path.exists():
        raise RunError(f"{run_dir} has no network.json: give the folder of a training run (dartsnas train)")
    record = json.loads(record_path.read_text())
    source = run_dir / ("best.pt" if best else "checkpoint.pt")
    if best and not source.exists():
        raise RunError(
            f"{run_dir} has no best.pt: the run held out no validation split (valid_portion: 0); "
            "export the final weights (drop --best)"
        )
    state = load_checkpoint(source).get("model")
    if not isinstance(state, dict):  # a readable file of tensors, but not a training run's weights
        raise RunError(
            f"checkpoint {source} holds no network weights (no 'model' state); give the folder of a "
            "training run (dartsnas train)"
        )
    if not (run_dir / "genotype.json").is_file():
        raise RunError(f"{run_dir} has no genotype.json: give the folder of a training run (dartsnas train)")
    model = _network(record, (run_dir / "genotype.json").read_text())
    weights = {k: v for k, v in state.items() if not k.startswith("auxiliary_head.")}
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError) as err:  # keys or shapes of another network
        first = str(err).strip().splitlines()[0][:200]
        raise RunError(
            f"checkpoint {source} does not fit the network of {record_path} and genotype.json ({first}); "
            "were they edited after training? Put them back"
        ) from None
    return model.eval(), record


def _network(record: dict, genotype_text: str) -> torch.nn.Module:
    """The deployed network: the run's layout and sizes, without the auxiliary head."""
    genotype = (
        CellGenotype.parse(genotype_text)
        if is_nb201_text(genotype_text)  # a NAS-Bench-201 cell
        else load_genotype(genotype_text, known_ops=OPS)
    )
    return build_network(
        record["net"],
        genotype,
        num_classes=record["num_classes"],
        in_channels=record["in_channels"],
        init_channels=record["init_channels"],
        layers=record["layers"],
        auxiliary=False,
    )


def available(fmt: str) -> bool:
    needs = FORMATS[fmt] or ()
    return all(importlib.util.find_spec(name) is not None for name in needs)


def export_run(run_dir: Path, formats: list[str] | None = None, best: bool = False) -> list[dict]:
    """Write the asked formats (default: every installed one) into RUN/export; check each against eager."""
    unknown = [f for f in formats or [] if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown export format(s) {unknown}; available: {', '.join(FORMATS)}")
    for fmt in formats or []:
        if not available(fmt):
            raise ExportError(f"{fmt} export needs {', '.join(FORMATS[fmt])}: pip install 'dartsnas[{EXTRA[fmt]}]'")
    chosen = formats or [f for f in FORMATS if available(f)]
    model, record = load_trained(run_dir, best)
    out = Path(run_dir) / "export"
    out.mkdir(exist_ok=True)
    shape = (record["in_channels"], *record["input_size"])
    traced = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    checked = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))  # another batch size
    with torch.no_grad():
        expected = model(checked)
    meta = {"network.json": json.dumps(record), "genotype": (Path(run_dir) / "genotype.json").read_text()}
    reports = []
    for fmt in chosen:
        path, got = _EXPORTERS[fmt](model, traced, checked, out, meta)
        diff = (got - expected).abs().max().item()
        if not torch.allclose(got, expected, rtol=RTOL, atol=ATOL):
            raise ExportError(
                f"{path} disagrees with the eager model: max |difference| of the logits {diff:.3g} "
                f"(tolerance {ATOL} + {RTOL} * |logit|); please report this with the run folder"
            )
        reports.append({"format": fmt, "path": str(path), "max_abs_diff": diff})
    return reports


def _batch_free():
    return ({0: torch.export.Dim("batch", min=1, max=4096)},)


def _pt2(model, traced, checked, out, meta):
    path = out / "model.pt2"
    with warnings.catch_warnings():  # torch's own deprecation notice while pickling its tree specs
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.export.export(model, (traced,), dynamic_shapes=_batch_free())
        torch.export.save(program, path, extra_files={"network.json": meta["network.json"]})
        loaded = torch.export.load(path)  # check the file, not the program still in memory
    with torch.no_grad():
        return path, loaded.module()(checked)


def _onnx(model, traced, checked, out, meta):
    import onnxruntime

    path = out / "model.onnx"
    quiet = logging.getLogger("torch.onnx")  # it lists every torchvision op it skips when torchvision is absent
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # torch's own deprecation notice while it exports through torch.export
            warnings.simplefilter("ignore", FutureWarning)
            # One self-contained file: the weights inside (DARTS networks are far below ONNX's 2 GB limit).
            torch.onnx.export(
                model,
                (traced,),
                path,
                dynamo=True,
                dynamic_shapes=_batch_free(),
                external_data=False,
                input_names=["images"],
                output_names=["logits"],
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": checked.numpy()})
    return path, torch.from_numpy(got)


def _safetensors(model, traced, checked, out, meta):
    from safetensors.torch import load_file, save_file

    path = out / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    fresh = _network(json.loads(meta["network.json"]), meta["genotype"])  # rebuilt from the file's own metadata
    fresh.load_state_dict(load_file(str(path)))
    with torch.no_grad():
        return path, fresh.eval()(checked)


_EXPORTERS = {"pt2": _pt2, "onnx": _onnx, "safetensors": _safetensors}
