"""The recurrent search loop (Alg. 1 on text, as the official rnn/train_search.py): window by window, an
architecture step on the validation text, then a weight step on the training text; derive the cell and
measure validation perplexity every epoch.

The architecture step is the convolutional side's `Architect` (first and second order), driven through
the model's `forward(segment) -> logits`; its virtual step clips the gradient as the weight step does.
Both halves carry their hidden state from window to window; each window's dropout masks are drawn once,
so the architecture step's probe passes and the weight step see the same masks (the official code draws
new ones per pass, which adds noise to the finite differences of the second-order step).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..core.architect import Architect
from ..core.distributed import average, average_grads, broadcast_, check_batch, gather_rows, shard, total, world
from ..core.guard import Guard
from .genotype import RecurrentGenotype, derive_recurrent, recurrent_edge_names
from .model import LanguageModel, SearchModel, Segment
from .config import RecurrentSearchConfig
from ..core.distributed import describe
from ..core.distributed import start as start_world
from ..core.runs import NO_STEPS, SearchRecords, Steps, rank_folder, run_epochs, start_run
from ..methods.search import build as build_units
from ..methods.search import total_penalty
from .text import Corpus, batchify, load_corpus, segment, windows

log = logging.getLogger("dartsnas")


@dataclass
class SearchText:
    corpus: Corpus
    train: torch.Tensor  # (steps, batch_size): trains the weights
    search: torch.Tensor  # (steps, batch_size): the validation text, trains the alphas
    valid: torch.Tensor  # (steps, eval_batch_size): the validation text, for perplexity


def prepare_text(config: RecurrentSearchConfig, device: torch.device) -> SearchText:
    corpus = load_corpus(config.corpus, config.data_dir, config.download, config.max_lines)
    return SearchText(
        corpus,
        batchify(corpus.train, config.batch_size, device),
        batchify(corpus.valid, config.batch_size, device),
        batchify(corpus.valid, config.eval_batch_size, device),
    )


@torch.no_grad()
def evaluate(model: LanguageModel, source: torch.Tensor, bptt: int) -> float:
    """Mean cross-entropy per token over a batchified split, the state carried across fixed windows.
    Data-parallel: each rank its share of the streams, the sums added up."""
    model.eval()
    source = shard(source, dim=1)
    hidden = model.init_hidden(source.shape[1])
    sums = torch.zeros(2, dtype=torch.float64, device=source.device)  # cross-entropy, tokens
    for start, length in windows(len(source), bptt, variable=False):
        x, y = segment(source, start, length)
        if not y.numel():  # fewer streams than ranks
            break
        logits, hidden, _ = model.run(x, hidden)
        sums += torch.stack(
            [
                F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").double(),
                torch.tensor(float(y.numel()), dtype=torch.float64, device=source.device),
            ]
        )
    loss, count = total(sums).tolist()
    return loss / count


def local(masks: dict) -> dict:
    """This rank's rows of dropout masks drawn for the global batch (the embedding's rows are words: kept)."""
    return {k: m if k == "embedding" else shard(m) for k, m in masks.items()}


def weight_step(
    model: LanguageModel,
    optimizer,
    seg: Segment,
    y: torch.Tensor,
    tar: float,
    grad_clip: float,
    params: list[torch.Tensor],
    guard: Guard,
) -> torch.Tensor:
    """One SGD step on a window: cross-entropy plus temporal activation regularisation; returns the CE.
    The guard sees the loss and the gradient norm first (and may refuse the update: core/guard.py)."""
    logits, last, outputs = model.run(seg.tokens, seg.hidden, seg.masks)
    seg.last = last.detach()
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    total = loss
    if tar > 0 and len(outputs) > 1:  # official: beta * mean((h_t - h_{t-1})^2) on the cell's outputs
        total = total + tar * (outputs[1:] - outputs[:-1]).pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    average_grads(params)  # data-parallel: the global batch's gradient on every rank
    norm = nn.utils.clip_grad_norm_(params, grad_clip)
    if guard.watch(1, (total,), (norm,)):
        optimizer.step()
    return loss.detach()


class RecurrentSearcher(SearchRecords):
    """Owns the search model, both optimisers and the random generator: everything a checkpoint holds.
    A `core.runs.Driver`: run_epochs starts, resumes and loops it."""

    def __init__(self, config: RecurrentSearchConfig, text: SearchText, device: torch.device):
        self.config, self.text, self.device = config, text, device
        torch.manual_seed(config.seed)
        self.model = SearchModel(
            len(text.corpus),
            config.emsize,
            config.nodes,
            config.ops,
            config.batch_norm,
            lean=config.mixed_op == "lean",
            dropout=config.dropout,
            dropouth=config.dropouth,
            dropoutx=config.dropoutx,
            dropouti=config.dropouti,
            dropoute=config.dropoute,
        ).to(device)
        self.optimizer = torch.optim.SGD(self.model.weights(), config.lr, weight_decay=config.weight_decay)
        self.guard = Guard(device)  # run_epochs sets the run's own
        self.units = build_units(config)  # methods/search/: beta-DARTS, entropy annealing when asked
        if world().distributed:  # each rank its shard of the streams; the gradients averaged (core/distributed.py)
            check_batch(config.batch_size)
        self.architect = Architect(
            self.model,
            nn.CrossEntropyLoss(),
            config.arch_lr,
            tuple(config.arch_betas),
            config.arch_weight_decay,
            config.unrolled,
            grad_clip=config.grad_clip,
            official_clip=config.unrolled_form == "official",
            penalty=self.penalty,
            accept=lambda loss, grads: self.guard.watch(0, (loss,), grads),
            average=average if world().distributed else None,
        )
        # Window lengths and dropout masks come from this CPU generator, whose state the checkpoint keeps.
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.epoch = 0

    def op_alphas(self) -> list[torch.Tensor]:
        """The op logit table (edges x ops): what the units' schedules and penalties read."""
        return self.model.arch_parameters()

    def penalty(self) -> torch.Tensor | None:
        """The units' penalties on the alphas (beta-DARTS's beta decay), summed; None when no unit has one."""
        return total_penalty(self.units.values(), self)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "arch_optimizer": self.architect.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.architect.optimizer.load_state_dict(state["arch_optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch = state["epoch"]

    def steps_per_epoch(self) -> int:
        return max(1, -(-(len(self.text.train) - 1) // self.config.bptt))

    def train_epoch(self, progress=None, steps: Steps = NO_STEPS) -> dict:
        cfg, model, text = self.config, self.model, self.text
        model.train()
        group = self.optimizer.param_groups[0]
        batch = text.train.shape[1]  # the global batch: its masks are drawn whole, as one process would
        # Inside a resumed epoch: the next window's row and both hidden states come back from the checkpoint
        # (the global batch's: this rank takes its rows).
        at = steps.resume_at()
        self.start_epoch(at)
        hidden, hidden_arch = (
            (at["hidden"], at["hidden_arch"]) if at else (model.init_hidden(batch), model.init_hidden(batch))
        )
        hidden, hidden_arch = shard(hidden), shard(hidden_arch)
        # train CE * tokens, arch CE * tokens, tokens
        sums = at["sums"].to(self.device) if at else torch.zeros(3, dtype=torch.float64, device=self.device)
        done, row = (at["step"], at["row"]) if at else (0, 0)
        if at and progress is not None:
            progress.update(done)
        weights = model.weights()
        for step, (start, length) in enumerate(
            windows(len(text.train), cfg.bptt, self.generator, cfg.seq_jitter, start=row), start=done
        ):
            self.guard.step = step
            x, y = (shard(t, dim=1) for t in segment(text.train, start, length))
            arch_start = start % (len(text.search) - 1)
            x_arch, y_arch = (
                shard(t, dim=1)
                for t in segment(text.search, arch_start, min(cfg.bptt, len(text.search) - 1 - arch_start))
            )
            train_seg = Segment(x, hidden, local(model.draw_masks(batch, self.generator)))
            arch_seg = Segment(x_arch, hidden_arch, local(model.draw_masks(batch, self.generator)))
            lr = group["lr"]
            group["lr"] = lr * length / cfg.bptt  # official: the step follows the window's length
            try:
                arch_loss = self.architect.step(train_seg, y.flatten(), arch_seg, y_arch.flatten(), self.optimizer)
                for a in model.arch_parameters():  # constants in the weight step: no gradient for them
                    a.requires_grad_(False)
                loss = weight_step(model, self.optimizer, train_seg, y, cfg.tar, cfg.grad_clip, weights, self.guard)
            finally:
                group["lr"] = lr
                for a in model.arch_parameters():
                    a.requires_grad_(True)
            hidden, hidden_arch = train_seg.last, arch_seg.last
            sums += torch.stack(
                [
                    loss.double() * y.numel(),
                    arch_loss.double() * y.numel(),
                    torch.tensor(float(y.numel()), dtype=torch.float64, device=self.device),
                ]
            )
            if progress is not None:
                progress.update(1)
                if step % 10 == 0:
                    s = sums.tolist()
                    progress.set_postfix(ppl=f"{math.exp(s[0] / s[2]):.1f}", arch_ppl=f"{math.exp(s[1] / s[2]):.1f}")
            steps.after(
                step + 1,
                lambda: {
                    "step": step + 1,
                    "row": start + length,
                    "sums": sums,
                    "hidden": gather_rows(hidden),
                    "hidden_arch": gather_rows(hidden_arch),
                    "temperature": model.temperature,
                },
            )
        s = total(sums).tolist()
        return {"train_loss": s[0] / s[2], "train_ppl": math.exp(s[0] / s[2]), "arch_loss": s[1] / s[2]}

    def start_epoch(self, at: dict | None) -> None:
        """The units' per-epoch schedules (anneal_entropy's temperature); an epoch resumed from inside (`at`)
        keeps the temperature it had (found from the alphas at its start, which have moved since)."""
        for unit in self.units.values():
            unit.start_epoch(self)
        if at and "temperature" in at:
            self.model.temperature = float(at["temperature"])

    def genotype(self) -> RecurrentGenotype:
        return derive_recurrent(self.model.probs()["recurrent"], self.config.ops, self.config.nodes)

    def alphas_record(self) -> dict:
        return {
            "epoch": self.epoch,
            "ops": self.config.ops,
            "edges": recurrent_edge_names(self.config.nodes),
            "temperature": self.model.temperature,
            "alphas": {k: a.detach().cpu().tolist() for k, a in self.model.alphas.items()},
            "probs": {k: p.cpu().tolist() for k, p in self.model.probs().items()},
        }

    # -- the parts of core.runs.run_epochs that are a search's own ----------------------------------

    def announce(self) -> None:
        config, corpus = self.config, self.text.corpus
        n_weights = sum(p.numel() for p in self.model.weights())
        log.info(
            f"recurrent search: {config.corpus} ({len(corpus.train):,} training and {len(corpus.valid):,} "
            f"validation tokens, vocabulary {len(corpus):,}), {config.nodes} nodes, size {config.emsize}, "
            f"{'second' if config.unrolled else 'first'} order, {n_weights:,} weights, "
            f"device {self.device}{describe()}"
        )

    def end_epoch(self, run_dir: Path, metrics: dict) -> dict:
        broadcast_(list(self.model.buffers()))  # data-parallel: rank 0's batch-norm statistics everywhere
        valid_loss = evaluate(self.model, self.text.valid, self.config.bptt)
        self.epoch += 1
        metrics |= self.record_epoch(run_dir)
        return {
            **metrics,
            "valid_loss": valid_loss,
            "valid_ppl": math.exp(valid_loss),
            "lr": self.config.lr,
            "temperature": self.model.temperature,
        }

    def log_epoch(self, metrics: dict) -> None:
        log.info(
            f"epoch {self.epoch}/{self.config.epochs} train ppl {metrics['train_ppl']:.2f} | arch loss "
            f"{metrics['arch_loss']:.4f} | valid ppl {metrics['valid_ppl']:.2f} | {metrics['seconds']:.1f} s"
        )
        log.info(f"genotype: {self.last_genotype}")

    def pictures(self, run_dir: Path) -> list[Path]:
        from .plot import plot_recurrent_run

        return plot_recurrent_run(run_dir)


def run_recurrent_search(config: RecurrentSearchConfig, run_dir: Path, resume: bool = False) -> RecurrentGenotype:
    """Search a recurrent cell into `run_dir`; with `resume`, continue that folder's run from its checkpoint."""
    _, device = start_world(config.device)  # one process, or one rank of torchrun's (core/distributed.py)
    run_dir = rank_folder(Path(run_dir), resume)
    start_run(run_dir, config, device, resume)
    return run_epochs(RecurrentSearcher(config, prepare_text(config, device), device), run_dir, resume)
