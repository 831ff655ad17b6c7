"""Value: a number that remembers how it was computed, and the chain rule that runs backward.

This module holds no math. A Value's operators and methods (``+``, ``*``, ``tanh`` ...)
are installed by the registry from the ops that plugins register; each op brings its
own forward rule and local-derivative rule. What lives here is the graph and the chain
rule, written once:

    local_derivatives(...)   the one place an op's derivative rule is called and checked
    pass_gradient(...)       the one place a node's gradient flows to its inputs:
                             child.grad += (d node / d child) * node.grad
    backward_steps(root)     the backward pass, one node at a time (tools observe it)
    backward(root)           runs those steps

A node made by a registered op refers only to its inputs, never to itself, so a graph you
drop is freed by reference counting at once. A node made the seed's way, with a
``_backward`` closure, refers to itself through the closure, as in micrograd.
"""

from __future__ import annotations

import gc
import numbers
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import (
    HigherOrderError,
    MiniGradError,
    MissingRuleError,
    OpDomainError,
    OpRuleError,
    OpSpecError,
    OpZeroDivisionError,
    clip,
    shorten,
)
from .opspec import OpSpec

# Called as observer(left, right, symbol, result) on every comparison of a Value; graph
# replay uses it to notice when a recorded graph no longer fits new data.
comparison_observers: list[Callable[[Value, Any, str, bool], None]] = []

# How Value(data, children, "tanh") finds the op named "tanh": set by the registry, so that
# this module needs to know nothing about plugins.
find_op: Callable[[str, int], OpSpec | None] = lambda name, arity: None  # noqa: E731


class CustomRule:
    """The rule of a node made by hand, ``Value(data, children, "op text")``: the text it
    shows, the registered op of that name (if any), and the ``_backward`` closure (if set)."""

    __slots__ = ("label", "spec", "closure")

    def __init__(self, label: str, spec: OpSpec | None, closure: Callable[[], None] | None = None):
        self.label, self.spec, self.closure = label, spec, closure


