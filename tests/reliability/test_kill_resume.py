"""Real processes killed at chosen points (SIGKILL between checkpoints, halfway through writing one, between
the renames of the rotation; SIGTERM and SIGINT at a step), resumed, and compared with an uninterrupted run of
the same seed: weights, alphas, both optimisers, every random state and the per-epoch records are
bit-identical. For the convolutional and recurrent searches and trainings.

The processes run `dartsnas` through a small wrapper that arms the fault (the kill is a real signal to the
real process); one intra-op thread everywhere, so that the floating-point sums are the same in every run.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

WRAPPER = textwrap.dedent("""
    import io, os, signal, sys
    import torch
    from dartsnas.core import runs

    fault, at = os.environ.get("FAULT", "none"), int(os.environ.get("FAULT_AT", "0"))
    count = {"steps": 0, "saves": 0, "replaces": 0}

    if fault in ("kill-at-step", "term-at-step", "int-at-step"):
        real_after = runs.Steps.after
        sig = {"kill-at-step": signal.SIGKILL, "term-at-step": signal.SIGTERM, "int-at-step": signal.SIGINT}[fault]

        def after(self, step, position):
            count["steps"] += 1
            if count["steps"] == at and sig != signal.SIGKILL:
                os.kill(os.getpid(), sig)         # handled at once: the step's end saves and stops
            real_after(self, step, position)
            if count["steps"] == at:
                os.kill(os.getpid(), signal.SIGKILL)  # after the step (and any checkpoint it saved)

        runs.Steps.after = after
    elif fault == "kill-mid-write":                # the at-th checkpoint is half written when the process dies
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            if hasattr(f, "write") and str(getattr(f, "name", "")).endswith(".pt.tmp"):
                count["saves"] += 1
                if count["saves"] == at:
                    buffer = io.BytesIO()
                    real_save(obj, buffer, *args, **kwargs)
                    f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                    f.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *args, **kwargs)

        torch.save = save
    elif fault == "kill-mid-rotation":             # dies between shifting the old checkpoints and the new rename
        real_replace = os.replace

        def replace(src, dst):
            real_replace(src, dst)
            if str(dst).endswith("checkpoint.1.pt"):
                count["replaces"] += 1
                if count["replaces"] == at:
                    os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace

    from dartsnas.cli import main
    sys.exit(main(sys.argv[1:]))
""")

SEARCH = [
    "dataset=digits",
    "subset=320",
    "batch_size=32",
    "init_channels=4",
    "layers=3",
    "lr=0.1",
    "arch_lr=0.01",
    "epochs=2",
    "plot=false",
    "checkpoint_steps=2",
]  # 5 steps an epoch
TRAIN = [
    "dataset=digits",
    "subset=320",
    "init_channels=8",
    "layers=3",
    "batch_size=32",
    "lr=0.05",
    "cutout=false",
    "valid_portion=0.2",
    "drop_path_prob=0.3",
    "epochs=2",
    "plot=false",
    "checkpoint_steps=3",
]  # 8 steps
RNN_SEARCH = [
    "max_lines={train: 200, valid: 40}",
    "nodes=4",
    "emsize=16",
    "batch_size=32",
    "eval_batch_size=4",
    "bptt=10",
    "epochs=2",
    "plot=false",
    "checkpoint_steps=2",
]
RNN_TRAIN = [
    "max_lines={train: 200, valid: 40, test: 40}",
    "emsize=16",
    "batch_size=8",
    "lr=5",
    "bptt=10",
    "eval_batch_size=4",
    "test_batch_size=4",
    "epochs=2",
    "plot=false",
    "checkpoint_steps=4",
]


def _command(kind: str, corpus: Path) -> list[str]:
    if kind == "search":
        return ["search"] + _sets(SEARCH)
    if kind == "search-second-order":
        return ["search"] + _sets(SEARCH + ["unrolled=true"])
    if kind == "train":
        return ["train", "DARTS_V2", "--config", "quick"] + _sets(TRAIN)
    if kind == "rnn-search":
        return ["search", "--task", "text", "--config", "quick"] + _sets([f"data_dir={corpus}"] + RNN_SEARCH)
    return ["train", "DARTS_RNN", "--task", "text", "--config", "quick"] + _sets([f"data_dir={corpus}"] + RNN_TRAIN)


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def _dartsnas(tmp_path, args, fault="none", at=0):
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    env = {**os.environ, "FAULT": fault, "FAULT_AT": str(at), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(wrapper), *args, "--no-progress"], capture_output=True, text=True, env=env, timeout=600
    )


def _new_run(tmp_path, kind, corpus, name, fault="none", at=0):
    done = _dartsnas(tmp_path, _command(kind, corpus) + ["--out", str(tmp_path), "--name", name], fault, at)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith(name + "-")]
    return run_dir, done


def _same(a, b, where="state"):
    """Bit-identical nested checkpoint states."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _records(run_dir):
    drop = ("seconds", "peak_memory_gb")
    out = {}
    for name in ("metrics.jsonl", "alphas.jsonl", "genotypes.jsonl"):
        path = run_dir / name
        if path.exists():
            out[name] = [
                {k: v for k, v in json.loads(line).items() if k not in drop} for line in path.read_text().splitlines()
            ]
    for name in ("genotype.json", "results.json"):
        if (run_dir / name).exists():
            out[name] = json.loads((run_dir / name).read_text())
    return out


