"""The safe expression parser: what it builds (checked against PyTorch) and what it refuses."""

from __future__ import annotations

import ast
import builtins
import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad_ops
from minigrad_core import MiniGradError, OpSpec, Registry, Value, hookimpl, using
from minigrad_explain.expr import ExpressionError, build, parse, parse_bindings

SEED = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)


class ExtraOps:
    """Ops with a parameter and with any number of inputs, to exercise calls."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(
                name="leaky_relu",
                arity=1,
                params={"slope": 0.01},
                forward=lambda x, slope: x if x > 0 else slope * x,
                derivative=lambda x, out, slope: (1.0 if x > 0 else slope,),
            )
        )
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
                name="clamp",
                arity=1,
                params={"low": None, "high": None},
                forward=lambda x, low, high: min(max(x, low), high),
                derivative=lambda x, out, low, high: (1.0 if low < x < high else 0.0,),
            )
        )


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, ExtraOps())) as active:
        yield active


def torch_leaves(**values):
    return {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in values.items()}


def leaf(root: Value, name: str) -> Value:
    from minigrad_core import topological_order

    (found,) = [n for n in topological_order(root) if n.label == name and n._spec is None]
    return found


# -- what it builds ----------------------------------------------------------------------------


def test_seed_neuron_matches_torch():
    o = build("tanh(x1*w1 + x2*w2 + b)", **SEED)
    o.backward()
    t = torch_leaves(**SEED)
    expected = torch.tanh(t["x1"] * t["w1"] + t["x2"] * t["w2"] + t["b"])
    expected.backward()
    assert o.data == pytest.approx(expected.item(), abs=1e-12)
    assert o._op == "tanh"
    for name in SEED:
        assert leaf(o, name).grad == pytest.approx(t[name].grad.item(), abs=1e-12), name


def test_every_name_is_one_labelled_leaf():
    out = build("x*x + x", x=3)
    out.backward()
    x = leaf(out, "x")
    assert x.grad == 7.0  # d(x^2 + x)/dx at 3: both uses add up
    assert parse("x*x + y*x").names == ("x", "y")


def test_bound_values_are_used_as_given():
    w = Value(-2.0, label="weight")
    out = build("x * w", x=4, w=w)
    out.backward()
    assert out._prev[1] is w and w.grad == 4.0


def test_operators_follow_python_semantics_of_values():
    x = build("x ** 2", x=3)
    assert x._op == "**2" and x._params == {"exponent": 2}
    assert build("x ** y", x=2, y=3)._spec.name == "power"
    assert build("2 ** x", x=3).data == 8.0
    assert build("-x", x=3)._spec.name == "neg"
    assert build("x / 4 - 1", x=2).data == -0.5


def test_number_only_parts_are_computed_at_once():
    out = build("2**0.5 * x", x=1)
    constant, _ = out._prev
    assert constant._spec is None and constant.data == pytest.approx(math.sqrt(2))
    assert build("tanh(2) * 3").data == pytest.approx(3 * math.tanh(2))
    assert build("-3").data == -3.0  # a bare number is a leaf Value


def test_calls_with_parameters_and_any_number_of_inputs():
    assert build("leaky_relu(x, slope=0.2)", x=-1).data == pytest.approx(-0.2)
    assert build("leaky_relu(x, 0.2)", x=-1).data == pytest.approx(-0.2)
    assert build("leaky_relu(x)", x=-1).data == pytest.approx(-0.01)
    assert build("leaky_relu(x, slope=-0.5*2)", x=-1).data == pytest.approx(1.0)  # a constant expression
    assert build("pow(x, exponent=3)", x=2).data == 8.0
    assert build("clamp(x, low=0, high=1)", x=3).data == 1.0
    out = build("total(a, b, a*b, 1)", a=2, b=3)
    assert out.data == 12.0 and len(out._prev) == 4


def test_long_sums_evaluate_without_recursion():
    out = build(" + ".join(["x"] * 900), x=1)
    out.backward()
    assert out.data == 900.0 and leaf(out, "x").grad == 900.0


def test_leading_whitespace_and_line_breaks_inside_parentheses():
    assert build("   (x\n  + 1)", x=1).data == 2.0


def test_the_parser_never_runs_python_code(monkeypatch):
    """eval and exec are never called; compile only to build a syntax tree (ast.parse)."""
    real_compile = builtins.compile

    def forbidden(*args, **kwargs):
        raise AssertionError("the expression parser must not run Python code")

    def tree_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            raise AssertionError("compile() may only build a syntax tree")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", tree_only)
    assert build("tanh(x1*w1 + x2*w2 + b)", **SEED).data == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ExpressionError):
        build("__import__('os').system('echo no')")


# -- what it refuses, and where it points ------------------------------------------------------

REFUSED = [
    ("__import__('os')", "unknown function '__import__'", 1),
    ("__import__('os').system('ls')", "attribute access ('.system')", 17),
    ("x.real", "attribute access ('.real')", 2),
    ("(lambda: x)()", "lambda is not allowed", 2),
    ("tanh(x)(y)", "only ops can be called", 1),
    ("lambda: 1", "lambda is not allowed", 1),
    ("x[0]", "subscripts", 1),
    ("[t for t in x]", "comprehensions", 1),
    ("sum(t for t in x)", "unknown function 'sum'", 1),
    ("tanh(x) + foo(y)", "unknown function 'foo'", 11),
    ("x + z", "unknown name 'z'", 5),
    ("_secret + x", "names starting with '_'", 1),
    ("x // 2", "operator '//' is not allowed", 3),
    ("x % 2", "operator '%' is not allowed", 3),
    ("'text'", "text", 1),
    ("x, y", "tuples", 1),
    ("x < y", "comparisons", 1),
    ("x if y else 1", "conditional", 1),
    ("(y := 2)", "assignments", 2),
    ("f'{x}'", "f-strings", 1),
    ("True * x", "not a number", 1),
    ("x + 1j", "complex numbers", 5),
    ("+x", "unary '+'", 1),
    ("not x", "unary 'not'", 1),
    ("tanh(*x)", "'*' unpacking", 6),
    ("tanh(x, 2)", "takes 1 input(s)", 1),
    ("tanh(x, slope=1)", "has no parameter 'slope'", 9),
    ("clamp(x, low=0)", "needs the parameter 'high'", 1),
    ("leaky_relu(x, slope=y)", "must be a number", 21),
    ("leaky_relu(x, 0.1, slope=0.2)", "got parameter 'slope' twice", 1),
    ("total()", "at least one input", 1),
    ("log(x - 5)", "log(-2.0) is undefined", 1),
    ("x / (y - 2)", "division by zero", 1),
    ("x +* 2", "cannot parse", 4),
    ("", "empty", None),
]


@pytest.mark.parametrize("text, fragment, column", REFUSED)
def test_refusals_are_clear_and_point_at_the_part(text, fragment, column):
    with pytest.raises(ExpressionError) as caught:
        build(text, x=3.0, y=2.0)
    error = caught.value
    assert isinstance(error, MiniGradError) and isinstance(error, ValueError)
    assert fragment in str(error)
    assert error.column == column
    if column is not None:
        source_line, caret_line = str(error).splitlines()[-2:]
        assert source_line.strip() == text.strip()
        assert caret_line.index("^") - caret_line.index(caret_line.strip()[0]) == 0
        assert caret_line.index("^") - 4 == column - 1  # the caret sits under the column


def test_caret_underlines_the_whole_offending_part():
    with pytest.raises(ExpressionError) as caught:
        build("tanh(x) + foo(y)", x=1, y=2)
    message = str(caught.value)
    assert message.splitlines()[0].endswith("(at column 11)")
    assert message.splitlines()[-1] == "    " + " " * 10 + "^~~"


def test_positions_count_characters_and_lines():
    with pytest.raises(ExpressionError) as caught:
        build("é + (x\n + y.imag)", x=1, y=2)
    assert (caught.value.line, caught.value.column) == (2, 5)
    with pytest.raises(ExpressionError) as caught:
        build("é + x.imag", **{"é": 1, "x": 2})
    assert caught.value.column == 6


def test_operators_need_an_op_that_provides_them():
    class OnlyAdd:
        @hookimpl
        def minigrad_register_ops(self, register):
            register(next(s for s in minigrad_ops.OPS if s.name == "add"))

    with using(Registry.from_plugins(OnlyAdd())):
        assert build("x + 1", x=1).data == 2.0
        with pytest.raises(ExpressionError, match=r"operator '\*' is not provided by any loaded op") as caught:
            build("x * 2", x=1)
        assert caught.value.column == 3
        with pytest.raises(ExpressionError, match="unknown function 'tanh'"):
            build("tanh(x)", x=1)


def test_deep_nesting_is_an_expression_error_that_says_the_limit():
    with pytest.raises(
        ExpressionError,
        match=r"nested too deeply to parse: Python's parser accepts at most "
        r"about [\d,]+ nested operations .* and 200 levels of parentheses",
    ):
        build("-" * 100_000 + "x", x=1)
    with pytest.raises(ExpressionError, match=r"nested too deeply .* about [\d,]+ nested"):
        build("x" + "**x" * 5_000, x=1)
    with pytest.raises(ExpressionError, match="too many nested parentheses"):
        build("(" * 300 + "x" + ")" * 300, x=1)


def test_bindings_from_the_command_line():
    assert parse_bindings(["x1=2", "w1=-3", " b = 6.5 ", "big=1e400"]) == {
        "x1": 2.0,
        "w1": -3.0,
        "b": 6.5,
        "big": math.inf,
    }
    for bad, fragment in [
        ("x", "NAME=VALUE"),
        ("1x=2", "NAME=VALUE"),
        ("x=two", "must be a number"),
        ("_x=1", "'_'"),
        ("=3", "NAME=VALUE"),
    ]:
        with pytest.raises(ExpressionError, match=fragment):
            parse_bindings([bad])


def test_values_must_be_numbers():
    with pytest.raises(ExpressionError, match="the value of 'x'"):
        build("x + 1", x="2")


# -- fuzzing: no input raises anything but ExpressionError ------------------------------------


def build_or_refuse(text: str):
    try:
        result = build(text, x=1.5, y=-0.5, z=2.0)
    except ExpressionError as error:
        assert str(error)  # always a message
        return None
    assert isinstance(result, Value)
    return result


@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_expression_errors(text):
    build_or_refuse(text)


TOKENS = [
    "x",
    "y",
    "z",
    "w",
    "1",
    "0",
    "2.5",
    "1e308",
    "-",
    "+",
    "*",
    "/",
    "**",
    "//",
    "%",
    "(",
    ")",
    ",",
    "tanh",
    "exp",
    "log",
    "pow",
    "leaky_relu",
    "total",
    "clamp",
    "slope=",
    "exponent=",
    "low=",
    "high=",
    "__import__",
    "'os'",
    ".",
    "system",
    "[",
    "]",
    "lambda",
    ":",
    "for",
    "in",
    "if",
    "else",
    "not",
    "and",
    "==",
    "<",
    "True",
    "None",
    "j",
    "1j",
    "**kw",
    "*",
    ":=",
    "{",
    "}",
    "f'",
    '"',
    "\n",
    "#",
    "@",
    "\\",
    "\x00",
    "é",
    "9" * 30,
]


@given(st.lists(st.sampled_from(TOKENS), max_size=25), st.lists(st.sampled_from(["", " "]), max_size=25))
def test_token_soup_raises_only_expression_errors(tokens, spaces):
    text = "".join(token + (spaces[i] if i < len(spaces) else "") for i, token in enumerate(tokens))
    build_or_refuse(text)


# -- random well-formed expressions, checked against PyTorch ----------------------------------


@st.composite
def expressions(draw, depth=3):
    """(text, torch function of the leaves dict) for a random expression over x, y, z."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        choice = draw(st.sampled_from(["x", "y", "z", "number"]))
        if choice == "number":
            number = draw(st.sampled_from([0.5, 2, 3, 1.25]))
            return str(number), lambda t, n=number: torch.tensor(float(n), dtype=torch.float64)
        return choice, lambda t, name=choice: t[name]
    kind = draw(st.sampled_from(["+", "-", "*", "/", "**", "neg", "tanh", "sigmoid", "exp"]))
    a_text, a = draw(expressions(depth=depth - 1))
    if kind in ("+", "-", "*"):
        b_text, b = draw(expressions(depth=depth - 1))
        operation = {"+": torch.add, "-": torch.sub, "*": torch.mul}[kind]
        return f"({a_text} {kind} {b_text})", lambda t: operation(a(t), b(t))
    if kind == "/":  # a divisor kept away from zero: 2 + tanh(...) lies in (1, 3)
        b_text, b = draw(expressions(depth=depth - 1))
        return f"({a_text} / (2 + tanh({b_text})))", lambda t: a(t) / (2 + torch.tanh(b(t)))
    if kind == "**":
        exponent = draw(st.sampled_from([2, 3]))
        return f"({a_text}) ** {exponent}", lambda t: a(t) ** exponent
    if kind == "neg":
        return f"-({a_text})", lambda t: -a(t)
    if kind == "exp":  # bounded input, so no overflow
        return f"exp(tanh({a_text}))", lambda t: torch.exp(torch.tanh(a(t)))
    function = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[kind]
    return f"{kind}({a_text})", lambda t: function(a(t))


@given(expressions(), st.tuples(*[st.floats(-2, 2, allow_nan=False)] * 3))
def test_random_expressions_match_torch(expression, point):
    text, torch_function = expression
    values = dict(zip("xyz", point))
    out = build(text, **values)
    t = torch_leaves(**values)
    expected = torch_function(t)
    assert out.data == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)
    assume(expected.requires_grad)
    out.backward()
    expected.backward()
    used = parse(text).names
    from minigrad_core import topological_order

    leaves = {n.label: n for n in topological_order(out) if n._spec is None and n.label}
    for name in used:
        assert leaves[name].grad == pytest.approx(t[name].grad.item(), rel=1e-9, abs=1e-9), (text, name)


def test_a_name_bound_twice_is_refused():
    from minigrad_explain.expr import ExpressionError, parse_bindings

    with pytest.raises(ExpressionError, match="'x' is given twice"):
        parse_bindings(["x=3", "x=4"])
