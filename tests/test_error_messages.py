"""What the kernel's error messages say, path by path (minigrad_core/value.py).

The house rule: bad input gets an error that names the op (and its plugin), quotes the value it
was given, and says what was expected. Other tests check the type and fields of these errors;
these read the words, as a learner would, so that a message cannot lose the op's name, the
offending value or the hint without a test failing (mutation testing showed that nothing
noticed: docs/testing.md). Each test makes the mistake the way a user would: through
``Value(...)``, an op's method, ``ops.<name>(...)`` or ``backward()``, with ops registered at
run time as in a notebook (``register_op``, plugin ``runtime:<name>``).
"""

import math

import pytest

import minigrad_ops
from minigrad_core import (
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
    backward,
    ops,
    register_op,
    using,
)


@pytest.fixture(autouse=True)
def notebook():
    """The built-in ops; what a test registers at run time disappears with the registry."""
    with using(Registry.from_plugins(minigrad_ops)) as registry:
        yield registry


def message_of(kind, make_the_mistake):
    """The message of the error of type ``kind`` that ``make_the_mistake()`` raises."""
    with pytest.raises(kind) as info:
        make_the_mistake()
    return str(info.value)


def unary(name, forward=lambda x: x, derivative=lambda x, out, **params: (1.0,), **fields):
    return register_op(OpSpec(name=name, arity=1, forward=forward, derivative=derivative, **fields))


def binary(name, forward=lambda a, b: a + b, derivative=lambda a, b, out, **params: (1.0, 1.0), **fields):
    return register_op(OpSpec(name=name, arity=2, forward=forward, derivative=derivative, **fields))


def raising(error):
    def rule(*inputs, **params):
        raise error

    return rule


# -- Value(...): the number, the inputs and the op text -------------------------------------------


@pytest.mark.parametrize(
    "data, quoted",
    [
        ("abc", "got 'abc' of type str (convert text with float(...) first)"),
        (1 + 2j, "got (1+2j) of type complex (complex numbers are not supported)"),
        (Value(1.5), "got Value(data=1.5, grad=0.0) of type Value (it is already a Value: use it directly)"),
    ],
    ids=["text", "complex", "a Value"],
)
def test_a_value_of_something_that_is_not_a_real_number_quotes_it_and_says_what_to_do(data, quoted):
    """Value("abc"), Value(1 + 2j), Value(Value(1.5)): the text, the complex number, the Value."""
    text = message_of(TypeError, lambda: Value(data))
    assert text.startswith("a Value holds one real number (int, float or bool), ")
    assert text.endswith(quoted)


def test_a_value_of_a_list_quotes_the_list_and_adds_no_hint():
    """Value([1.0, 2.0]), thinking a Value holds a vector: the message ends with the type."""
    text = message_of(TypeError, lambda: Value([1.0, 2.0]))
    assert text == "a Value holds one real number (int, float or bool), got [1.0, 2.0] of type list"


@pytest.mark.parametrize("sign", [1, -1], ids=["huge", "hugely negative"])
def test_a_value_of_an_int_too_large_for_a_float_quotes_its_start_and_the_largest_float(sign):
    """Value(10 ** 400): the number is quoted (cut short), with the limit it is over."""
    huge = sign * 10**400
    text = message_of(OverflowError, lambda: Value(huge))
    assert text.startswith(f"Value holds a float; {str(huge)[:50]}")
    assert text.endswith("more characters) is too large for one (the largest is about 1.8e308)")


def test_comparing_a_value_with_text_quotes_the_text():
    """x < "3": the comparison reads the number, and text is not one."""
    text = message_of(TypeError, lambda: Value(2.0) < "3")
    assert text.endswith("got '3' of type str (convert text with float(...) first)")


def test_a_seed_gradient_given_as_text_quotes_the_text():
    """y.backward(gradient="1"): the seed of the pass is a number, too."""
    text = message_of(TypeError, lambda: (Value(2.0) * 3.0).backward(gradient="1"))
    assert text.endswith("got '1' of type str (convert text with float(...) first)")


