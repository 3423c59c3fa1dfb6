"""Training a genotype from scratch (the paper's evaluation, Sec. 3.3): SGD on the network that
network.py builds, with the auxiliary head, drop path ramped over the epochs, cutout, and a checkpoint
after every epoch from which `--resume` continues bit for bit.

Model selection never sees the test split: with `valid_portion > 0` a held-out part of the training set
picks the best epoch (best.pt); the test split is evaluated once, at the end, for the final weights and
for the best ones. The official CIFAR-10 protocol trains on all 50,000 images and reports the last epoch
(`valid_portion: 0` in the shipped cifar10 config).

A NAS-Bench-201 cell trains the same way in the benchmark's own network (`net: nas-bench-201`; the shipped
`nb201` config is the benchmark's recipe: Nesterov SGD, no gradient clipping, no auxiliary head, drop path
or cutout). The genotype's kind and the layout must agree (`check_genotype`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..core.config import ConfigError
from ..data.batches import Augment, batches, channel_stats, training_augment
from ..data.images import ImageSet, load_images
from ..core.genotype import Genotype
from .nb201.genotype import EXAMPLE as NB201_EXAMPLE, CellGenotype
from .network import NETWORKS, build_network, count_parameters, drop_path_ramp
from ..core.checkpoints import load_checkpoint, save_checkpoint
from ..core.guard import Guard
from ..core.distributed import broadcast_, check_batch, shard, total, world
from ..core.distributed import describe
from ..core.distributed import start as start_world
from ..core.runs import NO_STEPS, Steps, rank_folder, run_epochs, start_run
from .config import TrainConfig

log = logging.getLogger("dartsnas")


class InMemory:
    """A split held whole on the device, cut into batches and augmented there (data.batches).

    With a generator the batches are shuffled and augmented (training); without, they come in order and
    are only normalised (evaluation). Data-parallel: every rank draws and augments the global batch as one
    process would and keeps its shard (core/distributed.py); the last training batch only if whole.
    """

    def __init__(self, data: ImageSet, batch_size: int, augment: Augment, generator: torch.Generator | None = None):
        self.data, self.batch_size, self.augment, self.generator = data, batch_size, augment, generator
        # A last batch of one image cannot be batch-normalised where the auxiliary head's maps are 1x1.
        ragged = len(data) % batch_size
        self.drop_last = generator is not None and (ragged == 1 or bool(ragged and world().distributed))

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        return self.epoch()

    def epoch(self, skip: int = 0):
        """This epoch's batches after the first `skip` (data.batches: the order is drawn at once)."""
        epoch = batches(
            self.data,
            self.batch_size,
            self.generator,
            self.augment,
            shuffle=self.generator is not None,
            drop_last=self.drop_last,
            skip=skip,
        )
        return ((shard(x), shard(y)) for x, y in epoch) if world().distributed else epoch


@dataclass
class TrainData:
    train: object  # iterables of (x, y) batches on the device, with len() = batches per epoch
    valid: object | None  # held out from the training set; None when valid_portion is 0
    test: object
    in_channels: int
    num_classes: int
    size: tuple[int, int]
    classes: list[str]
    mean: tuple[float, ...]  # the normalisation the network expects its inputs in (pixels in [0, 1])
    std: tuple[float, ...]


def prepare_data(config: TrainConfig, device: torch.device, generator: torch.Generator) -> TrainData:
    if config.data_loader == "workers":
        from ..data.stream import prepare_stream

        return TrainData(*prepare_stream(config, device, generator))
    train = load_images(config.dataset, "train", config.data_dir, config.download, **config.data_options)
    test = load_images(config.dataset, "test", config.data_dir, config.download, **config.data_options)
    if config.subset is not None:
        train = train.subset(torch.arange(min(config.subset, len(train))))
    train, valid = split_valid(train, config.valid_portion, config.seed)
    if config.cutout and config.cutout_length // 2 >= min(train.size):
        raise ConfigError(
            f"cutout_length {config.cutout_length} blanks the whole {train.size[0]}x{train.size[1]} image "
            "wherever it falls; set cutout: false or a cutout_length below twice the image side"
        )
    mean, std = channel_stats(train.images)
    augment = training_augment(config, train, mean, std)
    plain = Augment(mean, std)
    eval_batch = 2 * config.batch_size  # no activations kept for backward
    return TrainData(
        InMemory(train.to(device), config.batch_size, augment, generator),
        InMemory(valid.to(device), eval_batch, plain) if valid is not None else None,
        InMemory(test.to(device), eval_batch, plain),
        train.in_channels,
        train.num_classes,
        train.size,
        list(train.classes),
        mean,
        std,
    )


