"""Faults inside one process: non-finite values (stop and skip policies), a full or unwritable disk, a damaged
latest checkpoint, running out of memory; the checkpoint rotation, checkpoints by time, `--resume auto`, and
the run folder's log keeping the error of a run that failed."""

import errno
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from dartsnas.cli import EXIT_DIVERGED, EXIT_OUT_OF_MEMORY, main
from dartsnas.conv import search as search_module
from dartsnas.core import checkpoints as checkpoints_module
from dartsnas.core import runs as runs_module
from dartsnas.core.guard import DIVERGED_LOSS, Diverged, Guard

NAN = torch.tensor(float("nan"))


# -- the guard -----------------------------------------------------------------------------------


def test_the_stop_policy_names_the_first_bad_step_and_its_phase_when_checked():
    guard = Guard(torch.device("cpu"))
    guard.reset(epoch=2)
    for step in range(6):
        guard.step = step
        assert guard.watch(1, (torch.tensor(1.0),), (torch.tensor(3.0),))  # never refuses: it only records
        assert guard.watch(0, (torch.tensor(1.0),), [torch.ones(3)])
    guard.step = 6
    guard.watch(0, (torch.tensor(1.0),), [torch.tensor([1.0, math.inf])])  # an alpha gradient at inf
    guard.step = 7
    guard.watch(1, (NAN,), ())
    with pytest.raises(Diverged, match="architecture step at step 7 of epoch 3.*lower arch_lr"):
        guard.check()


@pytest.mark.parametrize(
    "loss, others, bad",
    [
        (1.0, [], False),
        (DIVERGED_LOSS * 2, [], True),
        (NAN, [], True),
        (1.0, [torch.tensor([-math.inf])], True),
        (-5.0, [], False),
    ],
)
def test_bad_means_not_finite_or_exploded(loss, others, bad):
    assert bool(Guard.bad((torch.as_tensor(loss),), tuple(others))) == bad


def test_the_skip_policy_refuses_bad_steps_and_stops_after_patience_in_a_row():
    guard = Guard(torch.device("cpu"), "skip", patience=3)
    good, nan = (torch.tensor(1.0),), (NAN,)
    assert [guard.watch(1, v) for v in (nan, nan, good, nan, nan)] == [False, False, True, False, False]
    assert guard.skipped == 4
    with pytest.raises(Diverged, match="3 bad steps in a row"):
        guard.watch(1, nan)


# -- non-finite values in a real search --------------------------------------------------------


def _search(tmp_path, tiny_search, *extra, name="run"):
    args = ["search", "--out", str(tmp_path), "--name", name]
    for item in tiny_search + ["plot=false"] + list(extra):
        args += ["--set", item]
    return main(args)


def _run_dir(tmp_path, name="run"):
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith(name + "-")]
    return run_dir


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_diverging_search_exits_4_without_a_genotype(tmp_path, tiny_search, capsys):
    assert _search(tmp_path, tiny_search, "epochs=2", "lr=1e6") == EXIT_DIVERGED
    err = capsys.readouterr().err
    assert "diverged" in err and "Likely fix" in err and "Traceback" not in err
    run_dir = _run_dir(tmp_path)
    assert not (run_dir / "genotype.json").exists()
    assert "diverged" in (run_dir / "log.txt").read_text()  # the error is in the run's own log too


@pytest.mark.slow
def test_nan_in_the_second_epoch_stops_and_keeps_the_first_epochs_checkpoint(
    tmp_path, tiny_search, monkeypatch, capsys
):
    real_save, saved = runs_module.save_checkpoint, {}

    def save(state, path, *rest):
        real_save(state, path, *rest)
        saved["digest"] = _digest(path)

    real_prepare = search_module.Searcher.prepare_inputs
    monkeypatch.setattr(runs_module, "save_checkpoint", save)
    monkeypatch.setattr(
        search_module.Searcher,
        "prepare_inputs",  # from the second epoch on, NaN images
        lambda self, x: real_prepare(self, x) * (NAN if self.epoch >= 1 else 1),
    )
    assert _search(tmp_path, tiny_search, "epochs=3") == EXIT_DIVERGED
    assert "architecture step at step 1 of epoch 2" in capsys.readouterr().err
    run_dir = _run_dir(tmp_path)
    assert _digest(run_dir / "checkpoint.pt") == saved["digest"]  # the last good one, untouched
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (run_dir / "genotype.json").exists()


