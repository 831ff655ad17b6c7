"""MiniGrad's testing kit: gradient checks for ops and functions, and hypothesis strategies.

    from minigrad_testing import check_op, check_grads
    check_op("tanh", order=2)      # against finite differences and PyTorch, inputs from its domain

``pytest --minigrad-check-ops`` (this package's pytest plugin) checks every installed op.
"""

from .kit import (
    GradientCheckError,
    OpCheckResult,
    OpExample,
    RandomExpression,
    allowed_intervals,
    check_grads,
    check_op,
    expressions,
    op_inputs,
)

__all__ = [
    "check_op",
    "check_grads",
    "op_inputs",
    "expressions",
    "allowed_intervals",
    "GradientCheckError",
    "OpCheckResult",
    "OpExample",
    "RandomExpression",
]
