"""Training a recurrent genotype from scratch (the paper's evaluation, Sec. 3.2 and A.2.2, as the official
rnn/train.py): the cell in a one-layer language model with tied weights, SGD with lr 20 until validation
stops improving, then averaged SGD (ASGD, Polyak averaging) to the end.

The switch is the non-monotone trigger of AWD-LSTM (Merity et al., 2018) that the official code uses: after
an epoch whose validation loss is worse than the best of all epochs but the last `nonmono`. Under ASGD the
model is validated (and `best.pt` saved) with the averaged weights. The test split is evaluated once, at the
end, with the weights of the best validation epoch (`results.json`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .genotype import RecurrentGenotype
from .model import LanguageModel, Segment, evaluation_model
from .config import RecurrentTrainConfig
from .search import evaluate, local, weight_step
from ..core.checkpoints import load_checkpoint, save_checkpoint
from ..core.guard import Guard
from ..core.distributed import check_batch, gather_rows, shard, total, world
from ..core.distributed import describe
from ..core.distributed import start as start_world
from ..core.runs import NO_STEPS, Steps, append_jsonl, rank_folder, run_epochs, start_run
from .text import Corpus, batchify, load_corpus, segment, windows

log = logging.getLogger("dartsnas")


def should_switch(history: list[float], val_loss: float, nonmono: int) -> bool:
    """ASGD from now on? When this epoch's loss is worse than the best of all epochs but the last nonmono."""
    return len(history) > nonmono and val_loss > min(history[:-nonmono])


