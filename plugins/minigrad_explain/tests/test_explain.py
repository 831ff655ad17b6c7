"""explain(): the backward pass narrated step by step, checked against the engine and PyTorch."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad_explain.plugin
import minigrad_ops
from minigrad_core import OpSpec, Registry, Value, hookimpl, using
from minigrad_core.cli import main
from minigrad_explain import WHY_ACCUMULATE, WHY_TOPOLOGICAL, explain, node_names, reading_order, substitute
from minigrad_explain.expr import build

SEED = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)
NEURON = "tanh(x1*w1 + x2*w2 + b)"


class PlainOp:
    """An op that gives no formulas: the explanation still shows the numbers."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(OpSpec(name="cube", arity=1, forward=lambda x: x**3, derivative=lambda x, out: (3 * x * x,)))
        register(
            OpSpec(
                name="total",
                arity=None,
                forward=lambda *xs: float(sum(xs)),
                derivative=lambda *args: (1.0,) * (len(args) - 1),
                derivative_formula=("1",),
            )
        )
        register(
            OpSpec(
                name="dot2",
                arity=None,
                formula="a_i * b_i summed",
                derivative_formula=("b_i", "a_i"),
                forward=lambda *ab: sum(a * b for a, b in zip(ab[: len(ab) // 2], ab[len(ab) // 2 :])),
                derivative=lambda *ab_out: (*ab_out[len(ab_out) // 2 : -1], *ab_out[: len(ab_out) // 2]),
            )
        )


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_explain.plugin, PlainOp())) as active:
        yield active


def seed_neuron():
    """The seed walkthrough's neuron, labelled as it labels it."""
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o


def grads_in_text(text: str) -> list[tuple[str, float]]:
    """Every "NAME.grad = ... = VALUE" line, in order."""
    found = []
    for line in text.splitlines():
        match = re.match(r"^\s+(\(.*?\)|[\w.#']+)\.grad (?:\+= .*->  .* = |= (?:.* = )?)(-?[\d.e+-]+|inf|nan)\b", line)
        if match:
            name = match.group(1)
            found.append((name[1:-1] if name.startswith("(") else name, float(match.group(2))))
    return found


def test_seed_neuron_line_by_line_against_the_engine():
    o = seed_neuron()
    explanation = explain(o)
    text = explanation.text
    o.backward()
    engine = {node.label: node.grad for node in reading_order(o)}

    # each "NAME.grad = before + contribution = after" line shows the gradient so far; the
    # last one for each value is its final gradient, equal to the engine's
    lines = grads_in_text(text.split("Gradients (")[0])
    last = {}
    for name, value in lines:
        last[name] = value
    assert set(last) == set(engine) - {"o"}
    for name, value in last.items():
        assert value == pytest.approx(engine[name], abs=5e-4), name

    # the closing list gives every gradient, in reading order
    summary = grads_in_text(text.split("Gradients (")[1])
    assert [name for name, _ in summary] == [node.label for node in reading_order(o)]
    for name, value in summary:
        assert value == pytest.approx(engine[name], abs=5e-4), name

    # and the structured steps carry the exact numbers
    for node, grad in zip(explanation.order, explanation.grads):
        assert grad == node.grad


def test_seed_neuron_text_reads_as_the_walkthrough():
    text = explain(seed_neuron()).text
    expected = [
        "Step 0: o.grad = 1   (d o / d o = 1: the seed of the backward pass)",
        "Step 1: o = tanh(n) passes its gradient to n",
        "  local derivative:  d o / d n = 1 - tanh(n)**2 = 1 - tanh(0.8814)**2 = 0.5",
        "  contribution:      0.5 * o.grad (1) = 0.5",
        "  n.grad = 0 + 0.5 = 0.5",
        "Step 2: n = (x1*w1 + x2*w2) + b passes its gradient to (x1*w1 + x2*w2)",
        "  local derivative:  d n / d (x1*w1 + x2*w2) = 1",
    ]
    lines = text.splitlines()
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    # in the graph's own names: mul's generic "b" would read as the bias b
    assert "  local derivative:  d (x1*w1) / d x1 = w1 = -3" in lines
    assert "  contribution:      -3 * (x1*w1).grad (0.5) = -1.5" in lines
    assert "  x1.grad = 0 + (-1.5) = -1.5" in lines
    assert "  local derivative:  d (x2*w2) / d w2 = x2 = 0" in lines
    assert text.count(WHY_TOPOLOGICAL) == 1  # why the order is topological, said once


def test_steps_follow_the_engine_and_torch():
    o = seed_neuron()
    explanation = explain(o)
    steps = explanation.steps
    assert steps[0].kind == "seed" and steps[0].grad_after == 1.0
    assert [s.index for s in steps] == list(range(len(steps)))
    assert len(steps) == 1 + sum(len(n._prev) for n in explanation.order)

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in SEED.items()}
    n = t["x1"] * t["w1"] + t["x2"] * t["w2"] + t["b"]
    n.retain_grad()
    torch.tanh(n).backward()
    tanh_step = steps[1]
    assert (tanh_step.node_name, tanh_step.target_name, tanh_step.op) == ("o", "n", "tanh")
    assert tanh_step.local == pytest.approx(n.grad.item(), abs=1e-12)  # d tanh / dn, upstream 1
    for name in SEED:
        assert explanation.grad_of(next(v for v in explanation.order if v.label == name)) == pytest.approx(
            t[name].grad.item(), abs=1e-12
        )


def test_the_order_is_reverse_topological():
    out = build("x*y + tanh(x*y) * x", x=0.5, y=-2)
    steps = explain(out).steps[1:]
    for k, step in enumerate(steps):
        # once a node passes its gradient on, no later step adds to it: it was complete
        assert all(later.target != step.node for later in steps[k:])


def test_a_second_contribution_says_plus_equals_and_why():
    explanation = explain(build("x*x + x", x=3))
    text = explanation.text
    x_steps = [s for s in explanation.steps[1:] if s.target_name == "x"]
    assert [s.repeat for s in x_steps] == [0, 1, 2] and {s.uses for s in x_steps} == {3}
    assert [s.grad_after for s in x_steps] == [1.0, 4.0, 7.0]
    assert "  x.grad = 0 + 1 = 1   (first of 3 contributions)" in text
    assert "  x.grad += 3  ->  1 + 3 = 4" in text
    assert "  x.grad += 3  ->  4 + 3 = 7" in text
    assert text.count(WHY_ACCUMULATE) == 1
    assert "(contribution 3 of 3 to x.grad)" in text


def test_formulas_get_names_params_and_numbers():
    explanation = explain(build("x ** 3 / y", x=2, y=-4))
    lines = explanation.text.splitlines()
    assert "  local derivative:  d n1 / d x = 3 * x ** (3 - 1) = 3 * 2 ** (3 - 1) = 12" in lines
    assert "  local derivative:  d n2 / d y = -n1 / y**2 = -8 / (-4)**2 = -0.5" in lines
    step = next(s for s in explanation.steps if s.target_name == "y")
    assert (step.formula, step.formula_named) == ("-a / b**2", "-n1 / y**2")  # the op's own names, as data
    assert "  n1 = x ** 3 = 8" in lines  # the forward pass, with the parameter filled in


def test_an_op_without_formulas_still_shows_its_numbers():
    out = build("cube(x)", x=2)
    lines = explain(out).text.splitlines()
    assert "  local derivative:  d n1 / d x = 12" in lines
    assert "  n1 = cube(x) = 8" in lines


def test_ops_with_any_number_of_inputs():
    lines = explain(build("total(x, y, x)", x=1, y=2)).text.splitlines()
    assert "  n1 = total(x, y, x) = 4" in lines
    assert lines.count("  local derivative:  d n1 / d x = 1") == 2
    # formulas that do not say which input is which are left out; the numbers stay
    lines = explain(build("dot2(x, y, z, w)", x=1, y=2, z=3, w=4)).text.splitlines()
    assert "  n1 = dot2(x, y, z, w) = 11" in lines
    assert "  local derivative:  d n1 / d y = 4" in lines


def test_explain_changes_no_gradient():
    o = seed_neuron()
    explain(o)
    assert all(node.grad == 0.0 for node in reading_order(o))


def test_a_leaf_root_has_only_the_seed():
    explanation = explain(Value(3.0, label="x"))
    assert len(explanation.steps) == 1 and explanation.grads == [1.0]


def test_names_are_unique():
    a, b = Value(1.0, label="n1"), Value(2.0, label="a")
    c = Value(3.0, label="a")
    order = reading_order(a * b + c)
    names = node_names(order)
    assert len(set(names)) == len(names)
    assert "a#2" in names and names.count("n1") == 1


def test_substitute_replaces_names_not_functions():
    assert substitute("1 - tanh(x)**2", {"x": "0.5", "tanh": "no"}) == "1 - tanh(0.5)**2"
    assert substitute("b * a ** (b - 1)", {"a": "2", "b": "-3"}) == "-3 * 2 ** ((-3) - 1)"
    assert substitute("b ** 2", {"b": "-3"}) == "(-3) ** 2"
    assert substitute("-a / b**2", {"a": "-9", "b": "-2"}) == "-(-9) / (-2)**2"
    assert substitute("exp(x)", {"x": "-1"}) == "exp(-1)"


def test_json_form_carries_every_step():
    explanation = explain(build("x*x + log(y)", x=3, y=math.e))
    data = json.loads(json.dumps(explanation.as_dict(), allow_nan=False))
    assert len(data["steps"]) == len(explanation.steps)
    assert data["nodes"][data["root"]]["grad"] == 1.0
    assert data["why"] == WHY_TOPOLOGICAL
    x = next(n for n in data["nodes"] if n["name"] == "x")
    assert x["grad"] == 6.0
    assert all(step["text"] for step in data["steps"])


# -- random graphs: the narrated pass is the engine's pass, number for number -------------------


@st.composite
def graphs(draw):
    """A random DAG in which values are reused, built from Value operations."""
    values = [Value(draw(st.floats(-2, 2, allow_nan=False)), label=f"p{i}") for i in range(3)]
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["+", "*", "-", "tanh", "sigmoid", "**2", "relu"]))
        a = draw(st.sampled_from(values))
        if kind in ("+", "*", "-"):
            b = draw(st.sampled_from(values))
            values.append(a + b if kind == "+" else a * b if kind == "*" else a - b)
        elif kind == "**2":
            values.append(a**2)
        else:
            values.append(getattr(a, kind)())
    return values[-1]


