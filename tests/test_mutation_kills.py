"""Tests written to kill mutants that survived `bash scripts/mutation` and were real blind spots
(docs/testing.md lists the run). Each group names the mutants it kills; PyTorch float64 is the
oracle where there is a number to compare.
"""

import gc
import math
import warnings

import numpy as np
import pytest
import torch

import minigrad_ops
from minigrad_core import (
    AnomalyError,
    Domain,
    HigherOrderError,
    MissingRuleError,
    OpDomainError,
    OpRuleError,
    OpSpec,
    OpSpecError,
    OpZeroDivisionError,
    Registry,
    Value,
    apply,
    backward,
    backward_steps,
    chain_rule_step,
    detect_anomaly,
    hookimpl,
    using,
)
from minigrad_core.value import backward_observers


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


# == minigrad_core/value.py, the whole-module run ==================================================

# -- what a Value shows ----------------------------------------------------------------------------
# Survivors: __repr__ adding ", label=''" (or any text) to a Value without a label, and _short
# printing every parameter with :g, so a whole exponent of 8 digits showed as 1.23457e+07.


def test_a_value_without_a_label_shows_data_and_grad_only_as_in_micrograd():
    assert repr(Value(2.0)) == "Value(data=2.0, grad=0.0)"
    assert repr(Value(-0.5, label="w")) == "Value(data=-0.5, grad=0.0, label='w')"


def test_a_whole_exponent_is_shown_whole_in_the_op_text():
    x = Value(1.0)
    assert (x**12345678)._op == "**12345678"
    assert (x**0.5)._op == "**0.5"


# -- the chain rule while building the gradient graph ------------------------------------------------
# Survivors: _times taking a partial of 2.0 (or an upstream gradient of 2.0) for 1.0, and
# _accumulate adding a first contribution to 0.0 instead of taking it as it is (0.0 + -0.0 is +0.0,
# where PyTorch keeps -0.0); chain_rule_step dropping its create_graph flag is caught the same way.


def doubled(x):
    return 2.0 * x


DOUBLE = OpSpec(name="double", arity=1, forward=doubled, derivative=lambda x, out: (2.0,), torch=doubled)


def torch_gradient(function, at, seed=1.0):
    t = torch.tensor(at, dtype=torch.float64, requires_grad=True)
    seed = torch.tensor(seed, dtype=torch.float64)
    (gradient,) = torch.autograd.grad(function(t), [t], grad_outputs=seed, create_graph=True)
    return gradient.item()


def test_a_constant_partial_of_two_doubles_the_gradient_when_building_the_gradient_graph():
    x = Value(3.0)
    apply(DOUBLE, [x]).backward(create_graph=True)
    assert isinstance(x.grad, Value) and x.grad.data == torch_gradient(doubled, 3.0) == 2.0


def test_a_seed_gradient_of_two_scales_every_gradient_when_building_the_gradient_graph():
    x = Value(3.0)
    (x * x).backward(gradient=2.0, create_graph=True)
    assert x.grad.data == torch_gradient(lambda t: t * t, 3.0, seed=2.0) == 12.0


def test_the_gradient_of_x_times_x_at_minus_zero_is_minus_zero_as_pytorch():
    expected = torch_gradient(lambda t: t * t, -0.0)
    assert expected == 0.0 and math.copysign(1.0, expected) == -1.0
    x = Value(-0.0)
    (x * x).backward(create_graph=True)
    assert math.copysign(1.0, x.grad.data) == -1.0
    by_hand = Value(-0.0)
    y = by_hand * by_hand
    y.grad = Value(1.0)
    chain_rule_step(y, create_graph=True)
    assert math.copysign(1.0, by_hand.grad.data) == -1.0


# -- a rule that raises: the error says which op, which inputs, and which rule ------------------------
# Survivors in rule_error (no test made a rule raise a plain Python error): every ZeroDivisionError
# reported as a domain error or every domain error as a division by zero, the op's name, inputs or
# domain dropped from OpDomainError's fields, the reason dropped or saying "derivative" for a forward
# rule, a RuntimeError reported as a HigherOrderError (or as an OpSpecError), a TypeError as an OpRuleError.


def custom_op(name, forward, derivative=lambda x, out, **params: (1.0,), **params):
    return OpSpec(
        name=name, arity=1, forward=forward, derivative=derivative, params=params, domain=Domain(description="any x")
    )


def raising(error):
    def rule(*args, **params):
        raise error

    return rule


