"""The Value type: what it holds, what it refuses, the seed's names."""

import math

import pytest

from minigrad_core import MissingRuleError, Value


@pytest.mark.parametrize("bad", ["a", None, [1], (1.0,), {"x": 1}, 1j, complex(1, 0), b"1"])
def test_value_refuses_what_is_not_a_real_number(bad):
    with pytest.raises(TypeError) as info:
        Value(bad)
    message = str(info.value)
    assert "real number" in message and type(bad).__name__ in message


def test_value_refuses_a_value_and_says_to_use_it_directly():
    with pytest.raises(TypeError, match="already a Value"):
        Value(Value(1.0))


@pytest.mark.parametrize("number, expected", [(True, 1.0), (False, 0.0), (3, 3.0), (-2.5, -2.5)])
def test_bools_and_ints_are_numbers(number, expected):
    v = Value(number)
    assert v.data == expected and type(v.data) is float


def test_numpy_numbers_are_accepted():
    np = pytest.importorskip("numpy")
    assert Value(np.float32(0.5)).data == 0.5
    assert Value(np.int64(7)).data == 7.0


def test_nan_and_inf_pass_through_like_pytorch():
    torch = pytest.importorskip("torch")
    for x in (math.nan, math.inf, -math.inf):
        ours = (Value(x) * 2 + 1).tanh().data
        theirs = (torch.tensor(x, dtype=torch.float64) * 2 + 1).tanh().item()
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs


def test_seed_names_are_where_the_walkthrough_says():
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = a * b
    c.label = "c"
    assert (a.data, a.grad, a._prev, a._op, a.label) == (2.0, 0.0, (), "", "a")
    assert c._prev == (a, b) and c._op == "*"
    assert repr(c) == "Value(data=-6.0, grad=0.0, label='c')"
    c.grad = 1.0
    c._backward()  # one step of the chain rule, as in the seed
    assert (a.grad, b.grad) == (-3.0, 2.0)


def test_backward_is_built_on_access_so_no_node_stores_a_closure():
    x = Value(1.0)
    y = x.tanh()
    assert vars(y) == {} and not y.has_closure  # nothing stored on the node can hold a closure to y
    assert y._backward is not y._backward


def test_op_symbol_shows_number_parameters_like_the_seed():
    x = Value(3.0)
    assert (x**2)._op == "**2"
    assert (x ** Value(2.0))._op == "**"
    assert x.tanh()._op == "tanh"


def test_constructor_resolves_a_registered_op_by_symbol():
    a, b = Value(2.0), Value(5.0)
    c = Value(7.0, (a, b), "+")
    c.backward()
    assert (a.grad, b.grad) == (1.0, 1.0)


def test_an_unregistered_op_text_is_a_label_and_backward_says_how_to_give_it_a_rule():
    node = Value(1.0, (Value(1.0),), "frobnicate")
    assert node._op == "frobnicate" and not node.is_leaf
    with pytest.raises(MissingRuleError, match=r"frobnicate.*no _backward closure"):
        node.backward()


def test_comparisons_read_the_data():
    assert Value(1.0) < Value(2.0) and Value(3.0) > 2 and Value(2.0) >= 2 and not Value(0.0)
    assert max([Value(1.0), Value(5.0), Value(3.0)]).data == 5.0


def test_no_float_conversion_so_math_functions_cannot_silently_cut_the_graph():
    with pytest.raises(TypeError):
        math.cos(Value(1.0))
