"""Run many dartsnas command lines: `jobs` at a time, each in its own process, pinned to a device, resumable.

The one runner of the commands that repeat a run over seeds or settings (`dartsnas seeds`, `bench quality`,
`bench skips`). A job is a `dartsnas search|train ... --name NAME --out OUT --resume auto` command line, so
its run folder is the newest OUT/NAME-<stamp>:

- finished: that folder has its result file (a search's genotype.json, a training's results.json); the job
  is not run again;
- stopped: running the same command line again resumes it from its checkpoint (`--resume auto`);
- kept from other settings: refused before anything starts (else the report would mix settings).

Each job's stdout and stderr go to OUT/NAME.log (appended, one header per attempt); a failed job is named
with its exit status, its last line and that log. Backends: `local` (subprocesses of this machine) and
`submitit` (a cluster's scheduler through submitit, an optional extra; its `local` cluster runs on this
machine too). Devices are pinned through CUDA_VISIBLE_DEVICES and threads through OMP_NUM_THREADS, not
through the command line, so that a job resumed on another device still has the config it started with.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("local", "submitit")
CLUSTER_HINT = "pip install 'dartsnas[cluster]'"
# The newest run folder of a name: NAME-YYYYmmdd-HHMMSS, or -N after it when two started in the same second
# (core/runs.new_run_dir). Strict, so that seed-1 never claims seed-1-x's folders.
STAMP = r"-\d{8}-\d{6}(-\d+)?"
POLL_SECONDS = 0.2


@dataclass
class Job:
    """One dartsnas command line and how to tell whether it has run."""

    label: str  # how messages name it: "search seed-3"
    argv: list[str]  # the command line after `dartsnas`, with --name NAME --out OUT --resume auto
    out: Path  # its --out
    name: str  # its --name
    done: str  # the file a finished run has: genotype.json (search), results.json (train)
    config: dict | None = None  # the config the command line makes: a kept run folder must hold it
    genotype: Path | None = None  # train: the genotype a kept run folder must hold
    defaults: dict | None = None  # the config class's defaults: a key a kept run's config lacks (a field added
    # since it ran) counts as the same when this run leaves it at its default
    legacy: Callable[[dict], dict] | None = None  # the config class's `legacy`: what such a run ran with instead,
    # where the field's default would change it (core.config.load_saved)

    @property
    def log(self) -> Path:
        return self.out / f"{self.name}.log"


def command(kind: str, name: str, out: Path, config: str, sets: list[str], *extra: str) -> list[str]:
    """`kind [extra] --config C --set ... --no-progress --name NAME --out OUT --resume auto` (after `dartsnas`)."""
    argv = [kind, *extra, "--config", str(config)]
    for item in sets:
        argv += ["--set", item]
    return argv + ["--no-progress", "--name", name, "--out", str(out), "--resume", "auto"]


def job_arguments(p, what: str = "runs") -> None:
    """The flags of every command that runs its jobs through this runner."""
    p.add_argument("--jobs", type=int, default=1, help=f"{what} at once, each in its own process (default 1)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads per process (default: the CPU's cores divided by --jobs)",
    )
    p.add_argument(
        "--devices",
        metavar="DEVICES",
        help="pin the processes round-robin to these: cpu, or GPUs "
        "cuda:0,cuda:1 (default: as the configs say, device: auto)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help=f"local: processes on this machine (default); submitit: a cluster's jobs ({CLUSTER_HINT})",
    )
    p.add_argument(
        "--cluster-set",
        action="append",
        metavar="KEY=VALUE",
        help="--backend submitit: a parameter of its executor (timeout_min, slurm_partition, "
        "gpus_per_node, ...; cluster=local runs on this machine)",
    )


def check_numbers(args, *names: str) -> None:
    """The counts a runner command takes must be at least 1."""
    from ..core.config import ConfigError

    low = [
        f"--{n.replace('_', '-')}"
        for n in ("jobs", "threads", *names)
        if getattr(args, n) is not None and getattr(args, n) < 1
    ]
    if low:
        raise ConfigError(f"{', '.join(low)} must be at least 1")


def search_job(spec: str, overrides: list[str], out: Path, name: str, config, label: str) -> Job:
    """`dartsnas search --config SPEC --set ... --name NAME --out OUT --resume auto`; `config` is what it makes."""
    return Job(
        label,
        command("search", name, out, spec, overrides),
        out,
        name,
        "genotype.json",
        config.to_dict(),
        defaults=type(config)().to_dict(),
        legacy=getattr(type(config), "legacy", None),
    )


def train_job(genotype: str, spec: str, overrides: list[str], out: Path, name: str, config, label: str) -> Job:
    """`dartsnas train GENOTYPE --config SPEC --set ... --name NAME --out OUT --resume auto` of a genotype file."""
    return Job(
        label,
        command("train", name, out, spec, overrides, genotype),
        out,
        name,
        "results.json",
        config.to_dict(),
        Path(genotype),
        type(config)().to_dict(),
    )


# ----------------------------------------------------------------------------------------------
# run folders: finished, kept, refused


def run_folders(out: Path, name: str) -> list[Path]:
    """The run folders of `name` under `out`, oldest first by modification time (as `--resume auto` orders them);
    a folder named `name` itself is one too (benchmarks before this runner named their seeds so)."""
    if not Path(out).is_dir():
        return []
    pattern = re.compile(re.escape(name) + f"(?:{STAMP})?")
    found = [p for p in Path(out).iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def finished(job: Job) -> Path | None:
    """The newest run folder of the job that holds its result, or None."""
    done = [p for p in run_folders(job.out, job.name) if (p / job.done).exists()]
    return done[-1] if done else None


def kept(job: Job) -> Path | None:
    """The run folder `--resume auto` would continue (the newest with a checkpoint), or None."""
    from ..core.checkpoints import LATEST

    saved = [p for p in run_folders(job.out, job.name) if any(p.glob(LATEST[:-3] + "*.pt"))]
    return saved[-1] if saved else None


def newest(job: Job) -> Path | None:
    """The run folder to report for the job: finished, else kept, else None."""
    return finished(job) or kept(job)


def check_kept(job: Job) -> None:
    """A run folder kept from an earlier call must hold this very run (its config, and for a training its
    genotype): else its results would be reported under settings it was not run with."""
    from ..core.config import ConfigError, read_saved

    run_dir = newest(job)
    if run_dir is None or job.config is None:
        return
    saved = read_saved(run_dir / "config.yaml")
    if job.legacy is not None:  # the form a method ran in before its field existed
        saved = job.legacy(saved) | saved

    def differs(key, value) -> bool:
        if key == "progress":
            return False
        if key in saved:
            return saved[key] != value
        return job.defaults is None or job.defaults.get(key, object()) != value

    changed = sorted(k for k, v in job.config.items() if differs(k, v))
    if job.genotype is not None and json.loads(Path(job.genotype).read_text()) != json.loads(
        (run_dir / "genotype.json").read_text()
    ):
        changed.append("genotype")
    if changed:
        raise ConfigError(
            f"{run_dir} holds a run with other settings ({', '.join(changed)}); give another --out, "
            "or delete that folder to run this one"
        )


# ----------------------------------------------------------------------------------------------
# devices and threads


def parse_devices(text: str | None) -> list[str] | None:
    """--devices cpu | cuda | cuda:0,cuda:1 -> the list (None: leave the jobs' device as their configs say)."""
    from ..core.config import ConfigError

    if text is None:
        return None
    devices = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in devices if not re.fullmatch(r"cpu|cuda(:\d+)?", d)]
    if bad or not devices:
        raise ConfigError(
            f"--devices {text!r}: {', '.join(bad) or 'no device'} is not a device; give cpu, cuda, "
            "or GPUs such as cuda:0,cuda:1"
        )
    return devices


