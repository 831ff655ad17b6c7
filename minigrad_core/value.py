"""Value: a number that remembers how it was computed, and the chain rule that runs backward.

This module holds no math. A Value's operators and methods (``+``, ``*``, ``tanh`` ...)
are installed by the registry from the ops that plugins register; each op brings its
own forward rule and local-derivative rule. What lives here is the graph and the one
place where the chain rule is applied:

    child.grad += (d node / d child) * node.grad

A node refers only to its inputs, never to itself, so a graph you drop is freed by
reference counting at once, without waiting for Python's cyclic garbage collector.
"""

from __future__ import annotations

import gc
import numbers
from typing import Any

from .errors import HigherOrderError, OpDomainError, OpSpecError, OpZeroDivisionError, UnknownOpError

# Called as observer(left, right, symbol, result) on every comparison of a Value;
# graph replay uses it to notice when a recorded graph no longer fits new data.
comparison_observers: list = []


class Value:
    """A scalar in a computation graph: ``data``, its gradient ``grad``, and its inputs."""

    __slots__ = ("data", "grad", "_prev", "_spec", "_params", "label")

    def __init__(self, data, _children=(), _op="", label=""):
        self.data = as_number(data)
        self.grad = 0.0
        self._prev = tuple(_children)
        for child in self._prev:
            if not isinstance(child, Value):
                raise TypeError(f"Value children must be Values, got {child!r} ({type(child).__name__})")
        self._spec = _resolve_op(_op, len(self._prev)) if _op else None
        self._params = None
        self.label = label

    # -- what the seed's walkthrough shows -------------------------------------------------
    @property
    def _op(self) -> str:
        """The symbol of the op that made this node ('' for a leaf), e.g. '+', 'tanh', '**2'."""
        spec = self._spec
        if spec is None:
            return ""
        params = self._params
        if not params:
            return spec.label
        if len(params) == 1 and not spec.label.isidentifier():
            return f"{spec.label}{_short(next(iter(params.values())))}"
        return f"{spec.label}({', '.join(f'{k}={_short(v)}' for k, v in params.items())})"

    @property
    def _backward(self):
        """Propagate this node's gradient one step to its inputs (built on access, not stored,
        so no node holds a closure that refers back to it)."""
        return lambda: propagate(self)

    @property
    def is_leaf(self) -> bool:
        return self._spec is None

    def backward(self, create_graph: bool = False) -> None:
        """Fill in ``grad`` for every node this one depends on (d self / d node).

        Leaf gradients accumulate across calls, as in PyTorch: zero them between steps.
        Interior gradients are recomputed on every pass. With ``create_graph=True`` each
        gradient is itself a Value connected to the graph, so it can be differentiated again.
        """
        backward(self, create_graph=create_graph)

    def zero_grad(self) -> None:
        """Set the gradient of this node and of every node it depends on to 0.0."""
        for node in topological_order(self):
            node.grad = 0.0

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        grad = self.grad
        # a gradient from create_graph=True is shown as its number, not as its whole graph
        shown = f"Value({grad.data!r})" if type(grad) is Value else repr(grad)
        return f"Value(data={self.data!r}, grad={shown}{label})"

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: the first use of an op loads the plugins.
        if name.startswith("_"):
            raise AttributeError(f"'Value' object has no attribute {name!r}")
        from .registry import get_registry, unknown_op_message

        registry = get_registry()
        if name in type(self).__dict__:
            return getattr(self, name)
        if name in registry.ops:
            raise UnknownOpError(f"op {name!r} is not a Value method; call it as minigrad_core.ops.{name}(...)")
        raise UnknownOpError(f"Value has no method {name!r}: " + unknown_op_message(name, registry))

    def _repr_mimebundle_(self, include=None, exclude=None):
        """In Jupyter a Value displays as its graph when an exporter plugin provides one."""
        from .registry import get_registry

        for exporter in get_registry().exporters.values():
            if hasattr(exporter, "mimebundle"):
                return exporter.mimebundle(self)
        return {"text/plain": repr(self)}

    # -- comparisons read the data (and tell replay what was compared) ----------------------
    def __lt__(self, other):
        return _compare(self, other, "<")

    def __le__(self, other):
        return _compare(self, other, "<=")

    def __gt__(self, other):
        return _compare(self, other, ">")

    def __ge__(self, other):
        return _compare(self, other, ">=")

    def __bool__(self):
        return _compare(self, 0.0, "!=")

    # No __float__: math.cos(value) must fail loudly instead of silently cutting the graph.


_COMPARE = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "!=": lambda a, b: a != b,
}


