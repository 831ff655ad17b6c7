"""The kernel's promises to its users, checked as they meet them: anomaly detection's errors
(the op, the node, the inputs, the local derivative, the path) and its block; what the
errors quote; Value's operators with numbers, arrays and things that are not numbers; how a
Domain reads what it is given; forward mode (``jvp``) and ``grad`` against PyTorch; the
package's ``__version__``.

Written for the survivors of the mutation run over the kernel (docs/testing.md lists them):
PyTorch float64 is the oracle wherever there is a number.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import math
import pickle
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

import minigrad_core
import minigrad_ops
from minigrad_core import (
    AnomalyError,
    Domain,
    MiniGradError,
    OpDomainError,
    OpRuleError,
    OpSpec,
    OpSpecError,
    OpZeroDivisionError,
    RegistrationError,
    Registry,
    Value,
    detect_anomaly,
    grad,
    hookimpl,
    jvp,
    ops,
    shorten,
    using,
)
from minigrad_core.anomaly import active

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def builtin_ops():
    with using(Registry.from_plugins(minigrad_ops)) as registry:
        yield registry


def tensor(x, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def says(error_info, *parts):
    """Every part appears in the error's message (the parts the house rule asks for)."""
    text = str(error_info.value)
    missing = [part for part in parts if part not in text]
    assert not missing, f"{missing} not in: {text}"


# -- anomaly detection: the forward pass -----------------------------------------------------------


def test_an_operator_that_overflows_is_caught_naming_the_op_the_inputs_the_node_and_the_path():
    """``a * b`` runs the operator's own fast path, not apply(): it must be checked too."""
    a, b = Value(1e200, label="a"), Value(1e200, label="b")
    with detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            a * b
    says(
        caught,
        "anomaly in the forward pass",
        "op 'mul'",
        "finite input(s) (1e+200, 1e+200)",
        "into inf",
        "at node (*)",
        "path: a -> (*)",
    )
    assert (a * b).data == (tensor(1e200) * tensor(1e200)).item() == math.inf  # outside: no check


def test_the_op_is_named_by_its_registered_name_not_by_the_text_the_node_shows():
    x = Value(1e200, label="x")
    with detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            x**2
    says(caught, "op 'pow'", "finite input(s) (1e+200)", "at node (**2)", "path: x -> (**2)")


def test_an_input_that_is_already_inf_or_nan_is_not_the_step_s_fault():
    """Only a step that turns finite inputs into nan/inf is reported: the first one."""
    with detect_anomaly():
        grown = Value(math.inf).exp()
        poisoned = Value(math.nan) + 1.0
    assert grown.data == tensor(math.inf).exp().item()
    assert math.isnan(poisoned.data)


def test_the_path_runs_from_the_nearest_labelled_input_through_labelled_nodes():
    w = Value(400.0, label="w")
    h = w * 2.0
    h.label = "h"
    with detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            h.exp()
    says(caught, "op 'exp'", "(800.0)", "at node (exp)", "path: w -> h -> (exp)")


def test_a_leaf_without_a_label_is_passed_over_for_one_with_a_label():
    w = Value(400.0, label="w")
    h = Value(400.0) + w  # an unlabelled constant, met first, beside the labelled input
    with detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            h.exp()
    says(caught, "path: w -> (+) -> (exp)")


def test_with_nothing_labelled_the_path_is_the_node_itself():
    with detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            (Value(400.0) * 2.0).exp()
    says(caught, "at node (exp); path: (exp)")


def test_a_method_with_keyword_parameters_computes_the_same_inside_the_block_as_pytorch():
    with detect_anomaly():
        by_keyword = Value(1.5).pow(exponent=3)
        by_position = Value(1.5).pow(3)
    expected = (tensor(1.5) ** 3).item()
    assert by_keyword.data == by_position.data == expected


# -- anomaly detection: the backward pass ----------------------------------------------------------


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_gradient_that_overflows_is_caught_naming_the_op_node_inputs_local_derivative_and_path(create_graph):
    """Every value is finite; only the product slope * gradient overflows. With
    create_graph=True the slope and the gradient are Values: the message quotes their numbers."""
    x, c = Value(1e-300, label="x"), Value(1e300, label="c")
    y = x * c
    y.label = "y"
    z = y * 1e300
    with detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            z.backward(create_graph=create_graph)
    says(
        caught,
        "anomaly in the backward pass",
        "op 'mul' at node y",
        "(inputs 1e-300, 1e+300)",
        "local derivative 1e+300",
        "for its input x = 1e-300",
        "the gradient 1e+300 becomes inf",
        "path: x -> y",
    )
    x.grad = c.grad = 0.0
    z.backward(create_graph=create_graph)  # outside the block: the same inf as PyTorch
    tx, tc = tensor(1e-300, True), tensor(1e300, True)
    expected = torch.autograd.grad(tx * tc * 1e300, [tx, tc], create_graph=create_graph)
    got = [g.data if isinstance(g, Value) else g for g in (x.grad, c.grad)]
    assert got == [e.item() for e in expected] == [math.inf, 1.0]