@pytest.mark.slow
def test_the_skip_policy_skips_a_bad_step_and_finishes(tmp_path, tiny_search, monkeypatch, caplog):
    calls = {"n": 0}
    real_prepare = search_module.Searcher.prepare_inputs

    def prepare(self, x):  # the fourth batch of the run (an architecture batch) is all NaN
        calls["n"] += 1
        return real_prepare(self, x) * (NAN if calls["n"] == 4 else 1)

    monkeypatch.setattr(search_module.Searcher, "prepare_inputs", prepare)
    assert _search(tmp_path, tiny_search, "epochs=1", "nonfinite=skip") == 0
    run_dir = _run_dir(tmp_path)
    (metrics,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert metrics["skipped_steps"] == 1
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# -- the disk ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, words",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    ],
)
def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(
    tmp_path, tiny_search, monkeypatch, capsys, fault, words
):
    real_open, opened, kept = open, {"n": 0}, {}

    def failing_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("checkpoint.pt.tmp"):
            opened["n"] += 1
            if opened["n"] == 2:  # the second epoch's checkpoint cannot be written
                kept["digest"] = _digest(Path(str(path)[:-4]))
                raise fault
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoints_module, "open", failing_open, raising=False)
    assert _search(tmp_path, tiny_search, "epochs=3") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last.startswith("dartsnas search: error: cannot write the checkpoint") and words in last and "is intact" in last
    )
    run_dir = _run_dir(tmp_path)
    assert _digest(run_dir / "checkpoint.pt") == kept["digest"]
    assert not list(run_dir.glob("*.tmp"))
    monkeypatch.undo()
    assert main(["search", "--resume", str(run_dir)]) == 0  # once the disk is fine again


# -- rotation, fallback, checkpoints by time -----------------------------------------------------


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, tiny_search, monkeypatch, capsys):
    assert _search(tmp_path, tiny_search, "epochs=3", "seed=5", name="whole") == 0
    real_save, calls = runs_module.save_checkpoint, {"n": 0}

    def save_then_stop(state, path, *rest):
        real_save(state, path, *rest)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_stop)
    assert _search(tmp_path, tiny_search, "epochs=3", "seed=5", name="torn") == 130
    monkeypatch.undo()
    run_dir = _run_dir(tmp_path, "torn")
    assert sorted(p.name for p in run_dir.glob("checkpoint*")) == ["checkpoint.1.pt", "checkpoint.pt"]
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 3])  # cut short
    capsys.readouterr()
    assert main(["search", "--resume", str(run_dir)]) == 0
    assert "resuming from the previous checkpoint" in capsys.readouterr().err
    whole = torch.load(_run_dir(tmp_path, "whole") / "checkpoint.pt", weights_only=True)
    again = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    for key, value in whole["model"].items():
        assert torch.equal(value, again["model"][key]), key


@pytest.mark.slow
def test_rotation_keeps_the_last_n_and_checkpoints_by_time_hold_the_position(tmp_path, tiny_search, monkeypatch):
    real_save, positions = runs_module.save_checkpoint, []

    def save(state, path, *rest):
        positions.append((state["epoch"], state["position"] and state["position"]["step"]))
        real_save(state, path, *rest)

    monkeypatch.setattr(runs_module, "save_checkpoint", save)
    # a checkpoint after every step: the minutes have always passed (5 steps an epoch)
    assert _search(tmp_path, tiny_search, "epochs=2", "keep_checkpoints=3", "checkpoint_minutes=1e-9") == 0
    assert positions == [(0, 1), (0, 2), (0, 3), (0, 4), (1, None), (1, 1), (1, 2), (1, 3), (1, 4), (2, None)]
    run_dir = _run_dir(tmp_path)
    assert sorted(p.name for p in run_dir.glob("checkpoint*")) == [
        "checkpoint.1.pt",
        "checkpoint.2.pt",
        "checkpoint.pt",
    ]
    older = [torch.load(run_dir / n, weights_only=True) for n in ("checkpoint.1.pt", "checkpoint.2.pt")]
    assert [(s["epoch"], s["position"]["step"]) for s in older] == [(1, 4), (1, 3)]


def test_a_checkpoint_of_another_version_or_layout_is_refused_clearly(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "model": {}}, path)
    with pytest.raises(checkpoints_module.RunError, match="another dartsnas version"):
        checkpoints_module.latest_state(tmp_path)
    torch.save({"model": {}}, path)  # before formats were numbered: readable (derive, export), not resumable
    assert checkpoints_module.latest_state(tmp_path, resume=False)[0] == {"model": {}}
    with pytest.raises(checkpoints_module.RunError, match="format 1, this one resumes 2"):
        checkpoints_module.latest_state(tmp_path)
    torch.save({"format": 3, "model": {}}, path)  # a newer version's: neither
    with pytest.raises(checkpoints_module.RunError, match="format 3, this one reads 2 and earlier"):
        checkpoints_module.latest_state(tmp_path, resume=False)
    torch.save(torch.zeros(3), path)
    with pytest.raises(checkpoints_module.RunError, match="holds a Tensor"):
        checkpoints_module.load_checkpoint(path)


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_the_edited_config_says_so(tmp_path, tiny_search, capsys):
    assert _search(tmp_path, tiny_search, "epochs=1") == 0
    run_dir = _run_dir(tmp_path)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("layers: 3", "layers: 4"))
    capsys.readouterr()
    assert main(["search", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "does not fit the run its config.yaml describes" in err and "edited" in err
    assert len(err.strip().splitlines()) == 1


# -- --resume auto -----------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_auto_starts_then_resumes_the_same_run_and_refuses_a_changed_config(
    tmp_path, tiny_search, monkeypatch, capsys
):
    args = ["search", "--out", str(tmp_path), "--name", "job", "--resume", "auto"]
    for item in tiny_search + ["plot=false", "epochs=2"]:
        args += ["--set", item]
    real_save = runs_module.save_checkpoint

    def save_then_stop(state, path, *rest):
        real_save(state, path, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_stop)
    assert main(args) == 130
    run_dir = _run_dir(tmp_path, "job")
    assert f"--resume {run_dir}" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(args) == 0  # the same command line, after the stop
    assert [p.name for p in tmp_path.iterdir()] == [run_dir.name]
    assert f"resuming {run_dir}" in capsys.readouterr().err
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(args[:-2] + ["--set", "epochs=3"]) == 2
    assert "config differs in epochs" in capsys.readouterr().err


def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys):
    assert main(["search", "--resume", str(tmp_path), "--name", "other"]) == 2
    assert "drop --name" in capsys.readouterr().err