def _compare(left: Value, right: Any, symbol: str) -> bool:
    right_data = right.data if isinstance(right, Value) else as_number(right)
    result = _COMPARE[symbol](left.data, right_data)
    for observer in comparison_observers:
        observer(left, right, symbol, result)
    return result


def as_number(data) -> float:
    """The float a Value holds. Ints, bools and numpy numbers count; nan and inf pass through."""
    if type(data) is float:
        return data
    if isinstance(data, numbers.Real) and not isinstance(data, Value):
        try:
            return float(data)
        except OverflowError:
            raise OverflowError(f"Value holds a float; {data!r} is too large for one") from None
    hint = ""
    if isinstance(data, numbers.Complex):
        hint = " (complex numbers are not supported)"
    elif isinstance(data, Value):
        hint = " (it is already a Value: use it directly)"
    elif isinstance(data, str):
        hint = " (convert text with float(...) first)"
    raise TypeError(
        f"a Value holds one real number (int, float or bool), got {data!r} of type {type(data).__name__}{hint}"
    )


def _short(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _resolve_op(name: str, arity: int):
    from .registry import get_registry, unknown_op_message

    registry = get_registry()
    spec = registry.find(name, arity)
    if spec is None:
        raise UnknownOpError(f"Value(..., _op={name!r}) with {arity} input(s): " + unknown_op_message(name, registry))
    required = [p for p, default in spec.params.items() if default is None]
    if required:
        raise TypeError(f"Value(..., _op={name!r}): op {spec.name!r} needs the parameter(s) {required}, "
                        f"which a bare node cannot carry; build it with the op itself (e.g. x ** 2)")
    return spec


# -- building nodes: what every installed op method runs --------------------------------------

_new = object.__new__


def node(data: float, children: tuple, spec, params=None) -> Value:
    """A new graph node, skipping __init__'s checks (its data comes from a forward rule)."""
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._prev = children
    out._spec = spec
    out._params = params
    out.label = ""
    return out


def apply(spec, inputs, params=None) -> Value:
    """Apply an op to Values (numbers are wrapped as constant leaves) and record the node."""
    children = tuple(x if type(x) is Value else Value(x) for x in inputs)
    if spec.arity is not None and len(children) != spec.arity:
        raise TypeError(f"op {spec.name!r} takes {spec.arity} input(s), got {len(children)}")
    params = _bind_params(spec, params)
    return node(evaluate(spec, [c.data for c in children], params), children, spec, params)


def evaluate(spec, inputs, params=None) -> float:
    """Run an op's forward rule on numbers, turning its errors into ones that name the op."""
    try:
        data = spec.forward(*inputs, **params) if params else spec.forward(*inputs)
    except OpDomainError:
        raise
    except (ArithmeticError, ValueError) as error:
        raise _domain_error(spec, inputs, params, error) from error
    if type(data) is not float:
        data = _check_output(spec, inputs, params, data)
    return data


def _bind_params(spec, given):
    if not spec.params and not given:
        return None
    given = dict(given or {})
    unknown = set(given) - set(spec.params)
    if unknown:
        raise TypeError(f"op {spec.name!r} has no parameter(s) {sorted(unknown)}; its parameters: {sorted(spec.params)}")
    bound = {}
    for name, default in spec.params.items():
        value = given.get(name, default)
        if value is None:
            raise TypeError(f"op {spec.name!r} needs the parameter {name!r}")
        if isinstance(value, Value):
            raise TypeError(f"op {spec.name!r}: parameter {name!r} must be a number, not a Value")
        bound[name] = value
    return bound


def _domain_error(spec, inputs, params, error) -> OpDomainError:
    shown = list(inputs) + [f"{k}={v!r}" for k, v in (params or {}).items()]
    kind = OpZeroDivisionError if isinstance(error, ZeroDivisionError) else OpDomainError
    return kind(spec.name, shown, spec.domain.description, reason=str(error))


def _check_output(spec, inputs, params, data) -> float:
    if isinstance(data, numbers.Real) and not isinstance(data, Value):
        return float(data)
    if isinstance(data, numbers.Complex):
        raise _domain_error(spec, inputs, params, ValueError("the result would be a complex number"))
    raise OpSpecError(f"op {spec.name!r} (plugin {spec.plugin!r}): forward returned {data!r}, not a real number")


# -- installing ops on Value (called by the registry, once per activation) ---------------------

def make_method(spec):
    """``x.name(*other_inputs, *params)``: a Value method that applies ``spec``."""
    method = _unary_method(spec) if spec.arity == 1 and not spec.params else _general_method(spec)
    method.__name__ = spec.method_names[0] if spec.method_names else spec.name
    method.__qualname__ = f"Value.{method.__name__}"
    method.__doc__ = spec.doc or f"{spec.describe()}  (op {spec.name!r} from plugin {spec.plugin!r})"
    return method


def _unary_method(spec):
    """``x.tanh()``: the common case, kept lean (an inlined ``apply``)."""
    forward = spec.forward

    def method(self):
        try:
            data = forward(self.data)
        except (ArithmeticError, ValueError) as error:
            raise _as_op_error(spec, (self.data,), error) from error
        if type(data) is not float:
            data = _check_output(spec, (self.data,), None, data)
        return node(data, (self,), spec)

    return method


def _general_method(spec):
    """``x.power(y)``, ``x.leaky_relu(0.2)``: other inputs first, then the parameters."""
    n_inputs = None if spec.arity is None else spec.arity - 1
    param_names = tuple(spec.params)

    def method(self, *args, **params):
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


def make_operator(dunder: str, value_spec, number_spec, reflected: bool):
    """A Python operator. A Value operand goes to ``value_spec`` (numbers are wrapped as
    constant leaves); a number operand goes to ``number_spec`` as its parameter when
    there is one (so ``x ** 2`` is a one-input op, while ``x ** y`` has two inputs)."""
    if value_spec is not None and value_spec.arity == 1:  # -x, abs(x)
        spec = value_spec

        def unary(self):
            return apply(spec, (self,))

        unary.__name__ = dunder
        return unary

    param = next(iter(number_spec.params)) if number_spec is not None else None
    forward = value_spec.forward if value_spec is not None else None

    def operator(self, other):
        if type(other) is Value:
            if value_spec is None:
                raise TypeError(f"{dunder}: op {number_spec.name!r} takes a number as its {param!r}, not a Value")
            a, b = (other, self) if reflected else (self, other)
        else:
            if type(other) is not float and type(other) is not int and not _is_real(other):
                return _wrong_operand(dunder, self, other, value_spec or number_spec)
            if number_spec is not None:
                return apply(number_spec, (self,), {param: other})
            constant = node(float(other), (), None)  # a number operand becomes a constant leaf
            a, b = (constant, self) if reflected else (self, constant)
        try:  # inlined apply() for the common binary case
            data = forward(a.data, b.data)
        except (ArithmeticError, ValueError) as error:
            raise _as_op_error(value_spec, (a.data, b.data), error) from error
        if type(data) is not float:
            data = _check_output(value_spec, (a.data, b.data), None, data)
        return node(data, (a, b), value_spec)

    operator.__name__ = dunder
    return operator


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, Value)