def test_an_input_that_is_not_a_value_is_quoted_with_its_type():
    """Value(data, (x, "y"), "+"), the seed's constructor given the name of an input."""
    x = Value(2.0)
    text = message_of(TypeError, lambda: Value(5.0, (x, "y"), "+"))
    assert text == "Value children must be Values, got 'y' (str)"


def test_an_op_that_is_not_text_is_quoted_and_an_example_is_given():
    """Value(data, (x,), math.tanh): the function instead of the op's name."""
    text = message_of(TypeError, lambda: Value(math.tanh(0.5), (Value(0.5),), math.tanh))
    assert text == "Value(..., _op=...) must be text such as 'tanh', got <built-in function tanh>"


def test_a_backward_closure_that_is_not_a_function_is_quoted():
    """out._backward = _backward() (called, not assigned) or _backward, (a stray comma)."""
    x = Value(2.0)
    out = Value(4.0, (x,), "square")

    def _backward():
        x.grad += 2 * x.data * out.grad

    def assign_the_call():
        out._backward = _backward()

    def assign_a_tuple():
        out._backward = (_backward,)

    assert message_of(TypeError, assign_the_call) == "_backward must be a function of no arguments, got None"
    text = message_of(TypeError, assign_a_tuple)
    assert text.startswith("_backward must be a function of no arguments, got (<function ")
    assert "_backward at 0x" in text


# -- calling an op: how many inputs, which parameters ------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_an_op_called_with_the_wrong_number_of_inputs_says_how_many_it_takes(count):
    """ops.geo(a, b, c) for an op of two inputs (or ops.geo(a))."""
    binary("geo", forward=lambda a, b: math.sqrt(a * b))
    inputs = [Value(2.0)] * count
    assert message_of(TypeError, lambda: ops.geo(*inputs)) == f"op 'geo' takes 2 input(s), got {count}"


def test_an_unknown_parameter_is_listed_with_the_parameters_the_op_has():
    """x.scaled(j=2.0) for an op whose parameter is k (a typo)."""
    unary("scaled", forward=lambda x, k: k * x, derivative=lambda x, out, k: (k,), params={"k": 1.0})
    text = message_of(TypeError, lambda: Value(2.0).scaled(j=2.0, kk=1.0))
    assert text == "op 'scaled' has no parameter(s) ['j', 'kk']; its parameters: ['k']"


def test_a_parameter_without_a_default_left_out_is_named():
    """x.clipped() for an op whose parameter `limit` has no default (None)."""
    unary("clipped", forward=lambda x, limit: min(x, limit), params={"limit": None})
    assert message_of(TypeError, lambda: Value(2.0).clipped()) == "op 'clipped' needs the parameter 'limit'"
    assert Value(2.0).clipped(limit=1.5).data == 1.5  # given, it works


def test_a_value_given_as_a_parameter_names_the_op_and_the_parameter():
    """x.scaled(k=w) with w a Value: a parameter is a constant, not part of the graph."""
    unary("scaled", forward=lambda x, k: k * x, derivative=lambda x, out, k: (k,), params={"k": 1.0})
    text = message_of(TypeError, lambda: Value(2.0).scaled(k=Value(3.0)))
    assert text == (
        "op 'scaled': parameter 'k' must be a number, not a Value (got Value(data=3.0, grad=0.0); "
        "gradients do not flow into parameters: pass its .data)"
    )


# -- a forward rule that fails or returns something other than a real number ----------------------------


def test_a_forward_rule_that_raises_is_named_with_its_plugin_its_error_and_every_input():
    """A forward rule with a bug (it raises RuntimeError) called with two inputs and a parameter."""
    binary("drift", forward=raising(RuntimeError("lost its way")), params={"k": 3})
    text = message_of(OpRuleError, lambda: ops.drift(Value(2.0), Value(-3.5)))
    assert text == "op 'drift' (plugin 'runtime:drift'): its forward rule raised RuntimeError: lost its way " + (
        "(inputs: 2.0, -3.5, k=3)"
    )


