"""GDAS's variants, as options: the gradient form of a drawn edge (`sample_grad`) and the derivation
rule (`derive`), each against a hand computation.

- sample_grad gdas_nb201: xautodl NAS201SearchCell.forward_gdas computes an edge as
  sum_k (w_k * op_k(x) if k is drawn else w_k); the undrawn w_k are 0 in value, so every one of them
  gets the sum of the edge output's gradient, and the drawn one sum(grad * op(x)).
- derive gdas: xautodl search_model_gdas_nasnet.py `genotype` keeps each node's 2 strongest
  non-`none` (op, input) pairs; both may come from the same input.
"""

import pytest
import torch

from dartsnas.conv.config import SearchConfig, load_config
from dartsnas.conv.network import NetworkCIFAR
from dartsnas.conv.spaces import DARTS_OPS
from dartsnas.conv.supernet import MixedOp, Supernet
from dartsnas.core.config import ConfigError
from dartsnas.methods.derivations import TOP_K as RULES, derive, derive_cell
from dartsnas.core.genotype import parse
from dartsnas.methods.relaxations import make

# ------------------------------------------------------------------------------------ sample_grad

OPS = ["none", "skip_connect", "max_pool_3x3"]


def _edge_grad(form, choice):
    """(output, d loss / d mix) of one edge; loss = sum(G * output), so d loss / d output = G."""
    torch.manual_seed(0)
    edge = MixedOp(2, 1, OPS, make("sample", sample_grad=form))
    x = torch.randn(1, 2, 3, 3)
    grad_out = torch.randn(1, 2, 3, 3)
    mix = torch.zeros(3)
    mix[choice] = 1.0
    mix.requires_grad_()
    out = edge(x, mix, choice=choice)
    if not out.requires_grad:  # straight-through with `none` drawn: the edge does not depend on mix
        return out, torch.zeros(3), x, grad_out
    (out * grad_out).sum().backward()
    return out.detach(), mix.grad, x, grad_out


@pytest.mark.parametrize("choice", [0, 1])  # `none` drawn | skip_connect drawn (the identity: out = mix_1 * x)
def test_gdas_nb201_form_gives_undrawn_coefficients_the_summed_output_gradient(choice):
    out_st, grad_st, x, g = _edge_grad("straight_through", choice)
    out_gdas, grad_gdas, _, _ = _edge_grad("gdas_nb201", choice)
    assert torch.equal(out_st, out_gdas)  # same forward value
    drawn = 0.0 if choice == 0 else (g * x).sum()  # d/d mix_c of mix_c * op_c(x); `none` outputs zeros
    expected_st = torch.zeros(3)
    expected_st[choice] = drawn
    expected_gdas = torch.full((3,), g.sum().item())
    expected_gdas[choice] = drawn
    torch.testing.assert_close(grad_st, expected_st)
    torch.testing.assert_close(grad_gdas, expected_gdas)


def test_gdas_nb201_form_same_outputs_other_alpha_gradients_in_the_supernet():
    outs, grads = [], []
    for form in ("straight_through", "gdas_nb201"):
        torch.manual_seed(0)
        model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, mixed_op="sample", sample_grad=form)
        model.generator = torch.Generator().manual_seed(1)
        out = model(torch.randn(2, 1, 8, 8))
        outs.append(out.detach())
        grads.append(torch.autograd.grad(out.pow(2).sum(), model.arch_parameters()))
    assert torch.equal(*outs)
    assert not torch.allclose(grads[0][0], grads[1][0])


def test_sample_grad_config_is_validated():
    assert SearchConfig().sample_grad == "straight_through"
    assert load_config(None, ["mixed_op=sample", "sample_grad=gdas_nb201"]).sample_grad == "gdas_nb201"
    with pytest.raises(ConfigError, match="sample_grad.*straight_through, gdas_nb201"):
        SearchConfig(mixed_op="sample", sample_grad="gdas").validate()
    with pytest.raises(ConfigError, match="mixed_op: sample"):
        SearchConfig(sample_grad="gdas_nb201").validate()
    with pytest.raises(ValueError, match="sample_grad"):
        MixedOp(2, 1, OPS, make("sample", sample_grad="bogus"))


# ------------------------------------------------------------------------------------ derive: gdas


