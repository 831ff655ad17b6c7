"""A safe parser for MiniGrad expressions such as ``tanh(x1*w1 + x2*w2 + b)``.

The text is parsed with Python's ``ast`` module and then walked against an allow-list;
it is never passed to ``eval`` or ``exec``. An expression may contain only

- numbers (``2``, ``-0.5``, ``1e-3``),
- names, bound to numbers or Values when the expression is evaluated (``x1=2``),
- the operators ``+ - * / **`` and unary ``-``, when a loaded op provides them,
- calls of registered ops by name, inputs first and parameters after them or as
  keywords: ``tanh(x)``, ``leaky_relu(x, slope=0.1)``.

Anything else (attribute access, subscripts, lambdas, comprehensions, unknown names or
functions, text ...) is an ``ExpressionError`` that points at the offending part.

    >>> from minigrad_explain.expr import build
    >>> o = build("tanh(x1*w1 + x2*w2 + b)", x1=2, x2=0, w1=-3, w2=1, b=6.8813735870195432)
    >>> round(o.data, 4)
    0.7071

Sub-expressions made only of numbers are computed at once with the same ops (``2**0.5``
is a number, not a node); every name becomes one leaf Value labelled with its name, so a
name used twice is one node whose gradient collects both contributions.
"""

from __future__ import annotations

import ast
import io
import itertools
import keyword
import re
import sys
import tokenize
import unicodedata
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from minigrad_core import MiniGradError, Value, apply

__all__ = ["ExpressionError", "Expression", "parse", "build", "parse_bindings"]

ALLOWED = "numbers, bound names, + - * / ** and unary -, and ops called by name, e.g. tanh(x*w + b)"

# ast operator -> (its text, the Value dunders that implement it)
BINARY_OPERATORS = {
    ast.Add: ("+", ("__add__", "__radd__")),
    ast.Sub: ("-", ("__sub__", "__rsub__")),
    ast.Mult: ("*", ("__mul__", "__rmul__")),
    ast.Div: ("/", ("__truediv__", "__rtruediv__")),
    ast.Pow: ("**", ("__pow__", "__rpow__")),
}
_REFUSED_OPERATORS = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
}

# What a learner would call each construct that is refused.
_REFUSED = {
    ast.Attribute: "attribute access ('.{attr}') is",
    ast.Subscript: "subscripts ('[...]') are",
    ast.Slice: "slices are",
    ast.Lambda: "lambda is",
    ast.ListComp: "comprehensions are",
    ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "comprehensions are",
    ast.List: "lists are",
    ast.Tuple: "tuples (a ',' outside a call) are",
    ast.Set: "sets are",
    ast.Dict: "dicts are",
    ast.Compare: "comparisons are",
    ast.BoolOp: "'and' / 'or' are",
    ast.IfExp: "conditional expressions (if/else) are",
    ast.NamedExpr: "assignments (:=) are",
    ast.JoinedStr: "f-strings are",
    ast.FormattedValue: "f-strings are",
    ast.Starred: "'*' unpacking is",
    ast.Await: "await is",
}


class ExpressionError(MiniGradError, ValueError):
    """An expression that cannot be parsed or evaluated; it points at the offending part.

    ``column`` is 1-based (as in Python's SyntaxError), ``line`` too; both are None when
    the problem has no single place.
    """

    def __init__(
        self,
        message: str,
        text: str | None = None,
        line: int | None = None,
        column: int | None = None,
        end_column: int | None = None,
    ):
        self.message, self.text = message, text
        self.line, self.column, self.end_column = line, column, end_column
        super().__init__(self._render())

    def _render(self) -> str:
        if self.text is None or self.column is None or self.line is None:
            return self.message
        lines = _split_lines(self.text)
        if not 1 <= self.line <= len(lines):
            return self.message
        source = lines[self.line - 1]
        start = min(max(self.column, 1), len(source) + 1)
        end = self.end_column if self.end_column and self.end_column > start else start + 1
        end = min(end, max(len(source) + 1, start + 1))
        where = f"column {start}" if len(lines) == 1 else f"line {self.line}, column {start}"
        caret = " " * (start - 1) + "^" + "~" * (end - start - 1)
        return f"{self.message} (at {where})\n    {source}\n    {caret}"