class Value:
    """A scalar in a computation graph: ``data``, its gradient ``grad``, and its inputs."""

    # __dict__ lets a learner attach attributes (p.m = 0.0 for momentum); it costs 8 bytes
    # a node and holds nothing until something is set.
    __slots__ = ("data", "grad", "_prev", "_spec", "_params", "label", "__dict__")
    data: float
    grad: Any  # a float; a Value after backward(create_graph=True); None counts as 0.0
    _prev: tuple[Value, ...]
    _spec: OpSpec | CustomRule | None  # None for a leaf
    _params: dict[str, Any] | None
    label: str

    def __init__(self, data: Any, _children: Iterable[Value] = (), _op: str = "", label: str = "") -> None:
        self.data = as_number(data)
        self.grad = 0.0
        self._prev = tuple(_children)
        for child in self._prev:
            if not isinstance(child, Value):
                raise TypeError(f"Value children must be Values, got {shorten(child)} ({type(child).__name__})")
        self._spec = None
        self._params = None
        if _op or self._prev:
            if not isinstance(_op, str):
                raise TypeError(f"Value(..., _op=...) must be text such as 'tanh', got {shorten(_op)}")
            spec = find_op(_op, len(self._prev)) if _op else None
            self._spec = CustomRule(_op, spec if spec is not None and _bindable(spec) else None)
        self.label = label

    if TYPE_CHECKING:
        # Installed by the registry from the ops that plugins register (see methods.py);
        # declared here so that type checkers know what ``x * 2`` and ``x.tanh()`` give.
        def __add__(self, other: Value | float) -> Value: ...
        def __radd__(self, other: Value | float) -> Value: ...
        def __sub__(self, other: Value | float) -> Value: ...
        def __rsub__(self, other: Value | float) -> Value: ...
        def __mul__(self, other: Value | float) -> Value: ...
        def __rmul__(self, other: Value | float) -> Value: ...
        def __truediv__(self, other: Value | float) -> Value: ...
        def __rtruediv__(self, other: Value | float) -> Value: ...
        def __pow__(self, other: Value | float) -> Value: ...
        def __rpow__(self, other: Value | float) -> Value: ...
        def __neg__(self) -> Value: ...
        def __abs__(self) -> Value: ...
        def __getattr__(self, name: str) -> Any: ...  # an op's method: x.tanh(), x.relu() ...

    # -- what the seed's walkthrough shows -------------------------------------------------
    @property
    def _op(self) -> str:
        """The op that made this node, as text ('' for a leaf), e.g. '+', 'tanh', '**2'."""
        spec = self._spec
        if spec is None:
            return ""
        if type(spec) is CustomRule:
            return spec.label
        params = self._params
        if not params:
            return spec.label
        if len(params) == 1 and not spec.label.isidentifier():
            return f"{spec.label}{_short(next(iter(params.values())))}"
        return f"{spec.label}({', '.join(f'{k}={_short(v)}' for k, v in params.items())})"

    @property
    def _backward(self) -> Callable[[], None]:
        """Pass this node's gradient one step on to its inputs (the chain rule for one node).

        For a registered op it is made on access, not stored, so the node holds no closure
        that refers back to it. Assigning a function (the seed's way of writing an op) makes
        backward() call that function for this node instead."""
        spec = self._spec
        if type(spec) is CustomRule and spec.closure is not None:
            return spec.closure
        return lambda: chain_rule_step(self)

    @_backward.setter
    def _backward(self, closure: Callable[[], None]) -> None:
        if not callable(closure):
            raise TypeError(f"_backward must be a function of no arguments, got {shorten(closure)}")
        spec = self._spec
        if type(spec) is CustomRule:
            spec.closure = closure
        else:  # a leaf or a registered op's node: keep what it shows, run the closure
            self._spec = CustomRule(self._op, None, closure)
            self._params = None

    @property
    def is_leaf(self) -> bool:
        """True for a number you made (an input or a parameter), False for an op's result."""
        return self._spec is None

    @property
    def op_spec(self) -> OpSpec | None:
        """The registered op that made this node (None for a leaf or a closure-only node)."""
        spec = self._spec
        if isinstance(spec, CustomRule):
            return spec.spec if spec.closure is None else None
        return spec

    @property
    def op_params(self) -> dict[str, Any]:
        """The parameters the op was applied with (``{"exponent": 2}`` for ``x ** 2``)."""
        return dict(self._params) if self._params else {}

    @property
    def has_closure(self) -> bool:
        """Whether this node's gradient is passed on by a ``_backward`` closure set by hand."""
        spec = self._spec
        return type(spec) is CustomRule and spec.closure is not None

    def backward(self, gradient: Any = 1.0, create_graph: bool = False) -> None:
        """Fill in ``grad`` for every node this one depends on (d self / d node).

        Leaf gradients accumulate across calls, as in PyTorch: zero them between steps.
        Interior gradients are recomputed on every pass. ``gradient`` seeds the pass (the
        gradient of something downstream with respect to this node; 1.0 by default). With
        ``create_graph=True`` each gradient is itself a Value connected to the graph, so it
        can be differentiated again.
        """
        backward(self, gradient=gradient, create_graph=create_graph)

    def zero_grad(self) -> None:
        """Set the gradient of this node and of every node it depends on to 0.0."""
        for node in topological_order(self):
            node.grad = 0.0

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        grad = self.grad
        # a gradient from create_graph=True is shown as its number, not as its whole graph
        shown = f"Value({grad.data!r})" if isinstance(grad, Value) else repr(grad)
        return f"Value(data={self.data!r}, grad={shown}{label})"

    # -- comparisons read the data (and tell replay what was compared) ----------------------
    def __lt__(self, other: Any) -> bool:
        return _compare(self, other, "<")

    def __le__(self, other: Any) -> bool:
        return _compare(self, other, "<=")

    def __gt__(self, other: Any) -> bool:
        return _compare(self, other, ">")

    def __ge__(self, other: Any) -> bool:
        return _compare(self, other, ">=")

    def __bool__(self) -> bool:
        return _compare(self, 0.0, "!=")

    # No __float__: math.cos(value) must fail loudly instead of silently cutting the graph.


def _bindable(spec: OpSpec) -> bool:
    """Whether a bare node can carry this op: not when the op needs a parameter it lacks."""
    return all(default is not None for default in spec.params.values())


COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "!=": lambda a, b: a != b,
}


