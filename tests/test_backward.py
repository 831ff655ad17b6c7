"""backward(): topological order, accumulation, reuse, depth, and freeing graphs."""

import gc

import pytest
import torch

from minigrad_core import Value, topological_order


def test_a_node_used_twice_gets_both_contributions():
    a = Value(3.0)
    b = a + a
    b.backward()
    assert a.grad == 2.0
    c = Value(3.0)
    d = c * c * c  # c appears three times through two nodes
    d.backward()
    assert c.grad == 27.0


def test_second_backward_adds_the_same_amount_again_to_leaves_only():
    # micrograd gives 27 then 72 here; PyTorch (and MiniGrad) give 27 then 54.
    x = Value(3.0)
    y = x * x * x
    y.backward()
    assert x.grad == 27.0
    y.backward()
    xt = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    yt = xt * xt * xt
    yt.backward(retain_graph=True)
    yt.backward()
    assert x.grad == xt.grad.item() == 54.0


def test_interior_gradients_are_recomputed_not_accumulated():
    x = Value(0.5)
    h = x.tanh()
    out = h * 2.0
    out.backward()
    first = h.grad
    out.backward()
    assert h.grad == first == 2.0


def test_backward_of_a_leaf_accumulates_one():
    x = Value(4.0)
    x.backward()
    x.backward()
    assert x.grad == 2.0


def test_topological_order_puts_inputs_before_their_users():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d.tanh() * c
    order = topological_order(e)
    position = {id(n): i for i, n in enumerate(order)}
    for n in order:
        for child in n._prev:
            assert position[id(child)] < position[id(n)]
    assert order[-1] is e and len(order) == len({id(n) for n in order})


def test_a_million_node_chain_needs_no_recursion():
    x = Value(1.0)
    y = x
    for _ in range(1_000_000):
        y = -y
    y.backward()
    assert x.grad == 1.0  # an even number of negations
    assert len(topological_order(y)) == 1_000_001


def test_zero_grad_clears_the_whole_graph():
    x = Value(2.0)
    y = (x * 3.0).exp()
    y.backward()
    y.zero_grad()
    assert all(n.grad == 0.0 for n in topological_order(y))


def _live_values():
    return sum(1 for o in gc.get_objects() if type(o) is Value)


def test_a_dropped_graph_is_freed_by_reference_counting_alone():
    gc.collect()
    gc.disable()
    try:
        before = _live_values()
        x = Value(0.3)
        y = x
        for _ in range(1000):
            y = (y * 1.01 + 0.1).tanh()
        y.backward()
        assert _live_values() > before + 3000
        del y
        assert _live_values() == before + 1  # only x is left
        del x
        assert _live_values() == before
    finally:
        gc.enable()


def test_no_node_refers_to_itself():
    x = Value(0.3)
    y = (x * x).tanh() + x.exp()
    y.backward()
    for n in topological_order(y):
        assert n not in gc.get_referents(n)
        for referent in gc.get_referents(n):
            assert not (isinstance(referent, tuple) and n in referent)


@pytest.mark.parametrize("make", [lambda x: x * x, lambda x: (x + 1).log(), lambda x: x.sigmoid() / x])
def test_interior_grads_match_pytorch_retain_grad(make):
    x = Value(0.7)
    y = make(x)
    z = y.tanh()
    z.backward()
    xt = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    yt = make(xt)
    yt.retain_grad()
    zt = yt.tanh()
    zt.backward()
    assert y.grad == pytest.approx(yt.grad.item(), rel=1e-12)
    assert x.grad == pytest.approx(xt.grad.item(), rel=1e-12)