class Expression:
    """A parsed and checked expression; ``evaluate(**values)`` builds its graph."""

    def __init__(self, text: str, tree: ast.expr, names: tuple[str, ...], registry, shift: tuple[int, int]):
        self.text, self.tree, self.names = text, tree, names
        self._registry, self._shift = registry, shift

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, names={self.names})"

    def evaluate(self, values: Mapping[str, Any] | None = None, **more: Any) -> Value:
        """The expression's Value, with each name bound to a number or a Value.

        Numbers become leaf Values labelled with their name (one leaf per name).
        """
        bound: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for name, given in [*(values or {}).items(), *more.items()]:
            # Python reads identifiers in NFKC form ("ﬁ" is "fi"), and so does the parser: bind the same way
            key = _identifier(name)
            if key in bound and bound[key] is not given:
                raise ExpressionError(
                    f"{spelled[key]!r} and {name!r} are one name, {key!r}, as Python reads "
                    f"identifiers (Unicode NFKC); give it one value"
                )
            bound[key], spelled[key] = given, name
        leaves = {}
        for name in self.names:
            if name not in bound:
                known = ", ".join(sorted(bound)) or "none"
                raise self._error(
                    f"unknown name {name!r}: give it a value, e.g. {name}=1.0 (names given: {known})",
                    _first_name(self.tree, name),
                )
            given = bound[name]
            if isinstance(given, Value):
                leaves[name] = given
            else:
                try:
                    leaves[name] = Value(given, label=name)
                except (TypeError, OverflowError) as error:
                    raise ExpressionError(f"the value of {name!r}: {error}") from None
        result = self._evaluate(leaves)
        return result if isinstance(result, Value) else Value(result)

    # -- evaluation: iterative, so a long sum never hits Python's recursion limit ----------
    def _evaluate(self, leaves: dict[str, Value]):
        results: list = []
        stack: list[tuple[ast.AST, bool]] = [(self.tree, False)]
        while stack:
            node, inputs_done = stack.pop()
            children = _children(node)
            if not inputs_done and children:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(children))
                continue
            arguments = results[len(results) - len(children) :] if children else []
            del results[len(results) - len(children) :]
            results.append(self._combine(node, arguments, leaves))
        return results[0]

    def _combine(self, node: ast.AST, arguments: list, leaves: dict[str, Value]):
        try:
            if isinstance(node, ast.Constant):
                return _number(node.value)
            if isinstance(node, ast.Name):
                return leaves[node.id]
            if isinstance(node, ast.UnaryOp):
                (operand,) = arguments
                return -operand if isinstance(operand, Value) else (-Value(operand)).data
            if isinstance(node, ast.BinOp):
                left, right = arguments
                operator = _BINARY[type(node.op)]
                if isinstance(left, Value) or isinstance(right, Value):
                    return operator(left, right)
                # numbers only: computed at once, by the same op a Value would use
                return operator(Value(left), right).data
            if isinstance(node, ast.Call):
                return self._call(node, arguments)
        except ExpressionError:
            raise
        except (MiniGradError, ArithmeticError, ValueError, TypeError) as error:
            raise self._error(str(error), node) from None
        raise self._error(f"{type(node).__name__} is not allowed here; an expression may use {ALLOWED}", node)

    def _call(self, node: ast.Call, arguments: list):
        assert isinstance(node.func, ast.Name)  # checked by _call_problem
        spec = self._registry.ops[node.func.id]
        positional, keyword_values = arguments[: len(node.args)], arguments[len(node.args) :]
        n_inputs = len(positional) if spec.arity is None else spec.arity
        inputs, extra = positional[:n_inputs], positional[n_inputs:]
        params = dict(zip(spec.params, extra))
        params.update((kw.arg, value) for kw, value in zip(node.keywords, keyword_values))
        for name, value in params.items():
            if isinstance(value, Value):
                raise self._error(
                    f"parameter {name!r} of op {spec.name!r} must be a number, not an expression of named values",
                    _param_node(node, spec, name),
                )
        if all(not isinstance(x, Value) for x in inputs):
            # a call on numbers only is folded like any other constant sub-expression
            return apply(spec, inputs, params).data
        return apply(spec, inputs, params)

    def _error(self, message: str, node: ast.AST | None) -> ExpressionError:
        if node is None or not hasattr(node, "lineno"):
            return ExpressionError(message, self.text)
        line, column, end_column = _position(self.text, node, self._shift)
        return ExpressionError(message, self.text, line, column, end_column)


