"""`dartsnas seeds` (the DARTS paper's multi-seed protocol) and experiments/runner.py, which runs its searches and
trainings: the choice by validation accuracy, the report's numbers, the command lines, devices and threads
per job, which runs count as finished or kept, failures, the submitit backend; and end to end on digits."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dartsnas.cli import main
from dartsnas.conv.config import load_config
from dartsnas.core.config import ConfigError
from dartsnas.core.runs import RunError
from dartsnas.experiments import runner, seeds
from dartsnas.experiments.runner import Job


def _entry(seed, valid, test):
    return {"seed": seed, "valid_acc": valid, "test_acc": test}


def test_the_chosen_seed_is_the_best_on_validation_never_on_test():
    entries = [_entry(0, 0.80, 0.95), _entry(1, 0.90, 0.70), _entry(2, 0.85, 0.99), {"seed": 3, "error": "boom"}]
    assert seeds.select(entries) == 1
    assert seeds.select([_entry(4, 0.9, 0.1), _entry(2, 0.9, 0.2)]) == 2  # equals: the lower seed
    assert seeds.select([{"seed": 0, "error": "boom"}]) is None


def test_mean_and_std_over_the_seeds_that_finished():
    entries = [_entry(0, 0.8, 0.7), _entry(1, 0.9, 0.5), {"seed": 2, "error": "boom"}]
    assert seeds.spread(entries, "valid_acc") == {
        "valid_acc_mean": pytest.approx(0.85),
        "valid_acc_std": pytest.approx(0.0707106781),
    }
    assert seeds.spread(entries[:1], "test_acc") == {"test_acc_mean": 0.7, "test_acc_std": 0.0}
    assert seeds.spread(entries[2:], "test_acc") == {"test_acc_mean": None, "test_acc_std": None}


def _args(**given):
    args = dict(
        config="quick",
        seeds=2,
        seed_start=3,
        set=["epochs=1"],
        train_config=None,
        train_epochs=2,
        train_set=None,
        out="unused",
        jobs=1,
        threads=None,
        devices=None,
        backend="local",
        cluster_set=None,
    )
    return SimpleNamespace(**(args | given))


def test_command_lines_search_each_seed_and_train_its_cell_with_resume_auto(tmp_path):
    args = _args()
    configs = seeds.search_configs(args)
    assert sorted(configs) == [3, 4] and configs[4].seed == 4
    job = seeds.search_job(args, 4, configs[4], tmp_path)
    assert job.argv == [
        "search",
        "--config",
        "quick",
        "--set",
        "epochs=1",
        "--set",
        "seed=4",
        "--no-progress",
        "--name",
        "seed-4",
        "--out",
        str(tmp_path / "search"),
        "--resume",
        "auto",
    ]
    assert (job.out, job.name, job.done, job.log) == (
        tmp_path / "search",
        "seed-4",
        "genotype.json",
        tmp_path / "search" / "seed-4.log",
    )
    spec, sets, config = seeds.training(args, "darts")
    assert (spec, sets, config.epochs, config.valid_portion) == ("quick", ["epochs=2"], 2, 0.1)  # quick holds 10 %
    genotype = tmp_path / "search" / "seed-4-20260101-000000" / "genotype.json"
    job = seeds.train_job(4, genotype, spec, sets, config, tmp_path)
    assert job.argv == [
        "train",
        str(genotype),
        "--config",
        "quick",
        "--set",
        "epochs=2",
        "--no-progress",
        "--name",
        "seed-4",
        "--out",
        str(tmp_path / "train"),
        "--resume",
        "auto",
    ]
    assert (job.done, job.genotype, job.config["epochs"]) == ("results.json", genotype, 2)


def test_nas_bench_201_cells_train_in_its_network_with_a_validation_split():
    spec, sets, config = seeds.training(_args(train_epochs=None), "nas-bench-201")
    assert (spec, sets, config.net, config.valid_portion) == (
        "nb201-quick",
        ["valid_portion=0.1"],
        "nas-bench-201",
        0.1,
    )
    with pytest.raises(ConfigError, match="no validation split"):
        seeds.training(_args(train_set=["valid_portion=0"]), "darts")
    with pytest.raises(ConfigError, match="--train-config quick trains the cifar10 network"):
        seeds.training(_args(train_config="quick"), "nas-bench-201")


def test_devices_round_robin_and_threads_through_the_environment(monkeypatch):
    assert runner.slot_devices(3, ["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1", "cuda:0"]
    assert runner.slot_devices(2, None) == [None, None]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert runner.environment("cuda:1", 3) == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": "3",
        "CUDA_VISIBLE_DEVICES": "1",
    }
    assert runner.environment("cpu", 1)["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in runner.environment(None, 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")  # cuda:1 is this process's second GPU
    assert runner.environment("cuda:1", 1)["CUDA_VISIBLE_DEVICES"] == "5"
    assert runner.parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    with pytest.raises(ConfigError, match="gpu1 is not a device"):
        runner.parse_devices("cuda:0,gpu1")
    with pytest.raises(ConfigError, match="device 'cpu' would override --devices"):
        runner.check_device("cpu", ["cuda:0"])
    runner.check_device("auto", ["cuda:0"])


def _run_folder(out, name, stamp="20260101-000000", *files):
    run_dir = out / f"{name}-{stamp}"
    run_dir.mkdir(parents=True)
    for f in files:
        (run_dir / f).write_text("{}")
    return run_dir


def _job(out, name, config=None):
    return Job(f"search {name}", ["search", "--name", name], out, name, "genotype.json", config)


def test_finished_and_kept_run_folders_are_told_apart(tmp_path):
    job = _job(tmp_path, "seed-1")
    assert runner.finished(job) is None and runner.kept(job) is None
    stopped = _run_folder(tmp_path, "seed-1", "20260101-000000", "checkpoint.pt", "config.yaml")
    _run_folder(tmp_path, "seed-1", "20260101-000001")  # died before its first checkpoint: nothing to resume
    _run_folder(tmp_path, "seed-10", "20260101-000002", "checkpoint.pt", "genotype.json")  # another seed's
    _run_folder(tmp_path, "seed-1-x", "20260101-000003", "checkpoint.pt", "genotype.json")  # another name's
    assert runner.kept(job) == stopped and runner.finished(job) is None and runner.newest(job) == stopped
    (stopped / "genotype.json").write_text("{}")
    assert runner.finished(job) == stopped


def test_a_kept_run_of_other_settings_is_refused(tmp_path):
    config = load_config("quick", ["epochs=1"]).to_dict()
    run_dir = _run_folder(tmp_path, "seed-0", "20260101-000000", "checkpoint.pt")
    (run_dir / "config.yaml").write_text(json.dumps(config | {"progress": True}))  # progress may differ
    runner.check_kept(_job(tmp_path, "seed-0", config))
    (run_dir / "config.yaml").write_text(json.dumps(config | {"lr": 0.5}))
    with pytest.raises(ConfigError, match=r"other settings \(lr\)"):
        runner.run_jobs([_job(tmp_path, "seed-0", config)])


def test_a_kept_run_from_before_a_field_existed_holds_that_fields_default(tmp_path):
    """A run folder written before a config field was added lacks its key: it ran as the default does."""
    made = load_config("quick", ["epochs=1"])
    config, defaults = made.to_dict(), type(made)().to_dict()
    run_dir = _run_folder(tmp_path, "seed-0", "20260101-000000", "checkpoint.pt")
    (run_dir / "config.yaml").write_text(json.dumps({k: v for k, v in config.items() if k != "compile_mode"}))
    job = _job(tmp_path, "seed-0", config)
    job.defaults = defaults
    runner.check_kept(job)
    job.config = config | {"compile_mode": "max-autotune"}  # not the default: not what that run did
    with pytest.raises(ConfigError, match=r"other settings \(compile_mode\)"):
        runner.check_kept(job)
    job.config, job.defaults = config, None  # without the defaults a missing key stays a difference
    with pytest.raises(ConfigError, match=r"other settings \(compile_mode\)"):
        runner.check_kept(job)


class _Fake:
    """The local backend's stand-in: records each start; the job 'runs' at once and ends with `status`."""

    started = []
    status = 0

    def __init__(self, job, env, device):
        _Fake.started.append((job.name, device, env["OMP_NUM_THREADS"]))
        with open(job.log, "a") as log:
            log.write(runner.header(job, device, env) + f"output of {job.name}\n")
        if _Fake.status == 0:
            _run_folder(job.out, job.name, "20260101-000000", job.done)

    def poll(self):
        return _Fake.status


