"""The command line: `dartsnas search | train | derive | plot | genotype | info | export | bench | seeds`.

`search` and `train` run a convolutional cell, or with `--task` (or when resuming such a run) a recurrent
one; both sides take the same flags and start or resume a run the same way. Errors a user can cause end
here as one line on stderr and exit status 2, not as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple
from collections.abc import Callable

TASKS = ("ptb", "wikitext2", "text")  # recurrent tasks: corpora (text: a folder of your own)


def _user_errors() -> tuple[type[Exception], ...]:
    from .core.config import ConfigError
    from .data.download import DataError
    from .core.genotype import GenotypeError
    from .core.plot import PlotError
    from .core.runs import RunError

    return ConfigError, DataError, GenotypeError, RunError, PlotError


# ----------------------------------------------------------------------------------------------
# search and train: one way to start or resume a run, for both sides


class Side(NamedTuple):
    """What a run command needs of the side (convolutional or recurrent) it runs on."""

    config: type  # the config dataclass
    folder: Path  # its shipped configs
    what: str  # how messages name its configs
    run: Callable  # run(config, [genotype,] run_dir, resume=...)
    name: str  # the default run folder name
    recurrent: bool


def _side(args, command: str) -> Side:
    """A recurrent run with --task or when resuming a recurrent run folder, a convolutional one otherwise."""
    from .core.config import CONFIG_DIR

    stem = Path(args.config).stem if args.config else None
    if args.task or (args.resume and _recurrent_run(args.resume)):
        from .recurrent import config as rc

        if command == "search":
            from .recurrent.search import run_recurrent_search

            return Side(
                rc.RecurrentSearchConfig,
                rc.RNN_CONFIG_DIR,
                "recurrent config",
                run_recurrent_search,
                f"{args.task}-{stem or 'search'}",
                True,
            )
        from .recurrent.train import run_recurrent_training

        return Side(
            rc.RecurrentTrainConfig,
            rc.RNN_CONFIG_DIR / "train",
            "recurrent config",
            run_recurrent_training,
            f"train-{args.task}-{stem or 'paper'}",
            True,
        )
    from .conv import config as cc

    if command == "search":
        from .conv.search import run_search

        return Side(cc.SearchConfig, CONFIG_DIR, "config", run_search, stem or "search", False)
    from .conv.train import run_training

    return Side(
        cc.TrainConfig,
        cc.TRAIN_CONFIG_DIR,
        "training config",
        run_training,
        f"train-{stem}" if stem else "train",
        False,
    )


def _run(args, command: str) -> None:
    """Start a new run folder from --config/--set, or continue --resume RUN with its own saved files."""
    from .core.config import ConfigError, load_dataclass, load_saved

    side = _side(args, command)
    auto = args.resume == "auto"
    if auto:  # the same command line starts the run, and after any stop resumes it (a cluster's requeue)
        args.resume = _auto_resume(args, command, side)
    if args.resume:
        run_dir = Path(args.resume)
        if not auto:
            _refuse_new_run_flags(args)
        kind = _run_kind(run_dir)
        if kind not in (None, command):  # else its config would be refused key by key, which misleads
            raise ConfigError(
                f"--resume {run_dir} is a {kind} run folder, not a {command} run; resume it with: "
                f"dartsnas {kind} --resume {run_dir}"
            )
        needed = ["config.yaml"] + (["genotype.json"] if command == "train" else [])
        if not all((run_dir / name).exists() for name in needed):
            raise ConfigError(
                f"--resume {run_dir}: no {' and '.join(needed)} there; give the folder of an earlier {command} run"
            )
        # As the run ran: a method whose default form changed since keeps the form it was started with.
        config = _apply_flags(load_saved(side.config, run_dir / "config.yaml"), args)
        genotype = (_genotype(run_dir / "genotype.json", side.recurrent),) if command == "train" else ()
        args.run_dir = run_dir  # from here on, a failure is written into its log too
        side.run(config, *genotype, run_dir, resume=True)
        return
    genotype = ()
    if command == "train":
        if not args.genotype:
            example = "DARTS_RNN" if side.recurrent else "DARTS_V2"
            raise ConfigError(
                f"name the {'recurrent ' * side.recurrent}genotype to train: {example}, a genotype.json, "
                "a search run folder or genotype text"
            )
        genotype = (_genotype(args.genotype, side.recurrent),)
    overrides = ([f"corpus={args.task}"] if side.recurrent else []) + _overrides(args, side.recurrent)
    config = _apply_flags(load_dataclass(side.config, args.config, overrides, side.folder, side.what), args)
    if command == "train" and not side.recurrent:  # before the run folder is made (run_training checks again)
        from .conv.train import check_genotype

        check_genotype(config, *genotype)
    from .core.distributed import start

    start(config.device)  # an unusable device, too, ends before the run folder is made; joins torchrun's group
    args.run_dir = _new_run(args, side.name)
    try:
        side.run(config, *genotype, args.run_dir)
    except _user_errors() as err:  # found before the run could be resumed: the folder made above goes
        _discard_new_run(args, err)
        raise


def _discard_new_run(args, err: Exception) -> None:
    """Remove the run folder this command made when the run failed before its first checkpoint, and say so
    in the error's one line."""
    from .core.distributed import world
    from .core.runs import discard_unstarted

    if world().main and discard_unstarted(args.run_dir):
        err.args = (f"{err} (no step was saved, so the run folder {args.run_dir} was removed)",)
        args.run_dir = None


