"""Derivatives of derivatives: backward(create_graph=True) and grad(...) composed.

PyTorch in float64 is the oracle throughout: every second and third derivative MiniGrad
computes is compared with ``torch.autograd.grad(..., create_graph=True)`` on the same
function at the same point.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad_ops
from minigrad_core import (
    HigherOrderError,
    OpSpec,
    Registry,
    Value,
    get_registry,
    grad,
    hookimpl,
    ops,
    topological_order,
    using,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "higher_order.py"
DOCS = ROOT / "docs" / "higher-order.md"

REL_TOL = 1e-9
ABS_TOL = 1e-9
INPUT_LIMIT = 3.0  # infinite bounds are cut here: derivatives of exp, sigmoid ... stay moderate
KINK_MARGIN = 0.1  # keep this far from a kink or pole, so high derivatives stay well-conditioned
VARIADIC_INPUTS = 3  # how many inputs a variadic op gets (odd, so a 2n + 1 pattern fits too)

# torch warns that .backward(create_graph=True) makes a reference cycle; we do it on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def number(x) -> float:
    return x.data if isinstance(x, Value) else float(x)


# -- every partial derivative up to some order, by MiniGrad and by PyTorch --------------------


def minigrad_partials_by_grad(f, point, order: int) -> dict:
    """{(i, j, ...): d^k f / dx_i dx_j ...} for k = 1..order, composing ``grad``."""
    n = len(point)
    partials = {}
    for k in range(1, order + 1):
        for index in itertools.product(range(n), repeat=k):
            derivative = f
            for i in index:
                derivative = grad(derivative, argnums=i)
            partials[index] = number(derivative(*point))
    return partials


def minigrad_partials_by_backward(f, point, order: int) -> dict:
    """The same, calling backward(create_graph=True) on each gradient in turn, as one would
    with torch.autograd.grad."""
    inputs = [Value(p) for p in point]
    partials = {}

    def walk(output, index):
        if index:
            partials[index] = number(output)
        if len(index) == order:
            return
        if isinstance(output, Value):
            for leaf in topological_order(output):
                if leaf.is_leaf:
                    leaf.grad = 0.0
            for x in inputs:
                x.grad = 0.0
            output.backward(create_graph=True)
            gradient = [x.grad for x in inputs]
        else:  # a constant: nothing depends on the inputs any more
            gradient = [0.0] * len(inputs)
        for i, partial in enumerate(gradient):
            walk(partial, (*index, i))

    walk(f(*inputs), ())
    return partials


def torch_partials(f, point, order: int) -> dict:
    inputs = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
    partials = {}

    def walk(output, index):
        if index:
            partials[index] = output.item()
        if len(index) == order:
            return
        if output.requires_grad:
            gradient = torch.autograd.grad(output, inputs, create_graph=True, allow_unused=True)
        else:
            gradient = [None] * len(inputs)
        zero = torch.zeros((), dtype=torch.float64)
        for i, partial in enumerate(gradient):
            walk(zero if partial is None else partial, (*index, i))

    walk(f(*inputs), ())
    return partials


def mismatches(ours: dict, theirs: dict) -> list[str]:
    return [
        f"d^{len(index)}f/{''.join(f'dx{i}' for i in index)}: MiniGrad {ours[index]!r}, torch {theirs[index]!r}"
        for index in theirs
        if not close(ours[index], theirs[index])
    ]


# -- every built-in (and installed) op, at points drawn from its own Domain ---------------------


def input_count(spec: OpSpec) -> int:
    return VARIADIC_INPUTS if spec.arity is None else spec.arity


def param_cases(spec: OpSpec) -> list[dict] | None:
    """Every combination of the values the Domain says to test each parameter with;
    None when a required parameter has no test values."""
    choices = []
    for name, default in spec.params.items():
        values = tuple(spec.domain.params.get(name, ())) or ((default,) if default is not None else ())
        if not values:
            return None
        choices.append([(name, value) for value in values])
    return [dict(combination) for combination in itertools.product(*choices)]


def op_cases():
    cases = []
    for spec in get_registry().ops.values():
        params_list = param_cases(spec)
        reason = None
        if spec.torch is None:
            reason = "no torch equivalent to compare with"
        elif input_count(spec) == 0:
            reason = "no inputs to differentiate"
        elif params_list is None:
            reason = "a required parameter has no test values in its Domain"
        if reason:
            cases.append(pytest.param(spec.name, {}, id=spec.name, marks=pytest.mark.skip(reason=reason)))
            continue
        for params in params_list:
            case_id = spec.name + "".join(f"-{k}={v}" for k, v in params.items())
            cases.append(pytest.param(spec.name, params, id=case_id))
    return cases


def _per_input(entries: tuple, index: int):
    # one entry for every input, or a single one shared by all (and a variadic op's last repeats)
    return entries[min(index, len(entries) - 1)]


def domain_point(spec: OpSpec, params: dict):
    """A point inside the op's domain, at least KINK_MARGIN from every kink and finite bound."""
    domain = spec.domain
    coordinates = []
    for i in range(input_count(spec)):
        low, high = _per_input(domain.bounds, i)
        avoid = tuple(_per_input(domain.kinks, i)) if domain.kinks else ()
        avoid += tuple(bound for bound in (low, high) if math.isfinite(bound))
        coordinate = st.floats(min_value=max(low, -INPUT_LIMIT), max_value=min(high, INPUT_LIMIT))
        coordinates.append(
            coordinate.filter(lambda x, avoid=avoid: all(abs(x - point) >= KINK_MARGIN for point in avoid))
        )
    return st.tuples(*coordinates).filter(lambda point: domain.contains(*point, **params))


