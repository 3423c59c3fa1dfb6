"""Run folders, and the epoch loop every run shares: every run leaves one folder that explains itself.

    RUN/config.yaml       the resolved config          RUN/env.json        versions, device, git commit
    RUN/metrics.jsonl     one line per epoch           RUN/alphas.jsonl    alphas and probs per epoch (0 = initial)
    RUN/genotypes.jsonl   derived genotype per epoch   RUN/genotype.json   the final genotype
    RUN/log.txt           the log                      RUN/checkpoint.pt   the latest state, for --resume
    RUN/checkpoint.1.pt   the one before it (keep_checkpoints of them in all)
    RUN/plots/            pictures drawn from the files above

Checkpoints (core/checkpoints.py) are durable before they replace the previous one, so a killed run never
leaves a torn one, and are read with `weights_only=True`: a checkpoint is data, never code. They are taken
after every epoch and inside long ones (`Steps`), and when SIGINT or SIGTERM asks a run to stop; each holds
every random state and the position inside the epoch, so a resumed run continues bit for bit. Non-finite
or exploding values stop a run before they reach a checkpoint (core/guard.py).

The four drivers (convolutional and recurrent search and training) differ in what an epoch does; how a run
starts, resumes, loops over epochs, logs its metrics, checkpoints and draws is `run_epochs`, written once.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol
from collections.abc import Callable

import torch

from .checkpoints import (
    LATEST,
    RunError,
    latest_state,
    rng_states,
    save_checkpoint,
    seed_python_and_numpy,
    set_rng_states,
)
from .device import peak_memory_gb
from .distributed import agree, gather_object, total, world
from .guard import CHECK_EVERY, Guard
from .relax import discreteness


def new_run_dir(root: str | Path, name: str) -> Path:
    """A fresh folder ROOT/NAME-STAMP. A name that would reach outside ROOT, or a ROOT that cannot hold a
    folder (a file, read-only), is a ConfigError, raised before anything is made."""
    from .config import ConfigError

    if not name or "\0" in name or "/" in name or (os.altsep and os.altsep in name):
        raise ConfigError(
            f"run folder name {name!r} is not one folder name; give --name a plain name such as "
            "my-search (letters, digits, '.', '_', '-')"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():  # two runs started in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    try:
        path.mkdir(parents=True)
    except OSError as err:  # under a file, read-only, no permission, no space
        raise ConfigError(
            f"--out {root}: cannot make the run folder {path.name} there ({err.strerror or err}); "
            "give --out a folder you can write to"
        ) from None
    return path


def discard_unstarted(run_dir: Path) -> bool:
    """Remove `run_dir` if it holds no checkpoint: a run that failed before it could be resumed (missing data,
    a config error found late) leaves no folder behind. Only for a folder the caller has just made with
    `new_run_dir`, never one being resumed. Returns whether it was removed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or any(run_dir.glob(LATEST[:-3] + "*.pt")):
        return False
    log = logging.getLogger("dartsnas")
    for handler in list(log.handlers):  # its log.txt is open: close it before the folder goes
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.absolute():
            log.removeHandler(handler)
            handler.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


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