@pytest.mark.parametrize(
    "error, kind",
    [(ZeroDivisionError("no room"), OpZeroDivisionError), (ValueError("no room"), OpDomainError)],
    ids=["ZeroDivisionError", "ValueError"],
)
def test_a_forward_rule_s_arithmetic_error_is_a_domain_error_naming_the_op_and_its_input(error, kind):
    with pytest.raises(OpDomainError) as info:
        apply(custom_op("crowded", raising(error), scale=3), [Value(2.0)])
    assert type(info.value) is kind
    assert (info.value.op, info.value.inputs, info.value.expected) == ("crowded", (2.0, "scale=3"), "any x")
    assert info.value.reason == "no room"  # the rule's own words, not "its derivative rule ..."


def test_an_arithmetic_error_without_words_is_named_by_its_type():
    with pytest.raises(OpZeroDivisionError) as info:
        apply(custom_op("silent", raising(ZeroDivisionError())), [Value(2.0)])
    assert info.value.reason == "ZeroDivisionError"


def test_a_derivative_rule_s_arithmetic_error_says_it_was_the_derivative_rule():
    y = apply(custom_op("steep", math.sqrt, derivative=raising(ValueError("too steep"))), [Value(4.0)])
    assert y.data == 2.0  # the forward rule was fine
    with pytest.raises(OpDomainError) as info:
        y.backward()
    assert type(info.value) is OpDomainError and info.value.op == "steep" and info.value.inputs == (4.0,)
    assert "derivative" in info.value.reason and "too steep" in info.value.reason


@pytest.mark.parametrize("create_graph", [False, True], ids=["numbers", "create_graph"])
def test_a_derivative_rule_that_fails_otherwise_is_a_rule_error_not_a_higher_order_one(create_graph):
    y = apply(custom_op("flaky", doubled, derivative=raising(RuntimeError("lost"))), [Value(1.0)])
    with pytest.raises(OpRuleError) as info:
        y.backward(create_graph=create_graph)
    assert not isinstance(info.value, HigherOrderError)
    assert "'flaky'" in str(info.value) and "lost" in str(info.value)


def test_a_forward_rule_s_type_error_is_a_spec_error_and_other_failures_are_rule_errors():
    with pytest.raises(OpSpecError):
        apply(custom_op("typo", raising(TypeError("bad call"))), [Value(1.0)])
    with pytest.raises(OpRuleError) as info:
        apply(custom_op("broken", raising(RuntimeError("lost"))), [Value(1.0)])
    assert not isinstance(info.value, OpSpecError)


# -- a forward rule that returns something other than a float ----------------------------------------
# Survivors in _check_output: a complex result let through to float() (a TypeError instead of the
# op's domain error), and an int too large for a float turned into inf whatever its sign.


def test_a_forward_rule_returning_a_complex_number_is_a_domain_error_naming_the_op():
    root = custom_op("root", lambda x, degree: x ** (1 / degree), degree=2.0)
    assert apply(root, [Value(9.0)]).data == 3.0
    with pytest.raises(OpDomainError) as info:
        apply(root, [Value(-4.0)])  # Python gives (-4) ** 0.5 as a complex number
    assert (info.value.op, info.value.inputs) == ("root", (-4.0, "degree=2.0"))


@pytest.mark.parametrize("exponent", [400, 401])
def test_a_forward_rule_returning_an_int_too_large_for_a_float_is_inf_of_its_sign_as_pytorch(exponent):
    whole_power = custom_op("whole_power", lambda x: int(x) ** exponent)
    expected = (torch.tensor(-10.0, dtype=torch.float64) ** exponent).item()
    assert apply(whole_power, [Value(-10.0)]).data == expected == (math.inf if exponent % 2 == 0 else -math.inf)


# -- a derivative rule that returns a list, or partials that are not numbers ---------------------------
# Survivors: _checked_partials refusing a list of the right length (and taking one of the wrong
# length), and bad_partial_error / _spec_of, which no test reached: a partial of None, or of a
# list, must be an OpSpecError naming the op, also for a node made by hand as Value(..., "name").


def test_a_derivative_rule_may_return_a_list_of_the_right_length():
    y = apply(custom_op("listy", doubled, derivative=lambda x, out: [2.0]), [Value(1.0)])
    y.backward()
    assert y._prev[0].grad == 2.0
    short = apply(OpSpec(name="short", arity=2, forward=max, derivative=lambda a, b, out: [1.0]), [1.0, 2.0])
    with pytest.raises(OpSpecError, match=r"op 'short'.*2 for this node, but returned 1 partial"):
        short.backward()


