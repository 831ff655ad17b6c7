"""Turning registered ops into Value methods and Python operators.

The registry calls these once per activation; afterwards ``x.tanh()`` and ``x * y`` are
plain methods that run the op's forward rule and record a node, with no plugin machinery
in between. The common cases (a one-input op, a two-input operator) are written out by
hand, because they run once per node of every graph.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, cast

from .errors import MiniGradError, shorten
from .opspec import OpSpec
from .value import Value, _check_output, apply, as_number, node, rule_error

NodeCheck = Callable[[Value], None]  # inspects each new node (anomaly detection)


def make_method(spec: OpSpec, check: NodeCheck | None = None) -> Callable[..., Any]:
    """``x.name(*other_inputs, *params)``: a Value method that applies ``spec``.

    ``check(node)``, when given, inspects every node the method makes (anomaly detection)."""
    if check is not None:
        method = _checked(_general_method(spec), check)
    else:
        method = _unary_method(spec) if spec.arity == 1 and not spec.params else _general_method(spec)
    method.__name__ = spec.method_names[0] if spec.method_names else spec.name
    method.__qualname__ = f"Value.{method.__name__}"
    method.__doc__ = spec.doc or f"{spec.describe()}  (op {spec.name!r} from plugin {spec.plugin!r})"
    return method


def _unary_method(spec: OpSpec) -> Callable[[Value], Value]:
    """``x.tanh()``: the common case, kept lean (an inlined ``apply``)."""
    forward = spec.forward

    def method(self: Value) -> Value:
        try:
            data = forward(self.data)
        except MiniGradError:
            raise
        except Exception as error:
            raise rule_error(spec, "forward", (self.data,), None, error) from error
        if type(data) is not float:
            data = _check_output(spec, (self.data,), None, data)
        return node(data, (self,), spec)

    return method


def _general_method(spec: OpSpec) -> Callable[..., Value]:
    """``x.power(y)``, ``x.leaky_relu(0.2)``: other inputs first, then the parameters."""
    n_inputs = None if spec.arity is None else spec.arity - 1
    param_names = tuple(spec.params)

    def method(self: Value, *args: Any, **params: Any) -> Value:
        if n_inputs is None:
            return apply(spec, (self, *args), params)
        inputs, extra = args[:n_inputs], args[n_inputs:]
        if len(inputs) < n_inputs:
            raise TypeError(f"{spec.name}() takes {spec.arity} input(s), got {1 + len(inputs)}")
        if len(extra) > len(param_names):
            raise TypeError(f"{spec.name}() got {len(extra)} extra argument(s); its parameters: {list(param_names)}")
        params.update(zip(param_names, extra))
        return apply(spec, (self, *inputs), params)

    return method


def _checked(method: Callable[..., Any], check: NodeCheck) -> Callable[..., Any]:
    def checked(*args: Any, **kwargs: Any) -> Any:
        out = method(*args, **kwargs)
        if out is not NotImplemented:
            check(out)
        return out

    return checked


def make_operator(
    dunder: str, value_spec: OpSpec | None, number_spec: OpSpec | None, reflected: bool, check: NodeCheck | None = None
) -> Callable[..., Any]:
    """A Python operator. A Value operand goes to ``value_spec`` (numbers are wrapped as
    constant leaves); a number operand goes to ``number_spec`` as its parameter when
    there is one (so ``x ** 2`` is a one-input op, while ``x ** y`` has two inputs)."""
    operator = _operator(dunder, value_spec, number_spec, reflected)
    if check is not None:
        operator = _checked(operator, check)
    operator.__name__ = dunder
    return operator


def _operator(
    dunder: str, value_spec: OpSpec | None, number_spec: OpSpec | None, reflected: bool
) -> Callable[..., Any]:
    if value_spec is not None and value_spec.arity == 1:  # -x, abs(x)
        spec = value_spec
        return lambda self: apply(spec, (self,))

    param = next(iter(number_spec.params)) if number_spec is not None else ""
    # The registry passes at least one spec. Without value_spec, a Value operand raises and a number
    # goes to number_spec, so the binary case below only runs with value_spec set.
    binary = cast(OpSpec, value_spec)
    forward = value_spec.forward if value_spec is not None else _no_binary_rule

    def operator(self: Value, other: object) -> Any:  # a Value, or NotImplemented (an Any to type checkers)
        if type(other) is Value or isinstance(other, Value):
            if value_spec is None:
                op = number_spec.name if number_spec is not None else dunder
                raise TypeError(f"{dunder}: op {op!r} takes a number as its {param!r}, not a Value")
            a, b = (other, self) if reflected else (self, other)
        else:
            if type(other) is not float and type(other) is not int and not _is_real(other):
                return _wrong_operand(dunder, self, other, value_spec or number_spec)
            if number_spec is not None:
                return apply(number_spec, (self,), {param: other})
            constant = node(other if type(other) is float else as_number(other), (), None)  # a constant leaf
            a, b = (constant, self) if reflected else (self, constant)
        try:  # inlined apply() for the common binary case
            data = forward(a.data, b.data)
        except MiniGradError:
            raise
        except Exception as error:
            raise rule_error(binary, "forward", (a.data, b.data), None, error) from error
        if type(data) is not float:
            data = _check_output(binary, (a.data, b.data), None, data)
        return node(data, (a, b), binary)

    return operator


def _no_binary_rule(*inputs: float) -> float:
    raise AssertionError("unreachable: a binary operator without a Value-Value op")  # see _operator


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, Value)


def _wrong_operand(dunder: str, value: Value, other: object, spec: OpSpec | None) -> Any:
    if isinstance(other, (list, tuple)) or hasattr(other, "__array_ufunc__"):
        return NotImplemented  # let containers and arrays apply the op elementwise
    name = spec.name if spec is not None else dunder
    raise TypeError(
        f"{name} ({dunder}): cannot combine {shorten(value)} with {shorten(other)} of type "
        f"{type(other).__name__}; {name} takes a Value or a real number (int, float, bool)"
    )