def _auto_resume(args, command: str, side: Side) -> Path | None:
    """--resume auto: the newest run folder under --out of this name that saved a checkpoint, if its saved
    config is the one this command line makes (else an error: a changed run is a new run); None to start."""
    from .core.checkpoints import LATEST
    from .core.config import ConfigError, check_name, load_dataclass, read_saved

    name = check_name(args.name) if args.name is not None else side.name
    found = sorted(
        (p for p in Path(args.out).glob(f"{name}-*") if p.is_dir() and any(p.glob(LATEST[:-3] + "*.pt"))),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        return None
    run_dir = found[-1]
    overrides = ([f"corpus={args.task}"] if side.recurrent else []) + _overrides(args, side.recurrent)
    wanted = _apply_flags(load_dataclass(side.config, args.config, overrides, side.folder, side.what), args).to_dict()
    saved = read_saved(run_dir / "config.yaml")
    differ = sorted(k for k in wanted if k != "progress" and saved.get(k) != wanted[k])
    if (
        command == "train"
        and args.genotype
        and (_genotype(args.genotype, side.recurrent) != _genotype(run_dir / "genotype.json", side.recurrent))
    ):
        differ.append("the genotype")
    if differ:
        raise ConfigError(
            f"--resume auto found {run_dir}, but its config differs in {', '.join(differ)}; resume it "
            f"with its own (dartsnas {command} --resume {run_dir}) or give this run another --name"
        )
    print(f"resuming {run_dir}", file=sys.stderr)
    return run_dir


def _genotype(spec, recurrent: bool):
    """The genotype a spec names: recurrent, or a convolutional one, a NAS-Bench-201 cell or a DARTS genotype."""
    if recurrent:
        from .recurrent.genotype import load_recurrent_genotype

        return load_recurrent_genotype(spec)
    from .conv.nb201.genotype import load_nb201_genotype, names_nb201

    if names_nb201(spec):  # NB201_BEST_CIFAR10, |op~0|+..., its JSON, or a file or run folder holding one
        return load_nb201_genotype(spec)
    from .conv.ops import OPS
    from .core.genotype import load_genotype

    return load_genotype(spec, known_ops=OPS)


def _refuse_new_run_flags(args) -> None:
    """A resumed run keeps its own config and genotype: flags that would change them are refused."""
    from .core.config import ConfigError

    given = [
        flag
        for flag, value in (
            ("GENOTYPE", getattr(args, "genotype", None)),
            ("--task", args.task),
            ("--config", args.config),
            ("--set", args.set),
            ("--device", args.device),
            ("--seed", args.seed),
            ("--deterministic", args.deterministic),
            ("--amp", getattr(args, "amp", False)),
            ("--compile", getattr(args, "compile", False)),
            ("--name", args.name),
            ("--out", args.out if args.out != "runs" else None),
        )
        if value
    ]
    if given:
        raise ConfigError(
            f"--resume continues a run with its own saved config and genotype; drop {', '.join(given)} "
            "(or start a new run)"
        )


def _overrides(args, recurrent: bool) -> list[str]:
    """--set items, then the flags that set config fields (--device, --seed; --compile; --amp for training)."""
    from .core.config import ConfigError

    overrides = list(args.set or [])
    for flag in ("device", "seed"):
        if getattr(args, flag) is not None:
            overrides.append(f"{flag}={getattr(args, flag)}")
    if args.deterministic:
        overrides.append("deterministic=true")
    switches = [flag for flag in ("amp", "compile") if getattr(args, flag, False)]
    if switches and recurrent:
        raise ConfigError("--amp and --compile are for convolutional networks; drop them for a recurrent cell")
    return overrides + [f"{flag}=true" for flag in switches]


def _apply_flags(config, args):
    """The config with the command line's flags that are not config fields applied (--no-progress)."""
    if args.no_progress:
        config.progress = False
    return config


def _new_run(args, name: str) -> Path:
    """A fresh run folder under --out (named --name, or `name`), announced on stderr."""
    from .core.config import check_name
    from .core.distributed import broadcast_object, world
    from .core.runs import new_run_dir

    # --name is checked here, strictly: the default (a config file's stem) may hold spaces, never a '/'.
    name = check_name(args.name) if args.name is not None else name
    if not world().main:  # one run folder for all ranks of a torchrun: rank 0's
        return broadcast_object(None)
    run_dir = broadcast_object(new_run_dir(args.out, name))
    print(f"run folder: {run_dir}", file=sys.stderr)
    return run_dir


def _run_kind(run_dir: Path) -> str | None:
    """ "search" or "train", by the saved config.yaml of a run folder (only searches tune alphas: arch_lr);
    None when it has no readable one."""
    from .core.config import ConfigError, read_saved

    try:
        saved = read_saved(run_dir / "config.yaml")
    except ConfigError:
        return None
    return None if not saved else "search" if "arch_lr" in saved else "train"


def _recurrent_run(run_dir) -> bool:
    from .recurrent.config import is_recurrent_run

    return is_recurrent_run(run_dir)


# ----------------------------------------------------------------------------------------------
# the other commands


def cmd_plot(args) -> None:
    from .conv.nb201.plot import is_nb201_run

    if _recurrent_run(args.run):
        from .recurrent.plot import plot_recurrent_run as plot
    elif is_nb201_run(args.run):
        from .conv.nb201.plot import plot_nb201_run as plot
    else:
        from .core.plot import plot_run as plot
    for f in plot(args.run):
        print(f)


def cmd_genotype(args) -> None:
    from .conv.nb201.genotype import PUBLISHED_NB201
    from .core.genotype import PUBLISHED
    from .recurrent.genotype import RECURRENT_PUBLISHED, names_recurrent

    if args.list or args.spec is None:  # an empty spec ('') is a mistake, not a request for the list
        for name, g in (PUBLISHED | RECURRENT_PUBLISHED | PUBLISHED_NB201).items():
            print(f"{name}: {g}")
        return
    # DARTS_RNN, a recurrent run folder, Genotype(recurrent=...); else a NAS-Bench-201 cell or a DARTS genotype
    g = _genotype(args.spec, recurrent=names_recurrent(args.spec))
    print(json.dumps(g.to_dict()) if args.json else g)


def cmd_export(args) -> None:
    from .conv.export import export_run

    for report in export_run(Path(args.run), args.format, best=args.best):
        print(
            f"{report['format']:<12} {report['path']}  max |logit difference| against eager: "
            f"{report['max_abs_diff']:.3g}"
        )


def cmd_info(args) -> None:
    from .recurrent.genotype import names_recurrent

    if names_recurrent(args.genotype):
        return cmd_info_recurrent(args)
    from .conv.nb201.genotype import CellGenotype
    from .conv.network import network_info
    from .core.config import ConfigError

    genotype = _genotype(args.genotype, recurrent=False)
    nb201 = isinstance(genotype, CellGenotype)  # its network is the benchmark's, and only it builds one
    net = args.net or ("nas-bench-201" if nb201 else "cifar10")
    if nb201 != (net == "nas-bench-201"):
        raise ConfigError(
            f"{args.genotype} is a NAS-Bench-201 cell: its network is the benchmark's; drop --net "
            f"{net} (or give --net nas-bench-201)"
            if nb201
            else f"--net nas-bench-201 builds NAS-Bench-201 cells; {args.genotype} is a DARTS genotype: "
            "use --net cifar10 or imagenet"
        )
    options = {k: v for k, v in (("init_channels", args.init_channels), ("layers", args.layers)) if v is not None}
    try:
        info = network_info(net, genotype, num_classes=args.classes, **options)
    except ValueError as err:  # a network that cannot be built (too few layers, odd channels)
        raise ConfigError(str(err)) from None
    if nb201:  # its true accuracy: the benchmark trained every cell (200 epochs, C=16, N=5)
        from .conv.nb201.table import DATASETS, load_table

        info["nas_bench_201_test_acc"] = {d: load_table().accuracy(genotype, d) for d in DATASETS}
    if args.json:
        print(json.dumps(info))
        return
    c, h, w = info["input_shape"]
    print(
        f"network        {info['net']} layout: {info['layers']} cells, {info['init_channels']} initial channels, "
        f"{info['num_classes']} classes"
    )
    aux = (
        f"; the auxiliary head's {info['auxiliary_parameters']:,} not counted, as in the paper"
        if info["auxiliary_parameters"]
        else ""
    )
    print(f"parameters     {info['parameters'] / 1e6:.3f} M ({info['parameters']:,}{aux})")
    print(
        f"multiply-adds  {info['macs'] / 1e6:.1f} M at {c}x{h}x{w} (convolutions and matrix products, "
        f"eval mode, as torch's FlopCounterMode counts them)"
    )
    if nb201:
        accs = ", ".join(f"{d} {a:.2f} %" for d, a in info["nas_bench_201_test_acc"].items())
        print(f"NAS-Bench-201  test accuracy after the benchmark's training (C=16, N=5, 200 epochs): {accs}")


def cmd_derive(args) -> None:
    from .conv.rederive import rederive, summary

    _, path = rederive(
        args.run,
        args.rule,
        skip_cap=args.skip_cap,
        tune_epochs=args.tune_epochs,
        seed=args.seed,
        device=args.device,
        name=args.name,
        log=lambda line: print(line, file=sys.stderr),
        batches=args.batches,
        prior_weight=args.prior_weight,
    )
    print(summary(json.loads(path.read_text()), path))


# Vocabulary sizes of the standard corpora (their training files' words, <eos> included).
VOCABULARY = {"ptb": 10_000, "wikitext2": 33_278}


def cmd_info_recurrent(args) -> None:
    import torch

    from .recurrent.model import evaluation_model
    from .recurrent.train import count_parameters

    genotype = _genotype(args.genotype, recurrent=True)
    emsize = args.emsize or 850
    vocab = VOCABULARY[args.task]
    with torch.device("meta"):  # only the shapes are needed: nothing is allocated
        model = evaluation_model(genotype, vocab, emsize)
    n = count_parameters(model)
    if args.json:
        print(
            json.dumps(
                {
                    "net": "recurrent",
                    "nodes": genotype.nodes,
                    "emsize": emsize,
                    "vocabulary": vocab,
                    "task": args.task,
                    "parameters": n,
                }
            )
        )
        return
    print(
        f"network        recurrent language model: {genotype.nodes} nodes, embedding and hidden {emsize}, "
        f"vocabulary {vocab:,} ({args.task}), tied weights"
    )
    print(f"parameters     {n / 1e6:.3f} M ({n:,}; the decoder matrix is the embedding's, counted once)")


# ----------------------------------------------------------------------------------------------
# the parser


def _run_flags(p, what: str, configs: str, default_name: str, task_help: str) -> None:
    """The flags every run command takes (search and train, both sides)."""
    p.add_argument("--config", help=f"a YAML file, or the name of a shipped config ({configs})")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (sets the config's device)")
    p.add_argument("--seed", type=int, help="random seed (sets the config's seed)")
    p.add_argument("--out", default="runs", help="folder that receives the run folder (default: runs)")
    p.add_argument("--name", help=f"run folder name prefix (default: {default_name})")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help=f"continue the {what} run in folder RUN from its last checkpoint; "
        "auto: the newest run of this --name under --out if there is one "
        "(same config), else start it",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels on CUDA (slower; CPU runs are bit-identical anyway)",
    )
    p.add_argument("--task", choices=TASKS, help=task_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dartsnas", description="Differentiable architecture search (DARTS).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="search a convolutional cell (a recurrent one with --task); writes a run folder")
    _run_flags(
        p,
        "search",
        "quick, cifar10, ...",
        "the config's name",
        "search a recurrent cell on a word-level corpus (text: your own, --set data_dir=DIR); "
        "configs are then the shipped recurrent ones (quick, ptb, ...)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the supernet (CUDA graphs on CUDA; sets the config's compile)",
    )
    p.set_defaults(func=lambda args: _run(args, "search"))

    p = sub.add_parser("train", help="train a genotype from scratch (the paper's evaluation); writes a run folder")
    p.add_argument(
        "genotype",
        nargs="?",
        help="DARTS_V2, a genotype.json, a search run folder, or genotype text; "
        "a NAS-Bench-201 cell (NB201_BEST_CIFAR10, |op~0|+...) trains with "
        "--config nb201",
    )
    _run_flags(
        p,
        "training",
        "cifar10, imagenet, quick, nb201, nb201-quick",
        "train-<config name>",
        "train a recurrent genotype as a language model on this corpus (text: your own, --set data_dir=DIR); "
        "configs are then the shipped recurrent ones (ptb, wikitext2, quick)",
    )
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (for CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.set_defaults(func=lambda args: _run(args, "train"))

    p = sub.add_parser("plot", help="draw the pictures of a run folder into RUN/plots")
    p.add_argument("run", help="a search or training run folder")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("genotype", help="print a genotype (registry name, genotype.json, run folder, or text)")
    p.add_argument(
        "spec",
        nargs="?",
        help="e.g. DARTS_V2, NB201_BEST_CIFAR10, runs/quick-.../genotype.json, "
        "a run folder, or a NAS-Bench-201 cell string |op~0|+...",
    )
    p.add_argument("--list", action="store_true", help="list the published genotypes")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_genotype)

    p = sub.add_parser("export", help="export a trained network (torch.export .pt2, ONNX, safetensors) into RUN/export")
    p.add_argument("run", help="a training run folder")
    p.add_argument(
        "--format",
        nargs="+",
        choices=["pt2", "onnx", "safetensors"],
        help="formats to write (default: every one whose packages are installed)",
    )
    p.add_argument("--best", action="store_true", help="the best validation epoch's weights (best.pt), not the last")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="parameters and multiply-adds of the network a genotype makes")
    p.add_argument(
        "genotype", help="DARTS_V2, NB201_BEST_CIFAR10, a genotype.json, a search run folder, or genotype text"
    )
    p.add_argument(
        "--net",
        choices=["cifar10", "imagenet", "nas-bench-201"],
        help="the paper's CIFAR-10 (32x32) or ImageNet mobile (224x224) layout, or NAS-Bench-201's "
        "network (32x32) (default: nas-bench-201 for a NAS-Bench-201 cell, cifar10 otherwise)",
    )
    p.add_argument("--classes", type=int, help="class count (default: the layout's, 10 or 1000)")
    p.add_argument(
        "--init-channels", type=int, help="initial channels (default: 36 CIFAR, 48 ImageNet, 16 NAS-Bench-201)"
    )
    p.add_argument("--layers", type=int, help="cells (default: 20 CIFAR, 14 ImageNet, 15 NAS-Bench-201: 3 stages of 5)")
    p.add_argument(
        "--task",
        choices=["ptb", "wikitext2"],
        default="ptb",
        help="recurrent genotypes: the vocabulary of this corpus (10,000 or 33,278 words; default: ptb)",
    )
    p.add_argument("--emsize", type=int, help="recurrent genotypes: embedding and hidden size (default: 850)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "derive",
        help="derive a finished search's cell again by another rule (DARTS-PT, argmax "
        "with a skip cap, ...) into RUN/derived/NAME.json",
    )
    p.add_argument("run", help="a convolutional search run folder (it needs its checkpoint.pt)")
    from .methods.derivations import NETWORK  # the registry's names; importing it needs no torch

    p.add_argument(
        "--rule",
        choices=["argmax", *NETWORK],
        default="pt",
        help="argmax: the space's own rule on the alphas; pt: DARTS-PT's perturbation (default); bnb",
    )
    p.add_argument("--skip-cap", type=int, help="argmax: at most M skip connections in the normal cell (P-DARTS)")
    p.add_argument(
        "--tune-epochs",
        type=int,
        default=None,
        help="pt: supernet tuning epochs between decisions (default: the authors', 5 in NAS-Bench-201, 10 in DARTS)",
    )
    p.add_argument("--seed", type=int, default=0, help="the order pt visits edges in (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--name", help="the file name under RUN/derived (default: the rule, e.g. pt, argmax-skip-cap-2)")
    p.add_argument("--batches", type=int, help="pt, bnb: validation batches per evaluation (default: all)")
    p.add_argument("--prior-weight", type=float, help="bnb: the weight of the alphas' prior")
    p.set_defaults(func=cmd_derive)

    _add_bench(sub)
    from .experiments.seeds import add_parser as add_seeds  # the paper's multi-seed protocol: search, train, choose

    add_seeds(sub)
    return parser


