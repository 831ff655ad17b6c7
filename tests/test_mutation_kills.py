"""Tests written to kill mutants that survived `bash scripts/mutation` and were real blind spots
(docs/testing.md lists the run). Each group names the mutants it kills; PyTorch float64 is the
oracle where there is a number to compare.
"""

import math
import warnings

import numpy as np
import pytest
import torch

import minigrad_ops
from minigrad_core import OpDomainError, OpZeroDivisionError, Registry, Value, using


@pytest.fixture(autouse=True)
def builtin_ops():
    with using(Registry.from_plugins(minigrad_ops)) as registry:
        yield registry


# -- the numpy forward rules refuse what the scalar rules refuse ---------------------------------
# Survivors: np_divide, np_log and np_power_of with their guard replaced by `if np.any(None)`,
# their comparisons moved (== 0 to == 1), and every word of their error messages changed: batched
# replay would have divided by zero silently, and no test read what the errors say.


def test_numpy_division_by_an_array_holding_zero_is_refused_naming_div():
    with pytest.raises(OpZeroDivisionError) as info:
        minigrad_ops.np_divide(np.array([1.0, 2.0]), np.array([3.0, 0.0]))
    assert str(info.value) == (
        "div('array', 'array containing 0') is undefined: div expects a non-zero divisor b (division by zero)"
    )
    assert list(minigrad_ops.np_divide(np.array([1.0, -3.0]), np.array([4.0, 1.5]))) == [0.25, -2.0]


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_numpy_log_of_an_array_holding_zero_or_less_is_refused_naming_log(bad):
    with pytest.raises(OpDomainError) as info:
        minigrad_ops.np_log(np.array([1.0, bad]))
    assert str(info.value) == "log(array containing values <= 0) is undefined: log expects x > 0"
    assert list(minigrad_ops.np_log(np.array([1.0, math.e]))) == [0.0, 1.0]


def test_numpy_power_refuses_a_negative_base_with_a_fractional_exponent():
    with pytest.raises(OpDomainError) as info:
        minigrad_ops.np_power_of(np.array([4.0, -8.0]), 0.5)
    assert str(info.value) == (
        "pow('array with a negative base') is undefined: "
        "pow expects a base >= 0 when the exponent is not a whole number"
    )
    with pytest.raises(OpDomainError, match=r"^power\("):
        minigrad_ops.np_power_of(np.array([-8.0]), np.array([0.5]), op="power")
    assert list(minigrad_ops.np_power_of(np.array([-2.0, 3.0]), 3)) == [-8.0, 27.0]  # whole exponents are fine


def test_numpy_power_refuses_a_zero_base_with_a_negative_exponent():
    with pytest.raises(OpZeroDivisionError) as info:
        minigrad_ops.np_power_of(np.array([2.0, 0.0]), -1)
    assert str(info.value) == (
        "pow('array with a zero base') is undefined: pow expects a non-zero base for a negative exponent "
        "(division by zero)"
    )
    assert list(minigrad_ops.np_power_of(np.array([1.0, 0.0]), 2)) == [1.0, 0.0]  # 1 ** -1 fine, 0 ** 2 fine
    assert list(minigrad_ops.np_power_of(np.array([1.0, 2.0]), -1)) == [1.0, 0.5]


# -- the numpy power rules take integer arrays and overflow quietly, as the scalar rules ------------
# Survivors: `np.asarray(x, dtype=float)` without the dtype, and `np.errstate(over="ignore")`
# dropped: numpy refuses integers to negative integer powers, and warns on overflow.


def test_numpy_power_of_integer_arrays_is_float_power_as_pytorch():
    got = minigrad_ops.np_power_of(np.array([2, 4]), np.array([-1, -2]))
    expected = torch.tensor([2.0, 4.0], dtype=torch.float64) ** torch.tensor([-1.0, -2.0], dtype=torch.float64)
    assert list(got) == expected.tolist() == [0.5, 0.0625]
    slope = minigrad_ops.np_power_derivative(np.array([2, 4]), np.array([-1, -2]))
    assert list(slope) == [-0.25, -2 * 4.0**-3]


def test_numpy_power_overflows_to_inf_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from numpy fails the test
        assert list(minigrad_ops.np_power_of(np.array([10.0, -10.0]), 401)) == [math.inf, -math.inf]
        assert list(minigrad_ops.np_power_derivative(np.array([1e300]), 3.0)) == [math.inf]
        assert list(minigrad_ops.np_power_derivative(np.array([0.0]), 0.5)) == [math.inf]  # 0 ** -0.5