def split_valid(data: ImageSet, portion: float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """Hold out `portion` of the images (a fixed function of the seed) for model selection."""
    if portion == 0:
        return data, None
    n = len(data)
    held = int(n * portion)
    if held < 1 or n - held < 2:
        raise ConfigError(
            f"valid_portion={portion} of {n} training images leaves no validation image or too few "
            "training images; use more data (subset) or another valid_portion (0 for none)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[held:]), data.subset(perm[:held])


class Trainer:
    """Owns the network, the optimiser, its schedule and the random state: everything a checkpoint holds.
    A `core.runs.Driver`: run_epochs starts, resumes and loops it."""

    logs = ("metrics.jsonl",)

    def __init__(
        self,
        config: TrainConfig,
        genotype: Genotype | CellGenotype,
        data: TrainData,
        device: torch.device,
        generator: torch.Generator,
    ):
        self.config, self.data, self.device, self.generator = config, data, device, generator
        torch.manual_seed(config.seed)
        self.model = build_network(
            config.net,
            genotype,
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            init_channels=config.init_channels,
            layers=config.layers,
            auxiliary=config.auxiliary,
        ).to(device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        # Data-parallel: DistributedDataParallel averages the gradients while backward runs; drop path draws
        # its masks from torch's generator, each rank its own. Evaluation runs on the plain module (each rank
        # a share of the images, rank 0's batch-norm statistics).
        network = self.model
        if world().wrapped:
            check_batch(config.batch_size)
            torch.manual_seed(config.seed + world().rank)
            if config.sync_bn:
                if device.type != "cuda":
                    raise ConfigError(
                        "sync_bn: torch's SyncBatchNorm runs on GPUs only; on CPU each rank normalises "
                        "its own shard (drop sync_bn, or train on CUDA)"
                    )
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            network = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        # The compiled module shares the parameters; checkpoints always come from the plain one.
        self.forward = torch.compile(network) if config.compile else network
        self.eval_forward = (
            self.forward if network is self.model else (torch.compile(self.model) if config.compile else self.model)
        )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
        if config.lr_schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, config.epochs, config.lr_min)
        else:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 1, gamma=config.lr_gamma)
        self.epoch = 0
        self.best = {"epoch": 0, "valid_acc": None}
        self.guard = Guard(device)  # run_epochs sets the run's own

    def state_dict(self) -> dict:
        # Drop path draws its masks from torch's global generators: run_epochs keeps their states with this.
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "best": dict(self.best),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch, self.best = state["epoch"], dict(state["best"])

    def autocast(self):
        if not self.config.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train_epoch(self, progress=None, steps: Steps = NO_STEPS) -> dict:
        cfg = self.config
        self.model.train()
        self.model.set_drop_path_prob(drop_path_ramp(cfg.drop_path_prob, self.epoch, cfg.epochs))
        # Inside a resumed epoch: the order is drawn again from the generator's state at the epoch's start, the
        # batches done are passed over, and the generator goes on from the checkpoint's state.
        start, now = steps.resume_at(), self.generator.get_state()
        if start:
            self.generator.set_state(start["epoch_generator"])
        epoch_generator, done = self.generator.get_state(), start["step"] if start else 0
        train = self.data.train.epoch(skip=done)
        sums = start["sums"].to(self.device) if start else torch.zeros(3, device=self.device)  # loss, correct, seen
        if start:
            self.generator.set_state(now)
            if progress is not None:
                progress.update(done)
        params = list(self.model.parameters())
        for step, (x, y) in enumerate(train, start=done):
            self.guard.step = step
            x = x.contiguous(memory_format=self.memory_format)
            with self.autocast():
                out = self.forward(x)
                logits, logits_aux = out if isinstance(out, tuple) else (out, None)
                loss = self.criterion(logits, y)
                objective = loss if logits_aux is None else loss + cfg.auxiliary_weight * self.criterion(logits_aux, y)
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if cfg.grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            else:
                norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            if self.guard.watch(1, (objective,), (norm,)):
                self.optimizer.step()
            n = len(y)
            sums += torch.stack(
                [
                    loss.detach().float() * n,
                    (logits.argmax(1) == y).sum().float(),
                    torch.tensor(float(n), device=self.device),
                ]
            )
            if progress is not None:
                progress.update(1)
                if step % 10 == 0:  # one host sync per ten steps
                    s = sums.tolist()
                    progress.set_postfix(loss=f"{s[0] / s[2]:.3f}", acc=f"{s[1] / s[2]:.3f}")
            steps.after(step + 1, lambda: {"step": step + 1, "sums": sums, "epoch_generator": epoch_generator})
        s = total(sums).tolist()
        return {"train_loss": s[0] / s[2], "train_acc": s[1] / s[2]}

    @torch.no_grad()
    def evaluate(self, split, prefix: str) -> dict:
        self.model.eval()
        broadcast_(list(self.model.buffers()))  # data-parallel: rank 0's batch-norm statistics everywhere
        sums = torch.zeros(3, device=self.device)
        for x, y in split:
            if not len(y):  # a last batch smaller than the world
                continue
            with self.autocast():
                logits = self.eval_forward(x.contiguous(memory_format=self.memory_format))
            sums += torch.stack(
                [
                    nn.functional.cross_entropy(logits.float(), y, reduction="sum"),
                    (logits.argmax(1) == y).sum().float(),
                    torch.tensor(float(len(y)), device=self.device),
                ]
            )
        s = total(sums).tolist()
        return {f"{prefix}_loss": s[0] / s[2], f"{prefix}_acc": s[1] / s[2]}

    # -- the parts of core.runs.run_epochs that are a training's own --------------------------------

    def steps_per_epoch(self) -> int:
        return len(self.data.train)

    def begin(self, run_dir: Path) -> None:
        (run_dir / "network.json").write_text(json.dumps(network_record(self.config, self.data), indent=1) + "\n")

    def announce(self) -> None:
        config = self.config
        log.info(
            f"train: {config.dataset} ({len(self.data.train)} batches of {config.batch_size} per epoch), "
            f"{config.net} layout, {config.layers} cells, C={config.init_channels}, "
            f"{count_parameters(self.model) / 1e6:.3f}M parameters{' (auxiliary head apart)' * config.auxiliary}, "
            f"device {self.device}{describe()}"
        )

    def end_epoch(self, run_dir: Path, metrics: dict) -> dict:
        config = self.config
        lr, drop = self.scheduler.get_last_lr()[0], drop_path_ramp(config.drop_path_prob, self.epoch, config.epochs)
        self.scheduler.step()
        self.epoch += 1
        if self.data.valid is not None:
            metrics |= self.evaluate(self.data.valid, "valid")
            if self.best["valid_acc"] is None or metrics["valid_acc"] > self.best["valid_acc"]:
                self.best = {"epoch": self.epoch, "valid_acc": metrics["valid_acc"]}
                save_checkpoint({"model": self.model.state_dict(), "epoch": self.epoch}, run_dir / "best.pt")
        return {**metrics, "lr": lr, "drop_path_prob": drop}

    def log_epoch(self, metrics: dict) -> None:
        valid = (
            f" | valid loss {metrics['valid_loss']:.4f} acc {metrics['valid_acc']:.4f}"
            if "valid_acc" in metrics
            else ""
        )
        log.info(
            f"epoch {self.epoch}/{self.config.epochs} lr {metrics['lr']:.4g} drop path {metrics['drop_path_prob']:.3f} "
            f"train loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.4f}{valid} | {metrics['seconds']:.1f} s"
        )

    def finish(self, run_dir: Path) -> dict:
        return _final_results(self, run_dir)

    def pictures(self, run_dir: Path) -> list[Path]:
        if self.config.net == "nas-bench-201":
            from .nb201.plot import plot_nb201_run

            return plot_nb201_run(run_dir)
        from ..core.plot import plot_run

        return plot_run(run_dir)


def network_record(config: TrainConfig, data: TrainData) -> dict:
    """What it takes to rebuild the network and feed it (export, deployment): RUN/network.json."""
    return {
        "net": config.net,
        "in_channels": data.in_channels,
        "num_classes": data.num_classes,
        "input_size": list(data.size),
        "init_channels": config.init_channels,
        "layers": config.layers,
        "classes": data.classes,
        "mean": list(data.mean),
        "std": list(data.std),
    }


def check_genotype(config: TrainConfig, genotype: Genotype | CellGenotype) -> None:
    """The genotype decides the kind of network: a NAS-Bench-201 cell trains in the benchmark's network
    (net: nas-bench-201) only, a DARTS genotype in the DARTS layouts (cifar10, imagenet) only."""
    if isinstance(genotype, CellGenotype) and config.net != "nas-bench-201":
        raise ConfigError(
            f"{genotype} is a NAS-Bench-201 cell; it trains in the benchmark's network, not the DARTS "
            f"{config.net} layout: use --config nb201 (the benchmark's recipe) or --set net=nas-bench-201"
        )
    if not isinstance(genotype, CellGenotype) and config.net == "nas-bench-201":
        raise ConfigError(
            f"net: nas-bench-201 trains NAS-Bench-201 cells ({NB201_EXAMPLE}), not a DARTS genotype; "
            "train this one in a DARTS layout: a DARTS training config (--config cifar10, quick) "
            "or --set net=cifar10"
        )


def run_training(config: TrainConfig, genotype: Genotype | CellGenotype, run_dir: Path, resume: bool = False) -> dict:
    """Train into `run_dir`; with `resume`, continue that folder's run from its checkpoint. Returns results.json."""
    check_genotype(config, genotype)
    _, device = start_world(config.device)  # one process, or one rank of torchrun's (core/distributed.py)
    run_dir = rank_folder(Path(run_dir), resume)
    start_run(run_dir, config, device, resume, genotype)
    # All randomness of the data (split aside: a function of the seed) comes from this CPU generator.
    generator = torch.Generator().manual_seed(config.seed + 1)
    data = prepare_data(config, device, generator)
    layout = NETWORKS[config.net]
    if min(data.size) < layout.min_size:
        raise ConfigError(
            f"net: the {config.net} layout needs images of at least {layout.min_size}x{layout.min_size}, "
            f"the data has {data.size[0]}x{data.size[1]}; "
            + ("use net: cifar10 for small images" if config.net == "imagenet" else "use larger images")
        )
    if any(side % layout.side_multiple for side in data.size):
        raise ConfigError(
            f"net: the {config.net} layout needs image sides that are multiples of "
            f"{layout.side_multiple}, the data has {data.size[0]}x{data.size[1]}; resize the images "
            "(the imagefolder dataset's size option, data_options: {size: 32})"
        )
    return run_epochs(Trainer(config, genotype, data, device, generator), run_dir, resume)


def _final_results(trainer: Trainer, run_dir: Path) -> dict:
    """Test loss and accuracy of the final weights and, when a validation split chose one, of the best epoch's."""
    results = {
        "parameters": count_parameters(trainer.model),
        "epochs": trainer.epoch,
        "final": {"epoch": trainer.epoch, **trainer.evaluate(trainer.data.test, "test")},
        "best": None,
    }
    if trainer.best["valid_acc"] is not None:
        final_weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.model.load_state_dict(load_checkpoint(run_dir / "best.pt", trainer.device)["model"])
        results["best"] = {**trainer.best, **trainer.evaluate(trainer.data.test, "test")}
        trainer.model.load_state_dict(final_weights)
    (run_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    for which in ("final", "best"):
        if results[which] is not None:
            r = results[which]
            log.info(
                f"{which} (epoch {r['epoch']}): test loss {r['test_loss']:.4f}, test accuracy {r['test_acc']:.4f}, "
                f"test error {100 * (1 - r['test_acc']):.2f} %"
            )
    return results