# -- parsing and checking ------------------------------------------------------------------


def parse(text: str, registry=None) -> Expression:
    """Parse and check ``text``; raises ExpressionError at the first part that is not allowed."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is text, got {text!r} of type {type(text).__name__}")
    if registry is None:
        from minigrad_core import get_registry

        registry = get_registry()
    stripped = text.lstrip()  # Python's parser refuses leading spaces; columns still count them
    skipped = text[: len(text) - len(stripped)]
    shift = (
        skipped.count("\n") + skipped.count("\r") - skipped.count("\r\n"),
        len(skipped) - max(skipped.rfind("\n"), skipped.rfind("\r")) - 1,
    )
    if not stripped:
        raise ExpressionError("the expression is empty; an expression may use " + ALLOWED)
    try:
        try:
            tree = _parse(stripped)
        except (RecursionError, MemoryError):
            chain = _parse_long_chain(stripped)
            if chain is None:
                raise
            tree = chain
    except SyntaxError as error:
        raise _syntax_error(text, error, shift) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(_too_deep()) from None
    except ValueError as error:  # e.g. a null byte on some Python versions
        raise ExpressionError(f"cannot parse the expression: {error}") from None
    expression = Expression(text, tree, (), registry, shift)
    names = _check(expression, registry)
    expression.names = names
    return expression


# Python's parser builds a tree as deep as a chain is long (a + b + c is (a + b) + c) and gives
# up at about 3 x the recursion limit, ~3,000. A long chain of + and - (or * and /) is split at
# its top-level operators, each term parsed on its own and the chain joined here, so
# v0 + ... + v99999 parses.
PARENTHESES_LIMIT = 200  # Python's parser: "too many nested parentheses"
_ADDITIVE = {"+": ast.Add, "-": ast.Sub}
_MULTIPLICATIVE = {"*": ast.Mult, "/": ast.Div}
# Tokens that bind less tightly than + or *: a chain that holds one at its top level is left
# to Python's parser whole (which refuses them anyway).
_LOOSER = {",", ":", ":=", "=", "==", "!=", "<", ">", "<=", ">=", "|", "^", "&", "<<", ">>", "->", ";"}


def _too_deep() -> str:
    limit = 3 * sys.getrecursionlimit()
    return (
        f"the expression is nested too deeply to parse: Python's parser accepts at most about {limit:,} "
        f"nested operations (unary minus, ** or calls inside one another) and {PARENTHESES_LIMIT} levels of "
        f"parentheses; long sums and products (a + b + ... and a * b * ...) have no such limit"
    )


def _parse(source: str) -> ast.expr:
    with warnings.catch_warnings():  # "invalid decimal literal" and such: the error says it
        warnings.simplefilter("ignore")
        return ast.parse(source, mode="eval").body


def _parse_long_chain(source: str) -> ast.expr | None:
    """``source`` parsed term by term when it is a chain of + - (or of * /) at its top level,
    as Python would parse it whole; None when it is not such a chain (then parse it whole)."""
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None  # Python's parser will say what is wrong
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return _chain(source, tokens, 0, len(tokens), _ADDITIVE, lines, starts)


def _chain(source, tokens, first, stop, operators, lines, starts) -> ast.expr | None:
    """The tokens [first, stop) as a left-to-right chain of ``operators``, or None."""
    splits, depth, previous = [], 0, None
    for k in range(first, stop):
        token = tokens[k]
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
        elif depth == 0:
            if token.string in _LOOSER or (token.type == tokenize.NAME and keyword.iskeyword(token.string)):
                return None
            if operators is _MULTIPLICATIVE and token.string in ("+", "-", "%", "//", "@") and _binary(previous):
                return None
            if token.string in operators and _binary(previous):
                splits.append(k)
        previous = token
    if not splits:
        if operators is _ADDITIVE:
            return _chain(source, tokens, first, stop, _MULTIPLICATIVE, lines, starts)
        return None
    bounds = [first, *splits, stop]
    tree = None
    for a, b in itertools.pairwise(bounds):
        start = a if a == first else a + 1  # after the operator
        if start >= b:
            return None  # an operator with nothing after it: Python's parser says so
        term = _term(source, tokens, start, b, operators, lines, starts)
        if term is None:
            return None
        if tree is None:
            tree = term
            continue
        # the chain so far spans from its first token to this term's last (parentheses included)
        (line, column), (end_line, end_column) = tokens[first].start, tokens[b - 1].end
        tree = ast.BinOp(
            left=tree,
            op=operators[tokens[a].string](),
            right=term,
            lineno=line,
            col_offset=_bytes(lines[line - 1][:column]),
            end_lineno=end_line,
            end_col_offset=_bytes(lines[end_line - 1][:end_column]),
        )
    return tree


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))  # ast columns count UTF-8 bytes


def _term(source, tokens, start, stop, operators, lines, starts) -> ast.expr | None:
    """One term of a chain, parsed on its own, with its positions moved to where it stands."""
    (row, column), (end_row, end_column) = tokens[start].start, tokens[stop - 1].end
    text = source[starts[row - 1] + column : starts[end_row - 1] + end_column]
    try:
        term = _parse(text)
    except (RecursionError, MemoryError):
        if operators is _ADDITIVE:  # a long product inside a long sum
            return _chain(source, tokens, start, stop, _MULTIPLICATIVE, lines, starts)
        return None
    except SyntaxError:
        return None  # parsed whole, the error points at the right place
    shift = _bytes(lines[row - 1][:column])
    for node in ast.walk(term):
        if isinstance(node, (ast.expr, ast.keyword)) and node.end_lineno is not None:
            if node.lineno == 1:
                node.col_offset += shift
            if node.end_lineno == 1 and node.end_col_offset is not None:
                node.end_col_offset += shift
            node.lineno += row - 1
            node.end_lineno += row - 1
    return term


def _binary(previous) -> bool:
    """Whether + or - after ``previous`` is a binary operator (not a sign)."""
    if previous is None:
        return False
    if previous.type in (tokenize.NUMBER, tokenize.STRING):
        return True
    if previous.type == tokenize.NAME:
        return not keyword.iskeyword(previous.string)
    return previous.string in (")", "]", "}")


def build(text: str, values: Mapping[str, Any] | None = None, registry=None, **more: Any) -> Value:
    """Parse ``text`` and evaluate it: ``build("x*w + b", x=2, w=-3, b=1)``."""
    return parse(text, registry).evaluate(values, **more)


def parse_bindings(items: Iterable[str]) -> dict[str, float]:
    """``["x1=2", "w1=-3"]`` -> ``{"x1": 2.0, "w1": -3.0}``, as given on the command line."""
    bindings: dict[str, float] = {}
    for item in items:
        name, equals, number = item.partition("=")
        name, number = _identifier(name.strip()), number.strip()
        if not equals or not name.isidentifier():
            raise ExpressionError(f"{item!r} is not a binding: write NAME=VALUE, e.g. x1=2.0")
        if name.startswith("_"):
            raise ExpressionError(f"{item!r}: names starting with '_' are not allowed")
        if name in bindings:
            raise ExpressionError(f"{name!r} is given twice ({bindings[name]:g} and {number})")
        try:
            bindings[name] = float(number)
        except ValueError:
            raise ExpressionError(f"{item!r}: the value of {name!r} must be a number, got {number!r}") from None
    return bindings


def _check(expression: Expression, registry) -> tuple[str, ...]:
    """Walk the tree in source order; refuse any node outside the allow-list."""
    operators = {dunder for spec in registry.ops.values() for dunder in spec.operators}
    names: dict[str, None] = {}  # in source order; a dict, so a long sum of names stays linear
    stack: list[ast.AST] = [expression.tree]
    while stack:
        node = stack.pop()
        problem = _problem(node, registry, operators)
        if problem is not None:
            message, where = problem
            raise expression._error(message, where)
        if isinstance(node, ast.Name) and node.id not in names:
            names[node.id] = None
        stack.extend(reversed(_children(node)))
    return tuple(names)


def _problem(node: ast.AST, registry, operators: set[str]):
    """(message, node to point at) when ``node`` is not allowed, else None."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return f"{value} is not a number here; use 1 or 0", node
        if isinstance(value, (int, float)):
            return None
        if isinstance(value, complex):
            return "complex numbers are not supported: a Value holds one real number", node
        if isinstance(value, (str, bytes)):
            return f"text ({value!r:.40}) is not allowed; an expression may use {ALLOWED}", node
        return f"{value!r} is not allowed; an expression may use {ALLOWED}", node
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            return f"names starting with '_' ({node.id}) are not allowed", node
        return None
    if isinstance(node, ast.BinOp):
        if type(node.op) in BINARY_OPERATORS:
            symbol, dunders = BINARY_OPERATORS[type(node.op)]
            if not operators.intersection(dunders):
                return f"the operator {symbol!r} is not provided by any loaded op", _operator_node(node, symbol)
            return None
        symbol = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
        return (
            f"the operator {symbol!r} is not allowed; allowed operators: + - * / ** and unary -",
            _operator_node(node, symbol),
        )
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            if "__neg__" not in operators:
                return "unary '-' is not provided by any loaded op", node
            return None
        symbol = {ast.UAdd: "+", ast.Not: "not", ast.Invert: "~"}.get(type(node.op), "?")
        return f"unary {symbol!r} is not allowed; the only unary operator is '-'", node
    if isinstance(node, ast.Call):
        return _call_problem(node, registry)
    what = _REFUSED.get(type(node))
    if what is None:
        return f"{type(node).__name__} is not allowed; an expression may use {ALLOWED}", node
    if isinstance(node, ast.Attribute):
        what = what.format(attr=node.attr)
        node = _attribute_node(node)
    return f"{what} not allowed; an expression may use {ALLOWED}", node