def git_commit() -> str | None:
    """The commit of the dartsnas source, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
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
    log.addHandler(file_handler)
    if world().main:  # one voice on the terminal in a data-parallel run
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(console)
    log.propagate = False
    return log


def rank_folder(run_dir: Path, resume: bool) -> Path:
    """Where this rank writes: the run folder on rank 0; on the others a scratch folder of their own (with,
    when resuming, copies of the run's records and links to its checkpoints), so that every rank runs the
    same code on the same files while only rank 0's reach the run folder. Removed when the process ends."""
    if world().main:
        return run_dir
    scratch = Path(tempfile.mkdtemp(prefix=f"dartsnas-rank{world().rank}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    for path in Path(run_dir).iterdir() if resume else ():
        if path.suffix == ".pt":
            (scratch / path.name).symlink_to(path.resolve())
        elif path.is_file() and path.suffix in (".jsonl", ".json", ".yaml"):
            shutil.copy2(path, scratch / path.name)
    return scratch


# -- what every run loop (search, training; convolutional, recurrent) does the same way ------------


def start_run(run_dir: Path, config, device: torch.device, resume: bool, genotype=None) -> logging.Logger:
    """Log into RUN/log.txt; a new run also writes config.yaml, env.json and (training) genotype.json."""
    log = setup_logging(run_dir)
    if getattr(config, "deterministic", False):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False  # its autotuning may pick another kernel in another run
    if not resume:
        import yaml

        from .config import sectioned

        atomic_write_text(
            run_dir / "config.yaml", yaml.safe_dump(sectioned(type(config), config.to_dict()), sort_keys=False)
        )
        if genotype is not None:
            genotype.save(run_dir / "genotype.json")
        (run_dir / "env.json").write_text(json.dumps(environment(device), indent=1) + "\n")
    return log


def load_state(owner, state: dict, path: Path, run_dir: Path) -> None:
    """`owner.load_state_dict(state)`, or a RunError when the checkpoint does not fit the run's config."""
    try:
        owner.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:  # keys or shapes that differ
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise RunError(
            f"checkpoint {path} does not fit the run its config.yaml describes ({first}); was "
            f"{run_dir / 'config.yaml'} edited after the run started? Put it back, or start a new run "
            "with the new settings"
        ) from None


def resume_run(run_dir: Path, owner, device: torch.device, logs: tuple[str, ...]) -> dict | None:
    """Load the run's latest good checkpoint into `owner` and cut its per-epoch logs back to the checkpoint's
    epoch. Returns the position inside the next epoch the checkpoint was taken at (None: at an epoch's end)."""
    state, path = latest_state(run_dir, device, getattr(owner.config, "keep_checkpoints", 1))
    load_state(owner, state, path, run_dir)
    ranks = state.get("rng_ranks")  # a data-parallel run's: each rank's own, if the world is the same size
    set_rng_states(ranks[world().rank] if ranks and len(ranks) == world().size else state["rng"])
    owner.guard.skipped, owner.guard.in_a_row = state["guard"]["skipped"], state["guard"]["in_a_row"]
    for name in logs:
        truncate_jsonl(run_dir / name, owner.epoch)
    position = state.get("position")
    where = f"step {position['step']} of epoch {owner.epoch + 1}" if position else f"epoch {owner.epoch}"
    logging.getLogger("dartsnas").info(f"resumed {run_dir} after {where} ({path.name})")
    return position


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

    config: object  # has epochs, progress, plot
    device: torch.device
    epoch: int  # epochs finished
    logs: tuple[str, ...]  # per-epoch .jsonl files of the run folder, cut back on resume
    guard: Guard  # set by run_epochs: each step reports its values to it

    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def begin(self, run_dir: Path) -> None: ...  # a new run's records before its first epoch
    def announce(self) -> None: ...  # log what is about to run (new or resumed)
    def steps_per_epoch(self) -> int: ...
    def train_epoch(self, progress, steps: Steps) -> dict:
        ...  # one epoch's steps (from steps.resume_at());
        # their metrics; steps.after(k, position) after each

    def end_epoch(self, run_dir: Path, metrics: dict) -> dict: ...  # evaluate, count the epoch, write its records
    def log_epoch(self, metrics: dict) -> None: ...
    def finish(self, run_dir: Path): ...  # the run's result (genotype, test results)
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


class Interrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM (a cluster's pre-emption) stopped a run after saving a checkpoint."""

    def __init__(self, signum: int, run_dir: Path, where: str):
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} {where}; the checkpoint is saved. Continue with: "
            f"dartsnas {{command}} --resume {run_dir}"
        )


@contextlib.contextmanager
def stop_signals():
    """SIGINT and SIGTERM ask the run to stop at the next step's end (after saving a checkpoint) instead of
    killing it mid-step; the list it yields receives the signal. A second signal acts at once, as usual."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield received
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        received.append(signum)
        logging.getLogger("dartsnas").info(
            f"{signal.Signals(signum).name}: stopping after this step, once the "
            "checkpoint is saved (send it again to stop at once)"
        )
        # The same signal again stops at once; the other one stays caught (torchrun follows a Ctrl-C, which
        # every rank gets too, with a SIGTERM of its own: that must not cut the checkpoint short).
        signal.signal(signum, previous[signum])

    for s in previous:
        signal.signal(s, handler)
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Steps:
    """What a driver's epoch loop calls after each step: the guard against non-finite values, checkpoints
    inside the epoch (every `checkpoint_steps` steps or `checkpoint_minutes` minutes), and a stop asked for
    by a signal. `position` (set on resume) is where in the epoch the loop starts again."""

    def __init__(self, driver, run_dir: Path, signals: list[int], position: dict | None = None):
        config = driver.config
        self.driver, self.run_dir, self.signals, self.position = driver, run_dir, signals, position
        self.every_steps = getattr(config, "checkpoint_steps", None)
        minutes = getattr(config, "checkpoint_minutes", None)
        self.every_seconds = 60 * minutes if minutes else None
        self.last_save = time.monotonic()
        self.started = time.perf_counter()

    def resume_at(self) -> dict | None:
        """The saved position inside this epoch (once), or None to start the epoch from its first step.
        The epoch's metric sums so far are rank 0's alone: the ranks' sums are added up at the epoch's end."""
        position, self.position = self.position, None
        if position is not None and not world().main:
            position = {**position, "sums": torch.zeros_like(position["sums"])}
        return position

    def after(self, step: int, position: Callable[[], dict]) -> None:
        """`step` steps of the epoch are done; `position()` is what it takes to continue after them."""
        checking = step % CHECK_EVERY == 0
        if checking:
            self.driver.guard.check()
        by_steps = bool(self.every_steps and step % self.every_steps == 0)
        by_time = bool(self.every_seconds and time.monotonic() - self.last_save >= self.every_seconds)
        signalled = bool(self.signals)
        if world().distributed:  # the ranks act together: signals and clocks are agreed on at the checks
            signalled, by_time = agree(signalled, by_time) if checking else (False, False)
        if signalled:
            self.save(position)
            raise Interrupted(
                self.signals[0] if self.signals else signal.SIGTERM,
                self.run_dir,
                f"after step {step} of epoch {self.driver.epoch + 1}",
            )
        if (by_steps or by_time) and step < self.driver.steps_per_epoch():  # the epoch's end saves its own
            self.save(position)

    def save(self, position: Callable[[], dict] | None = None) -> None:
        """Checkpoint the run (rank 0 writes; every rank takes part in what is agreed or added up)."""
        guard = self.driver.guard
        guard.check()  # never save a state that went bad
        state = {
            **self.driver.state_dict(),
            "rng": rng_states(),
            "position": None,
            "guard": {"skipped": guard.skipped, "in_a_row": guard.in_a_row},
        }
        if world().distributed:
            state["rng_ranks"] = gather_object(state["rng"])
        if position is not None:
            where = position()
            state["position"] = {**where, "sums": total(where["sums"]), "seconds": time.perf_counter() - self.started}
        if world().main:
            save_checkpoint(state, self.run_dir / LATEST, getattr(self.driver.config, "keep_checkpoints", 1))
        self.last_save = time.monotonic()


class NoSteps:
    """`Steps` for an epoch run outside `run_epochs` (DARTS-PT's tuning): nothing saved, nothing to resume."""

    def resume_at(self) -> None:
        return None

    def after(self, step: int, position: Callable[[], dict]) -> None:
        pass


NO_STEPS = NoSteps()


def run_epochs(driver: Driver, run_dir: Path, resume: bool):
    """Start or resume `driver`'s run in `run_dir`, run its remaining epochs, finish and draw it.

    After every epoch: one line in metrics.jsonl (the driver's metrics, with the epoch's wall time and the
    peak memory so far), then the checkpoint; inside long epochs, checkpoints as `Steps` says. A resumed run
    first cuts its logs back to the checkpoint's epoch, so the epochs after it are redone exactly once, and
    continues inside an epoch from the step it was saved at, bit for bit.
    """
    config = driver.config
    driver.guard = Guard(driver.device, getattr(config, "nonfinite", "stop"), getattr(config, "nonfinite_patience", 5))
    with stop_signals() as signals:  # from here on, a signal stops the run at a step's end, saved
        position = resume_run(run_dir, driver, driver.device, driver.logs) if resume else None
        if not resume:
            seed_python_and_numpy(config.seed)
            driver.begin(run_dir)
        driver.announce()
        saved = resume  # whether the latest checkpoint holds the run as it is now
        # A driver may stop before its last epoch (DARTS+'s early stopping sets `stop_reason`, kept by its checkpoint).
        while driver.epoch < config.epochs and not getattr(driver, "stop_reason", None):
            steps = Steps(driver, run_dir, signals, position)
            if agree(bool(signals))[0]:  # arrived between epochs, or before the first step
                if not saved:
                    steps.save()
                raise Interrupted(
                    signals[0] if signals else signal.SIGTERM,
                    run_dir,
                    f"after epoch {driver.epoch}" if driver.epoch else "before its first step",
                )
            steps.started -= position["seconds"] if position else 0.0
            position = None
            driver.guard.reset(driver.epoch)
            with progress_bar(config, driver.steps_per_epoch(), driver.epoch + 1) as progress:
                metrics = driver.train_epoch(progress, steps)
            driver.guard.check()
            metrics = driver.end_epoch(run_dir, metrics)
            metrics = {
                "epoch": driver.epoch,
                **metrics,
                "seconds": time.perf_counter() - steps.started,
                "peak_memory_gb": peak_memory_gb(driver.device),
            }
            if driver.guard.policy == "skip":  # steps skipped so far in this run
                metrics["skipped_steps"] = driver.guard.skipped
            append_jsonl(run_dir / "metrics.jsonl", metrics)
            steps.save()
            saved = True
            driver.log_epoch(metrics)
    result = driver.finish(run_dir)
    if config.plot and world().main:
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
