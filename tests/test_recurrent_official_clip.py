"""The official recurrent second-order step's clipping (`Architect(official_clip=True)`), against a plain
re-statement of rnn/architect.py `_backward_step_unrolled`:

    g = grad_w L_train(w);  c = clip / (||g|| + 1e-6);  g *= c if c < 1
    w' = w - eta (g + wd w)
    dalpha, v = grad_(alpha, w') L_val(w')
    v *= clip / (||v|| + 1e-6) if that is < 1                      (official only)
    R = r / ||v||
    dalpha - eta * c * (grad_alpha L_train(w + R v) - grad_alpha L_train(w - R v)) / (2 R)

The paper's form (the default) caps c at 1 and leaves v unclipped.
"""

import pytest
import torch
from torch import nn

from dartsnas.core.architect import Architect, Searchable
from dartsnas.core.config import ConfigError
from dartsnas.recurrent.config import RecurrentSearchConfig


class Tiny(Searchable):
    """logits = sum_k softmax(alpha)_k * tanh(x A_k) + b: a smooth loss, coupled in (w, alpha)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(3, 4, 5, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(5, dtype=torch.float64))
        self.alphas = nn.ParameterDict({"edge": nn.Parameter(torch.randn(3, dtype=torch.float64))})

    def forward(self, x):
        return _logits(x, self.a, self.b, self.alphas["edge"])


def _logits(x, a, b, alpha):
    return torch.einsum("k,kbo->bo", alpha.softmax(-1), torch.tanh(torch.einsum("bi,kio->kbo", x, a))) + b


def _restated(model, batch, eta, wd, clip, r, official):
    """The step above, written out on plain tensors; also dalpha, the uncapped c and ||v|| (unclipped)."""
    x_t, y_t, x_v, y_v = batch
    w = [model.a.detach(), model.b.detach()]
    alpha = model.alphas["edge"].detach().requires_grad_()

    def loss(ws, x, y):
        return nn.functional.cross_entropy(_logits(x, *ws, alpha), y)

    wt = [t.clone().requires_grad_() for t in w]
    g = torch.autograd.grad(loss(wt, x_t, y_t), wt)
    c = clip / (torch.cat([t.flatten() for t in g]).norm() + 1e-6)
    if c < 1:
        g = [t * c for t in g]
    w2 = [(t - eta * (gt + wd * t)).requires_grad_() for t, gt in zip(w, g)]
    dalpha, *v = torch.autograd.grad(loss(w2, x_v, y_v), [alpha, *w2])
    v_norm = torch.cat([t.flatten() for t in v]).norm()
    scale = c
    if official:
        if clip / (v_norm + 1e-6) < 1:
            v = [t * (clip / (v_norm + 1e-6)) for t in v]
    else:
        scale = min(c, 1.0)
    big_r = r / torch.cat([t.flatten() for t in v]).norm()
    gp = torch.autograd.grad(loss([t + big_r * d for t, d in zip(w, v)], x_t, y_t), alpha)[0]
    gn = torch.autograd.grad(loss([t - big_r * d for t, d in zip(w, v)], x_t, y_t), alpha)[0]
    return dalpha - eta * scale * (gp - gn) / (2 * big_r), dalpha, c.item(), v_norm.item()


def _setup(seed=0):
    torch.manual_seed(seed)
    model = Tiny()
    gen = torch.Generator().manual_seed(seed)
    batch = (
        torch.randn(6, 4, generator=gen, dtype=torch.float64),
        torch.randint(0, 5, (6,), generator=gen),
        torch.randn(6, 4, generator=gen, dtype=torch.float64),
        torch.randint(0, 5, (6,), generator=gen),
    )
    return model, batch


@pytest.mark.parametrize("clip", [0.05, 20.0])  # clips both gradients | clips neither, so c > 1
def test_official_form_is_the_official_algorithm_and_differs_from_the_paper(clip):
    model, batch = _setup()
    eta, wd = 0.5, 1e-3
    optimizer = torch.optim.SGD(model.weights(), eta, weight_decay=wd)
    got = {}
    for official in (False, True):
        architect = Architect(model, nn.CrossEntropyLoss(), unrolled=True, grad_clip=clip, official_clip=official)
        got[official] = architect.second_order_grads(*batch, optimizer)[0][0]
        expected, dalpha, c, v_norm = _restated(model, batch, eta, wd, clip, 1e-2, official)
        torch.testing.assert_close(got[official], expected, rtol=1e-9, atol=1e-12)
    # By hand: both forms share dalpha and the probe points w +- r v / ||v||, so their implicit terms
    # differ by one factor: the uncapped c when nothing is clipped, clip / ||v|| when v is.
    ratio = (got[True] - dalpha) / (got[False] - dalpha)
    if clip > 1:
        assert c > 1 and v_norm < clip  # the setting this case is about
        factor = c
    else:
        assert c < 1 and v_norm > clip
        factor = clip / (v_norm + 1e-6)
    torch.testing.assert_close(ratio, torch.full_like(ratio, factor), rtol=1e-6, atol=0)
    assert abs(factor - 1) > 0.5  # the forms differ by far more than rounding


def test_official_form_needs_a_clip():
    with pytest.raises(ValueError, match="grad_clip"):
        Architect(Tiny(), nn.CrossEntropyLoss(), unrolled=True, official_clip=True)


def test_unrolled_form_config_field():
    assert RecurrentSearchConfig().unrolled_form == "paper"
    assert RecurrentSearchConfig(unrolled=True, unrolled_form="official").validate().unrolled_form == "official"
    with pytest.raises(ConfigError, match="unrolled_form.*paper, official"):
        RecurrentSearchConfig(unrolled=True, unrolled_form="offical").validate()
    with pytest.raises(ConfigError, match="unrolled=true"):
        RecurrentSearchConfig(unrolled_form="official").validate()


def test_official_form_runs_on_the_recurrent_search_model():
    # The search's own model and clip (0.25): the official form moves the alphas differently.
    from dartsnas.recurrent.model import SearchModel, Segment

    grads = {}
    for official in (False, True):
        torch.manual_seed(0)
        model = SearchModel(11, emsize=6, nodes=3, dropout=0.3, dropouth=0.2, dropoutx=0.3, dropouti=0.1).double()
        optimizer = torch.optim.SGD(model.weights(), 20.0, weight_decay=5e-7)
        architect = Architect(model, nn.CrossEntropyLoss(), unrolled=True, grad_clip=0.25, official_clip=official)
        gen = torch.Generator().manual_seed(0)
        segs = [
            Segment(
                torch.randint(0, 11, (5, 4), generator=gen),
                torch.zeros(4, 6, dtype=torch.float64),
                model.draw_masks(4, gen),
            )
            for _ in range(2)
        ]
        ys = [torch.randint(0, 11, (20,), generator=gen) for _ in range(2)]
        grads[official] = architect.grads(segs[0], ys[0], segs[1], ys[1], optimizer)[0][0]
        assert torch.isfinite(grads[official]).all() and segs[1].last is not None
    assert not torch.allclose(grads[True], grads[False], rtol=1e-3)