@pytest.fixture
def fake_backend(monkeypatch):
    monkeypatch.setattr(runner, "_Local", _Fake)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.0)
    _Fake.started, _Fake.status = [], 0
    return _Fake


def test_jobs_run_on_their_slots_devices_and_finished_ones_are_skipped(tmp_path, fake_backend):
    _run_folder(tmp_path, "seed-1", "20251231-000000", "genotype.json")  # finished in an earlier call
    jobs = [_job(tmp_path, f"seed-{k}") for k in range(4)]
    assert runner.run_jobs(jobs, 2, 3, ["cuda:0", "cuda:1"]) == {}
    assert fake_backend.started == [("seed-0", "cuda:0", "3"), ("seed-2", "cuda:1", "3"), ("seed-3", "cuda:0", "3")]
    assert all(runner.finished(job) for job in jobs)
    fake_backend.started.clear()
    assert runner.run_jobs(jobs, 2) == {} and fake_backend.started == []  # all finished: nothing runs


def test_a_failed_job_is_named_with_its_last_words_and_its_log(tmp_path, fake_backend):
    fake_backend.status = 2
    job = _job(tmp_path, "seed-0")
    failures = runner.run_jobs([job])
    assert failures == {"search seed-0": f"exit status 2: output of seed-0 (its output: {job.log})"}
    with pytest.raises(RunError, match=r"1 run\(s\) failed: search seed-0: exit status 2.*same command again resumes"):
        raise runner.failed(failures)


