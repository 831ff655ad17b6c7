"""Anomaly detection, as PyTorch names it: find the first step that made a nan or an inf.

    with detect_anomaly():
        loss = model(x)          # a forward step that turns finite inputs into nan/inf raises
        loss.backward()          # so does a backward step that does it to a gradient

The error names the op, its inputs, the node's label and the path of labels from an
input or parameter to it. Outside the block nothing is checked and nothing is slowed:
entering it re-installs Value's methods with a check built in; leaving puts the plain
ones back.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from . import registry, value
from .errors import AnomalyError, shorten
from .value import Value

_depth = 0
_lock = threading.Lock()


def _finite(x: Any) -> bool:
    x = x.data if isinstance(x, Value) else x
    try:
        return math.isfinite(x)
    except TypeError:
        return True


def _name(node: Value) -> str:
    return node.label or (f"({node._op})" if node._op else "a leaf")


def path_to(node: Value) -> str:
    """The labels from an input or parameter (the nearest labelled leaf) down to ``node``."""
    previous: dict[Value, Value | None] = {node: None}
    queue = deque([node])
    found = None
    while queue:
        current = queue.popleft()
        if current.is_leaf and current.label:
            found = current
            break
        for child in current._prev:
            if child not in previous:
                previous[child] = current
                queue.append(child)
    if found is None:
        return _name(node)
    names = []
    while found is not None:
        names.append(_name(found))
        found = previous[found]
    return " -> ".join(names)


def check_forward(node: Value) -> None:
    """Raise if this new node holds nan/inf although every input is finite."""
    if _finite(node.data) or not all(_finite(c.data) for c in node._prev):
        return
    spec = node.op_spec
    op = spec.name if spec is not None else node._op
    inputs = ", ".join(shorten(c.data) for c in node._prev)
    raise AnomalyError(
        f"anomaly in the forward pass: op {op!r} turned the finite input(s) ({inputs}) into {node.data!r} "
        f"at node {_name(node)}; path: {path_to(node)}"
    )


def check_backward(node: Value, partials: Sequence[Any] | None) -> None:
    """Raise if a backward step would turn a finite gradient into nan/inf for an input."""
    if partials is None or not _finite(node.grad):
        return
    upstream = node.grad.data if isinstance(node.grad, Value) else node.grad
    for child, partial in zip(node._prev, partials):
        local = partial.data if isinstance(partial, Value) else partial
        if _finite(child.data) and not _finite(local * upstream):
            spec = node.op_spec
            op = spec.name if spec is not None else node._op
            raise AnomalyError(
                f"anomaly in the backward pass: op {op!r} at node {_name(node)} (inputs "
                f"{', '.join(shorten(c.data) for c in node._prev)}) has the local derivative {local!r} for its "
                f"input {_name(child)} = {child.data!r}, so the gradient {upstream!r} becomes "
                f"{local * upstream!r}; path: {path_to(node)}"
            )


def active() -> bool:
    """Whether a ``detect_anomaly()`` block is open (in any thread)."""
    return _depth > 0


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Check every forward and backward step inside the block (see the module's docstring)."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            registry.set_node_check(check_forward)
            value.node_checks.append(check_forward)
            value.step_checks.append(check_backward)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                registry.set_node_check(None)
                value.node_checks.remove(check_forward)
                value.step_checks.remove(check_backward)