def check_device(config_device: str, devices: list[str] | None) -> None:
    """--devices decides where jobs run only while their configs leave it to them (device: auto)."""
    from ..core.config import ConfigError

    kinds = {d.split(":")[0] for d in devices or []}
    if devices and config_device != "auto" and {config_device} != kinds:
        raise ConfigError(
            f"the config's device {config_device!r} would override --devices {','.join(devices)}; "
            "drop one of them (--set device=auto lets --devices choose)"
        )


def environment(device: str | None, threads: int) -> dict[str, str]:
    """What a job's process gets on top of this one's environment: its threads, and its GPU."""
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # device: auto then finds no GPU
    elif device and ":" in device:
        index = int(device.split(":")[1])
        visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        env["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)  # cuda:N of ours
    return env


def slot_devices(at_once: int, devices: list[str] | None) -> list[str | None]:
    """The device of each of the `at_once` slots, round-robin: a job runs on the device of the slot it got,
    so that no two jobs share a GPU while another GPU idles."""
    return [devices[k % len(devices)] if devices else None for k in range(at_once)]


def default_threads(at_once: int) -> int:
    return max(1, (os.cpu_count() or 1) // at_once)


# ----------------------------------------------------------------------------------------------
# running


def run_jobs(
    jobs: list[Job],
    at_once: int = 1,
    threads: int | None = None,
    devices: list[str] | None = None,
    backend: str = "local",
    cluster: list[str] | None = None,
) -> dict[str, str]:
    """Run the jobs that have not finished, `at_once` at a time; -> label -> error of the ones that failed
    (the others still run). A kept run folder of other settings, or a folder another runner is working in,
    is a ConfigError before anything starts."""
    for job in jobs:
        check_kept(job)
    with contextlib.ExitStack() as held:
        for out in sorted({job.out for job in jobs}):
            held.enter_context(folder_lock(out))
        return _run(jobs, at_once, threads, devices, backend, cluster)


@contextlib.contextmanager
def folder_lock(out: Path):
    """Hold OUT/.runner.lock while this runner works there: two runners on one folder would start the same
    jobs twice, into the same run folders. Released when the runner ends, however it ends (an OS lock, not a
    file's existence: a killed runner leaves nothing to clean up)."""
    from ..core.config import ConfigError

    try:
        import fcntl
    except ImportError:  # not POSIX: no guard, as before
        yield
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / ".runner.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise ConfigError(
                f"{out} is in use by another dartsnas run of many jobs ({holder}, still running); "
                "wait for it to end, or give another --out"
            ) from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(
    jobs: list[Job],
    at_once: int,
    threads: int | None,
    devices: list[str] | None,
    backend: str,
    cluster: list[str] | None,
) -> dict[str, str]:
    todo = [job for job in jobs if finished(job) is None]
    if len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} of {len(jobs)} runs finished earlier; running {len(todo)}", file=sys.stderr)
    if not todo:
        return {}
    threads = threads or default_threads(at_once)
    start = _backend(backend, todo, threads, cluster)
    failures, running = {}, {}  # slot -> (job, handle)
    slots = slot_devices(at_once, devices)
    try:
        while todo or running:
            for slot, device in enumerate(slots):
                if slot not in running and todo:
                    job = todo.pop(0)
                    job.out.mkdir(parents=True, exist_ok=True)
                    running[slot] = (job, start(job, environment(device, threads), device))
            time.sleep(POLL_SECONDS)
            for slot, (job, handle) in list(running.items()):
                status = handle.poll()
                if status is not None:
                    del running[slot]
                    _announce(job, status, failures)
    except KeyboardInterrupt:  # the jobs got the same Ctrl-C: let them save their checkpoints
        for _job, handle in running.values():
            handle.stop()
        raise
    return failures