@pytest.mark.parametrize("create_graph", [False, True])
def test_an_infinite_slope_is_caught_quoting_numbers_and_naming_an_unlabelled_input_a_leaf(create_graph):
    """``x ** 0.5`` at 0; with create_graph=True the partials and gradients are Values: the
    message still quotes their numbers."""
    x = Value(0.0)
    root = x**0.5
    root.label = "root"
    out = root * 2.0
    with detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            out.backward(create_graph=create_graph)
    says(
        caught,
        "op 'pow' at node root",
        "(inputs 0.0)",
        "local derivative inf",
        "for its input a leaf = 0.0",
        "the gradient 2.0 becomes inf",
        "path: root",
    )


def test_an_infinite_seed_gradient_is_not_a_step_s_fault():
    t = tensor(2.0, True)
    (expected,) = torch.autograd.grad(t * 3.0, [t], grad_outputs=tensor(math.inf))
    x = Value(2.0)
    with detect_anomaly():
        (x * 3.0).backward(math.inf)
    assert x.grad == expected.item() == math.inf
    y = Value(2.0)
    with detect_anomaly():
        (y * 3.0).backward(Value(math.inf), create_graph=True)
    assert y.grad.data == math.inf


def test_an_infinite_input_s_infinite_gradient_is_not_a_step_s_fault():
    t = tensor(math.inf, True)
    (expected,) = torch.autograd.grad(t * t, [t])
    x = Value(math.inf)
    with detect_anomaly():
        (x * x).backward()
    assert x.grad == expected.item() == math.inf


def test_a_node_with_a_backward_closure_passes_the_check_and_its_gradient_as_pytorch():
    """micrograd's way: a node made by hand whose ``_backward`` closure passes the gradient on."""
    a, b = Value(0.5, label="a"), Value(-1.5, label="b")
    product = Value(a.data * b.data, (a, b), "*")

    def _backward():
        a.grad += b.data * product.grad
        b.grad += a.data * product.grad

    product._backward = _backward
    with detect_anomaly():
        product.tanh().backward()
    ta, tb = tensor(0.5, True), tensor(-1.5, True)
    expected = torch.autograd.grad((ta * tb).tanh(), [ta, tb])
    assert (a.grad, b.grad) == pytest.approx([e.item() for e in expected], rel=1e-15)


# -- anomaly detection: the block ------------------------------------------------------------------


def detects_nothing():
    """Outside the block: overflow in operators, methods and backward passes goes unreported."""
    assert (Value(1e200) * Value(1e200)).data == math.inf
    assert Value(1000.0).exp().data == math.inf
    x = Value(0.0)
    x.sqrt().backward()
    assert x.grad == math.inf
    return True


def test_nested_blocks_detect_until_the_outer_one_is_left():
    assert not active()
    with detect_anomaly():
        with detect_anomaly():
            assert active()
        assert active()  # the inner block's exit leaves the outer one checking
        with pytest.raises(AnomalyError, match="op 'mul'"):
            Value(1e200) * Value(1e200)
        with pytest.raises(AnomalyError, match="op 'exp'"):
            Value(1000.0).exp()
        with pytest.raises(AnomalyError, match="op 'sqrt'"):
            Value(0.0).sqrt().backward()
    assert not active()
    assert detects_nothing()


def test_leaving_the_block_by_an_error_stops_detection():
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            Value(1000.0).exp()
    assert not active()
    assert detects_nothing()


# -- what errors quote ------------------------------------------------------------------------------


class Hostile:
    """An object whose repr fails: the error about it must still be raised, and say so."""

    def __repr__(self):
        raise RuntimeError("no repr for you")


def test_an_operand_that_is_not_a_number_is_quoted_with_the_value_its_type_and_what_the_op_takes():
    with pytest.raises(TypeError) as caught:
        Value(1.0) + Decimal("1.5")
    says(
        caught,
        "add (__add__): cannot combine Value(data=1.0, grad=0.0) with Decimal('1.5') of type Decimal",
        "add takes a Value or a real number (int, float, bool)",
    )


def test_an_operand_whose_repr_fails_is_named_by_its_type_and_the_failure():
    with pytest.raises(TypeError) as caught:
        Value(1.0) * Hostile()
    says(caught, "<Hostile whose repr raised RuntimeError> of type Hostile")


def test_a_quoted_value_is_cut_only_when_longer_than_the_limit_saying_how_much_was_cut():
    fits = "x" * 198  # its repr, with the quotes, is exactly 200 characters
    assert shorten(fits) == repr(fits)
    assert shorten(fits + "y") == repr(fits + "y")[:200] + "... (1 more characters)"
    with pytest.raises(OverflowError) as caught:  # the user's way to meet it
        Value(10**500)
    says(caught, "1" + "0" * 199 + "... (301 more characters) is too large")