@given(graphs())
def test_random_graphs_match_backward_exactly(root):
    explanation = explain(root)
    root.backward()
    for node, grad in zip(explanation.order, explanation.grads):
        assert grad == node.grad  # same operations in the same order: bit for bit
    for step in explanation.steps[1:]:
        assert step.contribution == step.local * step.upstream


# -- the command ----------------------------------------------------------------------------


def test_explain_command_prints_the_seed_neuron(capsys):
    status = main(["explain", NEURON] + [f"{k}={v!r}" for k, v in SEED.items()])
    out = capsys.readouterr().out
    assert status == 0
    o = build(NEURON, **SEED)
    o.backward()
    engine = dict(zip(node_names(reading_order(o)), (n.grad for n in reading_order(o))))
    summary = grads_in_text(out.split("Gradients (")[1])
    assert dict(summary).keys() == engine.keys()
    for name, value in summary:
        assert value == pytest.approx(engine[name], abs=5e-4), name
    assert "Step 1: n5 = tanh(n4) passes its gradient to n4" in out


def test_explain_command_json_and_errors(capsys):
    assert main(["explain", "x*y", "x=2", "y=5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    grads = {n["name"]: n["grad"] for n in data["nodes"]}
    assert (grads["x"], grads["y"]) == (5.0, 2.0)
    with pytest.raises(SystemExit):
        main(["explain", "x", "x=1", "--digits", "-2"])
    assert "expected a whole number from 1 to 17" in capsys.readouterr().err
    with pytest.raises(ValueError, match="digits must be"):
        explain(Value(1.0), digits=0)
    assert main(["explain", "os.system('ls')"]) == 1
    error = capsys.readouterr().err
    assert "attribute access ('.system') is not allowed" in error and "Traceback" not in error
