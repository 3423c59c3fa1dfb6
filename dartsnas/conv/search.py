"""The search loop (Alg. 1): alternate an architecture step on the validation half and a weight step
on the training half, batch by batch; derive and log the genotype every epoch.

The regularisers, schedules and progressive schemes are search units (methods/search/, one file each), built
from the config and called through their hooks: the epoch's schedule (temperature, entropy annealing,
DARTS-'s auxiliary skip), a penalty on the architecture step (beta-DARTS), the epoch's batch size and a
decision after an epoch (SGAS), a reason to stop (DARTS+). P-DARTS's skip cap is a derivation setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..core.architect import Architect
from ..core.config import ConfigError
from .config import SearchConfig
from ..data.batches import Augment, batches, channel_stats, training_augment
from ..data.images import ImageSet, load_images
from ..core.genotype import Genotype
from .memory import advice, available_bytes, estimate_bytes, held_bytes
from ..core.distributed import average, broadcast_, check_batch, check_identical, shard, total, world
from ..core.distributed import describe
from ..core.distributed import start as start_world
from ..core.guard import Guard
from ..core.compiled import compile_network, compile_seconds
from ..core.device import OutOfMemory, peak_memory_gb
from ..core.runs import NO_STEPS, SearchRecords, Steps, rank_folder, run_epochs, start_run
from ..methods.search import build as build_units
from ..methods.search import total_penalty
from .nb201.table import load_table
from .supernets import search_network

log = logging.getLogger("dartsnas")


@dataclass
class SearchData:
    weight_half: ImageSet  # trains the network weights
    arch_half: ImageSet  # trains the alphas; also the search's validation set
    train_augment: Augment
    eval_augment: Augment


def prepare_data(config: SearchConfig, device: torch.device) -> SearchData:
    data = load_images(config.dataset, "train", config.data_dir, config.download, **config.data_options)
    if config.subset is not None:
        data = data.subset(torch.arange(min(config.subset, len(data.labels))))
    n = len(data.labels)
    # The split is a fixed function of the seed (not of the file order: class folders are sorted).
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
    split = int(n * config.train_portion)
    if split < 2 or n - split < 2:
        raise ConfigError(
            f"{n} training images split at train_portion={config.train_portion} leave a half "
            "with fewer than 2 images; use more data (subset) or another train_portion"
        )
    mean, std = channel_stats(data.images)
    return SearchData(
        data.subset(perm[:split]).to(device),
        data.subset(perm[split:]).to(device),
        training_augment(config, data, mean, std),
        Augment(mean, std),
    )


class Searcher(SearchRecords):
    """Owns the supernet, both optimisers and the data generator: everything a checkpoint must hold.
    A `core.runs.Driver`: run_epochs starts, resumes and loops it."""

    logs = SearchRecords.logs + ("decisions.jsonl",)

    def __init__(self, config: SearchConfig, data: SearchData, device: torch.device):
        self.config, self.data, self.device = config, data, device
        torch.manual_seed(config.seed)
        sample = data.weight_half
        self.model = search_network(config, sample.in_channels, sample.num_classes).to(device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(
            self.model.weights(),
            config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, config.epochs, eta_min=config.lr_min
        )
        self.guard = Guard(device)  # run_epochs sets the run's own
        self.units = build_units(config)  # methods/search/: the regularisers and schedules the config asks for
        self.architect = Architect(
            self.model,
            self.criterion,
            config.arch_lr,
            config.arch_betas,
            config.arch_weight_decay,
            config.unrolled,
            penalty=self.penalty,
            accept=lambda loss, grads: self.guard.watch(0, (loss,), grads),
            average=average if world().wrapped else None,  # data-parallel: the alphas' gradients, averaged
        )
        # All randomness after initialisation (shuffles, augmentation) comes from this CPU generator,
        # whose state the checkpoint keeps: a resumed run continues bit for bit.
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        # Samples of a sampling relaxation are drawn on the device, from a generator the checkpoint keeps.
        self.model.generator = torch.Generator(device).manual_seed(config.seed + 2)
        # In place: the weight step, the architecture step's functional calls and the evaluation all use it.
        self.compiled = (
            compile_network(self.model, device, config.compile_mode, config.compile_backend, config.compile_scope)
            if config.compile
            else None
        )
        self.network = self.data_parallel() if world().wrapped else self.model  # what the weight step calls
        self.epoch = 0
        self.stop_reason = None  # why the search stopped early (a unit's `stop`: DARTS+)
        for unit in self.units.values():
            unit.attach(self)
        self.start_epoch()

    def data_parallel(self) -> nn.Module:
        """A data-parallel run (core/distributed.py): the weight step through DistributedDataParallel, which
        averages the weight gradients over the ranks while backward runs; the alphas left out of it (the
        architecture step averages theirs: Architect.average). Unused parameters are looked for, as a sampling
        relaxation or SGAS's decided edges leave ops out of a step (only then: the search costs a traversal)."""
        check_batch(self.config.batch_size)
        alphas = [f"alphas.{k}" for k in self.model.alphas]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.model, alphas)
        return DistributedDataParallel(
            self.model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=self.model.relaxation.draws or any(u.leaves_ops_out for u in self.units.values()),
        )

    def op_alphas(self) -> list[torch.Tensor]:
        """The op logit tables (edges x ops), one per cell kind: what the units' schedules and penalties read
        (not PC-DARTS's edge logits)."""
        return [self.model.alphas[k] for k in self.model.kinds]

    def start_epoch(self, at: dict | None = None) -> None:
        """The units' per-epoch schedules (temperature, auxiliary skip); an epoch resumed from inside (`at`)
        keeps the temperature it had (anneal_entropy's was found from the alphas at its start)."""
        for unit in self.units.values():
            unit.start_epoch(self)
        if at and "temperature" in at:
            self.model.temperature = at["temperature"]

    def penalty(self) -> torch.Tensor | None:
        """The units' penalties on the alphas (beta-DARTS's beta decay), summed; None when no unit has one."""
        return total_penalty(self.units.values(), self)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "arch_optimizer": self.architect.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "sample_generator": self.model.generator.get_state(),
            "epoch": self.epoch,
            "decided": self.model.decided,
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.architect.optimizer.load_state_dict(state["arch_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu())
        self.model.generator.set_state(state["sample_generator"].cpu())
        self.epoch = state["epoch"]
        self.model.set_decisions(state.get("decided", {}))
        self.stop_reason = state.get("stop_reason")
        self.start_epoch()

    def prepare_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format)

    def weight_step(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        # The alphas are constants here: skipping their gradient saves backward work.
        for a in self.model.arch_parameters():
            a.requires_grad_(False)
        try:
            logits = self.network(x)
            loss = self.criterion(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            for a in self.model.arch_parameters():
                a.requires_grad_(True)
        norm = nn.utils.clip_grad_norm_(self.model.weights(), self.config.grad_clip)
        if self.guard.watch(1, (loss,), (norm,)):
            self.optimizer.step()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def train_epoch(self, progress=None, steps: Steps = NO_STEPS) -> dict:
        """One epoch of Alg. 1, step by step: the architecture step on a batch of the validation half (line 1),
        then the weight step on a batch of the training half (line 2)."""
        at = steps.resume_at()  # inside a resumed epoch: where it was
        self.start_epoch(at)
        self.model.train()
        epoch_generator, done, pairs = self.epoch_batches(at)
        # train loss, train correct, arch loss, seen
        sums = at["sums"].to(self.device) if at else torch.zeros(4, device=self.device)
        if at and progress is not None:
            progress.update(done)
        for step, (x, y), (x_arch, y_arch) in pairs:
            self.guard.step = step
            arch_loss = self.architecture_step(x, y, x_arch, y_arch)  # line 1: the alphas, first or second order
            loss, correct = self.weight_step(x, y)  # line 2: the weights
            n = len(y)
            sums += torch.stack([loss * n, correct.float(), arch_loss * n, torch.tensor(float(n), device=self.device)])
            show_progress(progress, step, sums)
            steps.after(
                step + 1,
                lambda: {
                    "step": step + 1,
                    "sums": sums,
                    "epoch_generator": epoch_generator,
                    "temperature": self.model.temperature,
                },
            )
        s = total(sums).tolist()
        return {"train_loss": s[0] / s[3], "train_acc": s[1] / s[3], "arch_loss": s[2] / s[3]}

    def epoch_batches(self, at: dict | None):
        """(generator state at the epoch's start, steps done, this epoch's (step, weight batch, arch batch)): on
        this rank, in the network's memory layout. Inside a resumed epoch (`at`), its batch order is drawn again
        from the generator's state at its start, the batches done are passed over, and the generator goes on
        from the checkpoint's state. Data-parallel: every rank draws the same global batches and keeps its
        shard; the last one is kept only whole (drop_last), so that the shards are equal and their average is
        the global batch's."""
        now = self.generator.get_state()
        if at:
            self.generator.set_state(at["epoch_generator"])
        epoch_generator, done = self.generator.get_state(), at["step"] if at else 0
        data, size, even = self.data, self.epoch_batch_size(), world().distributed
        weight_batches = batches(data.weight_half, size, self.generator, data.train_augment, skip=done, drop_last=even)
        arch_batches = batches(data.arch_half, size, self.generator, data.train_augment, skip=done, drop_last=even)
        if at:
            self.generator.set_state(now)

        def pairs():
            for step, ((x, y), (x_arch, y_arch)) in enumerate(zip(weight_batches, arch_batches), start=done):
                x, x_arch = self.prepare_inputs(shard(x)), self.prepare_inputs(shard(x_arch))
                yield step, (x, shard(y)), (x_arch, shard(y_arch))

        return epoch_generator, done, pairs()

    def architecture_step(self, x, y, x_arch, y_arch) -> torch.Tensor:
        """Alg. 1 line 1 (core/architect.py, Eq. 6-8, with the units' penalty); after the warm-up only."""
        if self.epoch < self.config.arch_start_epoch:  # the weights train alone first: no architecture loss
            return torch.tensor(float("nan"), device=self.device)
        return self.architect.step(x, y, x_arch, y_arch, self.optimizer)

    @torch.no_grad()
    def evaluate(self, data: ImageSet) -> dict:
        """Loss and accuracy on `data` in eval mode; data-parallel: each rank its shard of every batch, with
        rank 0's batch-norm statistics."""
        self.model.eval()
        broadcast_(list(self.model.buffers()))
        sums = torch.zeros(3, device=self.device)
        for x, y in batches(data, self.config.batch_size, None, self.data.eval_augment, shuffle=False):
            x, y = shard(x), shard(y)
            if not len(y):  # a last batch smaller than the world
                continue
            logits = self.model(self.prepare_inputs(x))
            sums += torch.stack(
                [
                    nn.functional.cross_entropy(logits, y, reduction="sum"),
                    (logits.argmax(1) == y).sum().float(),
                    torch.tensor(float(len(y)), device=self.device),
                ]
            )
        s = total(sums).tolist()
        return {"valid_loss": s[0] / s[2], "valid_acc": s[1] / s[2]}

    def genotype(self):
        """The cell the alphas derive now, by the space's rule (`derive`), with the decided edges as decided
        and at most `skip_cap` skip connections."""
        return self.model.derive(self.config.derivation(), self.config.skip_cap)

    def alphas_record(self) -> dict:
        probs, edge_probs = self.model.probs(), self.model.edge_probs()
        record = {
            "epoch": self.epoch,
            "ops": self.config.ops,
            "edges": self.model.edge_names(),
            "temperature": self.model.temperature,
            "alphas": {k: a.detach().cpu().tolist() for k, a in self.model.alphas.items()},
            "probs": {k: p.cpu().tolist() for k, p in probs.items()},
        }
        if edge_probs is not None:
            record["edge_probs"] = {k: w.cpu().tolist() for k, w in edge_probs.items()}
        if self.model.decided:
            record["decided"] = self.model.decided
        return record

    def epoch_batch_size(self) -> int:
        """The batch size this epoch trains with (SGAS's grows after each decision epoch)."""
        size = self.config.batch_size
        for unit in self.units.values():
            size = unit.batch_size(self, size)
        return size

    def steps_per_epoch(self) -> int:
        shortest, size = min(len(self.data.weight_half), len(self.data.arch_half)), self.epoch_batch_size()
        if world().distributed:  # whole global batches only
            return shortest // size
        return -(-shortest // size)  # the two halves are zipped; ceil division

    # -- the parts of core.runs.run_epochs that are a search's own ----------------------------------

    writer = None  # TensorBoard, when the config asks for it

    def announce(self) -> None:
        config, data = self.config, self.data
        n_weights = sum(p.numel() for p in self.model.weights())
        cells = (
            f"{config.layers} cells"
            if config.space == "darts"
            else f"NAS-Bench-201 space, 3 x {config.stage_cells} cells"
        )
        log.info(
            f"search: {config.dataset} ({len(data.weight_half.labels)} + {len(data.arch_half.labels)} images), "
            f"{cells}, C={config.init_channels}, {len(config.ops)} ops, "
            f"{'second' if config.unrolled else 'first'} order, {n_weights / 1e6:.3f}M weights, "
            f"device {self.device}{describe()}"
            + (
                f", compiled (torch.compile of the {config.compile_scope}, {config.compile_backend}, mode "
                f"{self.compiled})"
                if self.compiled
                else ""
            )
        )
        report_memory(self)

    def end_epoch(self, run_dir: Path, metrics: dict) -> dict:
        lr = self.scheduler.get_last_lr()[0]  # the one this epoch trained with
        self.scheduler.step()
        metrics |= self.evaluate(self.data.arch_half)
        check_identical(dict(self.model.alphas))
        self.epoch += 1
        for unit in self.units.values():  # decisions after an epoch, before its record (SGAS)
            unit.decide(self, run_dir)
        metrics |= self.record_epoch(run_dir)
        reasons = [r for r in (unit.stop(self, run_dir) for unit in self.units.values()) if r]  # DARTS+
        self.stop_reason = reasons[0] if reasons else None
        if self.config.space == "nas-bench-201":  # the true accuracy of the cell derived so far: a collapse shows
            metrics["benchmark_acc"] = load_table().accuracy(self.last_genotype, self.config.benchmark_dataset) / 100
        if self.compiled:  # paid in the first steps (and again after a resume): the process's total so far
            metrics["compile_s"] = compile_seconds()
        return {**metrics, "lr": lr, "temperature": self.model.temperature}

    def log_epoch(self, metrics: dict) -> None:
        log.info(
            f"epoch {self.epoch}/{self.config.epochs} lr {metrics['lr']:.4g} train loss {metrics['train_loss']:.4f} "
            f"acc {metrics['train_acc']:.4f} | arch loss {metrics['arch_loss']:.4f} | valid loss "
            f"{metrics['valid_loss']:.4f} acc {metrics['valid_acc']:.4f} | alphas: entropy "
            f"{metrics['alpha_entropy']:.3f}, one-hot gap {metrics['onehot_gap']:.3f} | {metrics['seconds']:.1f} s"
            + (f" (compiling so far: {metrics['compile_s']:.1f} s)" if "compile_s" in metrics else "")
        )
        log.info(
            f"genotype: {self.last_genotype}"
            + (
                f" | NAS-Bench-201 {self.config.benchmark_dataset} test accuracy {100 * metrics['benchmark_acc']:.2f} %"
                if "benchmark_acc" in metrics
                else ""
            )
        )
        if self.writer is not None:
            for key, value in metrics.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, self.epoch)
            self.writer.add_text("genotype", str(self.last_genotype), self.epoch)

    def finish(self, run_dir: Path) -> Genotype:
        if self.writer is not None:
            self.writer.close()
        genotype = super().finish(run_dir)
        if self.config.space == "nas-bench-201":
            log.info(benchmark_summary(genotype, self.config.benchmark_dataset))
        return genotype

    def pictures(self, run_dir: Path) -> list[Path]:
        if self.config.space == "nas-bench-201":
            from .nb201.plot import plot_nb201_run

            return plot_nb201_run(run_dir)
        from ..core.plot import plot_run

        return plot_run(run_dir)


def show_progress(progress, step: int, sums: torch.Tensor) -> None:
    """The bar's step, and its figures every ten steps (one host sync per ten steps keeps it honest but cheap)."""
    if progress is None:
        return
    progress.update(1)
    if step % 10 == 0:
        s = sums.tolist()
        progress.set_postfix(loss=f"{s[0] / s[3]:.3f}", acc=f"{s[1] / s[3]:.3f}", arch=f"{s[2] / s[3]:.3f}")


def benchmark_summary(cell, dataset: str) -> str:
    """The found cell's true accuracy beside what the table expects of cells picked at random."""
    table = load_table()
    _, best = table.best(dataset)
    return (
        f"NAS-Bench-201 {dataset} test accuracy of the found cell: {table.accuracy(cell, dataset):.2f} %; "
        f"the table's best cell {best:.2f} %, a random cell {table.mean(dataset):.2f} % on average, the best of "
        f"10 random cells {table.expected_best_of_k(dataset, 10):.2f} % (dartsnas bench quality compares seeds)"
    )


def run_search(config: SearchConfig, run_dir: Path, resume: bool = False) -> Genotype:
    """Search into `run_dir`; with `resume`, continue that folder's run from its checkpoint."""
    _, device = start_world(config.device)  # one process, or one rank of torchrun's (core/distributed.py)
    run_dir = rank_folder(Path(run_dir), resume)
    start_run(run_dir, config, device, resume)
    searcher = Searcher(config, prepare_data(config, device), device)
    if config.tensorboard:
        searcher.writer = _tensorboard(run_dir)
    try:
        return run_epochs(searcher, run_dir, resume)
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        raise OutOfMemory(out_of_memory_message(searcher, run_dir)) from None


def _shape(searcher: Searcher) -> tuple:
    data = searcher.data.weight_half
    return data.in_channels, data.num_classes, tuple(data.size)


def report_memory(searcher: Searcher) -> int:
    """Log the expected peak memory of a step before the search starts; warn with advice if it won't fit."""
    config, device = searcher.config, searcher.device
    need = estimate_bytes(config, *_shape(searcher), device)
    held, free = held_bytes(device), available_bytes(device)
    log.info(
        f"memory: a search step should take about {need / 2**30:.2f} GB on top of the {held / 2**30:.2f} GB "
        f"held now ({'GPU' if device.type == 'cuda' else 'RAM'} available: {free / 2**30:.1f} GB)"
    )
    if need > free:
        log.warning(
            f"memory: {config.mixed_op} mode at batch_size={config.batch_size} will likely not fit; "
            + advice(config, *_shape(searcher), device, free)
        )
    return need


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, torch.OutOfMemoryError) or "not enough memory" in text or "can't allocate memory" in text


def out_of_memory_message(searcher: Searcher, run_dir: Path) -> str:
    """What ran out, and which settings should fit (measured by probes, once the failed step's memory is free)."""
    config, device = searcher.config, searcher.device
    searcher.optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    budget = available_bytes(device)
    return (
        f"out of memory in {config.mixed_op} mode at batch_size={config.batch_size} on {device} (peak "
        f"{peak_memory_gb(device):.2f} GB); "
        f"{advice(config, *_shape(searcher), device, budget)}. Start a new run with them "
        f"(checkpoints so far are in {run_dir})"
    )


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("tensorboard: true needs TensorBoard: pip install 'dartsnas[tensorboard]'") from None
    return SummaryWriter(str(run_dir / "tb"))
