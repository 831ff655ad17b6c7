"""MiniGrad's explanations: the backward pass narrated step by step, and the safe expression
parser behind ``minigrad explain`` and ``minigrad graph``.

    from minigrad_explain import explain
    print(explain(loss))             # each use of the chain rule, with formulas and numbers

``explain`` observes the kernel's own pass (``minigrad_core.backward_steps``): it runs no
backward loop of its own, so it shows exactly what ``backward()`` does.
"""

from .explain import (
    WHY_ACCUMULATE,
    WHY_TOPOLOGICAL,
    Explanation,
    Step,
    explain,
    format_number,
    node_names,
    reading_order,
    ref,
    substitute,
)
from .expr import Expression, ExpressionError, build, parse, parse_bindings

__all__ = [
    "explain",
    "Explanation",
    "Step",
    "node_names",
    "reading_order",
    "format_number",
    "ref",
    "substitute",
    "WHY_TOPOLOGICAL",
    "WHY_ACCUMULATE",
    "parse",
    "build",
    "parse_bindings",
    "Expression",
    "ExpressionError",
]
