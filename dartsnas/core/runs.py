"""Run folders, and the epoch loop every run shares: every run leaves one folder that explains itself.

    RUN/config.yaml       the resolved config          RUN/env.json        versions, device, git commit
    RUN/metrics.jsonl     one line per epoch           RUN/alphas.jsonl    alphas and probs per epoch (0 = initial)
    RUN/genotypes.jsonl   derived genotype per epoch   RUN/genotype.json   the final genotype
    RUN/log.txt           the log                      RUN/checkpoint.pt   the latest state, for --resume
    RUN/plots/            pictures drawn from the files above

Checkpoints are written to a temporary file and renamed, so a killed run never leaves a torn one,
and are read with `weights_only=True`: a checkpoint is data, never code.

The four drivers (convolutional and recurrent search and training) differ in what an epoch does; how a run
starts, resumes, loops over epochs, logs its metrics, checkpoints and draws is `run_epochs`, written once.
"""

from __future__ import annotations

import contextlib

import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Protocol

import torch

from .device import peak_memory_gb
from .relax import discreteness


class RunError(RuntimeError):
    """A run folder that cannot be used (missing, not a run, corrupt checkpoint); says what to do."""


def new_run_dir(root: str | Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():  # two runs started in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_jsonl(path: Path, last_epoch: int) -> None:
    """Drop records past `last_epoch`: a run resumed from a checkpoint redoes the epochs after it."""
    if path.exists():
        kept = [r for r in read_jsonl(path) if r.get("epoch", 0) <= last_epoch]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(state: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    if not path.exists():
        raise RunError(f"no checkpoint at {path}: the run has not finished an epoch yet; start it again instead")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a truncated or foreign file: say so instead of a deep traceback
        raise RunError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); "
                       "it is damaged or not a dartsnas checkpoint") from None


def git_commit() -> str | None:
    """The commit of the dartsnas source, when it runs from a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device) -> dict:
    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(device),
        "git_commit": git_commit(),
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def setup_logging(run_dir: Path) -> logging.Logger:
    log = logging.getLogger("dartsnas")
    log.setLevel(logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    file_handler = logging.FileHandler(run_dir / "log.txt")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(file_handler)
    log.addHandler(console)
    log.propagate = False
    return log


# -- what every run loop (search, training; convolutional, recurrent) does the same way ------------

def start_run(run_dir: Path, config, device: torch.device, resume: bool, genotype=None) -> logging.Logger:
    """Log into RUN/log.txt; a new run also writes config.yaml, env.json and (training) genotype.json."""
    log = setup_logging(run_dir)
    if getattr(config, "deterministic", False):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
    if not resume:
        import yaml

        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        if genotype is not None:
            genotype.save(run_dir / "genotype.json")
        (run_dir / "env.json").write_text(json.dumps(environment(device), indent=1) + "\n")
    return log


def resume_run(run_dir: Path, owner, device: torch.device, logs: tuple[str, ...]) -> None:
    """Load RUN/checkpoint.pt into `owner` and cut its per-epoch logs back to the checkpoint's epoch."""
    owner.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt", device))
    for name in logs:
        truncate_jsonl(run_dir / name, owner.epoch)
    logging.getLogger("dartsnas").info(f"resumed {run_dir} after epoch {owner.epoch}")