def _table(rows):
    """edges x DARTS_OPS probabilities from {edge: {op: p}}; unnamed ops share nothing (0)."""
    probs = [[0.0] * len(DARTS_OPS) for _ in range(rows[0])]
    for e, row in rows[1].items():
        for op, p in row.items():
            probs[e][DARTS_OPS.index(op)] = p
    return probs


# One node (inputs 0 and 1). Input 0 holds the two strongest non-`none` pairs; `none` is strongest of all.
ONE_NODE = _table(
    (2, {0: {"none": 0.5, "sep_conv_3x3": 0.3, "dil_conv_3x3": 0.2}, 1: {"max_pool_3x3": 0.15, "skip_connect": 0.1}})
)


def test_gdas_rule_keeps_two_ops_of_one_input_where_the_darts_rule_keeps_two_inputs():
    assert derive_cell(ONE_NODE, DARTS_OPS, nodes=1, rule="gdas") == [("sep_conv_3x3", 0), ("dil_conv_3x3", 0)]
    assert derive_cell(ONE_NODE, DARTS_OPS, nodes=1) == [("sep_conv_3x3", 0), ("max_pool_3x3", 1)]
    assert derive_cell(ONE_NODE, DARTS_OPS, nodes=1, rule="darts") == derive_cell(ONE_NODE, DARTS_OPS, nodes=1)


def test_gdas_rule_on_a_two_node_table():
    # node 3 (inputs 0, 1, 2): pairs by strength: (skip, 2) 0.4, (avg, 1) 0.35, (sep5, 2) 0.3, ...
    probs = ONE_NODE + _table(
        (
            3,
            {
                0: {"sep_conv_3x3": 0.2},
                1: {"avg_pool_3x3": 0.35, "none": 0.6},
                2: {"skip_connect": 0.4, "sep_conv_5x5": 0.3},
            },
        )
    )
    assert derive_cell(probs, DARTS_OPS, nodes=2, rule="gdas")[2:] == [("skip_connect", 2), ("avg_pool_3x3", 1)]
    # Edge probabilities (PC-DARTS) scale every pair of their edge: input 1 falls behind input 2's second op.
    edge_probs = [1.0, 1.0, 1.0, 0.5, 1.0]
    assert derive_cell(probs, DARTS_OPS, nodes=2, edge_probs=edge_probs, rule="gdas")[2:] == [
        ("skip_connect", 2),
        ("sep_conv_5x5", 2),
    ]


def test_gdas_rule_ties_go_to_the_lower_input_then_the_earlier_op():
    # Every non-`none` pair equal: GDAS's stable sort over pairs listed input by input, op by op.
    uniform = [[1.0 / len(DARTS_OPS)] * len(DARTS_OPS)] * 2
    assert derive_cell(uniform, DARTS_OPS, nodes=1, rule="gdas") == [("max_pool_3x3", 0), ("avg_pool_3x3", 0)]
    tied = _table((2, {0: {"skip_connect": 0.3}, 1: {"max_pool_3x3": 0.3, "sep_conv_3x3": 0.3}}))
    assert derive_cell(tied, DARTS_OPS, nodes=1, rule="gdas") == [("skip_connect", 0), ("max_pool_3x3", 1)]


def test_a_gdas_genotype_with_one_input_twice_is_a_valid_genotype():
    probs = {"normal": ONE_NODE, "reduce": ONE_NODE}
    g = derive(probs, DARTS_OPS, nodes=1, rule="gdas")
    assert g.normal == (("sep_conv_3x3", 0), ("dil_conv_3x3", 0))
    assert parse(str(g)) == g
    net = NetworkCIFAR(g, num_classes=3, in_channels=1, init_channels=4, layers=3, auxiliary=False)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_derive_rule_registry_and_config():
    assert set(RULES) == {"darts", "gdas"}
    assert SearchConfig().derive is None and SearchConfig().derivation() == "darts"  # the space's own rule
    assert load_config(None, ["derive=gdas"]).derive == "gdas"
    with pytest.raises(ConfigError, match="derive.*darts, gdas"):
        SearchConfig(derive="pcdarts").validate()
    with pytest.raises(ValueError, match="darts, gdas"):
        derive_cell(ONE_NODE, DARTS_OPS, nodes=1, rule="top2")