def op_as_function(spec: OpSpec, params: dict):
    return lambda *inputs: getattr(ops, spec.name)(*inputs, **params)


def op_as_torch_function(spec: OpSpec, params: dict):
    return lambda *inputs: spec.torch(*inputs, **params)


# Points where torch's rule is not the derivative of its own forward. For a ** b, torch sets
# d(a**b)/da = where(b == 0, 0, b * a**(b-1)) (to make 0 ** 0 behave), and that mask is a
# constant, so every derivative taken through it is lost: at b = 0, 1 or 2 exactly (the
# exponent of a nested a**(b-k) is then 0) torch's second and third mixed partials are wrong,
# e.g. d2(a**b)/da db = a**(b-1) * (1 + b*log(a)) is 1/a at b = 0, torch says 0. MiniGrad's
# rule has no mask; test_power_at_whole_exponents_matches_torch_just_beside_them checks these
# points against torch a hair away, where the partials are continuous.
TORCH_MASKED_EXPONENTS = (0.0, 1.0, 2.0)
TORCH_MASKS = {"power": lambda a, b: b in TORCH_MASKED_EXPONENTS}


@pytest.mark.parametrize("name, params", op_cases())
@given(data=st.data())
def test_second_and_third_derivatives_of_every_op_match_torch(name, params, data):
    spec = get_registry().ops[name]
    point = data.draw(domain_point(spec, params), label="inputs")
    masked = TORCH_MASKS.get(name)
    assume(masked is None or not masked(*point))
    theirs = torch_partials(op_as_torch_function(spec, params), point, order=3)
    assume(all(math.isfinite(v) for v in theirs.values()))
    if spec.higher_order is False:
        with pytest.raises(HigherOrderError, match=name):
            minigrad_partials_by_grad(op_as_function(spec, params), point, order=2)
        return
    for method in (minigrad_partials_by_grad, minigrad_partials_by_backward):
        ours = method(op_as_function(spec, params), point, order=3)
        wrong = mismatches(ours, theirs)
        assert not wrong, f"op {name}{params or ''} at {point} ({method.__name__}):\n" + "\n".join(wrong)


