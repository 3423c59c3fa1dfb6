"""The command line: `dartsnas search`, `dartsnas plot`, `dartsnas genotype`, `dartsnas info`, `dartsnas train`.

Errors a user can cause end here as one line on stderr and exit status 2, not as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _user_errors() -> tuple[type[Exception], ...]:
    from .core.config import ConfigError
    from .conv.data import DataError
    from .core.genotype import GenotypeError
    from .core.runs import RunError
    errors = [ConfigError, DataError, GenotypeError, RunError]
    try:
        from .core.plot import PlotError
        errors.append(PlotError)
    except ImportError:
        pass
    return tuple(errors)


def cmd_search(args) -> None:
    if args.task or (args.resume and _recurrent_run(args.resume)):
        return cmd_search_recurrent(args)
    from .conv.config import load_config
    from .core.config import ConfigError
    from .conv.search import run_search

    overrides = _overrides(args)
    if args.resume:
        if args.config or overrides:
            raise ConfigError("--resume continues a run with its own saved config; drop --config, --set, "
                              "--device and --seed (or start a new run)")
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").exists():
            raise ConfigError(f"--resume {run_dir}: no config.yaml there; give the folder of an earlier search run")
        config = load_config(run_dir / "config.yaml")
        run_search(config, run_dir, resume=True)
        return
    config = load_config(args.config, overrides)
    config = _apply_flags(config, args)
    run_dir = _new_run(args, Path(args.config).stem if args.config else "search")
    run_search(config, run_dir)


def cmd_plot(args) -> None:
    if _recurrent_run(args.run):
        from .recurrent.plot import plot_recurrent_run
        for f in plot_recurrent_run(args.run):
            print(f)
        return
    from .core.plot import plot_run

    files = plot_run(args.run)
    for f in files:
        print(f)


def cmd_genotype(args) -> None:
    from .core.genotype import PUBLISHED, load_genotype
    from .recurrent.genotype import RECURRENT_PUBLISHED, load_recurrent_genotype, names_recurrent
    from .conv.ops import OPS

    if args.list or not args.spec:
        for name, g in (PUBLISHED | RECURRENT_PUBLISHED).items():
            print(f"{name}: {g}")
        return
    if names_recurrent(args.spec):  # DARTS_RNN, a recurrent run folder, Genotype(recurrent=...)
        g = load_recurrent_genotype(args.spec)
    else:
        g = load_genotype(args.spec, known_ops=OPS)
    print(json.dumps(g.to_dict()) if args.json else g)


def cmd_train(args) -> None:
    if args.task or (args.resume and _recurrent_run(args.resume)):
        return cmd_train_recurrent(args)
    from .core.config import ConfigError
    from .core.genotype import load_genotype
    from .conv.ops import OPS
    from .conv.train import run_training
    from .conv.config import load_train_config

    overrides = _overrides(args)
    overrides += [f"{flag}=true" for flag in ("amp", "compile") if getattr(args, flag)]
    if args.resume:
        if args.genotype or args.config or overrides:
            raise ConfigError("--resume continues a run with its own genotype and config; drop GENOTYPE, --config, "
                              "--set, --device, --seed, --amp and --compile (or start a new run)")
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").exists() or not (run_dir / "genotype.json").exists():
            raise ConfigError(f"--resume {run_dir}: no config.yaml and genotype.json there; give the folder of an "
                              "earlier training run")
        config = load_train_config(run_dir / "config.yaml")
        config = _apply_flags(config, args)
        run_training(config, load_genotype(run_dir / "genotype.json", known_ops=OPS), run_dir, resume=True)
        return
    if not args.genotype:
        raise ConfigError("name the genotype to train: DARTS_V2, a genotype.json, a search run folder or genotype text")
    genotype = load_genotype(args.genotype, known_ops=OPS)
    config = load_train_config(args.config, overrides)
    config = _apply_flags(config, args)
    run_dir = _new_run(args, "train-" + Path(args.config).stem if args.config else "train")
    run_training(config, genotype, run_dir)


def cmd_export(args) -> None:
    from .conv.export import export_run

    for report in export_run(Path(args.run), args.format, best=args.best):
        print(f"{report['format']:<12} {report['path']}  max |logit difference| against eager: "
              f"{report['max_abs_diff']:.3g}")


def cmd_info(args) -> None:
    from .recurrent.genotype import names_recurrent
    if names_recurrent(args.genotype):
        return cmd_info_recurrent(args)
    from .core.config import ConfigError
    from .core.genotype import load_genotype
    from .conv.network import network_info
    from .conv.ops import OPS

    genotype = load_genotype(args.genotype, known_ops=OPS)
    options = {k: v for k, v in (("init_channels", args.init_channels), ("layers", args.layers)) if v is not None}
    try:
        info = network_info(args.net, genotype, num_classes=args.classes, **options)
    except ValueError as err:  # a network that cannot be built (too few layers, odd channels)
        raise ConfigError(str(err)) from None
    if args.json:
        print(json.dumps(info))
        return
    c, h, w = info["input_shape"]
    print(f"network        {info['net']} layout: {info['layers']} cells, {info['init_channels']} initial channels, "
          f"{info['num_classes']} classes")
    print(f"parameters     {info['parameters'] / 1e6:.3f} M ({info['parameters']:,}; the auxiliary head's "
          f"{info['auxiliary_parameters']:,} not counted, as in the paper)")
    print(f"multiply-adds  {info['macs'] / 1e6:.1f} M at {c}x{h}x{w} (convolutions and matrix products, "
          f"eval mode, as torch's FlopCounterMode counts them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dartsnas", description="Differentiable architecture search (DARTS).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="search a convolutional cell (a recurrent one with --task); writes a run folder")
    p.add_argument("--config", help="a YAML file, or the name of a shipped config (quick, cifar10, ...)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (sets the config's device)")
    p.add_argument("--seed", type=int, help="random seed (sets the config's seed)")
    p.add_argument("--out", default="runs", help="folder that receives the run folder (default: runs)")
    p.add_argument("--name", help="run folder name prefix (default: the config's name)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN from its last checkpoint")
    p.add_argument("--task", choices=["ptb", "wikitext2", "text"],
                   help="search a recurrent cell on a word-level corpus (text: your own, --set data_dir=DIR); "
                        "configs are then the shipped recurrent ones (quick, ptb, ...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("plot", help="draw the pictures of a run folder into RUN/plots")
    p.add_argument("run", help="a search run folder")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("genotype", help="print a genotype (registry name, genotype.json, run folder, or text)")
    p.add_argument("spec", nargs="?", help="e.g. DARTS_V2, runs/quick-.../genotype.json, or a run folder")
    p.add_argument("--list", action="store_true", help="list the published genotypes")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_genotype)

    p = sub.add_parser("train", help="train a genotype from scratch (the paper's evaluation); writes a run folder")
    p.add_argument("genotype", nargs="?", help="DARTS_V2, a genotype.json, a search run folder, or genotype text")
    p.add_argument("--config", help="a YAML file, or a shipped training config: cifar10, imagenet, quick")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (sets the config's device)")
    p.add_argument("--seed", type=int, help="random seed (sets the config's seed)")
    p.add_argument("--out", default="runs", help="folder that receives the run folder (default: runs)")
    p.add_argument("--name", help="run folder name prefix (default: train-<config name>)")
    p.add_argument("--resume", metavar="RUN", help="continue the training run in folder RUN from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (for CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--task", choices=["ptb", "wikitext2", "text"],
                   help="train a recurrent genotype as a language model on this corpus (text: your own, "
                        "--set data_dir=DIR); configs are then the shipped recurrent ones (ptb, wikitext2, quick)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a trained network (torch.export .pt2, ONNX, safetensors) into RUN/export")
    p.add_argument("run", help="a training run folder")
    p.add_argument("--format", nargs="+", choices=["pt2", "onnx", "safetensors"],
                   help="formats to write (default: every one whose packages are installed)")
    p.add_argument("--best", action="store_true", help="the best validation epoch's weights (best.pt), not the last")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="parameters and multiply-adds of the network a genotype makes")
    p.add_argument("genotype", help="DARTS_V2, a genotype.json, a search run folder, or genotype text")
    p.add_argument("--net", choices=["cifar10", "imagenet"], default="cifar10",
                   help="the paper's CIFAR-10 (32x32) or ImageNet mobile (224x224) layout (default: cifar10)")
    p.add_argument("--classes", type=int, help="class count (default: the layout's, 10 or 1000)")
    p.add_argument("--init-channels", type=int, help="initial channels (default: 36 CIFAR, 48 ImageNet)")
    p.add_argument("--layers", type=int, help="cells (default: 20 CIFAR, 14 ImageNet)")
    p.add_argument("--task", choices=["ptb", "wikitext2"], default="ptb",
                   help="recurrent genotypes: the vocabulary of this corpus (10,000 or 33,278 words; default: ptb)")
    p.add_argument("--emsize", type=int, help="recurrent genotypes: embedding and hidden size (default: 850)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    from .tools.bench import add_parser
    add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except _user_errors() as err:
        print(f"dartsnas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; continue with: dartsnas {args.command} --resume RUN", file=sys.stderr)
        return 130
    return 0


# ----------------------------------------------------------------------------------------------
# The recurrent side (language modelling): `search --task`, `train --task`, `plot` and `genotype` of such runs.

def _recurrent_run(run_dir) -> bool:
    from .recurrent.config import is_recurrent_run
    return is_recurrent_run(run_dir)


def _overrides(args) -> list[str]:
    overrides = list(args.set or [])
    for flag in ("device", "seed"):
        if getattr(args, flag) is not None:
            overrides.append(f"{flag}={getattr(args, flag)}")
    return overrides


def _apply_flags(config, args):
    """The config with the command line's flags that are not config fields applied (--no-progress)."""
    if args.no_progress:
        config.progress = False
    return config