def test_a_plugin_hook_s_long_error_is_clipped_and_a_short_one_kept_whole():
    def failing_plugin(message):
        class Failing:
            @hookimpl
            def minigrad_register_ops(self, register):
                raise RuntimeError(message)

        return Failing()

    with pytest.raises(RegistrationError) as caught:
        Registry.from_plugins(failing_plugin("y" * 400))  # exactly at the limit: whole
    says(caught, "failed in its minigrad_register_ops hook: RuntimeError: " + "y" * 400)
    assert "more characters" not in str(caught.value)
    with pytest.raises(RegistrationError) as caught:
        Registry.from_plugins(failing_plugin("z" * 1000))
    says(caught, "RuntimeError: " + "z" * 400 + "... (600 more characters)")


@pytest.mark.parametrize(
    "make, kind", [(lambda: Value(-1.0).log(), OpDomainError), (lambda: Value(1.0) / 0, OpZeroDivisionError)]
)
def test_a_domain_error_survives_pickling_as_multiprocessing_sends_it(make, kind):
    with pytest.raises(kind) as caught:
        make()
    original = caught.value
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is kind
    assert str(copy) == str(original)
    assert (copy.op, copy.inputs, copy.expected, copy.reason) == (
        original.op,
        original.inputs,
        original.expected,
        original.reason,
    )


# -- Value's operators and what they accept ----------------------------------------------------------


def test_a_value_with_a_numpy_array_is_left_to_numpy_elementwise():
    array = np.array([1.0, -2.0, 0.5])
    for combine in (lambda v, a: v + a, lambda v, a: v * a, lambda v, a: v - a):
        got = combine(Value(3.0), array)
        assert isinstance(got, np.ndarray) and got.dtype == object
        assert [g.data for g in got] == combine(tensor(3.0), torch.from_numpy(array)).tolist()


@pytest.mark.parametrize("number", [Fraction(1, 4), True, np.float32(0.25), np.int64(3)], ids=repr)
def test_any_real_number_combines_with_a_value_as_pytorch(number):
    x = Value(1.5)
    t = tensor(1.5, True)
    out = x * number - number
    expected = t * float(number) - float(number)
    assert out.data == expected.item()
    out.backward()
    (slope,) = torch.autograd.grad(expected, [t])
    assert x.grad == slope.item()


def test_a_number_operand_becomes_a_constant_leaf_holding_a_float_on_its_side_of_the_operator():
    x = Value(1.5)
    for number in (2, True, 2.5):
        left, right = number - x, x - number
        assert [type(c.data) for c in left._prev] == [float, float]
        assert (left._prev[0].data, left._prev[1]) == (float(number), x)
        assert (right._prev[0], right._prev[1].data) == (x, float(number))
        assert (left.data, right.data) == (float(number) - 1.5, 1.5 - float(number))


class PowerOfANumberOnly:
    """A plugin whose ``**`` takes a number exponent only (a one-input op with a parameter)."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(
                name="pw",
                arity=1,
                params={"exponent": None},
                operators=("__pow__",),
                forward=lambda x, exponent: x**exponent,
                derivative=lambda x, out, exponent: (exponent * x ** (exponent - 1),),
            )
        )


def test_a_value_given_to_an_operator_that_takes_only_a_number_names_the_op_and_its_parameter():
    with using(Registry.from_plugins(PowerOfANumberOnly())):
        cube = Value(2.0) ** 3
        assert (cube.data, cube.op_params) == (8.0, {"exponent": 3})
        with pytest.raises(TypeError) as caught:
            Value(2.0) ** Value(3.0)
    says(caught, "__pow__: op 'pw' takes a number as its 'exponent', not a Value")


def test_value_methods_and_operators_are_named_and_documented_for_help(builtin_ops):
    for block in (detect_anomaly, contextlib.nullcontext):  # the checked methods too
        with block():
            assert (Value.tanh.__name__, Value.tanh.__qualname__) == ("tanh", "Value.tanh")
            assert Value.tanh.__doc__ == "tanh(x)  (op 'tanh' from plugin 'minigrad_ops')"
            assert Value.pow.__doc__ == builtin_ops.ops["pow"].doc
            assert (Value.__add__.__name__, Value.__rsub__.__name__, Value.__neg__.__name__) == (
                "__add__",
                "__rsub__",
                "__neg__",
            )
    twice = spec(
        name="twice", methods=("double",), forward=lambda x: 2 * x, derivative=lambda x, out: (2.0,), doc="x doubled"
    )
    with using(Registry.from_plugins(Provides(twice))):
        assert (Value.double.__name__, Value.double.__qualname__, Value.double.__doc__) == (
            "double",
            "Value.double",
            "x doubled",
        )


class Provides:
    """A plugin that registers the given specs."""

    def __init__(self, *specs):
        self.specs = specs

    @hookimpl
    def minigrad_register_ops(self, register):
        for one in self.specs:
            register(one)


def test_a_method_called_with_too_few_inputs_or_too_many_arguments_says_what_it_takes():
    with pytest.raises(TypeError) as caught:
        Value(1.0).pow(2, 3)
    says(caught, "pow() got 2 extra argument(s); its parameters: ['exponent']")
    hyp = OpSpec(
        name="hyp", arity=2, methods=("hyp",), forward=math.hypot, derivative=lambda a, b, out: (a / out, b / out)
    )
    fma = OpSpec(
        name="fma",
        arity=3,
        methods=("fma",),
        forward=lambda a, b, c: a * b + c,
        derivative=lambda a, b, c, o: (b, a, 1),
    )
    with using(Registry.from_plugins(minigrad_ops, Provides(hyp, fma))):
        expected = torch.hypot(tensor(3.0), tensor(4.0)).item()
        assert Value(3.0).hyp(4.0).data == Value(3.0).hyp(Value(4.0)).data == expected
        with pytest.raises(TypeError) as caught:
            Value(3.0).hyp()
        says(caught, "hyp() takes 2 input(s), got 1")
        with pytest.raises(TypeError) as caught:
            Value(3.0).fma(2.0)
        says(caught, "fma() takes 3 input(s), got 2")


def test_a_method_of_an_op_of_any_number_of_inputs_takes_them_all_as_pytorch():
    total = OpSpec(
        name="total",
        arity=None,
        methods=("total",),
        forward=lambda *xs: math.fsum(xs),
        derivative=lambda *inputs_and_out: (1.0,) * (len(inputs_and_out) - 1),
    )
    with using(Registry.from_plugins(minigrad_ops, Provides(total))):
        x, y = Value(1.5), Value(-2.0)
        out = x.total(y, 4.0, x) * y
        out.backward()
    tx, ty = tensor(1.5, True), tensor(-2.0, True)
    expected = (tx + ty + 4.0 + tx) * ty
    assert out.data == expected.item()
    assert [x.grad, y.grad] == [g.item() for g in torch.autograd.grad(expected, [tx, ty])]


class Parameter(Value):
    """A learner's own kind of Value (a subclass adds nothing the kernel needs to know)."""