def test_a_forward_rule_called_wrongly_is_named_with_its_error():
    """A forward rule that raises TypeError itself (a bad call inside it) on a plain number."""
    unary("typo", forward=raising(TypeError("unsupported operand")))
    text = message_of(OpSpecError, lambda: ops.typo(1.5))
    assert (
        text
        == "op 'typo' (plugin 'runtime:typo'): its forward rule raised TypeError: unsupported operand (inputs: 1.5)"
    )


def test_a_forward_rule_returning_a_complex_number_is_an_error_of_the_op_s_domain():
    """A root of a negative number: Python's (-4) ** 0.5 is complex, not an error."""
    unary(
        "root",
        forward=lambda x, degree: x ** (1 / degree),
        derivative=lambda x, out, degree: (out / (degree * x),),
        params={"degree": 2},
        domain=Domain(description="x >= 0 for an even degree"),
    )
    text = message_of(OpDomainError, lambda: Value(-4.0).root())
    assert text == (
        "root(-4.0, degree=2) is undefined: root expects x >= 0 for an even degree "
        "(the result would be a complex number)"
    )


@pytest.mark.parametrize("returned, quoted", [("4.0", "'4.0'"), (None, "None")], ids=["text", "None"])
def test_a_forward_rule_returning_something_other_than_a_number_quotes_it(returned, quoted):
    """A forward rule that returns text (a formatted number), or nothing (a forgotten return)."""
    unary("sloppy", forward=lambda x: returned)
    text = message_of(OpSpecError, lambda: Value(2.0).sloppy())
    assert text == f"op 'sloppy' (plugin 'runtime:sloppy'): forward returned {quoted}, not a real number"


# -- a derivative rule that fails --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error, kind",
    [
        (ZeroDivisionError("float division by zero"), OpZeroDivisionError),
        (ValueError("math domain error"), OpDomainError),
    ],
    ids=["ZeroDivisionError", "ValueError"],
)
def test_a_derivative_rule_s_arithmetic_error_says_the_derivative_rule_raised_it(error, kind):
    """A derivative rule that divides by zero (or leaves math's domain) where the forward was fine."""
    unary("steep", derivative=raising(error), domain=Domain(description="x > 0"))
    y = Value(2.0).steep()
    text = message_of(kind, y.backward)
    name = type(error).__name__
    assert text == f"steep(2.0) is undefined: steep expects x > 0 (its derivative rule raised {name}: {error})"


@pytest.mark.parametrize("create_graph", [False, True], ids=["numbers", "create_graph"])
def test_a_derivative_rule_that_raises_is_named_with_its_plugin_its_error_and_every_input(create_graph):
    """A derivative rule with a bug (RuntimeError) on a node of two inputs and a parameter."""
    binary("drift", forward=lambda a, b, k: a + k * b, derivative=raising(RuntimeError("lost")), params={"k": 3})
    y = ops.drift(Value(2.0), Value(-3.5))
    text = message_of(OpRuleError, lambda: y.backward(create_graph=create_graph))
    assert text.startswith(
        "op 'drift' (plugin 'runtime:drift'): its derivative rule raised RuntimeError: lost (inputs: "
    )
    assert text.endswith(", k=3)")
    if create_graph:  # the rule was given the Values themselves, and they are quoted as such
        assert "(inputs: Value(data=2.0, " in text and ", Value(data=-3.5, " in text
    else:
        assert "(inputs: 2.0, -3.5, k=3)" in text


