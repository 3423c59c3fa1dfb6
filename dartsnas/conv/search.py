"""The search loop (Alg. 1): alternate an architecture step on the validation half and a weight step
on the training half, batch by batch; derive and log the genotype every epoch.

The answers to collapse are options of this loop, each a small piece of core/: beta-DARTS's beta decay
(a penalty on the architecture step), DARTS-'s auxiliary skip (a per-epoch coefficient of the network),
DARTS+'s early stopping and SGAS's progressive decisions (after an epoch), P-DARTS's skip cap (derivation).
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
from ..core.collapse import aux_skip_coefficient, beta_decay, beta_weight, darts_plus_stop, linear
from ..core.progressive import FREE, decide_one, decision_epoch, decision_rounds
from ..core.relax import temperature, temperature_for_entropy
from ..core.runs import append_jsonl, read_jsonl
from ..core.device import OutOfMemory, peak_memory_gb
from ..core.runs import NO_STEPS, SearchRecords, Steps, rank_folder, run_epochs, start_run
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
        self.architect = Architect(
            self.model, self.criterion, config.arch_lr, config.arch_betas, config.arch_weight_decay, config.unrolled
        )
        # All randomness after initialisation (shuffles, augmentation) comes from this CPU generator,
        # whose state the checkpoint keeps: a resumed run continues bit for bit.
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        # Samples of a sampling relaxation are drawn on the device, from a generator the checkpoint keeps.
        self.model.generator = torch.Generator(device).manual_seed(config.seed + 2)
        if config.beta_decay is not None:
            self.architect.penalty = self.beta_penalty
        self.guard = Guard(device)  # run_epochs sets the run's own
        self.architect.accept = lambda loss, grads: self.guard.watch(0, (loss,), grads)
        # In place: the weight step, the architecture step's functional calls and the evaluation all use it.
        self.compiled = (
            compile_network(self.model, device, config.compile_mode, config.compile_backend, config.compile_scope)
            if config.compile
            else None
        )
        self.network = self.data_parallel() if world().wrapped else self.model  # what the weight step calls
        self.epoch = 0
        self.stop_reason = None  # DARTS+: why the search stopped early
        if config.progressive and config.progressive_form == "sgas":
            self.freeze_decided()
        self.set_schedules()

    def data_parallel(self) -> nn.Module:
        """A data-parallel run (core/distributed.py): the weight step through DistributedDataParallel, which
        averages the weight gradients over the ranks while backward runs; the alphas left out of it (the
        architecture step averages theirs: Architect.average). Unused parameters are looked for, as a sampling
        relaxation or SGAS's decided edges leave ops out of a step (only then: the search costs a traversal)."""
        check_batch(self.config.batch_size)
        if self.config.progressive_batch_increase:  # every later batch splits evenly too
            check_batch(self.config.progressive_batch_increase, "progressive_batch_increase")
        self.architect.average = average
        alphas = [f"alphas.{k}" for k in self.model.alphas]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.model, alphas)
        return DistributedDataParallel(
            self.model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=self.model.relaxation.draws or self.config.progressive,
        )

    def set_schedules(self) -> None:
        """What changes from epoch to epoch by the config's schedules: the relaxation temperature, DARTS-'s
        auxiliary skip coefficient, beta-DARTS's weight."""
        cfg = self.config
        if cfg.anneal_entropy:  # the temperature that puts the mixture at the epoch's entropy, never above 1
            target = linear(self.epoch, cfg.epochs, *cfg.anneal_entropy)
            self.model.temperature = temperature_for_entropy(
                [self.model.alphas[k] for k in self.model.kinds], target, high=1.0
            )
        else:
            start, end = cfg.temperatures()
            self.model.temperature = temperature(self.epoch, cfg.epochs, start, end, cfg.temperature_schedule)
        self.model.aux_skip = aux_skip_coefficient(self.epoch, cfg.epochs, cfg.aux_skip) if cfg.aux_skip else 0.0
        self.beta_weight = (
            beta_weight(self.epoch, cfg.epochs, *cfg.beta_decay, cfg.beta_decay_epochs) if cfg.beta_decay else 0.0
        )

    def beta_penalty(self) -> torch.Tensor:
        """beta-DARTS: the epoch's weight times the beta decay of the op logits (not PC-DARTS's edge logits)."""
        return self.beta_weight * beta_decay([self.model.alphas[k] for k in self.model.kinds])

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
        self.set_schedules()

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
        cfg, data = self.config, self.data
        self.set_schedules()
        self.model.train()
        # Inside a resumed epoch: its batch order is drawn again from the generator's state at its start, the
        # batches done are passed over, and the generator goes on from the checkpoint's state.
        start, now = steps.resume_at(), self.generator.get_state()
        if start and "temperature" in start:
            # anneal_entropy finds the epoch's temperature from the alphas at its start, which have moved since.
            self.model.temperature = start["temperature"]
        if start:
            self.generator.set_state(start["epoch_generator"])
        epoch_generator, done = self.generator.get_state(), start["step"] if start else 0
        # Data-parallel: every rank draws the same global batches and keeps its shard; the last one is kept only
        # whole (drop_last), so that the shards are equal and their average is the global batch's.
        even = world().distributed
        size = self.epoch_batch_size()
        weight_batches = batches(data.weight_half, size, self.generator, data.train_augment, skip=done, drop_last=even)
        arch_batches = batches(data.arch_half, size, self.generator, data.train_augment, skip=done, drop_last=even)
        # train loss, train correct, arch loss, seen
        sums = start["sums"].to(self.device) if start else torch.zeros(4, device=self.device)
        if start:
            self.generator.set_state(now)
            if progress is not None:
                progress.update(done)
        for step, ((x, y), (x_arch, y_arch)) in enumerate(zip(weight_batches, arch_batches), start=done):
            self.guard.step = step
            x, y, x_arch, y_arch = shard(x), shard(y), shard(x_arch), shard(y_arch)
            x, x_arch = self.prepare_inputs(x), self.prepare_inputs(x_arch)
            if self.epoch >= cfg.arch_start_epoch:
                arch_loss = self.architect.step(x, y, x_arch, y_arch, self.optimizer)
            else:  # warm-up: the weights train alone first; no architecture loss to report
                arch_loss = torch.tensor(float("nan"), device=self.device)
            loss, correct = self.weight_step(x, y)
            n = len(y)
            sums += torch.stack([loss * n, correct.float(), arch_loss * n, torch.tensor(float(n), device=self.device)])
            if progress is not None:
                progress.update(1)
                if step % 10 == 0:  # one host sync per ten steps keeps the bar honest but cheap
                    s = sums.tolist()
                    progress.set_postfix(loss=f"{s[0] / s[3]:.3f}", acc=f"{s[1] / s[3]:.3f}", arch=f"{s[2] / s[3]:.3f}")
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

    def decide_edges(self, run_dir: Path) -> None:
        """SGAS: at a decision epoch, fix the best-scored free edge of every cell kind (core/progressive.py);
        one line per decision in RUN/decisions.jsonl."""
        cfg, model, form = self.config, self.model, self.config.progressive_form
        if not decision_epoch(self.epoch, cfg.progressive_warmup, cfg.progressive_interval, form):
            return
        past = read_jsonl(run_dir / "alphas.jsonl")[-cfg.progressive_history :] if cfg.progressive_history else []
        if form == "sgas":  # as their edge_decision: every edge's softmax of its alphas, decided edges' included
            probs = {k: self.alpha_probs(model.alphas[k], model.temperature) for k in model.kinds}
            history = {k: [self.alpha_probs(r["alphas"][k], r["temperature"]) for r in past] for k in model.kinds}
        else:  # v1: the mixture's rows (decided ones one-hot), as recorded
            probs = {k: p.cpu().tolist() for k, p in model.probs().items()}
            history = {k: [r["probs"][k] for r in past] for k in model.kinds}
        names = model.edge_names()
        for kind in model.kinds:
            decided = list(model.decided.get(kind, [-1] * sum(model.fan_in)))
            evidence = decide_one(probs[kind], cfg.ops, decided, model.fan_in, model.kept_per_node, history[kind], form)
            if evidence is None:
                continue
            model.set_decisions({**model.decided, kind: decided})
            record = {
                "epoch": self.epoch,
                "kind": kind,
                **evidence,
                "edge_name": names[evidence["edge"]],
                "op_name": cfg.ops[evidence["op"]],
            }
            append_jsonl(run_dir / "decisions.jsonl", record)
            log.info(
                f"SGAS: {kind} edge {record['edge_name']} decided as {record['op_name']} "
                f"(score {evidence['score']:.3f})"
                + (f"; cut {len(evidence['removed'])} edge(s)" if evidence["removed"] else "")
            )

    def freeze_decided(self) -> None:
        """SGAS: a decided or cut edge's alphas keep the values they had when it left the mixture, as their code
        sets requires_grad False on them (and Adam skips them); here the architecture optimiser's step, whose
        weight decay and momentum would still move those rows, is undone on them. The scores read them."""
        held = {}

        def before(optimizer, args, kwargs):
            held.clear()
            for kind, row in self.model.decided.items():
                rows = [e for e, d in enumerate(row) if d != FREE]
                if rows:
                    held[kind] = (rows, self.model.alphas[kind].detach()[rows].clone())

        def after(optimizer, args, kwargs):
            with torch.no_grad():
                for kind, (rows, values) in held.items():
                    self.model.alphas[kind][rows] = values

        self.architect.optimizer.register_step_pre_hook(before)
        self.architect.optimizer.register_step_post_hook(after)

    def alpha_probs(self, alphas, temperature: float) -> list[list[float]]:
        """The relaxation's probabilities of a table of alphas (now, or as alphas.jsonl recorded them), before
        any decision is applied."""
        alphas = torch.as_tensor(alphas, dtype=torch.float32).detach().cpu()
        return self.model.relaxation.probs(alphas, temperature).tolist()

    def epoch_batch_size(self) -> int:
        """The batch size this epoch trains with: SGAS's grows by progressive_batch_increase after each decision
        epoch (their `args.batch_size + args.batch_increase * count`), counted from the decisions the model holds."""
        cfg = self.config
        return cfg.batch_size + cfg.progressive_batch_increase * decision_rounds(self.model.decided)

    def early_stop(self, run_dir: Path) -> None:
        """DARTS+: after an epoch, whether to stop (core/collapse.py); the normal cell, or NAS-Bench-201's cell."""
        cfg, model = self.config, self.model
        kind = model.kinds[0]
        cell = self.last_genotype.normal if kind == "normal" else self.last_genotype.edges
        history = [r["probs"][kind] for r in read_jsonl(run_dir / "alphas.jsonl") if r["epoch"] > 0]
        self.stop_reason = darts_plus_stop(
            cell, history, model.learnable_ops(), cfg.skip_threshold(), cfg.early_stop_patience
        )
        if self.stop_reason:
            log.info(f"DARTS+ early stop after epoch {self.epoch}: {self.stop_reason}")

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
        if self.config.progressive:
            self.decide_edges(run_dir)
        metrics |= self.record_epoch(run_dir)
        if self.config.early_stop:
            self.early_stop(run_dir)
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