def test_a_subclass_of_value_combines_like_a_value_as_pytorch():
    x, w = Value(1.5), Parameter(-2.0)
    out = x * w + w * 3 - x / w
    out.backward()
    tx, tw = tensor(1.5, True), tensor(-2.0, True)
    expected = tx * tw + tw * 3 - tx / tw
    assert out.data == expected.item()
    assert [x.grad, w.grad] == [g.item() for g in torch.autograd.grad(expected, [tx, tw])]


# A rule's failures and odd results, met through each way an op is called: a one-input method
# and a two-input operator have fast paths of their own, beside apply().


def raising(error):
    def rule(*inputs, **params):
        raise error

    return rule


def called_every_way(forward):
    """(what the user typed, the inputs the op saw) for a one-input and a two-input op with ``forward``."""
    odd = OpSpec(name="odd", arity=1, forward=forward, derivative=slope_one, domain=Domain(description="x not 3"))
    joined = OpSpec(
        name="joined",
        arity=2,
        operators=("__matmul__", "__rmatmul__"),
        forward=forward,
        derivative=lambda a, b, out: (1.0, 1.0),
        domain=Domain(description="a apart from b"),
    )
    registry = Registry.from_plugins(minigrad_ops, Provides(odd, joined))
    return registry, [
        (lambda: Value(3.0).odd(), "odd(3.0)", "x not 3", "(inputs: 3.0)"),
        (lambda: Value(3.0) @ Value(2.0), "joined(3.0, 2.0)", "a apart from b", "(inputs: 3.0, 2.0)"),
        (lambda: Value(3.0) @ 2, "joined(3.0, 2.0)", "a apart from b", "(inputs: 3.0, 2.0)"),
        (lambda: 2 @ Value(3.0), "joined(2.0, 3.0)", "a apart from b", "(inputs: 2.0, 3.0)"),
    ]


@pytest.mark.parametrize(
    "error, kind", [(ValueError("no room"), OpDomainError), (ZeroDivisionError("no room"), OpZeroDivisionError)]
)
def test_a_forward_rule_s_arithmetic_error_is_a_domain_error_naming_the_op_inputs_domain_and_reason(error, kind):
    registry, calls = called_every_way(raising(error))
    with using(registry):
        for call, shown, domain, _ in calls:
            with pytest.raises(kind) as caught:
                call()
            name = shown.split("(")[0]
            says(caught, f"{shown} is undefined: {name} expects {domain} (no room)")


@pytest.mark.parametrize(
    "error, kind, words",
    [(TypeError("bad call"), OpSpecError, "TypeError"), (RuntimeError("broke"), OpRuleError, "RuntimeError")],
)
def test_a_forward_rule_that_fails_otherwise_is_named_with_its_plugin_its_error_and_its_inputs(error, kind, words):
    registry, calls = called_every_way(raising(error))
    with using(registry):
        for call, shown, _, inputs in calls:
            with pytest.raises(kind) as caught:
                call()
            name = shown.split("(")[0]
            says(caught, f"op '{name}' (plugin 'Provides'): its forward rule raised {words}", inputs)
            assert str(error) in str(caught.value)  # the rule's own words


def test_a_domain_error_a_forward_rule_raises_itself_passes_through_unchanged():
    own = OpDomainError("odd", (3.0,), "x not 3", "said by the rule")
    registry, calls = called_every_way(raising(own))
    with using(registry):
        for call, *_ in calls:
            with pytest.raises(OpDomainError) as caught:
                call()
            assert caught.value is own


