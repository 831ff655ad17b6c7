"""Forward mode agrees with reverse mode on random expressions built from every registered op.

An expression is a chain of op applications over two inputs x and y: each step picks a
registered op (any installed one, so a new op is covered the day it is registered), feeds it
earlier nodes mapped into its domain, and appends its result. Then, for a random direction t,

    jvp(f, (x, y), t)            one forward sweep: d f(p + s t) / d s at s = 0
    grad_x * t_x + grad_y * t_y  one backward sweep, then the dot product

must agree: both come from the same local derivatives, walked in opposite directions.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minigrad_core import Value, get_registry, jvp, ops

KINK_MARGIN = 1e-3  # stay this far from kinks and domain edges: the derivative jumps there
STEPS = st.integers(min_value=1, max_value=6)


def op_names() -> list[str]:
    """Every registered op with at least one input and test values for each required parameter."""
    names = []
    for spec in get_registry().ops.values():
        if spec.arity == 0:
            continue
        if all(default is not None or spec.domain.params.get(p) for p, default in spec.params.items()):
            names.append(spec.name)
    return sorted(names)


def into_interval(u, low: float, high: float):
    """Map any node u into the open interval (low, high), smoothly: the chain rule has work to do."""
    if math.isinf(low) and math.isinf(high):
        return u
    if math.isinf(high):
        return low + 0.25 + u * u
    if math.isinf(low):
        return high - 0.25 - u * u
    return low + (high - low) * (0.05 + 0.9 * ops.sigmoid(u))


def data_of(x) -> float:
    return x.data if isinstance(x, Value) else float(x)


@st.composite
def programs(draw):
    """A list of steps (op name, parameters, which earlier nodes feed it)."""
    names = op_names()
    steps = []
    for k in range(draw(STEPS)):
        spec = get_registry().ops[draw(st.sampled_from(names))]
        # a variadic op gets an odd count, so a weighted sum (2n + 1 inputs) fits too
        n_inputs = spec.arity if spec.arity is not None else draw(st.sampled_from((1, 3, 5)))
        sources = [draw(st.integers(0, k + 1)) for _ in range(n_inputs)]  # nodes 0, 1 are x, y
        params = {}
        for name, default in spec.params.items():
            choices = tuple(spec.domain.params.get(name, ())) or (default,)
            params[name] = draw(st.sampled_from(choices))
        steps.append((spec.name, params, sources))
    return steps


def run(program, x, y):
    """Apply the program to x and y; returns the last node (and checks each op's domain)."""
    nodes = [x, y]
    for name, params, sources in program:
        spec = get_registry().ops[name]
        inputs = []
        for i, source in enumerate(sources):
            low, high = spec.domain.bounds_of(min(i, len(spec.domain.bounds) - 1))
            inputs.append(into_interval(nodes[source], low, high))
        points = [data_of(u) for u in inputs]
        for i, point in enumerate(points):
            kinks = spec.domain.kinks_of(min(i, len(spec.domain.kinks) - 1)) if spec.domain.kinks else ()
            assume(all(abs(point - kink) > KINK_MARGIN for kink in kinks))
        assume(all(math.isfinite(p) and abs(p) < 1e6 for p in points))
        assume(spec.domain.contains(*points, **params))
        nodes.append(getattr(ops, name)(*inputs, **params))
    return nodes[-1]


@settings(max_examples=300)  # dozens of ops to reach: more cases than the profile's default
@given(
    program=programs(),
    point=st.tuples(st.floats(-2, 2), st.floats(-2, 2)),
    tangent=st.tuples(st.floats(-1, 1), st.floats(-1, 1)),
)
def test_forward_mode_agrees_with_reverse_mode_on_random_expressions_over_every_op(program, point, tangent):
    x, y = Value(point[0]), Value(point[1])
    out = run(program, x, y)
    assume(isinstance(out, Value) and math.isfinite(out.data) and abs(out.data) < 1e6)
    out.backward()
    assume(all(math.isfinite(v.grad) and abs(v.grad) < 1e6 for v in (x, y)))
    reverse = x.grad * tangent[0] + y.grad * tangent[1]

    value, forward = jvp(lambda a, b: run(program, a, b), point, tangent)
    assert value == out.data
    assert forward == pytest.approx(reverse, rel=1e-9, abs=1e-9), program


def test_the_expressions_reach_every_registered_op():
    """The strategy draws from the registry, so every op with inputs is in reach."""
    names = set(op_names())
    registered = {spec.name for spec in get_registry().ops.values() if spec.arity != 0}
    assert {"add", "mul", "pow", "tanh", "relu", "abs", "sqrt", "weighted_sum"} <= names
    assert registered - names == {
        name
        for name in registered
        if any(
            d is None and not get_registry().ops[name].domain.params.get(p)
            for p, d in get_registry().ops[name].params.items()
        )
    }