def count_parameters(model: LanguageModel) -> int:
    """Every parameter once (the tied decoder matrix is the embedding's), as the official code counts."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class TrainText:
    corpus: Corpus
    train: torch.Tensor  # (steps, batch_size)
    valid: torch.Tensor  # (steps, eval_batch_size)
    test: torch.Tensor  # (steps, test_batch_size)


def prepare_text(config: RecurrentTrainConfig, device: torch.device) -> TrainText:
    corpus = load_corpus(config.corpus, config.data_dir, config.download, config.max_lines)
    return TrainText(
        corpus,
        batchify(corpus.train, config.batch_size, device),
        batchify(corpus.valid, config.eval_batch_size, device),
        batchify(corpus.test, config.test_batch_size, device),
    )


class RecurrentTrainer:
    """Owns the model, the optimiser (SGD, later ASGD), the validation history and the random state.
    A `core.runs.Driver`: run_epochs starts, resumes and loops it."""

    logs = ("metrics.jsonl",)

    def __init__(self, config: RecurrentTrainConfig, genotype: RecurrentGenotype, text: TrainText, device):
        self.config, self.text, self.device = config, text, device
        torch.manual_seed(config.seed)
        self.model = evaluation_model(
            genotype,
            len(text.corpus),
            config.emsize,
            dropout=config.dropout,
            dropouth=config.dropouth,
            dropoutx=config.dropoutx,
            dropouti=config.dropouti,
            dropoute=config.dropoute,
        ).to(device)
        self.optimizer = self._optimizer("sgd")
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.epoch, self.history, self.best = 0, [], {"epoch": 0, "valid_loss": None}
        self.guard = Guard(device)  # run_epochs sets the run's own
        if world().distributed:  # each rank its shard of the streams; gradients averaged in weight_step
            check_batch(config.batch_size)

    def _optimizer(self, kind: str):
        params, cfg = list(self.model.parameters()), self.config
        if kind == "asgd":  # the official switch: t0 = 0 (average from the first step), lambd = 0 (no lr decay)
            return torch.optim.ASGD(params, lr=cfg.lr, t0=0, lambd=0.0, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    @property
    def averaging(self) -> bool:
        return isinstance(self.optimizer, torch.optim.ASGD)

    def switch_to_asgd(self) -> None:
        self.optimizer = self._optimizer("asgd")

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_kind": "asgd" if self.averaging else "sgd",
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "history": list(self.history),
            "best": dict(self.best),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer = self._optimizer(state["optimizer_kind"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch, self.history, self.best = state["epoch"], list(state["history"]), dict(state["best"])

    def train_epoch(self, progress=None, steps: Steps = NO_STEPS) -> dict:
        cfg, model, source = self.config, self.model, self.text.train
        model.train()
        params = list(model.parameters())
        # Inside a resumed epoch: the next window's row and the hidden state come back from the checkpoint (the
        # global batch's; data-parallel, this rank takes its rows, and its share of the masks drawn whole).
        at = steps.resume_at()
        hidden = shard(at["hidden"] if at else model.init_hidden(source.shape[1]))
        sums = at["sums"].to(self.device) if at else torch.zeros(2, dtype=torch.float64, device=self.device)
        done, row = (at["step"], at["row"]) if at else (0, 0)
        if at and progress is not None:
            progress.update(done)
        for step, (start, length) in enumerate(
            windows(len(source), cfg.bptt, self.generator, cfg.seq_jitter, start=row), start=done
        ):
            self.guard.step = step
            x, y = (shard(t, dim=1) for t in segment(source, start, length))
            seg = Segment(x, hidden, local(model.draw_masks(source.shape[1], self.generator)))
            group = self.optimizer.param_groups[0]
            lr = group["lr"]
            group["lr"] = lr * length / cfg.bptt  # official: the step follows the window's length
            try:
                loss = weight_step(model, self.optimizer, seg, y, cfg.tar, cfg.grad_clip, params, self.guard)
            finally:
                group["lr"] = lr
            hidden = seg.last
            sums += torch.stack(
                [loss.double() * y.numel(), torch.tensor(float(y.numel()), dtype=torch.float64, device=self.device)]
            )
            if progress is not None:
                progress.update(1)
                if step % 20 == 0:
                    s = sums.tolist()
                    progress.set_postfix(ppl=f"{math.exp(s[0] / s[1]):.1f}")
            steps.after(
                step + 1, lambda: {"step": step + 1, "row": start + length, "sums": sums, "hidden": gather_rows(hidden)}
            )
        s = total(sums).tolist()
        return {"train_loss": s[0] / s[1], "train_ppl": math.exp(s[0] / s[1])}

    def evaluate(self, source: torch.Tensor) -> float:
        """Validation loss; under ASGD with the averaged weights (the model's own are put back after)."""
        if not self.averaging:
            return evaluate(self.model, source, self.config.bptt)
        with torch.no_grad():
            own = [p.clone() for p in self.model.parameters()]
            for p in self.model.parameters():
                p.copy_(self.optimizer.state[p]["ax"])
        try:
            return evaluate(self.model, source, self.config.bptt)
        finally:
            with torch.no_grad():
                for p, w in zip(self.model.parameters(), own):
                    p.copy_(w)

    def best_weights(self) -> dict:
        """The weights validated: the averaged ones under ASGD, the model's own before."""
        state = {k: v.clone() for k, v in self.model.state_dict().items()}
        if self.averaging:
            names = {id(p): n for n, p in self.model.named_parameters()}
            for p in self.model.parameters():
                state[names[id(p)]] = self.optimizer.state[p]["ax"].clone()
        return state

    def steps_per_epoch(self) -> int:
        return max(1, -(-(len(self.text.train) - 1) // self.config.bptt))

    # -- the parts of core.runs.run_epochs that are a training's own --------------------------------

    def begin(self, run_dir: Path) -> None:
        initial = evaluate(self.model, self.text.valid, self.config.bptt)  # the curves start from the untrained model
        append_jsonl(run_dir / "metrics.jsonl", {"epoch": 0, "valid_loss": initial, "valid_ppl": math.exp(initial)})

    def announce(self) -> None:
        config, corpus = self.config, self.text.corpus
        log.info(
            f"train: {config.corpus} ({len(corpus.train):,} training tokens, vocabulary {len(corpus):,}), "
            f"size {config.emsize}, {count_parameters(self.model):,} parameters, device {self.device}{describe()}"
        )

    def end_epoch(self, run_dir: Path, metrics: dict) -> dict:
        kind = "asgd" if self.averaging else "sgd"  # the optimiser of the epoch just trained
        val_loss = self.evaluate(self.text.valid)
        self.epoch += 1
        if self.best["valid_loss"] is None or val_loss < self.best["valid_loss"]:
            self.best = {"epoch": self.epoch, "valid_loss": val_loss}
            save_checkpoint({"model": self.best_weights(), "epoch": self.epoch}, run_dir / "best.pt")
        self.switched = False
        if not self.averaging:
            self.switched = should_switch(self.history, val_loss, self.config.nonmono)
            self.history.append(val_loss)
            if self.switched:
                self.switch_to_asgd()
        return {
            **metrics,
            "valid_loss": val_loss,
            "valid_ppl": math.exp(val_loss),
            "optimizer": kind,
            "lr": self.config.lr,
        }

    def log_epoch(self, metrics: dict) -> None:
        log.info(
            f"epoch {self.epoch}/{self.config.epochs} ({metrics['optimizer']}) train ppl {metrics['train_ppl']:.2f} "
            f"| valid ppl {metrics['valid_ppl']:.2f} | {metrics['seconds']:.1f} s"
        )
        if self.switched:
            log.info(
                f"validation stopped improving (worse than the best before the last {self.config.nonmono} "
                "epochs): averaged SGD from the next epoch"
            )

    def finish(self, run_dir: Path) -> dict:
        return _final_results(self, run_dir)

    def pictures(self, run_dir: Path) -> list[Path]:
        from .plot import plot_recurrent_run

        return plot_recurrent_run(run_dir)


def run_recurrent_training(
    config: RecurrentTrainConfig, genotype: RecurrentGenotype, run_dir: Path, resume: bool = False
) -> dict:
    """Train into `run_dir`; with `resume`, continue that folder's run from its checkpoint. Returns results.json."""
    run_dir = Path(run_dir)
    _, device = start_world(config.device)  # one process, or one rank of torchrun's (core/distributed.py)
    run_dir = rank_folder(run_dir, resume)
    start_run(run_dir, config, device, resume, genotype)
    trainer = RecurrentTrainer(config, genotype, prepare_text(config, device), device)
    return run_epochs(trainer, run_dir, resume)


def _final_results(trainer: RecurrentTrainer, run_dir: Path) -> dict:
    final_weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.model.load_state_dict(load_checkpoint(run_dir / "best.pt", trainer.device)["model"])
    test_loss = evaluate(trainer.model, trainer.text.test, trainer.config.bptt)
    trainer.model.load_state_dict(final_weights)
    results = {
        "parameters": count_parameters(trainer.model),
        "epochs": trainer.epoch,
        "best": {
            **trainer.best,
            "valid_ppl": math.exp(trainer.best["valid_loss"]),
            "test_loss": test_loss,
            "test_ppl": math.exp(test_loss),
        },
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    log.info(
        f"best epoch {trainer.best['epoch']}: valid perplexity {results['best']['valid_ppl']:.2f}, "
        f"test perplexity {results['best']['test_ppl']:.2f}"
    )
    return results