def _add_bench(sub) -> None:
    """`dartsnas bench`: what times the code (bench/) and what judges searches over many runs (experiments/)."""
    from .bench import convs, distributed, search_step
    from .experiments import quality, random_search, skips

    p = sub.add_parser("bench", help="benchmarks: bench search-step | conv | quality | random | skips | distributed")
    what = p.add_subparsers(dest="what", required=True)
    for module in (search_step, convs, quality, random_search, skips, distributed):
        module.add_parser(what)


# Exit statuses: what went wrong, for scripts and schedulers (a signal's is 128 + its number, as a shell's).
EXIT_USER_ERROR = 2  # a bad config, genotype, dataset or run folder: the message names the fix
EXIT_OUT_OF_MEMORY = 3  # the peak memory seen and what to change
EXIT_DIVERGED = 4  # non-finite or exploding values: the run stopped, its last good checkpoint kept


def main(argv: list[str] | None = None) -> int:
    from .core.device import OutOfMemory
    from .core.guard import Diverged
    from .core.runs import Interrupted

    from .core.distributed import stop

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except _user_errors() as err:
        return _fail(args, str(err), EXIT_USER_ERROR)
    except Diverged as err:
        return _fail(args, str(err), EXIT_DIVERGED, agreed=True)
    except OutOfMemory as err:  # a search's own advice, measured by probes
        return _fail(args, str(err), EXIT_OUT_OF_MEMORY)
    except Interrupted as err:
        return _fail(args, str(err).format(command=args.command), 128 + err.signum, "", agreed=True)
    except KeyboardInterrupt:  # before a run loop took over the signal, or a second Ctrl-C
        return _fail(args, f"interrupted{_resume_hint(args)}", 130, "")
    except (RuntimeError, MemoryError) as err:  # failed CPU allocations are RuntimeErrors; CUDA's are too
        if not _out_of_memory(err):
            raise
        return _fail(args, _memory_message(err), EXIT_OUT_OF_MEMORY)
    finally:
        stop()  # leave torchrun's process group, if this run joined one
    return 0