def test_a_folder_another_runner_works_in_is_refused_until_it_ends(tmp_path, fake_backend):
    jobs = [_job(tmp_path, "seed-0")]
    with runner.folder_lock(tmp_path):  # another runner (a lock is per open file: this process counts as two)
        with pytest.raises(
            ConfigError,
            match=r"in use by another dartsnas run of many jobs \(pid \d+, still running\)"
            r".*give another --out",
        ):
            runner.run_jobs(jobs)
        assert fake_backend.started == []
    assert runner.run_jobs(jobs) == {} and [name for name, *_ in fake_backend.started] == ["seed-0"]
    with runner.folder_lock(tmp_path):  # released when run_jobs returned
        pass


def test_submitit_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit fails
    with pytest.raises(ConfigError, match=r"pip install 'dartsnas\[cluster\]'"):
        runner.run_jobs([_job(tmp_path, "seed-0")], backend="submitit")
    with pytest.raises(ConfigError, match="--cluster-set configures --backend submitit"):
        runner.run_jobs([_job(tmp_path, "seed-0")], cluster=["timeout_min=5"])


def test_submitit_runs_the_jobs_command_lines(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    calls = []

    def command(argv, env, log, first_line, cwd):  # what the job's node would run, without a dartsnas process
        calls.append((argv, env["OMP_NUM_THREADS"], cwd))
        _run_folder(Path(log).parent, "seed-0", "20260101-000000", "genotype.json")
        return 0

    monkeypatch.setattr(runner, "run_command", command)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.0)
    job = _job(tmp_path, "seed-0")
    assert runner.run_jobs([job], threads=2, backend="submitit", cluster=["cluster=debug", "timeout_min=5"]) == {}
    assert calls == [(job.argv, "2", str(Path.cwd()))] and (tmp_path / "submitit").is_dir()
    with pytest.raises(ConfigError, match="submitit refuses these settings"):
        runner.run_jobs([_job(tmp_path, "seed-1")], backend="submitit", cluster=["cluster=debug", "no_such=1"])


# The tiny training of each found cell: digits, a 3-cell network of 8 channels, a quarter held out.
TINY_TRAIN = [
    "dataset=digits",
    "subset=256",
    "init_channels=8",
    "layers=3",
    "batch_size=32",
    "cutout=false",
    "valid_portion=0.25",
]


@pytest.mark.slow
def test_seeds_search_train_choose_and_resume_at_once(tmp_path, tiny_search, capsys):
    out = tmp_path / "seeds"
    args = [
        "seeds",
        "--config",
        "quick",
        "--seeds",
        "2",
        "--train-config",
        "quick",
        "--train-epochs",
        "1",
        "--jobs",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    for item in tiny_search + ["epochs=1"]:
        args += ["--set", item]
    for item in TINY_TRAIN:
        args += ["--train-set", item]
    assert main(args) == 0
    report = json.loads((out / "seeds.json").read_text())
    found = report["seeds"]
    assert [e["seed"] for e in found] == [0, 1] and not any("error" in e for e in found)
    best = max(found, key=lambda e: e["valid_acc"])
    assert report["chosen_seed"] == best["seed"]
    assert json.loads((out / "best_genotype.json").read_text()) == json.loads(
        (Path(best["search_run"]) / "genotype.json").read_text()
    )
    for e in found:
        assert Path(e["search_run"]).parent == out / "search" and Path(e["train_run"]).parent == out / "train"
        results = json.loads((Path(e["train_run"]) / "results.json").read_text())
        assert e["valid_acc"] == results["best"]["valid_acc"] and e["test_acc"] == results["best"]["test_acc"]
        assert e["search_seconds"] > 0 and e["train_seconds"] > 0
    assert report["valid_acc_mean"] == pytest.approx(sum(e["valid_acc"] for e in found) / 2)
    text = capsys.readouterr().out
    assert f"**{best['seed']}** (chosen)" in text and f"chosen: seed {best['seed']}" in text
    assert (out / "seeds.png").exists()

    # The same command again: every run finished, none starts; the report is the same.
    logs = sorted(out.glob("*/seed-*.log"))
    before = [log.read_text() for log in logs]
    assert len(logs) == 4
    assert main(args) == 0
    assert [log.read_text() for log in logs] == before
    assert json.loads((out / "seeds.json").read_text()) == report
    assert capsys.readouterr().err.count("2 of 2 runs finished earlier; running 0") == 2  # searches, trainings


def test_run_folders_find_stamped_folders_and_the_unstamped_ones_of_earlier_benchmarks(tmp_path):
    from dartsnas.experiments.runner import run_folders

    for name in ("seed-1", "seed-1-20261203-015208", "seed-1-20261203-015208-2", "seed-10-20261203-015208", "seed-1x"):
        (tmp_path / name).mkdir()
    assert sorted(p.name for p in run_folders(tmp_path, "seed-1")) == [
        "seed-1",
        "seed-1-20261203-015208",
        "seed-1-20261203-015208-2",
    ]