def _final(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


@pytest.fixture(scope="module")
def references(tmp_path_factory, tiny_corpus):
    """The uninterrupted run of each kind (made once, on first use)."""
    made = {}

    def get(kind):
        if kind not in made:
            folder = tmp_path_factory.mktemp(f"whole-{kind}")
            run_dir, done = _new_run(folder, kind, tiny_corpus, "whole")
            assert done.returncode == 0, done.stderr
            made[kind] = run_dir
        return made[kind]

    return get


CASES = [  # (kind, fault, at, exit status of the faulted run)
    ("search", "kill-at-step", 3, -signal.SIGKILL),  # epoch 1, one step after the step-2 checkpoint
    ("search", "kill-at-step", 7, -signal.SIGKILL),  # epoch 2, right after its step-2 checkpoint
    ("search", "kill-mid-write", 2, -signal.SIGKILL),  # the second checkpoint torn: the first one resumes
    ("search", "kill-mid-rotation", 2, -signal.SIGKILL),  # no checkpoint.pt for a moment: checkpoint.1.pt resumes
    ("search", "term-at-step", 4, 128 + signal.SIGTERM),  # pre-emption: saves at the step's end, exit 143
    ("search", "int-at-step", 1, 128 + signal.SIGINT),  # Ctrl-C before any checkpoint: one is saved
    ("search-second-order", "kill-at-step", 6, -signal.SIGKILL),
    ("train", "kill-at-step", 4, -signal.SIGKILL),
    ("train", "kill-mid-write", 3, -signal.SIGKILL),
    ("train", "term-at-step", 10, 128 + signal.SIGTERM),
    ("rnn-search", "kill-at-step", 3, -signal.SIGKILL),
    ("rnn-search", "term-at-step", 5, 128 + signal.SIGTERM),
    ("rnn-train", "kill-at-step", 6, -signal.SIGKILL),
]


@pytest.mark.parametrize("kind, fault, at, status", CASES, ids=[f"{k}-{f}-{a}" for k, f, a, _ in CASES])
def test_a_faulted_run_resumes_bit_identical(tmp_path, tiny_corpus, references, kind, fault, at, status):
    whole = references(kind)
    run_dir, done = _new_run(tmp_path, kind, tiny_corpus, "faulted", fault, at)
    assert done.returncode == status, done.stderr
    if status > 0:  # SIGTERM, SIGINT: one line that names the run folder to resume
        assert f"--resume {run_dir}" in done.stderr and "Traceback" not in done.stderr
    assert not (run_dir / "genotype.json").exists() or kind in ("train", "rnn-train")
    command = "train" if kind.endswith("train") else "search"
    again = _dartsnas(tmp_path, [command, "--resume", str(run_dir)])
    assert again.returncode == 0, again.stderr
    if fault in ("kill-mid-write", "kill-mid-rotation"):
        assert "resum" in again.stderr
    _same(_final(whole), _final(run_dir))
    assert _records(run_dir) == _records(whole)


def test_an_external_sigterm_anywhere_saves_and_resumes_exactly(tmp_path, tiny_corpus, references):
    """SIGTERM from outside at an arbitrary moment of the first epoch: the run stops at a step's end."""
    whole = references("search")
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    args = _command("search", tiny_corpus) + ["--out", str(tmp_path), "--name", "term", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(wrapper), *args], stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in process.stderr:  # the search has started its steps once it logged its memory estimate
        lines.append(line)
        if line.startswith("memory:"):
            process.send_signal(signal.SIGTERM)
            break
    lines += process.stderr.readlines()
    assert process.wait(timeout=300) == 128 + signal.SIGTERM, "".join(lines)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith("term-")]
    assert f"--resume {run_dir}" in lines[-1]
    again = _dartsnas(tmp_path, ["search", "--resume", str(run_dir)])
    assert again.returncode == 0, again.stderr
    _same(_final(whole), _final(run_dir))
    assert _records(run_dir) == _records(whole)