def test_a_derivative_rule_s_type_error_on_numbers_is_named_with_its_error():
    """A derivative rule that raises TypeError on plain numbers: a bug, not a higher-order limit."""
    unary("typo", derivative=raising(TypeError("bad call")))
    y = Value(2.0).typo()
    text = message_of(OpSpecError, y.backward)
    assert text == "op 'typo' (plugin 'runtime:typo'): its derivative rule raised TypeError: bad call (inputs: 2.0)"


def test_a_derivative_rule_that_works_on_numbers_only_quotes_its_error_when_differentiated_twice():
    """math.cos in a derivative rule, then backward(create_graph=True): math.cos takes no Value."""
    unary("msin", forward=math.sin, derivative=lambda x, out: (math.cos(x),))
    with pytest.raises(TypeError) as python:
        math.cos(Value(0.5))
    python_says = f"TypeError: {python.value}"
    y = Value(0.5).msin()
    text = message_of(HigherOrderError, lambda: y.backward(create_graph=True))
    assert text.startswith(
        "op 'msin' (plugin 'runtime:msin') cannot be differentiated twice: its derivative rule works on numbers only "
        f"({python_says}). "
    )


def test_an_op_declared_first_order_only_says_so_when_differentiated_twice():
    """backward(create_graph=True) through an op whose OpSpec says higher_order=False."""
    unary("cube", forward=lambda x: x**3, derivative=lambda x, out: (3 * x * x,), higher_order=False)
    y = Value(2.0).cube()
    text = message_of(HigherOrderError, lambda: y.backward(create_graph=True))
    assert text == (
        "op 'cube' (plugin 'runtime:cube') cannot be differentiated twice: its derivative rule works on numbers only "
        "(its OpSpec says higher_order=False). First-order backward() still works; to support create_graph=True, "
        "write the rule with Value arithmetic and minigrad_core.ops functions."
    )


# -- a derivative rule that returns the wrong thing -----------------------------------------------------------

HOW_TO_RETURN = "(return a tuple, e.g. (d,) for one input, (da, db) for two)"


@pytest.mark.parametrize(
    "returned, got",
    [
        (None, "None (did the rule forget to return?)"),
        (2.0, "2.0, a bare number"),
        ((1.0, 2.0), "2 partial(s)"),
        ({"x": 1.0}, "{'x': 1.0} of type dict"),
    ],
    ids=["None", "a bare number", "two partials", "a dict"],
)
def test_a_derivative_rule_returning_the_wrong_partials_says_what_it_returned_and_what_to_return(returned, got):
    """A derivative rule that forgets to return, returns a number without the tuple, one partial
    too many, or a dict by input name, for an op of one input."""
    unary("sloppy", derivative=lambda x, out: returned)
    y = Value(2.0).sloppy()
    text = message_of(OpSpecError, y.backward)
    assert text == (
        "op 'sloppy' (plugin 'runtime:sloppy'): derivative must return one partial per input, "
        f"1 for this node, but returned {got} {HOW_TO_RETURN}"
    )


def test_a_derivative_rule_returning_a_bare_value_when_building_the_gradient_graph_quotes_the_value():
    """A derivative rule written with Value arithmetic, `2 * x` without the tuple, under create_graph=True."""
    unary("double", forward=lambda x: 2 * x, derivative=lambda x, out: 2 * x)
    y = Value(1.5).double()
    text = message_of(OpSpecError, lambda: y.backward(create_graph=True))
    assert "returned Value(data=3.0, grad=0.0), a bare number" in text


def test_a_derivative_rule_of_two_inputs_returning_one_partial_says_two_were_expected():
    """A derivative rule of `a * b` that returns only d/da."""
    binary("times", forward=lambda a, b: a * b, derivative=lambda a, b, out: (b,))
    y = ops.times(Value(2.0), Value(3.0))
    text = message_of(OpSpecError, y.backward)
    assert "derivative must return one partial per input, 2 for this node, but returned 1 partial(s)" in text


