"""The elementary functions of minigrad-extras (issue #11), checked against PyTorch in float64:
values, first and second derivatives inside each domain, the errors outside it, overflow, and
the gradient conventions at kinks and ties. Every op also passes MiniGrad's ``check_op`` at
orders 1 and 2 (finite differences and PyTorch on inputs drawn from its declared domain).

The registry is built explicitly from the two plugin modules, so these tests do not depend on
what is installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import minigrad_extras
import minigrad_ops
from minigrad_core import OpDomainError, Registry, Value, grad, ops, using
from minigrad_extras.elementary import ELEMENTARY_OPS
from minigrad_testing import check_op

NAMES = (
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

# The PyTorch float64 reference for each op, written here (not read from the specs) so that a
# wrong `torch=` in a spec cannot make these tests agree with themselves.
REFERENCE = {
    "tan": torch.tan,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "arcsin": torch.asin,
    "arccos": torch.acos,
    "arctan": torch.atan,
    "arcsinh": torch.asinh,
    "arccosh": torch.acosh,
    "arctanh": torch.atanh,
    "arctan2": torch.atan2,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "log2": torch.log2,
    "log10": torch.log10,
    "exp2": torch.exp2,
    "sign": torch.sign,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "clamp": lambda x, low=-math.inf, high=math.inf: torch.clamp(x, low, high),
}

# Points inside each domain (off the kinks): (inputs, params)
UNARY_POINTS = {
    "tan": (-4.0, -1.2, -0.3, 0.0, 0.7, 1.5, 2.0),
    "sinh": (-10.0, -3.0, -0.5, 0.0, 0.25, 2.0, 30.0),
    "cosh": (-10.0, -3.0, -0.5, 0.0, 0.25, 2.0, 30.0),
    "arcsin": (-0.999, -0.5, 0.0, 0.3, 0.9, 0.999),
    "arccos": (-0.999, -0.5, 0.0, 0.3, 0.9, 0.999),
    "arctan": (-50.0, -1.0, 0.0, 0.5, 3.0, 1e6),
    "arcsinh": (-20.0, -1.0, 0.0, 0.5, 3.0, 1e3),
    "arccosh": (1.001, 1.5, 2.0, 10.0, 1e3),
    "arctanh": (-0.999, -0.5, 0.0, 0.3, 0.9, 0.999),
    "log1p": (-0.9, -0.5, -1e-8, 0.0, 1e-10, 0.5, 3.0, 100.0),
    "expm1": (-5.0, -1.0, -1e-10, 0.0, 1e-8, 0.5, 5.0),  # far below 0: see test_expm1_derivative_...
    "log2": (1e-3, 0.5, 1.0, 2.0, 3.0, 1024.0, 1e10),
    "log10": (1e-3, 0.5, 1.0, 2.0, 3.0, 1000.0, 1e10),
    "exp2": (-10.0, -0.5, 0.0, 0.5, 3.0, 20.5),
    "sign": (-3.0, -1e-300, 0.5, 5.0),
}
CASES = [pytest.param(name, (x,), {}, id=f"{name}({x})") for name, points in UNARY_POINTS.items() for x in points]
CASES += [
    pytest.param("arctan2", p, {}, id=f"arctan2{p}")
    for p in ((0.5, 1.0), (1.0, -0.5), (-1.0, -0.5), (-2.0, 3.0), (0.3, 1e-4), (-4.0, 0.0), (0.0, 2.0))
]
CASES += [
    pytest.param(name, p, {}, id=f"{name}{p}")
    for name in ("maximum", "minimum")
    for p in ((1.0, 2.0), (2.0, 1.0), (-3.0, 0.5), (0.5, -3.0), (1e-3, -1e-3))
]
CASES += [
    pytest.param("clamp", (x,), params, id=f"clamp({x}, {params})")
    for x, params in (
        (0.5, {"low": 0.0, "high": 1.0}),
        (-0.5, {"low": 0.0, "high": 1.0}),
        (1.5, {"low": 0.0, "high": 1.0}),
        (3.0, {}),
        (-2.0, {"low": -1.0}),
        (2.0, {"high": 1.5}),
        (0.7, {"low": -1.0, "high": 2.5}),
    )
]


@pytest.fixture(scope="module", autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_extras)) as registry:
        yield registry


def close(ours: float, theirs: float, rel: float = 1e-9) -> bool:
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    if math.isinf(ours) or math.isinf(theirs):
        return ours == theirs
    return math.isclose(ours, theirs, rel_tol=rel, abs_tol=1e-300)


def tensors(point):
    return [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in point]


def torch_gradient(name, point, params):
    """(value, gradient) of the reference op; a gradient torch leaves out is 0."""
    ts = tensors(point)
    out = REFERENCE[name](*ts, **params)
    if not out.requires_grad:
        return out.item(), [0.0] * len(ts)
    first = torch.autograd.grad(out, ts, allow_unused=True)
    return out.item(), [0.0 if g is None else g.item() for g in first]


def torch_hessian(name, point, params):
    ts = tensors(point)
    out = REFERENCE[name](*ts, **params)
    zeros = [[0.0] * len(ts) for _ in ts]
    if not out.requires_grad:
        return zeros
    first = torch.autograd.grad(out, ts, create_graph=True, allow_unused=True)
    hessian = []
    for g in first:
        if g is None or not g.requires_grad:
            hessian.append([0.0] * len(ts))
            continue
        row = torch.autograd.grad(g, ts, retain_graph=True, allow_unused=True)
        hessian.append([0.0 if r is None else r.item() for r in row])
    return hessian


def function(name, params):
    """The op as a function of its inputs (Values or numbers), through ``ops``."""
    return lambda *inputs: getattr(ops, name)(*inputs, **params)


# -- the package ----------------------------------------------------------------------------------


def test_every_op_of_the_issue_is_registered_by_the_package(registry):
    assert tuple(spec.name for spec in ELEMENTARY_OPS) == NAMES
    provided = registry.plugins["minigrad_extras"].provides["ops"]
    for name in NAMES:
        assert name in provided and registry.ops[name].plugin == "minigrad_extras"


@pytest.mark.parametrize("spec", ELEMENTARY_OPS, ids=lambda spec: spec.name)
def test_each_spec_declares_what_tools_need(spec):
    assert spec.formula and len(spec.derivative_formula) == spec.arity
    assert spec.torch is not None and spec.np_forward is not None and spec.doc
    # the derivative rule itself runs on arrays: no separate numpy derivative, no code templates
    assert spec.np_derivative is None and not hasattr(spec, "code")  # the rule itself runs on arrays


def test_unary_ops_are_methods_and_binary_ones_name_theirs():
    x, y = Value(0.5), Value(-1.5)
    for name, points in UNARY_POINTS.items():
        assert getattr(Value(points[1]), name)().data == getattr(ops, name)(points[1])
    assert x.maximum(y).data == 0.5 and x.minimum(y).data == -1.5 and x.maximum(2.0).data == 2.0
    assert y.arctan2(x).data == math.atan2(-1.5, 0.5) == ops.arctan2(-1.5, 0.5)
    assert x.clamp(0.0, 0.25).data == 0.25 and y.clamp(-1.0).data == -1.0 and x.clamp(high=0.1).data == 0.1
    assert y.clamp().data == -1.5 and ops.clamp(1e300) == 1e300  # defaults -inf, inf: no limit
    assert x.clamp(low=0.2)._op == "clamp(low=0.2, high=inf)"


@pytest.mark.parametrize("spec", ELEMENTARY_OPS, ids=lambda spec: spec.name)
def test_each_spec_names_the_same_torch_function_as_the_reference(spec):
    point = (0.4, -0.7) if spec.arity == 2 else (UNARY_POINTS.get(spec.name, (0.4, 0.4))[1],)
    params = {"low": -0.5, "high": 0.3} if spec.params else {}
    ours = spec.torch(*tensors(point), **params).item()
    assert ours == REFERENCE[spec.name](*tensors(point), **params).item()


# -- values and derivatives against PyTorch ---------------------------------------------------------


@pytest.mark.parametrize("name, point, params", CASES)
def test_value_and_first_derivatives_match_torch(name, point, params):
    expected, expected_gradient = torch_gradient(name, point, params)
    assert close(getattr(ops, name)(*point, **params), expected)
    xs = [Value(x) for x in point]
    out = getattr(ops, name)(*xs, **params)
    out.backward()
    assert close(out.data, expected), (out.data, expected)
    for x, theirs in zip(xs, expected_gradient):
        assert close(x.grad, theirs), (name, point, [x.grad for x in xs], expected_gradient)


@pytest.mark.parametrize("name, point, params", CASES)
def test_second_derivatives_match_torch_double_backward(name, point, params):
    f = function(name, params)
    expected = torch_hessian(name, point, params)
    for i in range(len(point)):
        for j in range(len(point)):
            ours = grad(grad(f, i), j)(*point)
            ours = ours.data if isinstance(ours, Value) else ours
            assert close(ours, expected[i][j], rel=1e-8), (name, point, (i, j), ours, expected[i][j])


def test_a_third_derivative_goes_through_the_new_ops():
    # d³/dx³ sinh(x) = cosh(x) (its rule calls ops.cosh, whose rule calls ops.sinh ...)
    assert grad(grad(grad(lambda x: x.sinh())))(0.7) == pytest.approx(math.cosh(0.7), rel=1e-12)
    # d³/dx³ tan(x) = 2 (1 + tan²)(1 + 3 tan²)
    t = math.tan(0.4)
    assert grad(grad(grad(lambda x: x.tan())))(0.4) == pytest.approx(2 * (1 + t * t) * (1 + 3 * t * t), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_check_op_passes_at_first_order(name):
    result = check_op(name)
    assert result.op == name and result.examples > 0 and "PyTorch" in result.oracles


@pytest.mark.parametrize("name", NAMES)
def test_check_op_passes_at_second_order(name):
    result = check_op(name, order=2)
    assert result.order == 2 and result.examples > 0


# -- outside the domain ---------------------------------------------------------------------------------

DOMAIN_ERRORS = [
    ("arcsin", 1.5, "-1 <= x <= 1"),
    ("arcsin", -2.0, "-1 <= x <= 1"),
    ("arccos", 1.0000001, "-1 <= x <= 1"),
    ("arccos", -3.0, "-1 <= x <= 1"),
    ("arccosh", 0.5, "x >= 1"),
    ("arccosh", -2.0, "x >= 1"),
    ("arctanh", 1.0, "pole"),
    ("arctanh", -1.0, "pole"),
    ("arctanh", 2.0, "-1 < x < 1"),
    ("log1p", -1.0, "-inf"),
    ("log1p", -3.0, "x > -1"),
    ("log2", 0.0, "-inf"),
    ("log2", -1.0, "negative"),
    ("log10", 0.0, "-inf"),
    ("log10", -5.0, "negative"),
    ("tan", math.inf, "infinite"),
    ("tan", -math.inf, "infinite"),
]


@pytest.mark.parametrize("name, x, says", DOMAIN_ERRORS, ids=[f"{n}({x})" for n, x, _ in DOMAIN_ERRORS])
def test_inputs_outside_the_domain_raise_an_error_naming_the_op_and_the_value(name, x, says):
    # PyTorch agrees these are outside: it gives nan (no real value) or ±inf (a pole)
    assert not math.isfinite(REFERENCE[name](torch.tensor(x, dtype=torch.float64)).item())
    for attempt in (lambda: getattr(ops, name)(x), lambda: getattr(Value(x), name)()):
        with pytest.raises(OpDomainError) as info:
            attempt()
        message = str(info.value)
        assert info.value.op == name and info.value.inputs == (x,)
        assert message.startswith(f"{name}({x!r}) is undefined: {name} expects ")
        assert says in message and info.value.reason and "math domain error" not in message


@pytest.mark.parametrize(
    "name, x",
    [
        ("arcsin", 1.5),
        ("arccosh", 0.0),
        ("arctanh", -1.0),
        ("log1p", -2.0),
        ("log2", 0.0),
        ("log10", -1.0),
        ("tan", math.inf),
    ],
)
def test_the_numpy_forward_refuses_what_the_scalar_forward_refuses(registry, name, x):
    with pytest.raises(OpDomainError, match=name) as info:
        registry.ops[name].np_forward(np.array([0.5 if name != "arccosh" else 2.0, x, x]))
    assert info.value.inputs == (x,) and "2 of the 3" in str(info.value)


@pytest.mark.parametrize(
    "name, x",
    [
        ("sinh", 1000.0),
        ("sinh", -1000.0),
        ("cosh", 1000.0),
        ("cosh", -1000.0),
        ("expm1", 1000.0),
        ("expm1", -1000.0),
        ("exp2", 2000.0),
        ("exp2", -2000.0),
        ("arctan", math.inf),
        ("arcsinh", -math.inf),
        ("arccosh", math.inf),
        ("log2", math.inf),
        ("sign", -math.inf),
    ],
)
def test_overflow_and_infinite_inputs_give_what_torch_gives(name, x):
    assert getattr(ops, name)(x) == REFERENCE[name](torch.tensor(x, dtype=torch.float64)).item()


@pytest.mark.parametrize("name", ["tan", "sinh", "arcsin", "arctanh", "log1p", "expm1", "log2", "sign"])
def test_nan_passes_through(name):
    assert math.isnan(getattr(ops, name)(math.nan))


# -- kinks, ties and the ends of a domain: PyTorch's conventions -----------------------------------------

KINKS = [
    ("sign", (0.0,), {}),
    ("sign", (-0.0,), {}),
    ("maximum", (1.0, 1.0), {}),
    ("maximum", (0.0, 0.0), {}),
    ("maximum", (-2.5, -2.5), {}),
    ("minimum", (1.0, 1.0), {}),
    ("minimum", (-0.0, 0.0), {}),
    ("minimum", (-2.5, -2.5), {}),
    ("maximum", (math.nan, 1.0), {}),
    ("minimum", (1.0, math.nan), {}),
    ("clamp", (0.0,), {"low": 0.0, "high": 1.0}),
    ("clamp", (1.0,), {"low": 0.0, "high": 1.0}),
    ("clamp", (0.0,), {"low": 0.0}),
    ("clamp", (1.0,), {"high": 1.0}),
    ("clamp", (1.5,), {"low": 2.0, "high": 1.0}),
    ("clamp", (2.0,), {"low": 2.0, "high": 1.0}),
    ("clamp", (math.nan,), {"low": 0.0, "high": 1.0}),
    ("arctan2", (0.0, 0.0), {}),
    ("arctan2", (0.0, -1.0), {}),
    ("arctan2", (-0.0, -1.0), {}),
    ("arcsin", (1.0,), {}),
    ("arcsin", (-1.0,), {}),
    ("arccos", (1.0,), {}),
    ("arccos", (-1.0,), {}),
    ("arccosh", (1.0,), {}),
]


@pytest.mark.parametrize("name, point, params", KINKS, ids=[f"{n}{p}{k or ''}" for n, p, k in KINKS])
def test_gradient_at_kinks_ties_and_ends_follows_torch(name, point, params):
    expected, expected_gradient = torch_gradient(name, point, params)
    xs = [Value(x) for x in point]
    out = getattr(ops, name)(*xs, **params)
    out.backward()
    assert close(out.data, expected)
    assert [x.grad for x in xs] == pytest.approx(expected_gradient, nan_ok=True), (name, point)


def test_the_conventions_spelled_out():
    assert grad(lambda x: x.sign())(0.0) == 0.0
    assert grad(lambda a, b: a.maximum(b), (0, 1))(3.0, 3.0) == (0.5, 0.5)
    assert grad(lambda a, b: a.minimum(b), (0, 1))(3.0, 3.0) == (0.5, 0.5)
    assert grad(lambda x: x.maximum(x))(2.0) == 1.0  # 0.5 + 0.5 through the one Value
    assert grad(lambda x: x.clamp(0.0, 1.0))(0.0) == grad(lambda x: x.clamp(0.0, 1.0))(1.0) == 1.0
    assert grad(lambda x: x.clamp(0.0, 1.0))(1.5) == 0.0
    assert grad(lambda y, x: y.arctan2(x), (0, 1))(0.0, 0.0) == (0.0, 0.0)
    assert grad(lambda x: x.arcsin())(1.0) == math.inf and grad(lambda x: x.arccos())(-1.0) == -math.inf


@pytest.mark.parametrize(
    "name, point, params",
    [
        ("sign", (0.0,), {}),
        ("maximum", (1.0, 1.0), {}),
        ("minimum", (1.0, 1.0), {}),
        ("clamp", (1.0,), {"low": 0.0, "high": 1.0}),
    ],
)  # (arctan2's second derivatives at the origin do not exist: PyTorch gives nan, MiniGrad numbers)
def test_second_derivatives_at_kinks_match_torch(name, point, params):
    f = function(name, params)
    expected = torch_hessian(name, point, params)
    for i in range(len(point)):
        for j in range(len(point)):
            ours = grad(grad(f, i), j)(*point)
            assert close(ours.data if isinstance(ours, Value) else ours, expected[i][j]), (name, i, j)


def test_expm1_derivative_is_exp_even_far_below_zero():
    # exp(x), not expm1(x) + 1 (PyTorch's rule), which keeps only the rounding of -1 + e^x there
    for x in (-20.0, -40.0, -700.0):
        assert grad(lambda v: v.expm1())(x) == math.exp(x) > 0.0
    theirs = torch_gradient("expm1", (-20.0,), {})[1][0]
    assert theirs == pytest.approx(math.exp(-20.0), rel=1e-7)  # torch is close here; 0 by x = -40


@pytest.mark.parametrize("name, x", [("arcsin", 1.0), ("arccos", -1.0), ("arccosh", 1.0)])
def test_a_second_derivative_at_the_end_of_the_domain_raises(name, x):
    # the first derivative is ±inf there (above); differentiating u ** -0.5 at u = 0 again is refused
    with pytest.raises(OpDomainError):
        grad(grad(lambda v: getattr(v, name)()))(x)


def test_clamp_with_low_above_high_gives_high_as_torch():
    for x in (-5.0, 1.5, 5.0):
        assert ops.clamp(x, low=2.0, high=1.0) == 1.0 == torch.clamp(torch.tensor(x), 2.0, 1.0).item()


# -- numpy: batched forward, and the derivative rules on arrays -------------------------------------


def _sample(spec, rng, size=32):
    low, high = {
        "arcsin": (-0.99, 0.99),
        "arccos": (-0.99, 0.99),
        "arctanh": (-0.99, 0.99),
        "arccosh": (1.01, 20.0),
        "log1p": (-0.99, 20.0),
        "log2": (0.01, 20.0),
        "log10": (0.01, 20.0),
    }.get(spec.name, (-5.0, 5.0))
    return [rng.uniform(low, high, size) for _ in range(spec.arity)]


@pytest.mark.parametrize("spec", ELEMENTARY_OPS, ids=lambda spec: spec.name)
def test_numpy_forward_agrees_with_the_scalar_forward(spec):
    rng = np.random.default_rng(11)
    arrays = _sample(spec, rng)
    params = {"low": -1.0, "high": 2.5} if spec.params else {}
    out = spec.np_forward(*arrays, **params)
    for i, point in enumerate(zip(*arrays)):
        assert out[i] == pytest.approx(spec.forward(*map(float, point), **params), rel=1e-13, abs=1e-300)


@pytest.mark.parametrize("spec", ELEMENTARY_OPS, ids=lambda spec: spec.name)
def test_derivative_rules_run_on_arrays_as_on_numbers(spec):
    """The rules have no Python `if` on their inputs, so they run elementwise on arrays. Those
    that call an op through ``ops`` need the kernel to apply ops to arrays; until it does, skip."""
    rng = np.random.default_rng(12)
    arrays = _sample(spec, rng)
    if spec.arity == 2:
        arrays[0][:2] = arrays[1][:2]  # ties
    if spec.name == "clamp":
        arrays[0][:2] = (-1.0, 2.5)  # its ends
    params = {"low": -1.0, "high": 2.5} if spec.params else {}
    out = spec.np_forward(*arrays, **params)
    try:
        partials = spec.derivative(*arrays, out, **params)
    except TypeError as error:
        pytest.skip(
            f"the {spec.name} rule calls an op through ops, which does not take numpy arrays yet "
            f"({type(error).__name__})"
        )
    for i, point in enumerate(zip(*arrays)):
        point = [float(x) for x in point]
        scalar = spec.derivative(*point, spec.forward(*point, **params), **params)
        for partial, expected in zip(partials, scalar):
            assert np.broadcast_to(partial, out.shape)[i] == pytest.approx(expected, rel=1e-13, abs=1e-300)