def _call_problem(node: ast.Call, registry):
    func = node.func
    if not isinstance(func, ast.Name):
        if isinstance(func, ast.Attribute):
            message = f"attribute access ('.{func.attr}') is not allowed: call ops by name, e.g. tanh(x)"
            return message, _attribute_node(func)
        if isinstance(func, ast.Lambda):
            return "lambda is not allowed: call ops by name, e.g. tanh(x)", func
        return "only ops can be called, by name, e.g. tanh(x)", func
    spec = registry.ops.get(func.id)
    if spec is None:
        known = ", ".join(sorted(registry.ops)) or "none (no op plugin is loaded)"
        return f"unknown function {func.id!r}: only registered ops can be called; known ops: {known}", func
    for argument in node.args:
        if isinstance(argument, ast.Starred):
            return f"'*' unpacking is not allowed in a call of {spec.name!r}", argument
    given_params = set()
    for kw in node.keywords:
        if kw.arg is None:
            return f"'**' unpacking is not allowed in a call of {spec.name!r}", kw.value
        if kw.arg not in spec.params:
            params = ", ".join(spec.params) or "none"
            return f"op {spec.name!r} has no parameter {kw.arg!r}; its parameters: {params}", kw
        given_params.add(kw.arg)
    n_given = len(node.args)
    if spec.arity is not None:
        if n_given < spec.arity:
            return _arity_message(spec, n_given), node
        extra = n_given - spec.arity
        if extra > len(spec.params):
            return _arity_message(spec, n_given), node
        positional_params = set(list(spec.params)[:extra])
        twice = positional_params & given_params
        if twice:
            return f"op {spec.name!r} got parameter {sorted(twice)[0]!r} twice", node
        given_params |= positional_params
    elif n_given == 0:
        return f"op {spec.name!r} needs at least one input", node
    missing = [p for p, default in spec.params.items() if default is None and p not in given_params]
    if missing:
        return f"op {spec.name!r} needs the parameter {missing[0]!r}, e.g. {spec.name}(x, {missing[0]}=2)", node
    return None


