"""An op's ``derivative_formula`` (the text ``explain``, the explorer and ``minigrad ops`` show)
says the same as its ``derivative`` rule (the code the chain rule runs).

The formula is a second writing of the op's math, kept because a person reads it; this test
keeps the two from drifting apart. Each formula is evaluated as a Python expression over the
op's input names, ``out`` and its parameters, at points inside the op's domain, and compared
with the rule called through the kernel's ``local_derivatives``. Generated from the registry,
so an op is checked the day it is registered.
"""

from __future__ import annotations

import ast
import itertools
import math

import pytest

from minigrad_core import get_registry
from minigrad_core.value import evaluate, local_derivatives

CANDIDATES = (-1.7, -0.6, 0.3, 0.8, 1.9, 2.6)
MARGIN = 0.05  # keep away from kinks and domain edges, where a derivative jumps


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _sign(x):
    return (x > 0) - (x < 0)


# The functions a formula may call: the ops' usual mathematical names.
FUNCTIONS = {
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "tanh": math.tanh,
    "sigmoid": _sigmoid,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "sign": _sign,
    "pi": math.pi,
    "abs": abs,
    "Phi": lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))),  # the normal distribution's CDF
    "phi": lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi),  # and its density
}

# Formulas that are prose rather than an expression; each says why.
PROSE = {
    "sign": "the derivative is 0 everywhere; the text says what happens at 0",
    "maximum": "three cases (a > b, a == b, a < b) written as a sentence",
    "minimum": "three cases written as a sentence",
}


def is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def input_names(spec, n_inputs: int) -> list[str]:
    """The names a formula uses for each input; a variadic op's ``w_i``/``x_i`` pattern per input."""
    if spec.arity is not None:
        return list(spec.input_names)
    return list(spec.input_names)[:n_inputs]


def sample_points(spec, params):
    n_inputs = spec.arity if spec.arity is not None else 3
    per_input = []
    for i in range(n_inputs):
        low, high = spec.domain.bounds_of(min(i, len(spec.domain.bounds) - 1))
        kinks = spec.domain.kinks_of(min(i, len(spec.domain.kinks) - 1)) if spec.domain.kinks else ()
        avoid = kinks + tuple(b for b in (low, high) if math.isfinite(b))
        per_input.append([c for c in CANDIDATES if low < c < high and all(abs(c - a) > MARGIN for a in avoid)])
    points = [p for p in itertools.product(*per_input) if spec.domain.contains(*p, **params)]
    return points[:: max(1, len(points) // 12)]


def formula_cases():
    cases = []
    for spec in sorted(get_registry().ops.values(), key=lambda s: s.name):
        if not spec.derivative_formula or spec.arity == 0 or spec.name in PROSE:
            continue
        cases.append(pytest.param(spec.name, id=spec.name))
    return cases


def test_prose_formulas_are_exactly_the_listed_ones():
    registry = get_registry()
    prose = {
        spec.name for spec in registry.ops.values() if any(not is_expression(text) for text in spec.derivative_formula)
    }
    assert prose == {name for name in PROSE if name in registry.ops}


@pytest.mark.parametrize("name", formula_cases())
def test_the_derivative_formula_says_what_the_rule_computes(name):
    spec = get_registry().ops[name]
    params = {p: (default if default is not None else spec.domain.params[p][0]) for p, default in spec.params.items()}
    points = sample_points(spec, params)
    assert points, f"no sample point inside the domain of {name}"
    for point in points:
        out = evaluate(spec, list(point), params or None)
        rule = local_derivatives(spec, list(point), out, params or None)
        names = input_names(spec, len(point))
        for k, partial in enumerate(rule):
            text = (
                spec.derivative_formula[k]
                if spec.arity is not None
                else spec.derivative_formula[_variadic_role(spec, k, len(point))]
            )
            scope = dict(FUNCTIONS, out=out, **params)
            if spec.arity is not None:
                scope.update(zip(names, point))
            else:
                scope.update(_variadic_scope(spec, k, point))
            said = eval(compile(text, f"<{name} formula>", "eval"), {"__builtins__": {}}, scope)
            assert float(said) == pytest.approx(float(partial), rel=1e-12, abs=1e-12), (
                f"{name} at {point}: the formula d out / d input {k} = {text!r} gives {said}, the rule {partial}"
            )


def _variadic_role(spec, k: int, n: int) -> int:
    """Which of a weighted sum's formulas (w_i, x_i, b) input k follows: 2n + 1 inputs."""
    pairs = (n - 1) // 2
    return 0 if k < pairs else (1 if k < 2 * pairs else 2)


def _variadic_scope(spec, k: int, point) -> dict:
    pairs = (len(point) - 1) // 2
    i = k % pairs if k < 2 * pairs else 0
    return {"w_i": point[i], "x_i": point[pairs + i], "b": point[-1]}