@pytest.mark.parametrize("a", [0.4, 1.0, 2.5])
@pytest.mark.parametrize("b", TORCH_MASKED_EXPONENTS)
def test_power_at_whole_exponents_matches_torch_just_beside_them(a, b):
    def power(base, exponent):
        return base**exponent

    ours = minigrad_partials_by_grad(power, (a, b), order=3)
    for beside in (b - 1e-13, b + 1e-13):
        theirs = torch_partials(power, (a, beside), order=3)
        wrong = [
            f"{index}: MiniGrad {ours[index]!r}, torch {theirs[index]!r}"
            for index in theirs
            if not math.isclose(ours[index], theirs[index], rel_tol=1e-10, abs_tol=1e-10)
        ]
        assert not wrong, f"a ** b at a={a}, b={beside}:\n" + "\n".join(wrong)
    # the mixed partial torch loses at b == 0, in closed form
    if b == 0:
        assert close(ours[(0, 1)], 1 / a)


def test_the_op_cases_cover_the_built_in_ops():
    covered = {case.values[0] for case in op_cases() if not case.marks}
    assert {op.name for op in minigrad_ops.OPS} <= covered


# -- random expressions ------------------------------------------------------------------------
#
# An expression is a small tree of tuples, evaluated the same way on MiniGrad Values and on
# torch tensors (both spell the ops alike: a + b, x.tanh(), x ** 2). Each op that has a
# restricted domain is applied to something that is always inside it: log and division take
# u*u + 0.5, and so do powers other than 2 and 3 and a Value exponent.

VARIABLES = ("x", "y")
UNARY = ("exp", "tanh", "sigmoid", "relu", "log", "neg")
BINARY = ("add", "sub", "mul", "div", "power")
EXPONENTS = (2, 3, -1, 0.5, 1.5, -2.5)
TOUCHY = 1e-6  # how close to relu's kink or a torch-masked exponent a point may come


def positive(u):
    return u * u + 0.5


def evaluate(expression, env: dict, lift, distances: list):
    """The expression's value; ``distances`` collects how far each relu input lies from the
    kink and each Value exponent from TORCH_MASKED_EXPONENTS (see above)."""
    kind, *args = expression
    if kind == "var":
        return env[args[0]]
    if kind == "const":
        return lift(args[0])
    if kind == "pow":
        base, exponent = evaluate(args[0], env, lift, distances), args[1]
        return base**exponent if exponent in (2, 3) else positive(base) ** exponent
    if kind in UNARY:
        u = evaluate(args[0], env, lift, distances)
        if kind == "neg":
            return -u
        if kind == "log":
            return positive(u).log()
        if kind == "relu" and isinstance(u, Value):
            distances.append(abs(u.data))
        return getattr(u, kind)()
    a = evaluate(args[0], env, lift, distances)
    b = evaluate(args[1], env, lift, distances)
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    if kind == "mul":
        return a * b
    if kind == "div":
        return a / positive(b)
    if isinstance(b, Value):  # "power": a Value exponent
        distances.append(min(abs(b.data - masked) for masked in TORCH_MASKED_EXPONENTS))
    return positive(a) ** b


def expressions():
    leaves = st.one_of(
        st.sampled_from([("var", v) for v in VARIABLES]),
        st.floats(min_value=-2, max_value=2).map(lambda c: ("const", c)),
    )

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(UNARY), children),
            st.tuples(st.sampled_from(BINARY), children, children),
            st.tuples(st.just("pow"), children, st.sampled_from(EXPONENTS)),
        )

    return st.recursive(leaves, extend, max_leaves=6)