def _arity_message(spec, n_given: int) -> str:
    inputs = ", ".join(spec.input_names)
    params = f" and up to {len(spec.params)} parameter(s) ({', '.join(spec.params)})" if spec.params else ""
    return f"op {spec.name!r} takes {spec.arity} input(s) ({inputs}){params}, got {n_given} argument(s)"


# -- helpers ----------------------------------------------------------------------------------


def _identifier(name):
    """A name as Python reads it in source: in Unicode normal form NFKC ("ﬁ" -> "fi")."""
    return unicodedata.normalize("NFKC", name) if isinstance(name, str) else name


def _children(node: ast.AST) -> list[ast.AST]:
    """The sub-expressions evaluation needs, in source order (only for allowed nodes)."""
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Call):
        return [*node.args, *(kw.value for kw in node.keywords)]
    return []


_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


def _number(value):
    # Small ints stay ints (x ** 2 keeps the exponent 2); huge ones become floats.
    if isinstance(value, int) and abs(value) <= 2**53:
        return value
    try:
        return float(value)
    except OverflowError:
        raise OverflowError(f"the number {str(value)[:20]}... is too large for a float") from None


def _first_name(tree: ast.AST, name: str) -> ast.AST | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name:
            return node
    return None


def _param_node(call: ast.Call, spec, name: str) -> ast.AST:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    extra = call.args[spec.arity :] if spec.arity is not None else []
    for param, argument in zip(spec.params, extra):
        if param == name:
            return argument
    return call


