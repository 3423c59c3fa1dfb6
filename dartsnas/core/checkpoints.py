"""Checkpoints that no crash can tear and no file can turn into code.

A checkpoint is written to a temporary file, flushed and fsynced, and only then renamed over the latest
one; the previous ones are kept as RUN/checkpoint.1.pt, RUN/checkpoint.2.pt, ... (`keep` in all), shifted
only once the new file is durable. A killed run therefore always leaves at least one complete checkpoint,
and a damaged latest one (a disk that lied, a copy cut short) falls back to the one before it, with a warning.

Checkpoints hold tensors and plain containers only and are read with `weights_only=True`: a file carrying a
pickled object is refused before anything in it runs. Each holds a format number: a checkpoint of another
dartsnas version is refused with a message instead of failing somewhere deep in a state dict.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import torch


class RunError(RuntimeError):
    """A run folder that cannot be used (missing, not a run, corrupt checkpoint); says what to do."""


# What a checkpoint's layout is; raised whenever a change would make older checkpoints resume wrongly.
FORMAT = 2
LATEST = "checkpoint.pt"


def history(path: Path, keep: int) -> list[Path]:
    """The latest checkpoint and the `keep - 1` before it, newest first: checkpoint.pt, checkpoint.1.pt, ..."""
    return [path] + [path.with_name(f"{path.stem}.{i}{path.suffix}") for i in range(1, keep)]


def save_checkpoint(state: dict, path: Path, keep: int = 1) -> None:
    """Write `state` durably to `path`, keeping the `keep - 1` previous checkpoints beside it.

    If the write fails (disk full, folder made read-only) the temporary file is removed and the previous
    checkpoints are left exactly as they were.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        tmp.unlink(missing_ok=True)
        space = " (the disk is full: free some space)" if err.errno == errno.ENOSPC else ""
        kept = next((p for p in history(path, keep) if p.exists()), None)
        raise RunError(
            f"cannot write the checkpoint {path}: {err.strerror or err}{space}; "
            + (
                f"the previous checkpoint {kept} is intact: resume from it once the folder is writable"
                if kept
                else "no earlier checkpoint exists"
            )
        ) from None
    older = history(path, keep)
    for newer, old in reversed(list(zip(older, older[1:]))):  # the new file is durable: now shift the old ones
        if newer.exists():
            os.replace(newer, old)
    os.replace(tmp, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the renames durable too (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's state, or a RunError that says why it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}: the run has not saved one yet; start it again instead")
    try:
        with warnings.catch_warnings():  # torch warns about some foreign files on its own; the error says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own text suggests weights_only=False, the one thing never to do with a file of unknown origin.
        what = (
            "carries pickled objects other than tensors and plain containers (refused unread: loading it "
            "could run code)"
            if "weights_only" in str(err) or "Unsupported" in str(err)
            else "is damaged or not a dartsnas checkpoint"
        )
        raise RunError(f"checkpoint {path} {what}") from None
    except Exception as err:  # truncated or foreign: say so instead of a deep traceback
        raise RunError(
            f"checkpoint {path} cannot be read ({type(err).__name__}): it is damaged (cut short?) or "
            "not a dartsnas checkpoint"
        ) from None
    if not isinstance(state, dict):
        raise RunError(f"checkpoint {path} holds a {type(state).__name__}, not a dartsnas checkpoint")
    return state


def load_latest(path: Path, device: torch.device | str = "cpu", keep: int = 1) -> tuple[dict, Path]:
    """The newest readable checkpoint among `path` and the ones kept before it, and where it was.

    A damaged newer one is skipped with a warning (it stays on disk, untouched, for inspection).
    """
    candidates = [p for p in history(path, max(keep, 1)) + _extra_history(path, keep) if p.is_file()]
    if not candidates:
        raise RunError(f"no checkpoint in {path.parent}: the run stopped before saving one; start it again instead")
    errors = []
    for candidate in candidates:
        try:
            state = load_checkpoint(candidate, device)
        except RunError as err:
            errors.append(str(err))
            continue
        if errors:
            logging.getLogger("dartsnas").warning(
                f"warning: {'; '.join(errors)}; resuming from the previous checkpoint {candidate} instead"
            )
        return state, candidate
    raise RunError(errors[0] if len(errors) == 1 else "no readable checkpoint: " + "; ".join(errors))


def _extra_history(path: Path, keep: int) -> list[Path]:
    """Older checkpoints beyond `keep` (a run saved with a larger keep); newest first."""
    found = []
    for p in path.parent.glob(f"{path.stem}.*{path.suffix}"):
        index = p.name[len(path.stem) + 1 : -len(path.suffix)]
        if index.isdigit() and int(index) >= keep:
            found.append((int(index), p))
    return [p for _, p in sorted(found)]


def latest_state(
    run_dir: Path, device: torch.device | str = "cpu", keep: int = 1, resume: bool = True
) -> tuple[dict, Path]:
    """The run folder's newest readable checkpoint, and where it was: of this dartsnas version to resume
    it; of this one or an earlier one to read its weights and alphas (`resume=False`: derive, export)."""
    state, path = load_latest(Path(run_dir) / LATEST, device, keep)
    check_format(state, path, resume)
    return state, path


def check_format(state: dict, path: Path, resume: bool = True) -> None:
    found = state.get("format", 1)  # checkpoints before formats were numbered are format 1
    if found == FORMAT or (not resume and isinstance(found, int) and found < FORMAT):
        return
    raise RunError(
        f"checkpoint {path} was written by another dartsnas version (format {found}, this one "
        f"{'resumes' if resume else 'reads'} {FORMAT}"
        f"{'' if resume else ' and earlier'}); use that version, or start a new run"
    )


# -- random states: a resumed run draws exactly what the uninterrupted one would have --------------


def rng_states() -> dict:
    """Every global random state a run may draw from: torch (CPU and each CUDA device), Python, NumPy."""
    states = {
        "torch": torch.get_rng_state(),
        "python": _plain(random.getstate()),
        "numpy": _plain(np.random.get_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def seed_python_and_numpy(seed: int) -> None:
    """Torch's generators are seeded by each run's driver; these two are for code a run calls (libraries,
    a user's own transforms), so that a run is a function of its seed whatever draws from them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"].cpu())
    random.setstate(_tuples(states["python"]))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def _plain(value):
    """Python's and NumPy's states as lists and numbers: what `weights_only` loading accepts."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