def _announce(job: Job, status: int, failures: dict) -> None:
    run_dir = finished(job)
    if status == 0 and run_dir is not None:
        print(f"done: {job.label} ({run_dir})", file=sys.stderr, flush=True)
        return
    why = f"exit status {status}" if status else f"no {job.done} written"
    failures[job.label] = f"{why}: {last_line(job.log)} (its output: {job.log})"
    print(f"failed: {job.label} ({failures[job.label]})", file=sys.stderr, flush=True)


def last_line(log: Path) -> str:
    """The job's last words: dartsnas ends a failed run with one line that says what went wrong."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"


def failed(failures: dict[str, str]):
    """One error for every failed job, naming each and its log."""
    from ..core.runs import RunError

    return RunError(
        f"{len(failures)} run(s) failed: "
        + "; ".join(f"{label}: {e}" for label, e in failures.items())
        + ". Each log says more; the same command again resumes them (the finished runs are not run again)"
    )


def run_command(argv: list[str], env: dict[str, str], log: str, first_line: str, cwd: str) -> int:
    """One dartsnas command line in a process of its own, its output appended to `log`; -> its exit status.
    Runs where the backend puts it (a cluster's node, for submitit), so it must stay picklable and plain;
    in the folder it was submitted from, where the command line's relative paths point."""
    with open(Path(cwd) / log, "a") as out:
        out.write(first_line)
        out.flush()
        return subprocess.run(
            [sys.executable, "-m", "dartsnas", *argv],
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode


def header(job: Job, device: str | None, env: dict[str, str]) -> str:
    """The line each attempt of a job starts its log with: when, what, where."""
    return (
        f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} dartsnas {' '.join(job.argv)} (device "
        f"{device or 'as configured'}, threads {env['OMP_NUM_THREADS']})\n"
    )


class _Local:
    """A job as a subprocess of this one."""

    def __init__(self, job: Job, env: dict[str, str], device: str | None):
        with open(job.log, "a") as out:
            out.write(header(job, device, env))
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dartsnas", *job.argv],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def poll(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        self.process.wait()  # it saves its checkpoint at the end of its step, then ends


class _Submitted:
    """A job handed to submitit's executor (run_command on its node)."""

    def __init__(self, executor, job: Job, env: dict[str, str], device: str | None):
        self.job = executor.submit(run_command, job.argv, env, str(job.log), header(job, device, env), os.getcwd())
        self.log = job.log

    def poll(self) -> int | None:
        if not self.job.done():
            return None
        try:
            return self.job.result()
        except Exception as err:  # the scheduler's failure (timeout, node lost): into the job's log
            with open(self.log, "a") as out:
                out.write(f"submitit: {type(err).__name__}: {(str(err).strip().splitlines() or [''])[-1]}\n")
            return 1

    def stop(self) -> None:
        self.job.cancel(check=False)


def _backend(name: str, jobs: list[Job], threads: int, cluster: list[str] | None):
    """start(job, env, device) -> a handle with poll() and stop(), for the backend `name`."""
    from ..core.config import ConfigError

    if name == "local":
        if cluster:
            raise ConfigError("--cluster-set configures --backend submitit; drop it, or add --backend submitit")
        return _Local
    if name != "submitit":
        raise ConfigError(f"--backend {name!r} is not a backend; use {' or '.join(BACKENDS)}")
    executor = submitit_executor(
        Path(os.path.commonpath([str(j.out.resolve()) for j in jobs])) / "submitit", threads, cluster or []
    )
    return lambda job, env, device: _Submitted(executor, job, env, device)


def submitit_executor(folder: Path, threads: int, cluster: list[str]):
    """submitit's AutoExecutor (SLURM when there is one; --cluster-set cluster=local runs on this machine),
    with --cluster-set KEY=VALUE items as its parameters (timeout_min, slurm_partition, gpus_per_node, ...)."""
    from ..core.config import ConfigError, parse_yaml

    try:
        import submitit
    except ImportError:
        raise ConfigError(
            f"--backend submitit needs the submitit package, an optional extra: {CLUSTER_HINT} (or use --backend local)"
        ) from None
    settings = {"timeout_min": 24 * 60, "cpus_per_task": threads}  # submitit's own default time is minutes
    for item in cluster:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cluster-set {item!r}: write it as key=value, e.g. --cluster-set timeout_min=600")
        settings[key.strip()] = parse_yaml(raw, "--cluster-set")
    kind = settings.pop("cluster", None)
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=kind)
        executor.update_parameters(**settings)
    except (ValueError, NameError, TypeError, RuntimeError) as err:
        raise ConfigError(
            f"--cluster-set: submitit refuses these settings ({str(err).splitlines()[0]}); "
            "see submitit's AutoExecutor parameters"
        ) from None
    return executor