@pytest.mark.parametrize(
    "result, expected", [(7, 7.0), (True, 1.0), (10**400, math.inf), (-(10**400), -math.inf)], ids=repr
)
def test_a_forward_rule_returning_an_int_gives_a_float_and_one_too_large_gives_inf_of_its_sign(result, expected):
    registry, calls = called_every_way(lambda *inputs: result)
    with using(registry):
        for call, *_ in calls:
            data = call().data
            assert type(data) is float and data == expected


def test_a_forward_rule_returning_a_complex_number_is_a_domain_error_whichever_way_it_is_called():
    registry, calls = called_every_way(lambda *inputs: 1j)
    with using(registry):
        for call, shown, domain, _ in calls:
            with pytest.raises(OpDomainError) as caught:
                call()
            says(caught, f"{shown} is undefined", domain, "(the result would be a complex number)")


# -- Domain reads what a plugin author gives it ------------------------------------------------------


def test_a_domain_keeps_one_interval_and_kink_tuple_per_input_whatever_form_it_was_given():
    shared = Domain(bounds=(0, math.inf), kinks=(1,), params={"slope": [0.1, 2]})
    assert shared.bounds == ((0.0, math.inf),)
    assert shared.kinks == ((1.0,),)
    assert shared.params == {"slope": (0.1, 2)}
    assert (shared.bounds_of(0), shared.bounds_of(1)) == ((0.0, math.inf), (0.0, math.inf))
    assert (shared.kinks_of(0), shared.kinks_of(1)) == ((1.0,), (1.0,))
    per_input = Domain(bounds=[(-1, 4), (0.5, 2)], kinks=((), [0]))
    assert per_input.bounds == ((-1.0, 4.0), (0.5, 2.0))
    assert (per_input.bounds_of(0), per_input.bounds_of(1)) == ((-1.0, 4.0), (0.5, 2.0))
    assert (per_input.kinks_of(0), per_input.kinks_of(1)) == ((), (0.0,))
    assert Domain().kinks_of(0) == () and Domain().bounds_of(0) == (-math.inf, math.inf)


def test_a_domain_says_where_an_op_is_defined():
    division = Domain(kinks=((), (0.0,)), where=lambda a, b: b != 0)
    assert division.contains(1.0, 2.0) and not division.contains(1.0, 0.0)
    positive = Domain(bounds=(0.0, math.inf))
    assert positive.contains(0.5) and not positive.contains(0.0) and not positive.contains(-1.0)
    assert not Domain(bounds=(0.0, 1.0)).contains(1.0)  # open at both ends
    closed = Domain(bounds=(0.0, 1.0), open=False)
    assert closed.contains(0.0) and closed.contains(1.0) and not closed.contains(1.5)
    by_param = Domain(where=lambda x, slope: slope > 0)
    assert by_param.contains(1.0, slope=2.0) and not by_param.contains(1.0, slope=-2.0)