@contextlib.contextmanager
def progress_bar(config, total: int, epoch: int):
    """A progress bar over one epoch's steps (None when `config.progress` is off), closed on leaving."""
    if not config.progress:
        yield None
        return
    from tqdm import tqdm
    bar = tqdm(total=total, desc=f"epoch {epoch}/{config.epochs}", leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


class Driver(Protocol):
    """What `run_epochs` needs of a search or a training: its state (everything a checkpoint holds) and
    the parts of an epoch that differ from one kind of run to another."""

    config: object                 # has epochs, progress, plot
    device: torch.device
    epoch: int                     # epochs finished
    logs: tuple[str, ...]          # per-epoch .jsonl files of the run folder, cut back on resume

    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def begin(self, run_dir: Path) -> None: ...          # a new run's records before its first epoch
    def announce(self) -> None: ...                      # log what is about to run (new or resumed)
    def steps_per_epoch(self) -> int: ...
    def train_epoch(self, progress) -> dict: ...         # one epoch's steps; their metrics
    def end_epoch(self, run_dir: Path, metrics: dict) -> dict: ...  # evaluate, count the epoch, write its records
    def log_epoch(self, metrics: dict) -> None: ...
    def finish(self, run_dir: Path): ...                 # the run's result (genotype, test results)
    def pictures(self, run_dir: Path) -> list[Path]: ...


class SearchRecords:
    """What every search writes besides its metrics: alphas.jsonl (epoch 0 = the initial alphas, then one
    line after every epoch), genotypes.jsonl (the cell derived after every epoch) and genotype.json (the
    final cell, the hand-off to training). A mixin for search drivers that have `alphas_record()` and
    `genotype()`."""

    logs = ("metrics.jsonl", "alphas.jsonl", "genotypes.jsonl")

    def begin(self, run_dir: Path) -> None:
        append_jsonl(run_dir / "alphas.jsonl", self.alphas_record())

    def record_epoch(self, run_dir: Path) -> dict:
        """After an epoch (self.epoch counted already): its alphas and its derived cell; returns how far the
        mixture is from a discrete cell (core.relax.discreteness), for the epoch's metrics."""
        self.last_genotype = self.genotype()
        append_jsonl(run_dir / "alphas.jsonl", self.alphas_record())
        append_jsonl(run_dir / "genotypes.jsonl", {"epoch": self.epoch, "genotype": self.last_genotype.to_dict()})
        return discreteness(self.model.probs().values())

    def finish(self, run_dir: Path):
        genotype = self.genotype()
        genotype.save(run_dir / "genotype.json")
        logging.getLogger("dartsnas").info(f"final genotype: {genotype}")
        return genotype


def run_epochs(driver: Driver, run_dir: Path, resume: bool):
    """Start or resume `driver`'s run in `run_dir`, run its remaining epochs, finish and draw it.

    After every epoch: one line in metrics.jsonl (the driver's metrics, with the epoch's wall time and the
    peak memory so far), then the checkpoint. A resumed run first cuts its logs back to the checkpoint's
    epoch, so the epochs after it are redone exactly once.
    """
    if resume:
        resume_run(run_dir, driver, driver.device, driver.logs)
    else:
        driver.begin(run_dir)
    driver.announce()
    config = driver.config
    # A driver may stop before its last epoch (DARTS+'s early stopping sets `stop_reason`, kept by its checkpoint).
    while driver.epoch < config.epochs and not getattr(driver, "stop_reason", None):
        start = time.perf_counter()
        with progress_bar(config, driver.steps_per_epoch(), driver.epoch + 1) as progress:
            metrics = driver.train_epoch(progress)
        metrics = driver.end_epoch(run_dir, metrics)
        metrics = {"epoch": driver.epoch, **metrics, "seconds": time.perf_counter() - start,
                   "peak_memory_gb": peak_memory_gb(driver.device)}
        append_jsonl(run_dir / "metrics.jsonl", metrics)
        save_checkpoint(driver.state_dict(), run_dir / "checkpoint.pt")
        driver.log_epoch(metrics)
    result = driver.finish(run_dir)
    if config.plot:
        draw_pictures(run_dir, driver.pictures)
    return result


def draw_pictures(run_dir: Path, draw: Callable[[Path], list[Path]]) -> None:
    """Draw a finished run's pictures; without the plot extra, say how to draw them later instead."""
    log = logging.getLogger("dartsnas")
    from .plot import PlotError

    try:
        files = draw(run_dir)
    except (ImportError, PlotError) as err:
        log.info(f"pictures skipped ({err}); pip install 'dartsnas[plot]' and run: dartsnas plot {run_dir}")
        return
    log.info(f"pictures: {', '.join(sorted(str(f.name) for f in files))} in {run_dir / 'plots'}")