@pytest.mark.parametrize("partial", [None, [1.0]], ids=["None", "a list"])
def test_a_partial_that_is_not_a_number_is_a_spec_error_naming_the_op(partial):
    bad = custom_op("bad_partial", doubled, derivative=lambda x, out: (partial,))
    with pytest.raises(OpSpecError, match=r"op 'bad_partial'"):
        apply(bad, [Value(1.0)]).backward()


class BadPartialPlugin:
    @hookimpl
    def minigrad_register_ops(self, register):
        register(custom_op("bad_partial", doubled, derivative=lambda x, out: (None,)))


def test_a_node_made_by_hand_with_an_op_whose_partial_is_not_a_number_names_the_op():
    with using(Registry.from_plugins(minigrad_ops, BadPartialPlugin())):
        x = Value(1.0)
        y = Value(2.0, (x,), "bad_partial")  # the seed's constructor, naming the registered op
        with pytest.raises(OpSpecError, match=r"op 'bad_partial'"):
            y.backward()


# -- parameters: defaults filled in, unknown ones refused ----------------------------------------------
# Survivors in bind_params: an op with parameters called without any got none (not its defaults),
# and an op without parameters took unknown ones silently; the errors lost the op's name.


def test_an_op_called_without_its_parameters_gets_their_defaults():
    y = apply(custom_op("scaled", lambda x, scale: scale * x, scale=3), [Value(2.0)])
    assert y.data == 6.0 and y.op_params == {"scale": 3}


def test_an_unknown_parameter_is_refused_naming_the_op_and_the_parameter():
    with pytest.raises(TypeError, match=r"op 'double' has no parameter\(s\) \['scale'\]"):
        apply(DOUBLE, [Value(1.0)], {"scale": 2})
    needy = custom_op("needy", lambda x, level: x, level=None)
    with pytest.raises(TypeError, match=r"op 'needy' needs the parameter 'level'"):
        apply(needy, [Value(1.0)])


# -- anomaly detection sees every new node ------------------------------------------------------------
# Survivor: apply() handing the node checks None instead of the node it made (no test in the
# mutation run's selection switched anomaly detection on).


def test_anomaly_detection_names_the_op_that_turned_a_finite_input_into_inf():
    with detect_anomaly():
        with pytest.raises(AnomalyError, match=r"op 'exp'"):
            Value(1000.0).exp()
        assert Value(1.0).exp().data == math.e  # a finite result passes


# -- the backward pass itself ---------------------------------------------------------------------------
# Survivors in backward_steps, backward, pass_gradient and local_derivatives.


def test_the_module_functions_default_to_a_first_order_pass_seeded_with_one():
    # backward(root) and backward_steps(root) with their defaults (create_graph=True or a seed of
    # 2.0 as defaults survived: Value.backward always passes both)
    x = Value(3.0)
    backward(x * x)
    assert type(x.grad) is float and x.grad == 6.0
    u = Value(3.0)
    for _ in backward_steps(u * u):
        pass
    assert type(u.grad) is float and u.grad == 6.0


def test_backward_observers_are_told_the_root():
    seen = []
    backward_observers.append(seen.append)
    try:
        y = Value(2.0) * 3.0
        y.backward()
    finally:
        backward_observers.remove(seen.append)
    assert seen == [y]


def test_a_value_seed_is_a_number_first_order_and_part_of_the_graph_when_building_it():
    x = Value(3.0)
    (x * x).backward(gradient=Value(2.0))
    assert type(x.grad) is float and x.grad == 12.0
    x, seed = Value(3.0), Value(2.0)
    (x * x).backward(gradient=seed, create_graph=True)
    assert x.grad.data == 12.0
    x.grad.backward()  # d/d seed of seed * 2x = 2x = 6
    assert seed.grad == torch_gradient(lambda s: s * 6.0, 2.0) == 6.0


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")  # torch's leak notice
def test_a_leaf_root_accumulates_its_gradient_over_passes_when_building_the_gradient_graph_as_pytorch():
    x = Value(2.0)
    x.backward(create_graph=True)
    x.backward(create_graph=True)
    t = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    t.backward(create_graph=True)
    t.backward(create_graph=True)
    assert x.grad.data == t.grad.item() == 2.0


def test_a_leaf_whose_grad_is_none_and_that_gets_nothing_has_a_zero_gradient():
    # grad = None (PyTorch's set_to_none habit) counts as zero; here the add node is skipped (its
    # upstream gradient is 0), so nothing else would turn the None into 0.0
    a, x = Value(0.0), Value(3.0)
    x.grad = None
    (a * (x + 1.0)).backward()
    assert x.grad == 0.0 and a.grad == 4.0