def _as_op_error(spec, inputs, error):
    return error if isinstance(error, OpDomainError) else _domain_error(spec, inputs, None, error)


def _wrong_operand(dunder, value, other, spec):
    if isinstance(other, (list, tuple)) or hasattr(other, "__array_ufunc__"):
        return NotImplemented  # let containers and arrays apply the op elementwise
    raise TypeError(
        f"{spec.name} ({dunder}): cannot combine {value!r} with {other!r} of type {type(other).__name__}; "
        f"{spec.name} takes a Value or a real number (int, float, bool)"
    )


def missing_operator(dunder: str):
    def operator(self, *args):
        from .registry import get_registry, unknown_op_message

        raise UnknownOpError(f"no loaded op provides the operator {dunder}: " + unknown_op_message(dunder, get_registry()))

    operator.__name__ = dunder
    return operator


def lazy_operator(dunder: str):
    """Before the first use, an operator loads the plugins, then runs the real one."""

    def operator(self, *args):
        from .registry import get_registry

        get_registry()
        return getattr(type(self), dunder)(self, *args)

    operator.__name__ = dunder
    return operator


# -- backward: topological order, then the chain rule ------------------------------------------

_FINISH = object()  # stack marker: every input of the node below it has been listed


def topological_order(*roots: Value) -> list[Value]:
    """Every node the roots depend on (the roots too), each listed after all of its inputs.

    Iterative depth-first search: a chain a million nodes deep needs no recursion.
    A node is pushed with a FINISH marker above it and its inputs above that; by the
    time the marker comes off the stack, all of its inputs are in ``order``.
    """
    order, seen, stack = [], set(), list(reversed(roots))
    while stack:
        current = stack.pop()
        if current is _FINISH:
            order.append(stack.pop())
            continue
        if current in seen:
            continue
        seen.add(current)
        stack.append(current)
        stack.append(_FINISH)
        for child in current._prev:
            if child not in seen:
                stack.append(child)
    return order


