"""SGAS (Li et al., CVPR 2020): edges decided during the search, one per cell kind at each decision epoch,
by the scores of core/progressive.py; a decided or cut edge's alphas frozen as their code freezes them; the
batch growing after each decision epoch when asked. One line per decision in RUN/decisions.jsonl."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ...core.config import ConfigError
from ...core.distributed import check_batch, world
from ...core.progressive import FORMS, FREE, decide_one, decision_epoch, decision_rounds
from ...core.runs import append_jsonl, read_jsonl
from .base import SearchUnit, check_whole

log = logging.getLogger("dartsnas")


class SGAS(SearchUnit):
    leaves_ops_out = True  # a decided edge runs one op, a cut edge none

    @classmethod
    def check(cls, config) -> None:
        if not hasattr(config, "progressive"):
            return
        check_whole(config, "progressive_history")
        if config.progressive_form not in FORMS:
            raise ConfigError(f"progressive_form: unknown {config.progressive_form!r}; available: {', '.join(FORMS)}")
        if config.progressive_warmup < 0 or config.progressive_interval < 1:
            raise ConfigError(
                f"progressive_warmup must be >= 0 and progressive_interval >= 1, got "
                f"{config.progressive_warmup} and {config.progressive_interval}"
            )

    @classmethod
    def enabled(cls, config) -> bool:
        return bool(getattr(config, "progressive", False))

    def attach(self, search) -> None:
        if world().wrapped and self.config.progressive_batch_increase:  # every later batch splits evenly too
            check_batch(self.config.progressive_batch_increase, "progressive_batch_increase")
        if self.config.progressive_form == "sgas":
            freeze_decided(search.model, search.architect.optimizer)

    def batch_size(self, search, size: int) -> int:
        """Their `args.batch_size + args.batch_increase * count`, counted from the decisions the model holds."""
        return size + self.config.progressive_batch_increase * decision_rounds(search.model.decided)

    def decide(self, search, run_dir: Path) -> None:
        """At a decision epoch, fix the best-scored free edge of every cell kind."""
        cfg, model, form = self.config, search.model, self.config.progressive_form
        if not decision_epoch(search.epoch, cfg.progressive_warmup, cfg.progressive_interval, form):
            return
        past = read_jsonl(run_dir / "alphas.jsonl")[-cfg.progressive_history :] if cfg.progressive_history else []
        if form == "sgas":  # as their edge_decision: every edge's softmax of its alphas, decided edges' included
            probs = {k: alpha_probs(model, model.alphas[k], model.temperature) for k in model.kinds}
            history = {k: [alpha_probs(model, r["alphas"][k], r["temperature"]) for r in past] for k in model.kinds}
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
                "epoch": search.epoch,
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


def alpha_probs(model, alphas, temperature: float) -> list[list[float]]:
    """The relaxation's probabilities of a table of alphas (now, or as alphas.jsonl recorded them), before
    any decision is applied."""
    alphas = torch.as_tensor(alphas, dtype=torch.float32).detach().cpu()
    return model.relaxation.probs(alphas, temperature).tolist()


def freeze_decided(model, optimizer) -> None:
    """A decided or cut edge's alphas keep the values they had when it left the mixture, as their code sets
    requires_grad False on them (and Adam skips them); here the architecture optimiser's step, whose weight
    decay and momentum would still move those rows, is undone on them. The scores read them."""
    held = {}

    def before(optimizer, args, kwargs):
        held.clear()
        for kind, row in model.decided.items():
            rows = [e for e, d in enumerate(row) if d != FREE]
            if rows:
                held[kind] = (rows, model.alphas[kind].detach()[rows].clone())

    def after(optimizer, args, kwargs):
        with torch.no_grad():
            for kind, (rows, values) in held.items():
                model.alphas[kind][rows] = values

    optimizer.register_step_pre_hook(before)
    optimizer.register_step_post_hook(after)


UNIT = SGAS