@pytest.mark.parametrize(
    "partials, bad",
    [((1.0, None), "None"), ((1.0, "0.5"), "'0.5'")],
    ids=["None", "text"],
)
def test_a_partial_that_is_not_a_number_is_quoted_with_all_the_partials(partials, bad):
    """A derivative rule whose second partial is None (a branch that forgot it) or text."""
    binary("mixed", derivative=lambda a, b, out: partials)
    y = ops.mixed(Value(2.0), Value(3.0))
    text = message_of(OpSpecError, y.backward)
    assert text == (
        f"op 'mixed' (plugin 'runtime:mixed'): derivative returned {partials!r}; "
        f"each partial must be a number (or a Value), not {bad}"
    )


def test_a_partial_that_is_a_list_is_quoted():
    """A derivative rule that returns ([d],): the partial wrapped once too often."""
    unary("wrapped", derivative=lambda x, out: ([1.0],))
    y = Value(2.0).wrapped()
    text = message_of(OpSpecError, y.backward)
    assert text == (
        "op 'wrapped' (plugin 'runtime:wrapped'): derivative returned ([1.0],); "
        "each partial must be a number (or a Value), not [1.0]"
    )


# -- nodes made by hand, the seed's way: Value(data, children, "op") ---------------------------------------


def test_a_node_made_by_hand_with_an_op_no_plugin_registers_says_how_to_give_it_a_rule():
    """Value(4.0, (x,), "squared"), then backward() without setting out._backward."""
    x = Value(2.0)
    y = Value(4.0, (x,), "squared", label="y")
    text = message_of(MissingRuleError, y.backward)
    assert text == (
        "backward() reached the node Value(data=4.0, grad=1.0, label='y') made as Value(..., _op='squared') "
        "from 1 input(s), and it has no rule to pass its gradient on: no registered op is called 'squared' "
        "for 1 input(s), and no _backward closure was set. Either set one, as the seed does "
        "(out._backward = _backward, where _backward adds local_derivative * out.grad to each input's grad), "
        "or register an OpSpec named 'squared' (minigrad_core.register_op / @op) and build the node with it."
    )


def test_a_node_made_by_hand_with_a_registered_op_of_another_arity_gives_the_count_it_was_made_with():
    """Value(y, (a, b), "tanh"): tanh is registered, but for one input."""
    a, b = Value(0.5), Value(0.25)
    y = Value(math.tanh(0.75), (a, b), "tanh")
    text = message_of(MissingRuleError, y.backward)
    assert "made as Value(..., _op='tanh') from 2 input(s)" in text
    assert "no registered op is called 'tanh' for 2 input(s)" in text


def test_a_node_made_by_hand_with_a_registered_op_fails_as_the_op_does_naming_it():
    """Value(y, (x,), "drift") names a registered op whose derivative rule fails, and one that
    is first order only, differentiated twice: the errors name the op and its plugin."""
    unary("drift", derivative=raising(RuntimeError("lost")))
    unary("cube", forward=lambda x: x**3, derivative=lambda x, out: (3 * x * x,), higher_order=False)
    x = Value(2.0)
    drifted = Value(2.0, (x,), "drift")
    text = message_of(OpRuleError, drifted.backward)
    assert text == "op 'drift' (plugin 'runtime:drift'): its derivative rule raised RuntimeError: lost (inputs: 2.0)"
    cubed = Value(8.0, (x,), "cube")
    text = message_of(HigherOrderError, lambda: cubed.backward(create_graph=True))
    assert "op 'cube' (plugin 'runtime:cube') cannot be differentiated twice" in text
    assert "(its OpSpec says higher_order=False)" in text


# -- backward() of something that is not a Value --------------------------------------------------------------


def test_backward_of_a_number_quotes_the_number():
    """backward(loss.data): the number, not the node it came from."""
    loss = Value(2.0) * 3.0
    assert message_of(TypeError, lambda: backward(loss.data)) == "backward() needs a Value, got 6.0"