# -- 1 / 0 inside a derivative rule on Values -----------------------------------------------------
# Survivor: reciprocal() reading a Value's data no more (`isinstance(x, Value) and False`): then
# d/dx sqrt(x) at 0 under create_graph=True divides a Value by 0 and raises, where PyTorch gives inf.


def test_the_derivative_of_sqrt_at_zero_is_inf_when_building_the_gradient_graph():
    x = Value(0.0)
    x.sqrt().backward(create_graph=True)
    t = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(t.sqrt(), [t], create_graph=True)
    assert isinstance(x.grad, Value) and x.grad.data == expected.item() == math.inf


# -- the scalar rules' errors say what went wrong -------------------------------------------------
# Survivors: log's guard loosened (`x >= 0`, `and math.isnan(x)`) and the messages of div, pow, sqrt and log
# changed word by word: math.log and math.sqrt raise anyway, so only the words tell them apart.


@pytest.mark.parametrize(
    "make, text",
    [
        (lambda: Value(0.0).log(), "log(0.0) is undefined: log expects x > 0 (log of zero is -inf)"),
        (lambda: Value(-1.0).log(), "log(-1.0) is undefined: log expects x > 0 (log of a negative number)"),
        (lambda: Value(1.0) / 0, "div(1.0, 0.0) is undefined: div expects a non-zero divisor b (division by zero)"),
        (
            lambda: Value(-8.0) ** 0.5,
            "pow(-8.0, 0.5) is undefined: pow expects a base >= 0 when the exponent is not a whole number "
            "(the result would be a complex number)",
        ),
        (
            lambda: Value(0.0) ** -1,
            "pow(0.0, -1) is undefined: pow expects a non-zero base for a negative exponent (division by zero)",
        ),
        (
            lambda: Value(-4.0).sqrt(),
            "sqrt(-4.0) is undefined: sqrt expects x >= 0 (the square root of a negative number is not real)",
        ),
    ],
)
def test_domain_errors_give_the_op_the_input_the_domain_and_the_reason(make, text):
    with pytest.raises(OpDomainError) as info:
        make()
    assert str(info.value) == text


# -- a ** b at a zero base -------------------------------------------------------------------------
# Survivors: power's derivative reading a Value base without .data (under create_graph=True,
# `Value == 0` compares identity, so d/db at a = 0 became nan), and `0.0 if b >= 0` made
# unconditional (0 ** nan has d/db nan in PyTorch, not 0).


def tensors(*values):
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]


def test_zero_to_a_positive_power_has_pytorch_s_gradients_when_building_the_gradient_graph():
    a, b = Value(0.0), Value(2.5)
    (a**b).backward(create_graph=True)
    at, bt = tensors(0.0, 2.5)
    expected = torch.autograd.grad(at**bt, [at, bt], create_graph=True)
    assert (a.grad.data, b.grad.data) == tuple(g.item() for g in expected) == (0.0, 0.0)


def test_zero_to_the_power_nan_has_nan_gradients_as_pytorch():
    a, b = Value(0.0), Value(math.nan)
    (a**b).backward()
    at, bt = tensors(0.0, math.nan)
    (at**bt).backward()
    assert math.isnan(b.grad) and math.isnan(bt.grad.item())
    assert math.isnan(a.grad) and math.isnan(at.grad.item())


# -- node._backward(), the seed's way of stepping a backward pass by hand ---------------------------
# Survivors in chain_rule_step (what a registered op's ``_backward`` runs): the op's output or its
# parameters not handed to the derivative rule, a ``grad = None`` node passing 1.0 (or failing),
# and a node made by hand as Value(data, children, "*") taken for a closure node.


def test_stepping_backward_by_hand_gives_pytorch_s_gradients():
    x = Value(0.5)
    h = x**3  # a parameter: exponent=3
    y = h.tanh()  # its rule uses its output: 1 - out**2
    y.grad = 1.0
    y._backward()
    h._backward()
    t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad((t**3).tanh(), [t])
    assert x.grad == pytest.approx(expected.item(), rel=1e-14)