def test_a_node_with_a_zero_gradient_and_a_finite_value_is_skipped_and_not_yielded():
    a, x = Value(0.0), Value(3.0)
    shifted = x + 1.0
    y = a * shifted
    stepped = [node for node, _ in backward_steps(y)]
    assert stepped == [y]  # shifted gets 0 from a: it passes nothing on
    infinite = Value(math.inf)
    z = a * (infinite + 1.0)
    assert len([node for node, _ in backward_steps(z)]) == 2  # inf: 0 * its partial may be nan, so it steps


def test_a_closure_node_over_an_interior_node_passes_the_gradient_on_as_pytorch():
    # the seed's way: a node made by hand, with a _backward closure, over a registered op's node
    def twice_by_hand(h):
        out = Value(2.0 * h.data, (h,), "2*")

        def _backward():
            h.grad += 2.0 * out.grad

        out._backward = _backward
        return out

    expected = torch_gradient(lambda t: 2.0 * (t * t) * t, 3.0)
    x = Value(3.0)
    (twice_by_hand(x * x) * x).backward()  # x also gets a share through the outer mul first
    assert x.grad == expected == 54.0
    x = Value(3.0)
    (twice_by_hand(x * x) * x).backward(create_graph=True)  # the inner node's grad starts as None
    assert x.grad.data == expected


def test_a_labelled_leaf_made_as_an_op_does_not_stop_the_pass():
    x = Value(3.0)
    two = Value(2.0, (), "two")  # an op's text but no inputs: nothing to pass on
    (two * (x * x)).backward()
    assert x.grad == torch_gradient(lambda t: 2.0 * t * t, 3.0) == 12.0


def test_stepping_by_hand_into_an_input_whose_grad_is_none_counts_it_as_zero():
    x = Value(2.0)
    y = x * 3.0
    x.grad = None
    y.grad = 1.0
    y._backward()
    assert x.grad == 3.0


def test_a_derivative_rule_with_parameters_gets_the_output():
    scaled_exp = OpSpec(
        name="scaled_exp",
        arity=1,
        forward=lambda x, scale: scale * math.exp(x),
        derivative=lambda x, out, scale: (out,),
        params={"scale": 1.0},
    )
    x = Value(0.5)
    apply(scaled_exp, [x], {"scale": 3.0}).backward()
    assert x.grad == pytest.approx(torch_gradient(lambda t: 3.0 * t.exp(), 0.5), rel=1e-15)


def test_a_derivative_rule_s_domain_error_lists_the_parameters_with_the_inputs():
    steep = custom_op("steep2", lambda x, scale: scale * x, derivative=raising(ValueError("too steep")), scale=3)
    with pytest.raises(OpDomainError) as info:
        apply(steep, [Value(4.0)]).backward()
    assert info.value.inputs == (4.0, "scale=3")


def test_backward_turns_the_garbage_collector_back_on_and_leaves_it_off_if_it_was_off():
    assert gc.isenabled()
    (Value(2.0) * 3.0).backward()
    assert gc.isenabled()  # paused during the pass only
    gc.disable()
    try:
        (Value(2.0) * 3.0).backward()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_anomaly_detection_checks_every_backward_step():
    with detect_anomaly():
        y = Value(0.0).sqrt()  # finite, but its slope at 0 is inf
        with pytest.raises(AnomalyError, match=r"'sqrt'"):
            y.backward()
        x = Value(4.0)
        x.sqrt().backward()
        assert x.grad == 0.25  # a finite step passes


def test_an_op_s_result_has_no_label_and_a_node_made_by_hand_is_never_a_leaf():
    y = Value(2.0) * 3.0
    assert y.label == "" and repr(y) == "Value(data=6.0, grad=0.0)"
    two = Value(2.0, (), "two")
    assert (two._op, two.is_leaf) == ("two", False)
    a, b = Value(2.0), Value(3.0)
    unnamed = Value(6.0, (a, b))  # inputs but no op: backward cannot know its rule
    assert not unnamed.is_leaf
    with pytest.raises(MissingRuleError):
        unnamed.backward()


def test_a_leaf_root_seeded_with_minus_zero_keeps_the_sign_when_building_the_gradient_graph_as_pytorch():
    # survivor: the root leaf's seed added to its 0.0 (giving +0.0) instead of taken as it is
    x = Value(2.0)
    x.backward(gradient=-0.0, create_graph=True)
    t = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(t, [t], grad_outputs=torch.tensor(-0.0, dtype=torch.float64))
    assert x.grad.data == expected.item() == 0.0
    assert math.copysign(1.0, x.grad.data) == math.copysign(1.0, expected.item()) == -1.0