# -- memory ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_out_of_memory_in_training_exits_3_with_the_peak_and_the_remedies(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    from dartsnas.conv import train as train_module

    def boom(self, progress=None, steps=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_module.Trainer, "train_epoch", boom)
    args = [
        "train",
        "DARTS_V2",
        "--config",
        "quick",
        "--out",
        str(tmp_path),
        "--set",
        "dataset=digits",
        "--set",
        "subset=64",
        "--set",
        "plot=false",
        "--set",
        "cutout=false",
    ]
    assert main(args) == EXIT_OUT_OF_MEMORY
    err = capsys.readouterr().err
    assert "out of memory (peak " in err and "batch_size" in err and "--amp" in err and "Traceback" not in err


# -- a run that failed: no folder before its first checkpoint, the error in its log after -----------


def _refused(capsys, command="search") -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"dartsnas {command}: error: ") and "was removed)" in last
    return last


@pytest.mark.parametrize(
    "sets",
    [
        ["dataset=imagefolder", "data_dir={tmp}/missing"],  # data_dir that is not there
        ["dataset=cifar10"],  # in none of the places looked
        ["dataset=mnist", "download=true"],  # no network (a refused urlopen)
        ["train_portion=0.99", "subset=20"],  # a config error found once the data is read
    ],
)
def test_a_search_that_fails_before_its_first_step_leaves_no_run_folder(sets, tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    import urllib.error

    from dartsnas.data import locate

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DARTSNAS_DATA", str(tmp_path / "data"))
    monkeypatch.setitem(locate.SYSTEM_DIRS, "mnist", tmp_path / "system")
    out = tmp_path / "runs"
    args = ["search", "--out", str(out), "--name", "run", "--set", "dataset=digits", "--set", "progress=false"]
    for item in sets:
        args += ["--set", item.format(tmp=tmp_path)]
    assert main(args) == 2
    last = _refused(capsys)
    assert list(out.iterdir()) == []
    if "download=true" in sets:
        assert "could not download" in last and str(tmp_path / "data" / "mnist") in last


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "DARTS_V2", "--config", "quick", "--set", "dataset=cifar10"],
        ["search", "--task", "ptb", "--config", "quick"],
        ["train", "DARTS_RNN", "--task", "ptb", "--config", "quick"],
    ],
)
def test_trainings_and_recurrent_runs_without_their_data_leave_no_run_folder(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DARTSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DARTSNAS_DATA", raising=False)
    out = tmp_path / "runs"
    assert main(argv + ["--out", str(out), "--set", "progress=false"]) == 2
    assert "not found" in _refused(capsys, argv[0])
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_a_run_that_fails_after_its_first_checkpoint_keeps_its_folder_and_the_error_in_its_log(
    tmp_path, tiny_search, monkeypatch, capsys
):
    from dartsnas.core.config import ConfigError

    real, calls = search_module.Searcher.train_epoch, []

    def second_epoch_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ConfigError("a config error found in epoch 2")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(search_module.Searcher, "train_epoch", second_epoch_fails)
    assert _search(tmp_path, tiny_search, "epochs=2") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("a config error found in epoch 2")  # nothing was removed
    run_dir = _run_dir(tmp_path)
    log = (run_dir / "log.txt").read_text()
    assert last in log and "(exit status 2)" in log
    # A resumed run is never removed, whatever it fails of.
    monkeypatch.setattr(
        search_module.Searcher, "train_epoch", lambda *a, **k: (_ for _ in ()).throw(ConfigError("again"))
    )
    assert main(["search", "--resume", str(run_dir)]) == 2
    assert (run_dir / "checkpoint.pt").is_file() and "again" in (run_dir / "log.txt").read_text()


# -- reproducibility ---------------------------------------------------------------------------


def test_deterministic_flag_reaches_the_config_and_switches_torch_to_deterministic_kernels(tmp_path, monkeypatch):
    from dartsnas.cli import _overrides, build_parser
    from dartsnas.conv.config import load_config
    from dartsnas.core.runs import start_run

    args = build_parser().parse_args(["search", "--deterministic"])
    config = load_config(None, _overrides(args, recurrent=False))
    assert config.deterministic
    switched = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on: switched.append(on))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    start_run(tmp_path, config, torch.device("cpu"), resume=False)
    assert switched == [True] and __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert not torch.backends.cudnn.benchmark