def _compare(left: Value, right: Any, symbol: str) -> bool:
    right_data = right.data if isinstance(right, Value) else as_number(right)
    result = COMPARE[symbol](left.data, right_data)
    for observer in comparison_observers:
        observer(left, right, symbol, result)
    return result


def as_number(data: Any) -> float:
    """The float a Value holds. Ints, bools and numpy numbers count; nan and inf pass through."""
    if type(data) is float:
        return data
    if isinstance(data, numbers.Real) and not isinstance(data, Value):
        try:
            return float(data)
        except OverflowError:
            raise OverflowError(
                f"Value holds a float; {shorten(data)} is too large for one (the largest is about 1.8e308)"
            ) from None
    hint = ""
    if isinstance(data, numbers.Complex):
        hint = " (complex numbers are not supported)"
    elif isinstance(data, Value):
        hint = " (it is already a Value: use it directly)"
    elif isinstance(data, str):
        hint = " (convert text with float(...) first)"
    raise TypeError(
        f"a Value holds one real number (int, float or bool), got {shorten(data)} of type {type(data).__name__}{hint}"
    )


def _short(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


# -- recording nodes: what every op method runs --------------------------------------------

_new = object.__new__


def node(
    data: float, children: tuple[Value, ...], spec: OpSpec | CustomRule | None, params: dict[str, Any] | None = None
) -> Value:
    """A new graph node, skipping __init__'s checks (its data comes from a forward rule)."""
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._prev = children
    out._spec = spec
    out._params = params
    out.label = ""
    return out


_ONLY_VALUES = frozenset({Value})
_data_of = operator.attrgetter("data")


def apply(spec: OpSpec, inputs: Iterable[Any], params: Mapping[str, Any] | None = None) -> Value:
    """Apply an op to Values (numbers become constant leaves) and record the new node."""
    children = tuple(inputs)
    if not _ONLY_VALUES.issuperset(map(type, children)):  # (checked at C speed: a neuron has 2n + 1 inputs)
        children = tuple(x if isinstance(x, Value) else Value(x) for x in children)
    if spec.arity is not None and len(children) != spec.arity:
        raise TypeError(f"op {spec.name!r} takes {spec.arity} input(s), got {len(children)}")
    params = bind_params(spec, params)
    out = node(evaluate(spec, list(map(_data_of, children)), params), children, spec, params)
    for check in node_checks:
        check(out)
    return out


def evaluate(spec: OpSpec, inputs: Sequence[Any], params: Mapping[str, Any] | None = None) -> float:
    """Run an op's forward rule on numbers, turning its errors into ones that name the op."""
    try:
        data = spec.forward(*inputs, **params) if params else spec.forward(*inputs)
    except MiniGradError:
        raise
    except Exception as error:
        raise rule_error(spec, "forward", inputs, params, error) from error
    if type(data) is not float:
        data = _check_output(spec, inputs, params, data)
    return data


def bind_params(spec: OpSpec, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The op's parameters for one call: the given ones, checked, plus the defaults."""
    if not spec.params and not given:
        return None
    given = dict(given or {})
    unknown = set(given) - set(spec.params)
    if unknown:
        raise TypeError(
            f"op {spec.name!r} has no parameter(s) {sorted(unknown)}; its parameters: {sorted(spec.params)}"
        )
    bound = {}
    for name, default in spec.params.items():
        value = given.get(name, default)
        if value is None:
            raise TypeError(f"op {spec.name!r} needs the parameter {name!r}")
        if isinstance(value, Value):
            raise TypeError(
                f"op {spec.name!r}: parameter {name!r} must be a number, not a Value (got {shorten(value)}; "
                f"gradients do not flow into parameters: pass its .data)"
            )
        bound[name] = value
    return bound


def rule_error(
    spec: OpSpec, role: str, inputs: Sequence[Any], params: Mapping[str, Any] | None, error: Exception
) -> MiniGradError:
    """The error for a rule that raised: a domain error for arithmetic trouble, otherwise
    one naming the op, its plugin, the inputs and what the rule raised."""
    settings = [f"{k}={shorten(v)}" for k, v in (params or {}).items()]
    shown = [*inputs, *settings]
    if isinstance(error, (ArithmeticError, ValueError)) and not _is_array_error(error):
        kind = OpZeroDivisionError if isinstance(error, ZeroDivisionError) else OpDomainError
        reason = str(error) or type(error).__name__
        if role == "derivative":  # forward was fine here: say which rule gave up
            reason = f"its derivative rule raised {type(error).__name__}: {reason}"
        return kind(spec.name, shown, spec.domain.description, reason=reason)
    if role == "derivative" and isinstance(error, TypeError) and any(isinstance(x, Value) for x in inputs):
        return higher_order_error(spec, f"{type(error).__name__}: {error}")
    error_class = OpSpecError if isinstance(error, TypeError) else OpRuleError  # a TypeError stays one
    quoted = [*map(shorten, inputs), *settings]
    return error_class(
        f"op {spec.name!r} (plugin {spec.plugin!r}): its {role} rule raised {type(error).__name__}: "
        f"{clip(str(error))} (inputs: {', '.join(quoted)})"
    )


def _is_array_error(error: Exception) -> bool:
    # numpy's "truth value of an array is ambiguous": a rule that cannot run on arrays
    return "truth value of an array" in str(error)


def _check_output(spec: OpSpec, inputs: Sequence[Any], params: Mapping[str, Any] | None, data: Any) -> float:
    if isinstance(data, numbers.Real) and not isinstance(data, Value):
        try:
            return float(data)
        except OverflowError:  # an int too large for a float
            return float("-inf") if data <= 0 else float("inf")
    if isinstance(data, numbers.Complex):
        raise rule_error(spec, "forward", inputs, params, ValueError("the result would be a complex number"))
    raise OpSpecError(f"op {spec.name!r} (plugin {spec.plugin!r}): forward returned {shorten(data)}, not a real number")


# -- the graph: topological order ------------------------------------------------------------

_FINISH = object()  # stack marker: every input of the node below it has been listed


def topological_order(*roots: Value) -> list[Value]:
    """Every node the roots depend on (the roots too), each listed after all of its inputs.

    Iterative depth-first search: a chain a million nodes deep needs no recursion.
    A node is pushed with a FINISH marker above it and its inputs above that; by the
    time the marker comes off the stack, all of its inputs are in ``order``.
    """
    order: list[Value] = []
    seen: set[Value] = set()
    stack: list[Any] = list(reversed(roots))
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


# -- the chain rule, written once ----------------------------------------------------------------


def local_derivatives(
    spec: OpSpec, inputs: Sequence[Any], out: Any, params: Mapping[str, Any] | None = None
) -> tuple[Any, ...]:
    """``(d out / d input_i for each input)``: the op's derivative rule, called and checked.

    This is the only place a derivative rule is called. ``inputs`` and ``out`` are numbers
    for an ordinary backward pass, Values when building the graph of the gradient
    (``create_graph=True``), or numpy arrays for a batch. Every tool gets its partials
    here, so a bad rule gets the same error everywhere.
    """
    try:
        partials = spec.derivative(*inputs, out, **params) if params else spec.derivative(*inputs, out)
    except MiniGradError:
        raise
    except Exception as error:
        raise rule_error(spec, "derivative", inputs, params, error) from error
    if type(partials) is not tuple or len(partials) != len(inputs):
        partials = _checked_partials(spec, partials, len(inputs))
    return partials


def _checked_partials(spec: OpSpec, partials: Any, expected: int) -> tuple[Any, ...]:
    if isinstance(partials, list) and len(partials) == expected:
        return tuple(partials)
    if isinstance(partials, (tuple, list)):
        got = f"{len(partials)} partial(s)"
    elif partials is None:
        got = "None (did the rule forget to return?)"
    elif isinstance(partials, numbers.Number) or isinstance(partials, Value):
        got = f"{shorten(partials)}, a bare number"
    else:
        got = f"{shorten(partials)} of type {type(partials).__name__}"
    raise OpSpecError(
        f"op {spec.name!r} (plugin {spec.plugin!r}): derivative must return one partial per input, "
        f"{expected} for this node, but returned {got} (return a tuple, e.g. (d,) for one input, "
        f"(da, db) for two)"
    )


def bad_partial_error(spec: OpSpec, partials: Sequence[Any]) -> OpSpecError:
    """A partial that is not a number (None, text ...): found when it is multiplied."""
    bad = next((p for p in partials if not isinstance(p, (numbers.Number, Value))), partials)
    return OpSpecError(
        f"op {spec.name!r} (plugin {spec.plugin!r}): derivative returned {shorten(tuple(partials))}; "
        f"each partial must be a number (or a Value), not {shorten(bad)}"
    )


def pass_gradient(node: Value, partials: Sequence[Any], create_graph: bool = False) -> None:
    """The chain rule for one node: ``child.grad += partial * node.grad`` for each input."""
    upstream = node.grad
    try:
        if create_graph:
            for child, partial in zip(node._prev, partials):
                child.grad = _accumulate(child.grad, _times(partial, upstream))
        else:
            for child, partial in zip(node._prev, partials):
                child.grad += partial * upstream
    except OverflowError as error:  # an int partial too large for a float
        spec = _spec_of(node)
        assert spec is not None
        raise OpSpecError(
            f"op {spec.name!r} (plugin {spec.plugin!r}): derivative returned {shorten(tuple(partials))}, "
            f"too large for a float ({error})"
        ) from error
    except TypeError as error:
        if any(child.grad is None for child in node._prev):  # grad = None counts as zero
            for child in node._prev:
                if child.grad is None:
                    child.grad = 0.0
            return pass_gradient(node, partials, create_graph)
        spec = _spec_of(node)
        assert spec is not None  # only a registered op's node gets here
        raise bad_partial_error(spec, partials) from error


def _times(partial: Any, upstream: Any) -> Any:
    if type(partial) is float and partial == 1.0:
        return upstream
    if type(upstream) is float and upstream == 1.0:
        return partial
    return partial * upstream


def _accumulate(total: Any, contribution: Any) -> Any:
    if total is None or (type(total) is float and total == 0.0):
        return contribution
    return total + contribution


def _spec_of(node: Value) -> OpSpec | None:
    spec = node._spec
    return spec.spec if isinstance(spec, CustomRule) else spec


def chain_rule_step(node: Value, create_graph: bool = False) -> None:
    """One node's step of the backward pass (what ``node._backward()`` runs)."""
    rule = node._spec
    if rule is None:
        return  # a leaf passes nothing on
    if node.grad is None:
        node.grad = 0.0
    if isinstance(rule, CustomRule) and rule.closure is not None:
        rule.closure()
        return
    spec = _registered_rule(node)
    if spec is None:
        return
    if create_graph:
        partials = local_derivatives(spec, node._prev, node, node._params)
    else:
        partials = local_derivatives(spec, [c.data for c in node._prev], node.data, node._params)
    pass_gradient(node, partials, create_graph)


def _registered_rule(node: Value) -> OpSpec | None:
    """The op whose derivative rule passes this node's gradient on (None: nothing to pass)."""
    rule = node._spec
    if not isinstance(rule, CustomRule):
        return rule
    if rule.spec is None:
        if not node._prev:
            return None  # Value(x, (), "label"): a leaf with a label for its op
        raise MissingRuleError(
            f"backward() reached the node {shorten(node)} made as Value(..., _op={rule.label!r}) from "
            f"{len(node._prev)} input(s), and it has no rule to pass its gradient on: no registered op is "
            f"called {rule.label!r} for {len(node._prev)} input(s), and no _backward closure was set. "
            f"Either set one, as the seed does (out._backward = _backward, where _backward adds "
            f"local_derivative * out.grad to each input's grad), or register an OpSpec named "
            f"{rule.label!r} (minigrad_core.register_op / @op) and build the node with it."
        )
    return rule.spec


def backward_steps(
    root: Value, *, gradient: Any = 1.0, create_graph: bool = False
) -> Iterator[tuple[Value, tuple[Any, ...] | None]]:
    """The backward pass from ``root``, one node at a time.

    Yields ``(node, partials)`` for each node that passes its gradient on, in the order the
    pass visits them (reverse topological: a node only after every node that uses it), just
    BEFORE the node's gradient flows to its inputs; ``partials`` are its local derivatives,
    or None for a node whose ``_backward`` closure does the work. Running the generator to
    the end is ``backward()``; ``explain`` narrates it. A node whose gradient is exactly 0
    (and whose value is finite) passes nothing on and is not yielded: a relu that is off
    skips its whole neuron. Leaf gradients accumulate across passes, as in PyTorch.
    """
    order = topological_order(root)
    for n in order:
        if n._spec is not None:
            n.grad = None if create_graph else 0.0  # interior: recomputed from scratch each pass
        elif n.grad is None:
            n.grad = 0.0  # grad = None (PyTorch's set_to_none habit) counts as zero
        elif not create_graph and isinstance(n.grad, Value):
            n.grad = n.grad.data  # a graph-building gradient from an earlier pass, as a number
    if not create_graph and isinstance(gradient, Value):
        gradient = gradient.data
    elif not isinstance(gradient, Value):
        gradient = as_number(gradient)
    if root._spec is not None:
        root.grad = gradient
    else:
        root.grad = _accumulate(root.grad, gradient) if create_graph else root.grad + gradient

    for n in reversed(order):
        spec = n._spec
        if spec is None:
            continue
        upstream = n.grad
        if create_graph:
            if upstream is None:
                continue  # nothing reached this node
        elif upstream == 0.0 and n.data - n.data == 0.0:
            # Every contribution would be 0 * partial = 0: skip the work. Not when the node's
            # value is inf or nan (x - x is then nan), whose partials may be inf: 0 * inf is
            # nan, as PyTorch gives.
            continue
        if isinstance(spec, OpSpec):  # the common case: a registered op's node
            op_spec = spec
        else:
            if spec.closure is not None:
                yield n, None
                for child in n._prev:
                    if child.grad is None:
                        child.grad = 0.0
                spec.closure()
                continue
            found = _registered_rule(n)
            if found is None:
                continue
            op_spec = found
        if create_graph:
            if op_spec.higher_order is False:
                raise higher_order_error(op_spec, "its OpSpec says higher_order=False")
            partials = local_derivatives(op_spec, n._prev, n, n._params)
        else:
            partials = local_derivatives(op_spec, [c.data for c in n._prev], n.data, n._params)
        yield n, partials
        pass_gradient(n, partials, create_graph)

    if create_graph:
        for n in order:  # every gradient becomes a Value of its own, even a constant one
            g = n.grad
            if not isinstance(g, Value):
                n.grad = Value(0.0 if g is None else g)
            elif g._spec is None:
                # a leaf passed through unchanged (x.grad would *be* y for x * y): give it a
                # node of its own, so updating that leaf's data later cannot change this gradient
                n.grad = g * 1.0  # (not g + 0.0, which would turn a -0.0 into +0.0; PyTorch keeps it)


# Two threads walking graphs that share nodes would interleave their += on the shared
# gradients; one pass at a time gives every caller the serial result.
backward_lock = threading.RLock()

# Called as observer(root) at the start of every backward() (the teaching checks use it).
backward_observers: list[Callable[[Value], None]] = []
# Called as check(node, partials) on every step of backward() (anomaly detection), and as
# check(node) on every node apply() records; both empty unless a tool switches them on.
step_checks: list[Callable[[Value, tuple[Any, ...] | None], None]] = []
node_checks: list[Callable[[Value], None]] = []


def backward(root: Value, *, gradient: Any = 1.0, create_graph: bool = False) -> None:
    """Backpropagation from ``root``: every ``backward_steps`` step, run to the end."""
    if not isinstance(root, Value):
        raise TypeError(f"backward() needs a Value, got {shorten(root)}")
    # The pass allocates only acyclic temporaries; pausing the cyclic collector keeps it from
    # tracing the whole live graph over and over while we walk it.
    with backward_lock:
        for observer in backward_observers:
            observer(root)
        collecting = gc.isenabled()
        gc.disable()
        try:
            steps = backward_steps(root, gradient=gradient, create_graph=create_graph)
            if step_checks:
                for n, partials in steps:
                    for check in step_checks:
                        check(n, partials)
            else:
                for _ in steps:
                    pass
        finally:
            if collecting:
                gc.enable()


def higher_order_error(spec: OpSpec, reason: str) -> HigherOrderError:
    return HigherOrderError(
        f"op {spec.name!r} (plugin {spec.plugin!r}) cannot be differentiated twice: its derivative rule "
        f"works on numbers only ({reason}). First-order backward() still works; to support "
        f"create_graph=True, write the rule with Value arithmetic and minigrad_core.ops functions."
    )
