"""Functions over Values: ``grad`` (composable derivatives) and ``ops`` (every op as a function)."""

from __future__ import annotations

from typing import Callable

from .value import Value, _bind_params, apply, as_number, backward, evaluate, topological_order


def grad(f: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The derivative of ``f`` as a function of the same arguments.

    ``grad(f)(x)`` is f'(x). Called on numbers it returns numbers; called on Values
    (as when nested) it returns Values connected to the graph, so it composes:
    ``grad(grad(grad(f)))`` is the third derivative. ``.grad`` fields of the caller's
    Values are left as they were.
    """
    single = isinstance(argnums, int)
    positions = (argnums,) if single else tuple(argnums)

    def derivative(*args):
        nested = any(isinstance(a, Value) for a in args)
        inputs = [a if isinstance(a, Value) else Value(a) for a in args]
        out = f(*inputs)
        if not isinstance(out, Value):  # f does not depend on its inputs at all
            results = [Value(0.0) if nested else 0.0 for _ in positions]
        else:
            leaves = [n for n in topological_order(out) if n._spec is None]
            saved = [n.grad for n in leaves]
            for leaf in leaves:
                leaf.grad = 0.0
            for i in positions:
                inputs[i].grad = 0.0
            backward(out, create_graph=nested)
            results = [inputs[i].grad for i in positions]
            for leaf, old in zip(leaves, saved):
                leaf.grad = old
            if not nested:
                results = [r.data if isinstance(r, Value) else r for r in results]
        return results[0] if single else tuple(results)

    derivative.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    return derivative


class OpFunctions:
    """Every registered op as a function that takes Values or numbers.

    ``ops.tanh(x)`` records a node when ``x`` is a Value and simply computes when it is
    a number, so derivative rules written with it work in both first- and higher-order
    backward passes.
    """

    def _forget(self) -> None:
        """Drop the functions made for the previous registry (called when one is activated)."""
        vars(self).clear()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        from .registry import get_registry

        spec = get_registry().get(name)

        def function(*inputs, **params):
            if any(type(x) is Value for x in inputs):
                return apply(spec, inputs, params)
            return evaluate(spec, [as_number(x) for x in inputs], _bind_params(spec, params))

        function.__name__ = name
        function.__doc__ = spec.doc or spec.describe()
        vars(self)[name] = function  # later look-ups skip __getattr__; activate() clears them
        return function

    def __dir__(self):
        from .registry import get_registry

        return sorted(get_registry().ops)


ops = OpFunctions()