def backward(root: Value, create_graph: bool = False) -> list[Value]:
    """Backpropagation from ``root``; returns the nodes in the order they were visited.

    The order is reverse topological: a node passes its gradient on only once every
    node that uses it has added its share, which is why ``+=`` is right.
    """
    # The pass allocates only acyclic temporaries; pausing the cyclic collector keeps it from
    # tracing the whole live graph over and over while we walk it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _backward_pass(root, create_graph)
    finally:
        if collecting:
            gc.enable()


def _backward_pass(root: Value, create_graph: bool) -> list[Value]:
    order = topological_order(root)
    for n in order:
        if n._spec is not None:
            n.grad = None if create_graph else 0.0  # interior: recomputed from scratch each pass
        elif not create_graph and type(n.grad) is Value:
            n.grad = n.grad.data  # a graph-building gradient from an earlier pass, as a number
    if root._spec is not None:
        root.grad = 1.0
    else:
        root.grad = _accumulate(root.grad, 1.0) if create_graph else root.grad + 1.0
    step = propagate_graph if create_graph else propagate
    for n in reversed(order):
        if n._spec is not None:
            step(n)
    if create_graph:
        for n in order:  # every gradient becomes a Value of its own, even a constant one
            gradient = n.grad
            if type(gradient) is not Value:
                n.grad = Value(0.0 if gradient is None else gradient)
            elif gradient._spec is None:
                # a leaf passed through unchanged (x.grad would *be* y for x * y): give it a node
                # of its own, so that updating that leaf's data later cannot change this gradient
                n.grad = gradient + 0.0
    return order


def propagate(n: Value) -> None:
    """The chain rule for one node, on numbers: child.grad += (d n / d child) * n.grad."""
    upstream = n.grad
    if upstream == 0.0 and n.data - n.data == 0.0:
        # Every contribution would be 0 * partial = 0 (a relu that is off, say): skip the work.
        # Not when the node's value is inf or nan (x - x is then nan), whose partials may be
        # inf: 0 * inf is nan, as PyTorch gives. A finite node with an infinite partial (sqrt
        # at 0) is a point where the derivative does not exist.
        return
    spec, children = n._spec, n._prev
    try:
        if n._params:
            partials = spec.derivative(*[c.data for c in children], n.data, **n._params)
        else:
            partials = spec.derivative(*[c.data for c in children], n.data)
    except (ArithmeticError, ValueError) as error:
        if isinstance(error, OpDomainError):
            raise
        raise _domain_error(spec, [c.data for c in children], n._params, error) from error
    try:
        fits = len(partials) == len(children)
    except TypeError:  # a bare number instead of a tuple of them
        fits = False
    if not fits:
        raise _partials_error(spec, len(children), partials)
    for child, partial in zip(children, partials):
        child.grad += partial * upstream


def propagate_graph(n: Value) -> None:
    """The chain rule for one node, building graph: the derivative rule runs on Values."""
    spec, children, upstream = n._spec, n._prev, n.grad
    if upstream is None:
        return  # nothing reached this node
    if spec.higher_order is False:
        raise _higher_order_error(spec, "its OpSpec says higher_order=False")
    try:
        partials = spec.derivative(*children, n, **n._params) if n._params else spec.derivative(*children, n)
    except TypeError as error:
        raise _higher_order_error(spec, f"{type(error).__name__}: {error}") from error
    try:
        fits = len(partials) == len(children)
    except TypeError:  # a bare number instead of a tuple of them
        fits = False
    if not fits:
        raise _partials_error(spec, len(children), partials)
    for child, partial in zip(children, partials):
        child.grad = _accumulate(child.grad, _times(partial, upstream))


def _times(partial, upstream):
    if type(partial) is float and partial == 1.0:
        return upstream
    if type(upstream) is float and upstream == 1.0:
        return partial
    return partial * upstream


def _accumulate(total, contribution):
    if total is None or (type(total) is float and total == 0.0):
        return contribution
    return total + contribution


def _partials_error(spec, expected: int, partials) -> OpSpecError:
    try:
        got = f"{len(partials)} partial(s)"
    except TypeError:
        got = repr(partials)
    return OpSpecError(
        f"op {spec.name!r} (plugin {spec.plugin!r}): derivative must return one partial per input, "
        f"{expected} for this node, but returned {got} (return a tuple, e.g. (d,) for one input)"
    )


def _higher_order_error(spec, reason: str) -> HigherOrderError:
    return HigherOrderError(
        f"op {spec.name!r} (plugin {spec.plugin!r}) cannot be differentiated twice: its derivative rule "
        f"works on numbers only ({reason}). First-order backward() still works; to support "
        f"create_graph=True, write the rule with Value arithmetic and minigrad_core.ops functions."
    )