@pytest.mark.parametrize(
    "arguments, words",
    [
        ({"bounds": ()}, "Domain(bounds=...) must be a (low, high) pair or a tuple of them, got ()"),
        ({"bounds": 5}, "Domain(bounds=...) must be a (low, high) pair or a tuple of them, got 5"),
        ({"bounds": ("0", "1")}, "each entry must be a (low, high) pair of numbers, got '0' in ('0', '1')"),
        ({"bounds": (True, 2)}, "each entry must be a (low, high) pair of numbers, got True in (True, 2)"),
        ({"bounds": ((0, 1, 2),)}, "each entry must be a (low, high) pair of numbers, got (0, 1, 2) in ((0, 1, 2),)"),
        ({"bounds": ((0, "1"),)}, "each entry must be a (low, high) pair of numbers, got (0, '1')"),
        ({"bounds": (1.0, 1.0)}, "Domain(bounds=...): low must be below high, got (1.0, 1.0)"),
        ({"bounds": [(2, 1)]}, "low must be below high, got (2, 1)"),
        ({"kinks": 0.0}, "Domain(kinks=...) must be a tuple of points such as (0.0,), or one tuple per input"),
        ({"kinks": (0.0, (1.0,))}, "Domain(kinks=...): mix of numbers and tuples in (0.0, (1.0,)); give points"),
        ({"kinks": (("0",),)}, "mix of numbers and tuples in (('0',),)"),
        ({"where": 3}, "Domain(where=...) must be a function of the inputs, got 3"),
        ({"description": None}, "Domain(description=...) must be text, got None"),
        ({"params": {"slope": 0.5}}, "the values to test 'slope' with must be a tuple, got 0.5"),
        ({"params": {"slope": "0.5"}}, "the values to test 'slope' with must be a tuple, got '0.5'"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_domain_refuses_what_it_cannot_read_quoting_the_argument(arguments, words):
    with pytest.raises(OpSpecError) as caught:
        Domain(**arguments)
    says(caught, words)


# -- OpSpec: what a plugin author may declare ------------------------------------------------------


def identity(x):
    return x


def slope_one(x, out):
    return (1.0,)


def spec(**changes):
    declared = {"name": "f", "arity": 1, "forward": identity, "derivative": slope_one}
    return OpSpec(**{**declared, **changes})


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"name": "2x"}, "OpSpec name must be a Python identifier not starting with '_', got '2x'"),
        ({"name": "lambda"}, "OpSpec name must be a Python identifier not starting with '_', got 'lambda'"),
        ({"name": "_secret"}, "OpSpec name must be a Python identifier not starting with '_', got '_secret'"),
        ({"name": 3}, "OpSpec name must be a Python identifier not starting with '_', got 3"),
        (
            {"name": "\ufb01x"},  # the ligature "fi": Python reads the identifier as "fix"
            "OpSpec name '\ufb01x' changes under Unicode normalization (Python reads it as 'fix'); "
            "use the normalized spelling",
        ),
        ({"arity": -1}, "op 'f': arity must be a non-negative int or None (any), got -1"),
        ({"arity": 1.0}, "op 'f': arity must be a non-negative int or None (any), got 1.0"),
        ({"forward": 3}, "op 'f': forward must be callable, got 3"),
        ({"derivative": "slope"}, "op 'f': derivative must be callable, got 'slope'"),
        ({"inputs": ("a", "b")}, "op 'f': 2 input names given for arity 1"),
        ({"methods": "f"}, "op 'f': methods must be a tuple of strings, e.g. ('f',)"),
        ({"operators": "__neg__"}, "op 'f': operators must be a tuple of strings, e.g. ('__neg__',)"),
        ({"inputs": "x"}, "op 'f': inputs must be a tuple of strings, e.g. ('x',)"),
        ({"derivative_formula": "1"}, "op 'f': derivative_formula must be a tuple of strings, e.g. ('1',)"),
        (
            {"operators": ("__call__",)},
            "op 'f': operator '__call__' cannot be installed on Value; an op may install these operators: "
            "__abs__, __add__, __floordiv__, __matmul__, __mod__, __mul__, __neg__, __pos__, __pow__, __radd__,",
        ),
        (
            {"methods": ("2x",)},
            "op 'f': method name '2x' must be an identifier not starting with '_' "
            "(names with underscores belong to Value itself)",
        ),
        ({"methods": (3,)}, "op 'f': method name 3 must be an identifier"),
        ({"methods": ("_hidden",)}, "op 'f': method name '_hidden' must be an identifier"),
        ({"domain": (0.0, 1.0)}, "op 'f': domain must be a Domain, got (0.0, 1.0)"),
        ({"params": {"class": 1.0}}, "op 'f': parameter name 'class' must be a Python identifier"),
        ({"params": {"2x": 1.0}}, "op 'f': parameter name '2x' must be a Python identifier"),
        ({"params": {3: 1.0}}, "op 'f': parameter name 3 must be a Python identifier"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_an_op_declared_wrongly_is_refused_naming_the_op_the_field_and_the_value(changes, words):
    with pytest.raises(OpSpecError) as caught:
        spec(**changes)
    says(caught, words)


def test_an_op_may_have_no_inputs_or_any_number_of_them():
    constant = spec(name="one", arity=0, forward=lambda: 1.0, derivative=lambda out: ())
    assert constant.arity == 0 and constant.method_names == ()
    variadic = spec(name="total", arity=None, inputs=("a", "b"), forward=lambda *xs: sum(xs), derivative=lambda *a: ())
    assert variadic.input_names == ("a", "b")


def test_an_op_keeps_its_own_copy_of_its_parameters():
    given = {"scale": 2.0}
    scaled = spec(params=given, forward=lambda x, scale: x * scale, derivative=lambda x, out, scale: (scale,))
    given["scale"] = 3.0
    assert scaled.params == {"scale": 2.0} and type(scaled.params) is dict


def test_what_tools_show_of_an_op_falls_back_to_its_name_and_default_input_names():
    plain = spec(name="twice")
    assert (plain.label, plain.describe(), plain.method_names, plain.input_names) == (
        "twice",
        "twice(x)",
        ("twice",),
        ("x",),
    )
    binary = spec(name="hyp", arity=2, forward=math.hypot, derivative=lambda a, b, out: (a / out, b / out))
    assert (binary.describe(), binary.method_names, binary.input_names) == ("hyp(a, b)", (), ("a", "b"))
    ternary = spec(name="fma", arity=3, forward=lambda a, b, c: a * b + c, derivative=lambda a, b, c, out: (b, a, 1))
    assert ternary.describe() == "fma(a, b, c)"
    dressed = spec(name="twice", symbol="2·", formula="2 * x", inputs=("u",), methods=("double", "twice"))
    assert (dressed.label, dressed.describe(), dressed.method_names, dressed.input_names) == (
        "2·",
        "2 * x",
        ("double", "twice"),
        ("u",),
    )


def test_a_forward_rule_of_the_wrong_arity_is_named_when_the_op_is_declared():
    def average(a, b):
        return (a + b) / 2

    with pytest.raises(OpSpecError) as caught:
        OpSpec(name="average", arity=1, forward=average, derivative=lambda x, out: (1.0,))
    says(caught, "op 'average': forward", "average cannot be called with 1 positional input(s) (arity is 1)")
    with pytest.raises(OpSpecError) as caught:
        OpSpec(
            name="scaled", arity=1, params={"scale": 2.0}, forward=average, derivative=lambda x, out, scale: (scale,)
        )
    says(caught, "average cannot be called with 1 positional input(s) and parameters ['scale'] (arity is 1)")
    with pytest.raises(OpSpecError) as caught:  # a derivative rule gets the output after the inputs
        OpSpec(name="average", arity=2, forward=average, derivative=average)
    says(caught, "op 'average': derivative", "average cannot be called with 3 positional input(s) (arity is 2)")
    wrapped = functools.partial(average)  # no __qualname__: named by its repr
    with pytest.raises(OpSpecError) as caught:
        OpSpec(name="average", arity=1, forward=wrapped, derivative=lambda x, out: (1.0,))
    says(caught, f"forward {wrapped!r} cannot be called")


# -- forward mode and grad against PyTorch -----------------------------------------------------------


def test_jvp_of_a_single_number_with_a_single_tangent_is_torch_func_jvp():
    value, tangent = jvp(lambda x: x.tanh() * x, 0.7, 2.0)
    expected_value, expected_tangent = torch.func.jvp(lambda x: x.tanh() * x, (tensor(0.7),), (tensor(2.0),))
    assert value == pytest.approx(expected_value.item(), rel=1e-15)
    assert tangent == pytest.approx(expected_tangent.item(), rel=1e-15)


@pytest.mark.parametrize("container", [tuple, list])
def test_jvp_of_several_outputs_keeps_their_container_and_order_as_torch_func_jvp(container):
    def f(a, b):
        return container([a * b, a.exp() - b])

    values, tangents = jvp(f, (0.3, -1.2), (1.0, 0.5))
    expected_values, expected_tangents = torch.func.jvp(
        lambda a, b: (a * b, a.exp() - b), (tensor(0.3), tensor(-1.2)), (tensor(1.0), tensor(0.5))
    )
    assert type(values) is container and type(tangents) is container
    assert list(values) == pytest.approx([e.item() for e in expected_values], rel=1e-15)
    assert list(tangents) == pytest.approx([e.item() for e in expected_tangents], rel=1e-15)


def test_jvp_of_outputs_that_do_not_depend_on_the_input_has_zero_tangents_as_torch_func_jvp():
    values, tangents = jvp(lambda x: (x * 2.0, 3.0, Value(4.0)), 1.5, 1.0)
    expected_values, expected_tangents = torch.func.jvp(
        lambda x: (x * 2.0, torch.tensor(3.0, dtype=torch.float64), torch.tensor(4.0, dtype=torch.float64)),
        (tensor(1.5),),
        (tensor(1.0),),
    )
    assert values == tuple(e.item() for e in expected_values) == (3.0, 3.0, 4.0)
    assert tangents == tuple(e.item() for e in expected_tangents) == (2.0, 0.0, 0.0)


def test_jvp_with_a_tangent_missing_says_how_many_of_each_it_got():
    with pytest.raises(ValueError) as caught:
        jvp(lambda a, b: a * b, (1.0, 2.0), (1.0,))
    says(caught, "jvp: 2 primal(s) but 1 tangent(s); give one tangent per input")


def test_jvp_through_a_backward_closure_names_the_node_and_asks_for_a_registered_op():
    def f(x):
        doubled = Value(2 * x.data, (x,), "double")
        doubled._backward = lambda: None
        return doubled.tanh()

    with pytest.raises(MiniGradError) as caught:
        jvp(f, 0.5, 1.0)
    says(caught, "jvp: node Value(data=1.0, grad=0.0) ('double') is passed on by a _backward closure")
    says(caught, "forward mode needs a registered op's rule")


def test_grad_of_several_arguments_is_torch_autograd_grad_and_leaves_grad_fields_alone():
    weight = Value(0.8)
    weight.grad = 5.0  # a caller's accumulated gradient: grad() must not touch it

    def f(a, b):
        return (a * b * weight).tanh() + a.exp()

    a, b = Value(0.3), Value(-1.2)
    a.grad = 7.0
    d_da, d_db = grad(f, argnums=(0, 1))(a.data, b.data)
    ta, tb = tensor(0.3, True), tensor(-1.2, True)
    expected = torch.autograd.grad((ta * tb * 0.8).tanh() + ta.exp(), [ta, tb])
    assert (d_da, d_db) == pytest.approx([e.item() for e in expected], rel=1e-15)
    assert type(d_da) is float
    nested = grad(f, argnums=(1,))(a, b)  # on Values: Values, part of the graph
    assert isinstance(nested, tuple) and isinstance(nested[0], Value)
    assert nested[0].data == pytest.approx(expected[1].item(), rel=1e-15)
    assert (weight.grad, a.grad) == (5.0, 7.0)


def test_grad_is_named_after_the_function_it_differentiates_as_tracebacks_show_it():
    def tanh(x):
        return x.tanh()

    assert grad(tanh).__name__ == "grad_tanh"
    assert grad(functools.partial(tanh)).__name__ == "grad_f"  # a callable without a name


def test_grad_of_a_function_that_ignores_its_input_is_zero_as_pytorch():
    t = tensor(2.0, True)
    (expected,) = torch.autograd.grad(t * 0.0 + 1.0, [t])
    assert grad(lambda x: 1.0)(2.0) == expected.item() == 0.0
    nested = grad(lambda x: 1.0)(Value(2.0))
    assert isinstance(nested, Value) and nested.data == 0.0


def test_grad_on_values_of_an_input_f_does_not_use_is_a_zero_value_and_its_grad_field_is_kept():
    """grad(f, argnums=0)(a, b) with f using only b: d/da is 0 (as PyTorch), a Value since a is
    one, and a.grad keeps what the caller had in it."""
    a, b = Value(1.0), Value(3.0)
    a.grad, b.grad = 7.0, 5.0
    t_a, t_b = tensor(1.0, True), tensor(3.0, True)
    (expected,) = torch.autograd.grad(t_b * 2.0, [t_a], allow_unused=True, materialize_grads=True)
    result = grad(lambda a, b: b * 2.0, argnums=0)(a, b)
    assert isinstance(result, Value) and result.data == expected.item() == 0.0
    assert (a.grad, b.grad) == (7.0, 5.0)


def test_a_derivative_rule_returning_an_int_too_large_for_a_float_is_an_error_naming_the_op():
    minigrad_core.register_op(
        OpSpec(name="steep", arity=1, forward=lambda x: 2 * x, derivative=lambda x, out: (10**400,))
    )
    x = Value(1.0)
    with pytest.raises(OpSpecError) as error:
        x.steep().backward()
    says(error, "op 'steep' (plugin 'runtime:steep'): derivative returned (1000", "too large for a float")


# -- the ops namespace: every op as a function of numbers, Values and arrays -------------------------


def test_the_ops_namespace_lists_every_registered_op_and_shows_each_op_s_formula_as_help(builtin_ops):
    assert dir(ops) == sorted(builtin_ops.ops)
    assert ops.tanh.__doc__ == "tanh(x)"  # no doc of its own: its formula
    assert ops.pow.__doc__ == builtin_ops.ops["pow"].doc != ""


def test_an_underscore_name_is_a_plain_attribute_error_as_tools_probing_for_hooks_expect():
    """IPython, pickle and inspect look up names such as _repr_html_: no op is looked for."""
    with pytest.raises(AttributeError) as caught:
        ops._repr_html_  # noqa: B018
    assert type(caught.value) is AttributeError and str(caught.value) == "_repr_html_"


def test_ops_on_numbers_with_a_parameter_compute_as_pytorch():
    assert ops.pow(1.5, exponent=3) == (tensor(1.5) ** 3).item()
    assert ops.tanh(0.5) == torch.tanh(tensor(0.5)).item()


@pytest.mark.parametrize("name", ["tanh", "relu", "exp", "neg", "sqrt"])
def test_ops_on_arrays_compute_elementwise_as_pytorch(name):
    array = np.array([0.25, 1.5, 4.0])
    expected = getattr(torch, name)(torch.from_numpy(array))
    assert getattr(ops, name)(array).tolist() == pytest.approx(expected.tolist(), rel=1e-15)


def test_ops_on_arrays_pass_parameters_and_a_second_input_as_pytorch():
    array, other = np.array([0.25, 1.5, 4.0]), np.array([2.0, -1.0, 0.5])
    assert ops.pow(array, exponent=3).tolist() == (torch.from_numpy(array) ** 3).tolist()
    assert ops.mul(array, other).tolist() == (torch.from_numpy(array) * torch.from_numpy(other)).tolist()
    assert ops.div(array, other).tolist() == (torch.from_numpy(array) / torch.from_numpy(other)).tolist()


def test_an_array_an_op_cannot_handle_gives_an_error_naming_the_op_its_input_and_its_parameters():
    with pytest.raises(OpSpecError) as caught:
        ops.tanh(np.array(["a"]))
    says(caught, "op 'tanh' (plugin 'minigrad_ops'): its forward rule raised TypeError", "array(['a']")
    with pytest.raises(OpDomainError) as caught:
        ops.pow(np.array(["a"]), exponent=2)
    says(caught, "pow(array(['a'], dtype='<U1'), exponent=2) is undefined: pow expects a base >= 0")


# -- the package's version ---------------------------------------------------------------------------


def test_the_version_is_the_one_written_in_pyproject():
    with open(ROOT / "pyproject.toml", "rb") as file:
        written = tomllib.load(file)["project"]["version"]
    assert minigrad_core.__version__ == written


def test_a_source_checkout_never_installed_reports_an_unknown_version(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert minigrad_core.__version__ == "0+unknown"


def test_an_unknown_attribute_of_the_package_names_the_package_and_the_attribute():
    with pytest.raises(AttributeError) as caught:
        minigrad_core.Tensor  # noqa: B018
    says(caught, "module 'minigrad_core' has no attribute 'Tensor'")
    assert not hasattr(minigrad_core, "Tensor")
