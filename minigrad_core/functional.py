"""Functions over Values: ``grad`` (composable derivatives), ``jvp`` (forward mode) and
``ops`` (every op as a function)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

from .errors import MiniGradError, shorten
from .registry import get_registry, on_activate
from .value import (
    Value,
    apply,
    as_number,
    backward,
    bind_params,
    evaluate,
    local_derivatives,
    rule_error,
    topological_order,
)


def grad(f: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """The derivative of ``f`` as a function of the same arguments.

    ``grad(f)(x)`` is f'(x). Called on numbers it returns numbers; called on Values
    (as when nested) it returns Values connected to the graph, so it composes:
    ``grad(grad(grad(f)))`` is the third derivative. ``.grad`` fields of the caller's
    Values are left as they were.
    """
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    single = isinstance(argnums, int)

    def derivative(*args: Any) -> Any:
        nested = any(isinstance(a, Value) for a in args)
        inputs = [a if isinstance(a, Value) else Value(a) for a in args]
        out = f(*inputs)
        if not isinstance(out, Value):  # f does not depend on its inputs at all
            results: list[Any] = [Value(0.0) if nested else 0.0 for _ in positions]
        else:
            # the graph's leaves and the chosen inputs (also one f does not use), by identity
            touched = {id(n): n for n in topological_order(out) if n.is_leaf}
            touched.update((id(inputs[i]), inputs[i]) for i in positions)
            saved = [(n, n.grad) for n in touched.values()]
            for n, _ in saved:
                n.grad = 0.0
            backward(out, create_graph=nested)
            results = [inputs[i].grad for i in positions]
            for n, old in saved:
                n.grad = old
            if nested:  # an input f does not use got no graph: its 0.0 becomes a Value too
                results = [r if isinstance(r, Value) else Value(r) for r in results]
            else:
                results = [r.data if isinstance(r, Value) else r for r in results]
        return results[0] if single else tuple(results)

    derivative.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    return derivative


def jvp(f: Callable[..., Any], primals: Sequence[float] | float, tangents: Sequence[float] | float) -> tuple[Any, Any]:
    """Forward mode: ``(f(*primals), d f(primals + t * tangents) / d t at t = 0)``.

    The tangent travels forward with the values, node by node, through the same local
    derivatives that ``backward()`` uses: ``tangent(node) = sum of partial_i * tangent(input_i)``.
    One forward pass gives the derivative along one direction for every output; one
    backward pass gives the derivative of one output for every input. That is why training,
    many parameters and one loss, runs backward. As ``jax.jvp`` and ``torch.func.jvp``:
    ``f`` returns a Value (or a tuple of them); the result has the same shape.
    """
    primal_list = list(primals) if isinstance(primals, (list, tuple)) else [primals]
    tangent_list = list(tangents) if isinstance(tangents, (list, tuple)) else [tangents]
    if len(primal_list) != len(tangent_list):
        raise ValueError(
            f"jvp: {len(primal_list)} primal(s) but {len(tangent_list)} tangent(s); give one tangent per input"
        )
    inputs = [Value(p) for p in primal_list]
    out = f(*inputs)
    outputs = list(out) if isinstance(out, (list, tuple)) else [out]
    tangent: dict[Value, float] = {x: as_number(t) for x, t in zip(inputs, tangent_list)}
    values = [o for o in outputs if isinstance(o, Value)]
    for n in topological_order(*values):
        if n in tangent:
            continue
        if n.is_leaf:
            tangent[n] = 0.0  # a constant or a parameter: not moved by the inputs
            continue
        spec = n.op_spec
        if spec is None:
            raise MiniGradError(
                f"jvp: node {shorten(n)} ({n._op!r}) is passed on by a _backward closure, "
                f"which only runs backward; forward mode needs a registered op's rule"
            )
        partials = local_derivatives(spec, [c.data for c in n._prev], n.data, n._params or None)
        total = 0.0
        for child, partial in zip(n._prev, partials):
            total += partial * tangent[child]
        tangent[n] = total
    results = [(o.data, tangent[o]) if isinstance(o, Value) else (as_number(o), 0.0) for o in outputs]
    if not isinstance(out, (list, tuple)):
        return results[0]
    return type(out)(r[0] for r in results), type(out)(r[1] for r in results)


class OpFunctions:
    """Every registered op as a function that takes Values, numbers or arrays.

    ``ops.tanh(x)`` records a node when ``x`` is a Value, simply computes when it is a
    number, and runs the op's array form (or its forward rule, if that works on arrays)
    for numpy arrays. So one derivative rule written with ``ops`` serves backward passes
    of every order and batches alike.
    """

    def _forget(self) -> None:
        """Drop the functions made for the previous registry (called when one is activated)."""
        vars(self).clear()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        spec = get_registry().get(name)

        def function(*inputs: Any, **params: Any) -> Any:
            for x in inputs:
                if isinstance(x, Value):
                    return apply(spec, inputs, params)
            if all(isinstance(x, numbers.Real) for x in inputs):
                return evaluate(spec, [as_number(x) for x in inputs], bind_params(spec, params))
            rule = spec.np_forward or spec.forward  # arrays
            bound = bind_params(spec, params)
            try:
                return rule(*inputs, **bound) if bound else rule(*inputs)
            except MiniGradError:
                raise
            except Exception as error:
                raise rule_error(spec, "forward", inputs, bound, error) from error

        function.__name__ = name
        function.__doc__ = spec.doc or spec.describe()
        vars(self)[name] = function  # later look-ups skip __getattr__; activate() clears them
        return function

    def __dir__(self) -> list[str]:
        return sorted(get_registry().ops)


ops = OpFunctions()
on_activate.append(ops._forget)
