"""The nn plugin's own op: a neuron's weighted sum as ONE node.

    weighted_sum(w_1, ..., w_n, x_1, ..., x_n, b) = w_1*x_1 + ... + w_n*x_n + b

Built from ``*`` and ``+`` a neuron of n inputs makes 2n nodes; fused it makes one, with
2n + 1 inputs. The local derivatives are the textbook ones:

    d/dw_i = x_i      d/dx_i = w_i      d/db = 1

The derivative rule is plain arithmetic on its inputs, so it works on Values too and the
fused op can be differentiated again (``backward(create_graph=True)``).
"""

from __future__ import annotations

from minigrad_core import Domain, OpSpec


def _halves(name: str, inputs: tuple):
    """Split (w_1..w_n, x_1..x_n, b) into (ws, xs, b), checking there are 2n + 1 inputs."""
    count = len(inputs)
    if count % 2 == 0:
        raise TypeError(
            f"op {name!r} takes 2n + 1 inputs (w_1..w_n, x_1..x_n, b): n weights, n inputs and a bias; "
            f"got {count} input(s), an even number"
        )
    n = count // 2
    return inputs[:n], inputs[n : 2 * n], inputs[-1]


def weighted_sum(*inputs):
    """The forward rule. It adds with ``+`` only, so the same function serves numbers, numpy
    arrays of a batch (a weight or the bias may be a plain number shared by every example)
    and torch tensors."""
    ws, xs, b = _halves("weighted_sum", inputs)
    total = b
    for w, x in zip(ws, xs):  # left to right, so every rule below rounds the same way
        total = total + w * x
    return total


def weighted_sum_derivative(*inputs_and_out):
    ws, xs, _ = _halves("weighted_sum", inputs_and_out[:-1])
    return (*xs, *ws, 1.0)


def weighted_sum_in_torch(*tensors):
    """The same sum written as PyTorch writes it, a dot product plus the bias: an oracle that
    shares no code with the forward rule."""
    import torch

    ws, xs, b = _halves("weighted_sum", tensors)
    if not ws:
        return b
    same_shape = torch.broadcast_tensors(*ws, *xs)  # a weight shared by a batch of inputs, say
    n = len(ws)
    return (torch.stack(same_shape[:n]) * torch.stack(same_shape[n:])).sum(dim=0) + b  # one example or a batch


WEIGHTED_SUM = OpSpec(
    name="weighted_sum",
    arity=None,  # 2n + 1 inputs, for any n >= 0
    symbol="Σwx+b",
    forward=weighted_sum,
    derivative=weighted_sum_derivative,
    formula="w_1*x_1 + ... + w_n*x_n + b",
    inputs=("w_i", "x_i", "b"),  # the pattern of the 2n + 1 inputs: n of w_i, n of x_i, then b
    derivative_formula=("x_i", "w_i", "1"),
    methods=(),
    domain=Domain(description="any real numbers, 2n + 1 of them: n weights, n inputs, a bias"),
    torch=weighted_sum_in_torch,
    doc="A neuron's pre-activation as one node: weighted_sum(w_1..w_n, x_1..x_n, b) = Σ w_i*x_i + b.",
)
