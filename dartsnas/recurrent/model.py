"""Recurrent cells (Sec. 2.1, 3.1.2, A.1.2): the search cell, the cell of a genotype, and the language model.

A cell turns the word x_t and the previous state h_{t-1} into h_t through N nodes. Node 0 joins its
inputs through one highway-style step on the two projected together,

    [c_0, h_0] = [x_t, h_{t-1}] W_0,    s_0 = h_{t-1} + sigmoid(c_0) * (tanh(h_0) - h_{t-1}),

and node i takes a predecessor s_j (j < i) through an activation op f the same way,

    [c, h] = s_j W_i,                   s_i = s_j + sigmoid(c) * (f(h) - s_j),

with W_i shared by all of node i's possible predecessors. h_t is the mean of the nodes in `concat`
(nodes 1..N). In the search cell every node sums this over all predecessors and all ops, weighted by
softmax(alphas) (Eq. 2; `none` adds nothing but takes its share of the softmax), and batch-normalises
the result (the paper's A.1.2, for stability; the official code uses one batch norm for every node,
here each node has its own, so that eval-mode statistics are each node's own).

Dropout is variational (Gal & Ghahramani, 2016), as in the official code: one mask per sequence of a
batch, the same at every time step, on the embeddings (`dropouti`), the cell's input x (`dropoutx`), the
states entering each projection (`dropouth`) and the output (`dropout`); `dropoute` drops whole words
from the embedding matrix. Masks are drawn by the caller (`draw_masks`) and passed in, so that every pass
over one batch (the weight step, the architecture step's probes) sees the same masks. The decoder's
matrix is the embedding matrix (weight tying), so embedding and hidden sizes are equal.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from ..core.architect import Searchable
from .genotype import RECURRENT_OPS, RecurrentGenotype

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}
INIT_RANGE = 0.04  # official: embeddings and cell matrices start uniform in [-0.04, 0.04]
DROPOUTS = ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")


def _uniform(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape).uniform_(-INIT_RANGE, INIT_RANGE))


def _gated(s: torch.Tensor, c: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return s + c.sigmoid() * (h - s)


class RecurrentCell(nn.Module):
    """What both cells share: W_0 and one W_i per node, node 0, and the loop over time."""

    def __init__(self, ninp: int, nhid: int, nodes: int):
        super().__init__()
        self.nhid, self.nodes = nhid, nodes
        self.w0 = _uniform(ninp + nhid, 2 * nhid)
        self.ws = nn.ParameterList(_uniform(nhid, 2 * nhid) for _ in range(nodes))

    def init_state(self, x, h_prev, x_mask, h_mask, w0=None) -> torch.Tensor:
        xh = torch.cat([x if x_mask is None else x * x_mask, h_prev if h_mask is None else h_prev * h_mask], -1)
        c0, h0 = (xh @ (self.w0 if w0 is None else w0)).split(self.nhid, -1)
        return _gated(h_prev, c0, h0.tanh())

    def forward(self, inputs, hidden, x_mask=None, h_mask=None, probs=None):
        """inputs (T, B, ninp), hidden (B, nhid) -> states h_1..h_T (T, B, nhid) and h_T."""
        outputs = []
        for x in inputs.unbind(0):
            hidden = self.step(x, hidden, x_mask, h_mask, probs)
            outputs.append(hidden)
        return torch.stack(outputs), hidden

    def step(self, x, h_prev, x_mask, h_mask, probs):
        raise NotImplementedError


class SearchCell(RecurrentCell):
    """Every node mixes all its predecessors through all ops, weighted by `probs` (edges x ops).

    `lean`: each time step's activations are not kept but recomputed in the backward pass (activation
    checkpointing), so memory grows with the sequence length by one state per step, not by every node's
    every candidate. Gradients are the same; batch-norm statistics move once (the recomputation
    normalises with the batch's statistics and updates copies of the running ones). The weights go into the
    checkpointed step as arguments, so recomputation uses the ones of the forward pass also under
    `functional_call` (the second-order step's probes).
    """

    def __init__(
        self, ninp: int, nhid: int, nodes: int = 8, ops=RECURRENT_OPS, batch_norm: bool = True, lean: bool = False
    ):
        super().__init__(ninp, nhid, nodes)
        self.ops = list(ops)
        unknown = [o for o in self.ops if o != "none" and o not in ACTIVATIONS]
        if unknown:
            raise ValueError(f"unknown recurrent op(s) {unknown}; known: none, {', '.join(ACTIVATIONS)}")
        self.index = [k for k, name in enumerate(self.ops) if name != "none"]
        self.norms = nn.ModuleList(nn.BatchNorm1d(nhid, affine=False) for _ in range(nodes + 1)) if batch_norm else None
        self.lean = lean
        self._recomputing = False

    def _norm(self, i: int, s: torch.Tensor) -> torch.Tensor:
        if self.norms is None:
            return s
        norm = self.norms[i]
        if self._recomputing and norm.training:  # same output; the update lands on copies of the statistics
            return F.batch_norm(
                s,
                norm.running_mean.clone(),
                norm.running_var.clone(),
                training=True,
                momentum=norm.momentum,
                eps=norm.eps,
            )
        return norm(s)

    def forward(self, inputs, hidden, x_mask=None, h_mask=None, probs=None):
        if not (self.lean and torch.is_grad_enabled()):
            return super().forward(inputs, hidden, x_mask, h_mask, probs)
        outputs = []
        for x in inputs.unbind(0):
            hidden = checkpoint(
                self._lean_step,
                x,
                hidden,
                x_mask,
                h_mask,
                probs,
                self.w0,
                *self.ws,
                use_reentrant=False,
                context_fn=self._contexts,
            )
            outputs.append(hidden)
        return torch.stack(outputs), hidden

    def _lean_step(self, x, h_prev, x_mask, h_mask, probs, w0, *ws):
        return self.step(x, h_prev, x_mask, h_mask, probs, w0, ws)

    def _contexts(self):
        return contextlib.nullcontext(), self._recomputation()

    @contextlib.contextmanager
    def _recomputation(self):
        self._recomputing = True
        try:
            yield
        finally:
            self._recomputing = False

    def step(self, x, h_prev, x_mask, h_mask, probs, w0=None, ws=None):
        ws = self.ws if ws is None else ws
        states = [self._norm(0, self.init_state(x, h_prev, x_mask, h_mask, w0))]
        offset = 0
        for i in range(self.nodes):
            s = torch.stack(states)  # (i + 1, B, nhid): the predecessors
            c, h = ((s if h_mask is None else s * h_mask) @ ws[i]).split(self.nhid, -1)
            p = probs[offset : offset + i + 1]  # (i + 1, ops)
            # sum_j sum_k p_jk (s_j + c_j (f_k(h_j) - s_j)) = sum_j [P_j s_j + c_j (sum_k p_jk f_k(h_j) - P_j s_j)]
            # with P_j the non-none share of edge j: one gate per predecessor, not one per op.
            mixed = sum(p[:, k, None, None] * ACTIVATIONS[self.ops[k]](h) for k in self.index)
            kept = p[:, self.index].sum(-1)[:, None, None] * s
            states.append(self._norm(i + 1, (kept + c.sigmoid() * (mixed - kept)).sum(0)))
            offset += i + 1
        return torch.stack(states[1:]).mean(0)


class GenotypeCell(RecurrentCell):
    """The discrete cell of a genotype: node i takes one predecessor through one op."""

    def __init__(self, ninp: int, nhid: int, genotype: RecurrentGenotype):
        super().__init__(ninp, nhid, genotype.nodes)
        self.genotype = genotype

    def step(self, x, h_prev, x_mask, h_mask, probs=None):
        states = [self.init_state(x, h_prev, x_mask, h_mask)]
        for i, (op, j) in enumerate(self.genotype.recurrent):
            s = states[j]
            c, h = ((s if h_mask is None else s * h_mask) @ self.ws[i]).split(self.nhid, -1)
            states.append(_gated(s, c, ACTIVATIONS[op](h)))
        return torch.stack([states[i] for i in self.genotype.concat]).mean(0)


@dataclass
class Segment:
    """One window of a batch of token streams and what a pass over it needs besides the weights.

    `last` is filled in by each forward pass over the segment: the state after the window, detached, which
    the caller carries into the next window. (The architecture step runs the model through
    `functional_call` and returns only a loss; the state reaches the caller this way.)
    """

    tokens: torch.Tensor  # (T, B) inputs
    hidden: torch.Tensor  # (B, nhid) the state the window starts from
    masks: dict | None = None  # dropout masks (draw_masks); None: no dropout
    last: torch.Tensor | None = None


class LanguageModel(nn.Module):
    """Embedding -> recurrent cell -> decoder tied to the embedding; the paper's one-layer model."""

    def __init__(
        self,
        vocab_size: int,
        cell: RecurrentCell,
        emsize: int,
        dropout: float = 0.75,
        dropouth: float = 0.25,
        dropoutx: float = 0.75,
        dropouti: float = 0.2,
        dropoute: float = 0.0,
    ):
        super().__init__()
        if cell.nhid != emsize:
            raise ValueError(f"tied weights need equal embedding and hidden sizes, got {emsize} and {cell.nhid}")
        self.encoder = nn.Embedding(vocab_size, emsize)
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        self.cell = cell
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        self.rates = {"output": dropout, "h": dropouth, "x": dropoutx, "input": dropouti, "embedding": dropoute}

    @property
    def nhid(self) -> int:
        return self.cell.nhid

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        w = self.encoder.weight
        return torch.zeros(batch_size, self.nhid, dtype=w.dtype, device=w.device)

    def draw_masks(self, batch_size: int, generator: torch.Generator | None = None) -> dict:
        """Variational dropout masks for one batch (scaled by 1 / keep), drawn on the CPU, moved to the device."""
        w = self.encoder.weight
        shapes = {
            "output": (batch_size, self.nhid),
            "h": (batch_size, self.nhid),
            "x": (batch_size, w.shape[1]),
            "input": (batch_size, w.shape[1]),
            "embedding": (w.shape[0], 1),
        }
        masks = {}
        for name, rate in self.rates.items():
            if rate > 0:
                keep = 1.0 - rate
                mask = torch.empty(shapes[name], dtype=w.dtype).bernoulli_(keep, generator=generator).div_(keep)
                masks[name] = mask.to(w.device)
        return masks

    def cell_inputs(self) -> dict:
        return {}

    def run(self, tokens, hidden, masks: dict | None = None):
        """tokens (T, B), hidden (B, nhid) -> logits (T, B, vocab), the last state, the cell's outputs (T, B, nhid)."""
        m = masks or {}
        weight = self.encoder.weight
        if "embedding" in m:  # whole words dropped from the embedding matrix (official embedded_dropout)
            weight = weight * m["embedding"]
        emb = F.embedding(tokens, weight)
        if "input" in m:
            emb = emb * m["input"]
        outputs, last = self.cell(emb, hidden, m.get("x"), m.get("h"), **self.cell_inputs())
        out = outputs * m["output"] if "output" in m else outputs
        return F.linear(out, self.encoder.weight, self.decoder_bias), last, outputs

    def forward(self, segment: Segment) -> torch.Tensor:
        """Logits of a segment, flattened to (T * B, vocab) for the loss; sets segment.last."""
        logits, last, _ = self.run(segment.tokens, segment.hidden, segment.masks)
        segment.last = last.detach()
        return logits.flatten(0, 1)


class SearchModel(LanguageModel, Searchable):
    """The language model around the search cell, with the alphas (edges x ops) as a registered parameter."""

    def __init__(
        self,
        vocab_size: int,
        emsize: int = 300,
        nodes: int = 8,
        ops=RECURRENT_OPS,
        batch_norm: bool = True,
        lean: bool = False,
        **dropouts,
    ):
        super().__init__(vocab_size, SearchCell(emsize, emsize, nodes, ops, batch_norm, lean), emsize, **dropouts)
        self.ops, self.nodes = list(ops), nodes
        edges = nodes * (nodes + 1) // 2
        # As the convolutional supernet: alphas start near uniform, 1e-3 * N(0, 1).
        self.alphas = nn.ParameterDict({"recurrent": nn.Parameter(1e-3 * torch.randn(edges, len(self.ops)))})
        self.temperature = 1.0  # of the softmax: 1 is the paper's; anneal_entropy sets it per epoch

    def cell_inputs(self) -> dict:
        return {"probs": (self.alphas["recurrent"] / self.temperature).softmax(dim=-1)}

    @torch.no_grad()
    def probs(self) -> dict[str, torch.Tensor]:
        return {"recurrent": (self.alphas["recurrent"] / self.temperature).softmax(dim=-1)}


def evaluation_model(genotype: RecurrentGenotype, vocab_size: int, emsize: int = 850, **dropouts) -> LanguageModel:
    """The paper's evaluation network (A.2.2): the genotype's cell in a one-layer model, tied weights."""
    return LanguageModel(vocab_size, GenotypeCell(emsize, emsize, genotype), emsize, **dropouts)