def check_expression(expression, point, method):
    distances: list = []

    def with_values(x, y):
        return evaluate(expression, {"x": x, "y": y}, Value, distances)

    def with_tensors(x, y):
        return evaluate(expression, {"x": x, "y": y}, lambda c: torch.tensor(c, dtype=torch.float64), [])

    ours = method(with_values, point, order=3)
    assume(all(d > TOUCHY for d in distances))
    theirs = torch_partials(with_tensors, point, order=3)
    assume(all(math.isfinite(v) and abs(v) < 1e8 for v in theirs.values()))  # no overflow
    wrong = mismatches(ours, theirs)
    assert not wrong, f"{expression} at (x, y) = {point} ({method.__name__}):\n" + "\n".join(wrong)


POINTS = st.tuples(st.floats(-2, 2), st.floats(-2, 2))


@given(expression=expressions(), point=POINTS)
def test_random_expressions_second_and_third_derivatives_match_torch(expression, point):
    check_expression(expression, point, minigrad_partials_by_grad)


@given(expression=expressions(), point=POINTS)
def test_random_expressions_by_repeated_backward_match_torch(expression, point):
    check_expression(expression, point, minigrad_partials_by_backward)


def test_the_expression_strategy_uses_every_op():
    seen = set()

    def collect(expression):
        seen.add(expression[0])
        for part in expression[1:]:
            if isinstance(part, tuple):
                collect(part)

    given(expressions())(collect)()
    assert {"var", "const", "pow", *UNARY, *BINARY} <= seen


# -- .grad after backward(create_graph=True), compared with PyTorch's .grad -------------------

# Each works unchanged on a Value and on a torch tensor.
FUNCTIONS = {
    "tanh": lambda x: x.tanh(),
    "cube": lambda x: x**3,
    "x*exp(x)": lambda x: x * x.exp(),
    "log(1+x*x)": lambda x: (1 + x * x).log(),
    "sigmoid(x)/x": lambda x: x.sigmoid() / x,
    "2**x": lambda x: 2**x,
}
POINTS_1D = (-1.3, -0.4, 0.7, 2.1)


