"""Loss functions built from registered ops; each returns one Value (the mean over examples).

All are numerically stable: none overflows for logits in the thousands, and their
values and gradients match PyTorch's functional losses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from minigrad_core import Value

from .fused import WEIGHTED_SUM


def _as_list(xs, what: str) -> list:
    if isinstance(xs, (Value, int, float)):
        return [xs]
    try:
        return list(xs)
    except TypeError:
        raise TypeError(f"{what} must be a Value, a number or a sequence of them, got {xs!r}") from None


def _pairs(preds, targets, who: str, pred_name: str, target_name: str) -> tuple[list, list]:
    preds, targets = _as_list(preds, f"{who}: {pred_name}"), _as_list(targets, f"{who}: {target_name}")
    if len(preds) != len(targets):
        raise ValueError(f"{who}: {len(preds)} {pred_name} but {len(targets)} {target_name}; they must pair up")
    if not preds:
        raise ValueError(f"{who}: no examples (empty {pred_name}); the mean of nothing is undefined")
    return preds, targets


def _value(x) -> Value:
    return x if isinstance(x, Value) else Value(x)


def _data(x) -> float:
    return x.data if isinstance(x, Value) else float(x)


def _mean(terms: list) -> Value:
    return sum(terms) * (1.0 / len(terms))


def mse(preds, targets) -> Value:
    """Mean squared error: mean of (pred - target)**2."""
    preds, targets = _pairs(preds, targets, "mse", "preds", "targets")
    return _mean([(_value(p) - t) ** 2 for p, t in zip(preds, targets)])


def hinge(scores, labels) -> Value:
    """Max-margin loss for labels in {-1, +1}: mean of relu(1 - label * score)."""
    scores, labels = _pairs(scores, labels, "hinge", "scores", "labels")
    for i, y in enumerate(labels):
        if _data(y) not in (-1.0, 1.0):
            raise ValueError(f"hinge: labels must be -1 or +1, got {y!r} at index {i}")
    return _mean([(1 - y * _value(s)).relu() for s, y in zip(scores, labels)])


def bce_with_logits(logits, labels) -> Value:
    """Binary cross-entropy on logits z for labels y in [0, 1]: mean of log(1 + exp(z)) - y*z.

    That is -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], written so that it stays
    finite however large |z| gets: sigmoid is never computed (it would round to 0 or 1),
    and no exp of a positive number is taken.
    """
    logits, labels = _pairs(logits, labels, "bce_with_logits", "logits", "labels")
    for i, y in enumerate(labels):
        if not 0.0 <= _data(y) <= 1.0:
            raise ValueError(
                f"bce_with_logits: labels must be in [0, 1] (probabilities of class 1), got {y!r} at index {i}"
            )
    terms = []
    for z, y in zip(logits, labels):
        z = _value(z)
        # log(1 + e^z) = m + log(e^-m + e^(z-m)) with m = max(0, z): both exps are at most 1,
        # and there is no branch on z, so a recorded graph (replay) fits every z.
        m = z.relu()
        terms.append(m - y * z + ((-m).exp() + (z - m).exp()).log())
    return _mean(terms)


def _shift(row: Sequence[Value]):
    """The largest logit, subtracted before exp so that no exp overflows.

    log Σ exp(z_i) = m + log Σ exp(z_i - m) for any m, so the loss does not depend on m and
    its gradient through m is zero (up to rounding). m is built in the graph, as
    max(m, z) = m + relu(z - m), rather than taken as a number or found by comparisons, so
    that a recorded graph (minigrad_replay) recomputes it for any data.
    """
    m = row[0]
    for z in row[1:]:
        m = m + (z - m).relu()
    if math.isfinite(m.data):
        return m
    # A -inf logit (a mask) makes m + relu(z - m) nan, and logits near ±1e308 overflow it: shift
    # by the largest finite logit's number instead (a constant, as m's gradient is zero anyway).
    finite = [z.data for z in row if math.isfinite(z.data)]
    return max(finite) if finite else 0.0


def logsumexp(row: Sequence[Value]) -> Value:
    """log(exp(z_1) + ... + exp(z_n)), computed without overflow."""
    m = _shift(row)
    return sum((z - m).exp() for z in row).log() + m


def _pin_class(label: Value, k: int) -> None:
    """Compare a Value label with the class index it picks (both comparisons are true now).

    Picking the logit ``z[k]`` uses the label's number, not its Value, so a recorded graph
    (minigrad_replay) would pick class k for every example. Comparisons of Values are what
    replay watches: it checks them for each example it runs and raises GraphChangedError
    where a label differs, instead of silently using the recorded one. To record one
    example's loss for a whole batch, give one-hot targets instead: ``logsumexp(z) - Σ t_k z_k``.
    """
    _ = (label >= k, label <= k)


def softmax_cross_entropy(logits_rows, labels) -> Value:
    """Cross-entropy of softmax(logits) against class indices: mean of logsumexp(row) - row[label].

    Each term is computed as log Σ exp(z_i - m) - (z_label - m): subtracting m from the
    label's logit before the logsumexp is added back would lose the small difference of
    two large numbers when the model is confident.
    """
    rows, labels = _pairs(logits_rows, labels, "softmax_cross_entropy", "rows of logits", "labels")
    terms = []
    for i, (row, label) in enumerate(zip(rows, labels)):
        row = [_value(z) for z in _as_list(row, f"softmax_cross_entropy: row {i} of logits")]
        if not row:
            raise ValueError(f"softmax_cross_entropy: row {i} has no logits")
        if isinstance(label, bool) or int(_data(label)) != _data(label) or not 0 <= int(_data(label)) < len(row):
            raise ValueError(
                f"softmax_cross_entropy: label {label!r} of row {i} is not a class index in 0..{len(row) - 1}"
            )
        k = int(_data(label))
        if isinstance(label, Value):
            _pin_class(label, k)
        m = _shift(row)
        shifted = [z - m for z in row]
        terms.append(sum(s.exp() for s in shifted).log() - shifted[k])
    return _mean(terms)


def l2(parameters, alpha: float) -> Value:
    """L2 regularization: alpha * sum(p * p) over the parameters, as one fused node.

    sum(p * p) is the weighted sum of the parameters with themselves as weights; each p
    then gets 2p from it (d/dw_i = x_i and d/dx_i = w_i, both p).
    """
    parameters = list(parameters)
    if not parameters:
        raise ValueError("l2: no parameters given")
    from minigrad_core import apply, get_registry

    spec = get_registry().ops.get(WEIGHTED_SUM.name)
    if spec is None:  # without the nn plugin's fused op, build the sum from + and *
        return alpha * sum(p * p for p in parameters)
    return alpha * apply(spec, (*parameters, *parameters, 0.0))
