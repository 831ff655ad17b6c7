"""minigrad-extras, tested the way its users would: found through its entry point, every op
checked by MiniGrad's testing kit against finite differences and PyTorch."""

import math

import numpy as np
import pytest
import torch  # noqa: F401  (the oracle: imported up front, not in the middle of drawing examples)
from hypothesis import given
from hypothesis import strategies as st

from minigrad_core import Registry, Value, grad, make_plugin_manager, ops, using
from minigrad_testing import check_grads, check_op, expressions

EXTRAS = ("sin", "cos", "erf", "softplus", "gelu", "leaky_relu", "hypot")
# the elementary functions (tests/test_extras_elementary.py checks them in detail)
ELEMENTARY = (
    "tan",
    "sinh",
    "cosh",
    "arcsin",
    "arccos",
    "arctan",
    "arcsinh",
    "arccosh",
    "arctanh",
    "arctan2",
    "log1p",
    "expm1",
    "log2",
    "log10",
    "exp2",
    "sign",
    "maximum",
    "minimum",
    "clamp",
)


@pytest.fixture(scope="module", autouse=True)
def registry():
    """The built-in ops and this package, both loaded through their entry points only."""
    with using(Registry(make_plugin_manager(selection={"ops", "extras"}))) as registry:
        yield registry


def test_the_package_is_found_through_its_entry_point(registry):
    info = registry.plugins["extras"]
    assert info.distribution == "minigrad-extras" and info.module == "minigrad_extras"
    assert sorted(info.provides["ops"]) == sorted(EXTRAS + ELEMENTARY)
    assert all(registry.ops[name].plugin == "extras" for name in EXTRAS + ELEMENTARY)


@pytest.mark.parametrize("name", EXTRAS)
def test_each_op_passes_the_gradient_check(name):
    result = check_op(name)
    assert result.op == name and result.examples > 0


@pytest.mark.parametrize("name", EXTRAS)
def test_each_op_can_be_differentiated_twice(name):
    result = check_op(name, order=2)
    assert result.order == 2 and result.examples > 0


def test_ops_are_value_methods_and_functions():
    x, y = Value(0.5), Value(-1.5)
    assert x.sin().data == math.sin(0.5) and x.cos().data == math.cos(0.5)
    assert x.hypot(y).data == math.hypot(0.5, -1.5) == ops.hypot(0.5, -1.5)
    assert y.leaky_relu().data == pytest.approx(-0.015) and y.leaky_relu(0.2).data == pytest.approx(-0.3)
    assert y.leaky_relu(slope=0.5)._op == "leaky_relu(slope=0.5)"
    assert ops.erf(0.0) == 0.0 and ops.gelu(0.0) == 0.0


def test_softplus_never_overflows_and_keeps_its_gradient():
    big, small = Value(1000.0), Value(-1000.0)
    out = big.softplus() + small.softplus()
    out.backward()
    assert out.data == 1000.0
    assert (big.grad, small.grad) == (1.0, pytest.approx(0.0, abs=1e-300))
    assert ops.softplus(0.0) == pytest.approx(math.log(2.0), rel=1e-15)


def test_gelu_is_accurate_far_in_the_left_tail():
    # x Φ(x) at -10 is about -7.6e-23: the erfc form keeps it, 1 + erf(x/√2) would give 0.
    # The oracle is mpmath at 50 digits (PyTorch uses the same erfc formula as the op).
    import mpmath

    mpmath.mp.dps = 50
    for x in (-10.0, -30.0, -1.0, 2.5):
        expected = float(mpmath.mpf(x) * mpmath.ncdf(mpmath.mpf(x)))
        assert ops.gelu(x) == pytest.approx(expected, rel=1e-13), x
    assert ops.gelu(-10.0) != 0.0


def test_a_composite_function_against_finite_differences():
    def f(x, y):
        return x.sin() * y.cos() + (x * y).softplus().gelu() + x.hypot(y) + (x - y).leaky_relu(0.1)

    gradient = check_grads(f, 0.7, -0.4, order=2)
    assert len(gradient) == 2


def test_third_derivative_of_sin_is_minus_cos():
    third = grad(grad(grad(lambda x: x.sin())))
    assert third(0.3) == pytest.approx(-math.cos(0.3), rel=1e-12)


@given(expressions(ops=("add", "mul", "sub", *EXTRAS), max_depth=3))
def test_random_expressions_over_these_ops_agree_with_pytorch(expression):
    check_grads(expression, *expression.inputs, torch_fn=expression.torch)


@pytest.mark.parametrize("name", EXTRAS)
def test_numpy_rules_agree_with_the_scalar_rules(registry, name):
    spec = registry.ops[name]
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.1, 3.0, 16) * rng.choice([-1.0, 1.0], 16) for _ in range(spec.arity)]
    params = {k: v[-1] for k, v in spec.domain.params.items()}
    out = spec.np_forward(*arrays, **params)
    partials = spec.np_derivative(*arrays, out, **params)
    for i, point in enumerate(zip(*arrays)):
        expected = spec.forward(*point, **params)
        assert out[i] == pytest.approx(expected, rel=1e-12, abs=1e-300)
        rule = spec.derivative(*point, expected, **params)
        for partial, scalar in zip(partials, rule):
            assert np.broadcast_to(partial, out.shape)[i] == pytest.approx(scalar, rel=1e-12, abs=1e-15)


@given(st.floats(-20, 20))
def test_leaky_relu_slope_scales_only_the_negative_side(x):
    for slope in (0.01, 0.3):
        y = ops.leaky_relu(x, slope=slope)
        assert y == (x if x > 0 else slope * x)


def test_an_mlp_can_use_an_extras_op_as_its_nonlinearity():
    # minigrad_nn ships with MiniGrad: if it cannot be imported or loaded, that is a failure
    import minigrad_nn as nn

    registry = Registry(make_plugin_manager(selection={"ops", "nn", "extras"}))
    assert {"ops", "nn", "extras"} <= set(registry.plugins) and not registry.failed, registry.failed
    with using(registry):
        model = nn.MLP(2, [4, 1], nonlin="sin")
        out = model([Value(0.5), Value(-1.0)])
        out = out[0] if isinstance(out, list) else out
        out.backward()
        ops_used = {node._spec.name for node in _nodes(out) if node._spec is not None}
        assert "sin" in ops_used
        assert any(p.grad != 0.0 for p in model.parameters())


def _nodes(root):
    from minigrad_core import topological_order

    return topological_order(root)


def test_minigrad_graph_draws_an_expression_with_these_ops(capsys):
    from minigrad_core.cli import main

    # the graphviz plugin is a test dependency of this package: broken or missing, this fails
    registry = Registry(make_plugin_manager(selection={"ops", "extras", "graphviz"}))
    assert "graph" in registry.commands and not registry.failed, f"the graphviz plugin did not load: {registry.failed}"
    with using(registry):
        assert main(["graph", "hypot(gelu(x), y) + leaky_relu(x, slope=0.2) + sin(y)", "x=0.5", "y=2"]) == 0
    dot = capsys.readouterr().out
    for label in ('label="hypot"', 'label="gelu"', 'label="leaky_relu(slope=0.2)"', 'label="sin"'):
        assert label in dot