def _torch_x(point):
    return torch.tensor(point, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("point", POINTS_1D)
def test_grad_after_create_graph_is_a_connected_value(name, point):
    f = FUNCTIONS[name]
    x = Value(point)
    f(x).backward(create_graph=True)
    t = _torch_x(point)
    f(t).backward(create_graph=True)
    assert type(x.grad) is Value
    assert close(x.grad.data, t.grad.item())
    assert x in topological_order(x.grad), "the gradient must depend on x, so it can be differentiated"


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("point", POINTS_1D)
@pytest.mark.parametrize("second_create_graph", [False, True])
def test_grad_backward_without_zeroing_accumulates_like_torch(name, point, second_create_graph):
    # PyTorch adds the second derivative onto the first one still held in x.grad
    f = FUNCTIONS[name]
    x = Value(point)
    f(x).backward(create_graph=True)
    x.grad.backward(create_graph=second_create_graph)
    t = _torch_x(point)
    f(t).backward(create_graph=True)
    t.grad.backward(create_graph=second_create_graph)
    assert close(number(x.grad), t.grad.item())
    assert (type(x.grad) is Value) == second_create_graph
    first, second = (torch_partials(f, (point,), order=2)[index] for index in [(0,), (0, 0)])
    assert close(number(x.grad), first + second)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("point", POINTS_1D)
def test_grad_backward_after_zeroing_gives_second_and_third_derivatives(name, point):
    f = FUNCTIONS[name]
    x = Value(point)
    f(x).backward(create_graph=True)
    first = x.grad
    x.grad = 0.0
    first.backward(create_graph=True)
    second = x.grad
    x.grad = 0.0
    second.backward()
    third = x.grad

    t = _torch_x(point)
    f(t).backward(create_graph=True)
    torch_first = t.grad
    t.grad = None
    torch_first.backward(create_graph=True)
    torch_second = t.grad
    t.grad = None
    torch_second.backward()
    torch_third = t.grad

    assert close(first.data, torch_first.item())
    assert close(second.data, torch_second.item())
    assert close(third, torch_third.item())
    assert type(third) is float


def test_mixed_second_derivatives_by_backward_on_a_gradient():
    def f(x, y):
        return x * y + x.tanh() * y**2

    x, y = Value(0.3), Value(-1.1)
    f(x, y).backward(create_graph=True)
    df_dx = x.grad
    x.grad = y.grad = 0.0
    df_dx.backward()

    tx, ty = _torch_x(0.3), _torch_x(-1.1)
    (d_dx, _d_dy) = torch.autograd.grad(f(tx, ty), (tx, ty), create_graph=True)
    d_dxdx, d_dxdy = torch.autograd.grad(d_dx, (tx, ty))
    assert close(x.grad, d_dxdx.item())
    assert close(y.grad, d_dxdy.item())


def test_every_gradient_of_a_create_graph_pass_is_a_value():
    x = Value(0.8)
    out = (x * 3 + 1).tanh() * 2
    out.backward(create_graph=True)
    for node in topological_order(out):
        assert type(node.grad) is Value, f"{node!r} holds a {type(node.grad).__name__}"


def test_a_plain_backward_after_a_create_graph_pass_gives_numbers_and_accumulates_like_torch():
    x = Value(0.5)
    x.tanh().backward(create_graph=True)
    (x * x.exp()).backward()
    t = _torch_x(0.5)
    t.tanh().backward(create_graph=True)
    (t * t.exp()).backward()
    assert type(x.grad) is float
    assert close(x.grad, t.grad.item())


def test_a_gradient_is_never_another_leaf_so_updating_parameters_is_safe():
    # A gradient step with gradients that still carry their graph, as in meta-learning. PyTorch
    # gives each leaf a gradient tensor of its own; updating x.data must not change y.grad.
    x, y = Value(2.0), Value(3.0)
    (x * y).backward(create_graph=True)
    for parameter in (x, y):
        parameter.data -= 0.1 * parameter.grad.data
    tx, ty = _torch_x(2.0), _torch_x(3.0)
    (tx * ty).backward(create_graph=True)
    with torch.no_grad():
        for parameter in (tx, ty):
            parameter -= 0.1 * parameter.grad
    assert (x.data, y.data) == (tx.item(), ty.item())


def test_repr_of_values_whose_gradients_are_values():
    x = Value(0.3)
    a, b = x.exp(), x.tanh()
    (a * b).backward(create_graph=True)  # d/da (a*b) is b and d/db is a: a.grad is b, b.grad is a
    assert repr(a).startswith("Value(data=1.349858807576") and "0.29131261245" in repr(a)
    c = Value(2.0)
    (3 * c).backward(create_graph=True)
    assert "data=2.0" in repr(c) and "3.0" in repr(c)


# -- grad composes ------------------------------------------------------------------------------


def tanh(x):
    return x.tanh()


def tanh_derivatives_closed_form(x: float) -> list[float]:
    """tanh and its first four derivatives, written as polynomials in t = tanh(x)."""
    t = math.tanh(x)
    return [t, 1 - t**2, -2 * t * (1 - t**2), -2 + 8 * t**2 - 6 * t**4, 8 * t * (1 - t**2) * (2 - 3 * t**2)]


@pytest.mark.parametrize("point", [-3.0, -1.2, -0.4, 0.0, 0.25, 0.9, 2.5])
def test_grad_of_grad_of_grad_of_tanh(point):
    third = grad(grad(grad(tanh)))(point)
    t = _torch_x(point)
    (d1,) = torch.autograd.grad(t.tanh(), t, create_graph=True)
    (d2,) = torch.autograd.grad(d1, t, create_graph=True)
    (d3,) = torch.autograd.grad(d2, t)
    assert type(third) is float
    assert close(third, d3.item())
    assert close(third, tanh_derivatives_closed_form(point)[3])


@pytest.mark.parametrize("point", [-1.7, -0.3, 0.6, 1.4])
def test_grad_composed_four_times_matches_the_closed_form(point):
    derivative = tanh
    for order in range(1, 5):
        derivative = grad(derivative)
        assert close(derivative(point), tanh_derivatives_closed_form(point)[order]), f"order {order}"


def test_grad_on_values_returns_connected_values_and_leaves_grads_alone():
    x = Value(0.4)
    x.grad = 5.0
    second = grad(grad(tanh))(x)
    assert type(second) is Value
    assert x in topological_order(second)
    assert x.grad == 5.0
    assert close(grad(lambda v: grad(grad(tanh))(v))(0.4), tanh_derivatives_closed_form(0.4)[3])


def test_grad_with_several_arguments_composes_into_mixed_partials():
    def f(x, y):
        return (x * y).sigmoid() + x**3 / y

    d_dy_dx = grad(grad(f, argnums=0), argnums=1)
    d_dx_dy = grad(grad(f, argnums=1), argnums=0)
    tx, ty = _torch_x(0.7), _torch_x(1.9)
    (d_dx,) = torch.autograd.grad(f(tx, ty), tx, create_graph=True)
    (expected,) = torch.autograd.grad(d_dx, ty)
    assert close(d_dy_dx(0.7, 1.9), expected.item())
    assert close(d_dx_dy(0.7, 1.9), expected.item())


# -- third-party ops: a numbers-only derivative rule ----------------------------------------------


class NumbersOnlyTrig:
    """A plugin written the quick way: its derivative uses math.cos, which needs a number."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(name="sin", arity=1, forward=math.sin, derivative=lambda x, out: (math.cos(x),), torch=torch.sin)
        )


class DeclaredFirstOrderOnly:
    """A plugin that says so up front: higher_order=False."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(
                name="cube", arity=1, forward=lambda x: x**3, derivative=lambda x, out: (3 * x * x,), higher_order=False
            )
        )