def _new_run(args, name: str) -> Path:
    """A fresh run folder under --out (named --name, or `name`), announced on stderr."""
    from .core.runs import new_run_dir

    run_dir = new_run_dir(args.out, args.name or name)
    print(f"run folder: {run_dir}", file=sys.stderr)
    return run_dir


def cmd_search_recurrent(args) -> None:
    from .core.config import ConfigError
    from .recurrent.config import RecurrentSearchConfig, load_recurrent_config, read_run_config
    from .recurrent.search import run_recurrent_search

    overrides = _overrides(args)
    if args.resume:
        if args.config or overrides or args.task:
            raise ConfigError("--resume continues a run with its own saved config; drop --task, --config, --set, "
                              "--device and --seed (or start a new run)")
        config = read_run_config(RecurrentSearchConfig, args.resume)
        config = _apply_flags(config, args)
        run_recurrent_search(config, Path(args.resume), resume=True)
        return
    config = load_recurrent_config(RecurrentSearchConfig, args.config, [f"corpus={args.task}"] + overrides)
    config = _apply_flags(config, args)
    run_dir = _new_run(args, f"{args.task}-" + (Path(args.config).stem if args.config else "search"))
    run_recurrent_search(config, run_dir)


def cmd_train_recurrent(args) -> None:
    from .core.config import ConfigError
    from .recurrent.genotype import load_recurrent_genotype
    from .recurrent.config import RecurrentTrainConfig, load_recurrent_config, read_run_config
    from .recurrent.train import run_recurrent_training

    overrides = _overrides(args)
    if args.amp or args.compile:
        raise ConfigError("--amp and --compile are for convolutional networks; drop them for a recurrent cell")
    if args.resume:
        if args.genotype or args.config or overrides or args.task:
            raise ConfigError("--resume continues a run with its own genotype and config; drop GENOTYPE, --task, "
                              "--config, --set, --device and --seed (or start a new run)")
        run_dir = Path(args.resume)
        if not (run_dir / "genotype.json").exists():
            raise ConfigError(f"--resume {run_dir}: no genotype.json there; give the folder of an earlier training run")
        config = read_run_config(RecurrentTrainConfig, run_dir)
        config = _apply_flags(config, args)
        run_recurrent_training(config, load_recurrent_genotype(run_dir / "genotype.json"), run_dir, resume=True)
        return
    if not args.genotype:
        raise ConfigError("name the recurrent genotype to train: DARTS_RNN, a genotype.json, a search run folder or "
                          "genotype text")
    genotype = load_recurrent_genotype(args.genotype)
    config = load_recurrent_config(RecurrentTrainConfig, args.config, [f"corpus={args.task}"] + overrides)
    config = _apply_flags(config, args)
    run_dir = _new_run(args, f"train-{args.task}-" + (Path(args.config).stem if args.config else "paper"))
    run_recurrent_training(config, genotype, run_dir)


# Vocabulary sizes of the standard corpora (their training files' words, <eos> included).
VOCABULARY = {"ptb": 10_000, "wikitext2": 33_278}


def cmd_info_recurrent(args) -> None:
    import torch

    from .recurrent.genotype import load_recurrent_genotype
    from .recurrent.model import evaluation_model
    from .recurrent.train import count_parameters

    genotype = load_recurrent_genotype(args.genotype)
    emsize = args.emsize or 850
    vocab = VOCABULARY[args.task]
    with torch.device("meta"):  # only the shapes are needed: nothing is allocated
        model = evaluation_model(genotype, vocab, emsize)
    n = count_parameters(model)
    if args.json:
        print(json.dumps({"net": "recurrent", "nodes": genotype.nodes, "emsize": emsize, "vocabulary": vocab,
                          "task": args.task, "parameters": n}))
        return
    print(f"network        recurrent language model: {genotype.nodes} nodes, embedding and hidden {emsize}, "
          f"vocabulary {vocab:,} ({args.task}), tied weights")
    print(f"parameters     {n / 1e6:.3f} M ({n:,}; the decoder matrix is the embedding's, counted once)")