def _out_of_memory(err: BaseException) -> bool:
    import torch

    text = str(err)
    return (
        isinstance(err, (torch.OutOfMemoryError, MemoryError))
        or "not enough memory" in text
        or "can't allocate memory" in text
        or "out of memory" in text.lower()
    )


def _memory_message(err: BaseException) -> str:
    from .core.device import peak_memory_gb
    import torch

    device = torch.device("cuda") if isinstance(err, torch.OutOfMemoryError) else torch.device("cpu")
    return (
        f"out of memory (peak {peak_memory_gb(device):.2f} GB on {device}): lower batch_size, or search with "
        "mixed_op: lean or partial (far less memory per step), or train with --amp; "
        "dartsnas bench search-step measures the memory of each mode"
    )


def _fail(args, message: str, status: int, prefix: str = "error: ", agreed: bool = False) -> int:
    """One line on stderr, and the same in the run folder's log when the failing command had made one.
    In a data-parallel run rank 0 speaks for all; the others only of what happened to them alone."""
    from .core.distributed import world

    if not world().main:
        if not agreed:
            print(f"dartsnas {args.command} [rank {world().rank}]: {prefix}{message}", file=sys.stderr)
        return status
    line = f"dartsnas {args.command}: {prefix}{message}"
    print(line, file=sys.stderr)
    run_dir = getattr(args, "run_dir", None)
    if run_dir is not None and Path(run_dir).is_dir():
        import time

        try:
            with open(Path(run_dir) / "log.txt", "a") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line} (exit status {status})\n")
        except OSError:  # the folder became unwritable: the message on stderr is what is left
            pass
    return status


def _resume_hint(args) -> str:
    """How to continue an interrupted run, if it saved a checkpoint; else that there is nothing to resume."""
    from .core.checkpoints import LATEST

    run_dir = getattr(args, "run_dir", None)
    if run_dir is None:
        return ""
    if any(Path(run_dir).glob(LATEST.replace(".pt", "*.pt"))):
        return f"; continue with: dartsnas {args.command} --resume {run_dir}"
    return f"; it had saved no checkpoint yet, so {run_dir} holds nothing to resume: start it again"