class _Span:
    """A source position that is not an ast node of its own (an operator, an attribute name)."""

    def __init__(self, lineno, col_offset, end_lineno, end_col_offset):
        self.lineno, self.col_offset = lineno, col_offset
        self.end_lineno, self.end_col_offset = end_lineno, end_col_offset


def _operator_node(node: ast.BinOp, symbol: str):
    """Where the operator itself is, between its two operands (in UTF-8 byte columns)."""
    left, right = node.left, node.right
    if left.end_lineno == right.lineno and symbol:
        # search the bytes between the operands; ast columns count UTF-8 bytes
        return _OperatorSearch(left.end_lineno, left.end_col_offset, right.col_offset, symbol)
    return node


class _OperatorSearch(_Span):
    def __init__(self, lineno, start, stop, symbol):
        super().__init__(lineno, start, lineno, stop)
        self.symbol = symbol


def _attribute_node(node: ast.Attribute):
    # point at ".attr", which ends where the node ends
    width = len(node.attr.encode("utf-8")) + 1
    end = node.end_col_offset if node.end_col_offset is not None else node.col_offset + width
    return _Span(node.end_lineno, max(end - width, 0), node.end_lineno, end)


def _split_lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text)


def _char_column(line: str, byte_column: int) -> int:
    return len(line.encode("utf-8")[:byte_column].decode("utf-8", errors="ignore"))


def _position(text: str, node, shift: tuple[int, int]) -> tuple[int, int, int | None]:
    """(line, column, end column), 1-based, in the original text (before stripping)."""
    lines = _split_lines(text)
    line_shift, column_shift = shift
    line_index = node.lineno - 1 + line_shift
    if not 0 <= line_index < len(lines):
        return node.lineno + line_shift, 1, None
    source = lines[line_index]
    offset = column_shift if node.lineno == 1 else 0
    stripped_line = source[offset:]
    start = _char_column(stripped_line, node.col_offset)
    end = None
    if getattr(node, "end_lineno", None) == node.lineno and node.end_col_offset is not None:
        end = _char_column(stripped_line, node.end_col_offset)
    if isinstance(node, _OperatorSearch):
        found = stripped_line.find(node.symbol, start, end)
        if found >= 0:
            start, end = found, found + len(node.symbol)
    return line_index + 1, start + offset + 1, (end + offset + 1) if end is not None else None


def _syntax_error(text: str, error: SyntaxError, shift: tuple[int, int]) -> ExpressionError:
    message = f"cannot parse the expression: {error.msg}"
    if "too many nested parentheses" in str(error.msg):
        message += f" (Python's parser allows at most {PARENTHESES_LIMIT} levels)"
    if error.lineno is None or error.offset is None:
        return ExpressionError(message, text)
    line_shift, column_shift = shift
    offset = column_shift if error.lineno == 1 else 0
    end = error.end_offset + offset if error.end_offset and error.end_lineno == error.lineno else None
    return ExpressionError(message, text, error.lineno + line_shift, error.offset + offset, end)