def test_a_node_whose_grad_is_none_passes_nothing_by_hand():
    x = Value(2.0)
    y = x * 3.0
    y.grad = None  # PyTorch's set_to_none habit: counts as zero
    y._backward()
    assert x.grad == 0.0 and y.grad == 0.0


def test_a_node_made_by_hand_with_a_registered_op_steps_with_that_op_s_rule():
    a, b = Value(2.0), Value(-3.0)
    out = Value(-6.0, (a, b), "*")  # the seed's constructor, naming the registered op mul
    out.grad = 1.0
    out._backward()
    assert (a.grad, b.grad) == (-3.0, 2.0)


def test_stepping_by_hand_while_building_the_gradient_graph_keeps_the_gradient_a_value():
    from minigrad_core import chain_rule_step

    x = Value(2.0)
    y = x**3
    y.grad = Value(1.0)
    chain_rule_step(y, create_graph=True)
    assert isinstance(x.grad, Value) and x.grad.data == 12.0  # 3 x**2
    x_again = x.grad
    x.grad = 0.0
    x_again.backward()
    assert x.grad == 12.0  # d/dx 3 x**2 = 6 x: the gradient is a graph of x
    u = Value(0.5)
    v = u.tanh()  # a rule that reads its output: 1 - out**2
    v.grad = Value(1.0)
    chain_rule_step(v, create_graph=True)
    assert u.grad.data == pytest.approx(1 - math.tanh(0.5) ** 2, rel=1e-15)


# -- a rule that cannot run on arrays says so, instead of blaming the input's domain -----------------
# Survivors: _is_array_error's text changed or negated: numpy's "truth value of an array is
# ambiguous" (a ValueError) would then be reported as the op's domain error.


def test_a_rule_with_a_python_if_on_arrays_is_not_reported_as_a_domain_error():
    from minigrad_core import OpSpec, local_derivatives

    step = OpSpec(name="step_like", arity=1, forward=lambda x: x, derivative=lambda x, out: (1.0 if x > 0 else 0.0,))
    with pytest.raises(Exception) as info:
        local_derivatives(step, [np.array([1.0, -1.0])], np.array([1.0, -1.0]))
    assert not isinstance(info.value, OpDomainError), info.value
    assert "step_like" in str(info.value) and "truth value of an array" in str(info.value)
    assert local_derivatives(step, [2.0], 2.0) == (1.0,)


# -- overflow keeps the sign of the power ----------------------------------------------------------
# Survivor: `odd = float(e).is_integer() or ...` in power_of's overflow branch: (-10) ** 400 became -inf.


def test_an_overflowing_even_power_of_a_negative_base_is_plus_inf_as_pytorch():
    expected = (torch.tensor(-10.0, dtype=torch.float64) ** 400).item()
    assert (Value(-10.0) ** 400).data == expected == math.inf
    assert (Value(-10.0) ** 401).data == (torch.tensor(-10.0, dtype=torch.float64) ** 401).item() == -math.inf


# -- the infinite slope of a square root at 0, when building the gradient graph ---------------------
# Survivors: _power reading a Value's base (or exponent) without .data: under create_graph=True
# d/dx x ** 0.5 at 0 then tried Value(0) ** -0.5 and raised, where PyTorch gives inf.


@pytest.mark.parametrize("zero", [0.0, -0.0], ids=["+0", "-0"])
@pytest.mark.parametrize("exponent_is_a_value", [False, True], ids=["pow", "power"])
def test_the_slope_of_x_to_the_half_at_zero_is_pytorch_s_inf_when_building_the_gradient_graph(
    exponent_is_a_value, zero
):
    # PyTorch: -inf at -0.0 for a number exponent (1 / sqrt), +inf for a tensor exponent (pow)
    x = Value(zero)
    (x ** (Value(0.5) if exponent_is_a_value else 0.5)).backward(create_graph=True)
    t = torch.tensor(zero, dtype=torch.float64, requires_grad=True)
    half = torch.tensor(0.5, dtype=torch.float64, requires_grad=True) if exponent_is_a_value else 0.5
    (expected,) = torch.autograd.grad(t**half, [t], create_graph=True)
    assert math.isinf(x.grad.data) and x.grad.data == expected.item()
    plain = Value(zero)
    (plain ** (Value(0.5) if exponent_is_a_value else 0.5)).backward()
    assert plain.grad == expected.item()  # the same without the gradient graph