class ValueTrig:
    """The same op written for higher order: its derivative rule calls ops.cos, itself an op."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(name="sin", arity=1, forward=math.sin, derivative=lambda x, out: (ops.cos(x),), torch=torch.sin)
        )
        register(
            OpSpec(name="cos", arity=1, forward=math.cos, derivative=lambda x, out: (-ops.sin(x),), torch=torch.cos)
        )


@pytest.fixture
def numbers_only_sin():
    with using(Registry.from_plugins(minigrad_ops, NumbersOnlyTrig())) as registry:
        yield registry


def test_a_numbers_only_rule_still_gives_first_derivatives(numbers_only_sin):
    x = Value(0.6)
    out = x.sin() * x.tanh()
    out.backward()
    t = _torch_x(0.6)
    (t.sin() * t.tanh()).backward()
    assert close(x.grad, t.grad.item())
    assert close(grad(lambda v: v.sin())(0.6), math.cos(0.6))


def test_a_numbers_only_rule_names_the_op_when_differentiated_twice(numbers_only_sin):
    x = Value(0.6)
    out = x.sin() * x.tanh()
    with pytest.raises(HigherOrderError) as caught:
        out.backward(create_graph=True)
    message = str(caught.value)
    assert "'sin'" in message
    assert "NumbersOnlyTrig" in message  # the plugin to fix
    assert "create_graph" in message
    with pytest.raises(HigherOrderError, match="'sin'"):
        grad(grad(lambda v: v.sin()))(0.6)
    out.backward()  # the graph is still fine for first order
    assert close(x.grad, math.cos(0.6) * math.tanh(0.6) + math.sin(0.6) * (1 - math.tanh(0.6) ** 2))


def test_an_op_declared_first_order_only_names_itself():
    with using(Registry.from_plugins(minigrad_ops, DeclaredFirstOrderOnly())):
        assert grad(lambda v: v.cube())(2.0) == 12.0
        with pytest.raises(HigherOrderError, match=r"'cube'.*DeclaredFirstOrderOnly.*higher_order=False"):
            grad(grad(lambda v: v.cube()))(2.0)


@pytest.mark.parametrize("point", [-2.0, 0.3, 1.1])
def test_a_third_party_op_written_with_ops_has_every_derivative(point):
    with using(Registry.from_plugins(minigrad_ops, ValueTrig())):
        ours = minigrad_partials_by_grad(lambda x: x.sin() * x.cos().exp(), (point,), order=3)
    theirs = torch_partials(lambda x: x.sin() * x.cos().exp(), (point,), order=3)
    assert not mismatches(ours, theirs), mismatches(ours, theirs)


# -- the docs example ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("higher_order_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_script_writes_its_plot_and_finds_the_minimum(tmp_path):
    png = tmp_path / "plot" / "tanh_derivatives.png"
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), str(png)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr

    import matplotlib.colors
    import matplotlib.image

    image = matplotlib.image.imread(png)
    height, width = image.shape[:2]
    assert width >= 600 and height >= 400
    rgb = image[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05, "the picture is blank"
    # each of the five curves is drawn in its own colour of matplotlib's default cycle
    for colour in ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]:
        target = matplotlib.colors.to_rgb(colour)
        matching = (abs(rgb - target) < 0.02).all(axis=1).sum()
        assert matching > 300, f"too few pixels of the colour {colour}: is its curve missing?"

    found = re.search(r"minimum: f\(([-\d.]+), ([-\d.]+)\) = (\S+) after (\d+) Newton steps", run.stdout)
    assert found, run.stdout
    x, y, value, steps = float(found[1]), float(found[2]), float(found[3]), int(found[4])
    assert abs(x - 1) < 1e-9 and abs(y - 1) < 1e-9 and value < 1e-18
    assert steps <= 10, "Newton's method converges in a handful of steps on Rosenbrock"

    # the table of iterates shown in docs/higher-order.md is the one the example prints
    documented = [line for line in DOCS.read_text().splitlines() if re.match(r"\s+\d+\s+-?\d\.\d{16}", line)]
    assert len(documented) == steps + 1
    printed = set(run.stdout.splitlines())
    assert [line for line in documented if line not in printed] == []


def test_the_example_plots_the_closed_form_derivatives(example):
    functions = example.derivatives(example.tanh, 4)
    for x in (-2.2, -0.5, 0.1, 1.3):
        values = [f(x) for f in functions]
        expected = tanh_derivatives_closed_form(x)
        assert all(close(v, e) for v, e in zip(values, expected)), (x, values, expected)


@pytest.mark.parametrize("point", [(-1.2, 1.0), (0.3, -0.7), (2.0, 2.5)])
def test_the_example_hessian_matches_torch(example, point):
    value, gradient, hessian = example.gradient_and_hessian(example.rosenbrock, point)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = torch.tensor(point, dtype=torch.float64)
        f = lambda p: example.rosenbrock(p[0], p[1])  # noqa: E731
        expected_hessian = torch.autograd.functional.hessian(f, p)
        expected_gradient = torch.autograd.functional.jacobian(f, p)
    assert close(value, f(p).item())
    assert all(close(g, e) for g, e in zip(gradient, expected_gradient.tolist()))
    for row, expected_row in zip(hessian, expected_hessian.tolist()):
        assert all(close(h, e) for h, e in zip(row, expected_row)), (hessian, expected_hessian)


def test_the_example_newton_iterates_converge_quadratically(example):
    iterates = example.newton(example.rosenbrock, (-1.2, 1.0))
    assert len(iterates) <= 11
    (x, y), _value, gradient = iterates[-1]
    assert abs(x - 1) <= 1e-12 and abs(y - 1) <= 1e-12 and math.hypot(*gradient) <= 1e-12
    errors = [math.hypot(x - 1, y - 1) for (x, y), _, _ in iterates]
    near = [(e, later) for e, later in itertools.pairwise(errors) if 0 < e < 1e-3]
    assert near, errors
    for error, next_error in near:  # quadratic convergence: the error is squared at each step
        assert next_error <= 10 * error**2, errors
