"""The benchmark's workloads, one function per engine, all computing the same numbers.

The demo step is micrograd's demo: 100 points of the moons dataset, MLP(2, [16, 16, 1])
with relu hidden layers and a linear score, the hinge loss plus 1e-4 * sum(p**2), and one
full-batch forward, backward and SGD update. Every engine starts from the same weights and
data, so the benchmark can check that they agree before it times them.

A ``make_*_step(problem)`` returns a function that performs one training step on its own
copy of the weights and returns the loss (before the update).
"""

from __future__ import annotations

import operator
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # closure_engine, when imported from elsewhere

from closure_engine import ClosureValue

ALPHA = 1e-4  # L2 strength
LR = 0.5  # a fixed learning rate: the engines are compared step by step


@dataclass
class Problem:
    """The data (as lists of floats, labels ±1) and the initial weights of the demo step."""

    X: list  # 100 rows of 2 floats
    y: list  # 100 labels, -1.0 or 1.0
    weights: list  # per layer, per neuron: (list of weights, bias)
    seed: int


def demo_problem(samples: int = 100, seed: int = 1337) -> Problem:
    import minigrad_nn
    from minigrad_nn import datasets

    X, labels = datasets.make_moons(samples, noise=0.1, seed=seed)
    minigrad_nn.seed(seed)
    model = minigrad_nn.MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None)
    weights = [[([w.data for w in n.w], n.b.data) for n in layer.neurons] for layer in model.layers]
    return Problem(X.tolist(), [2.0 * label - 1.0 for label in labels.tolist()], weights, seed)


# -- MiniGrad -----------------------------------------------------------------------------


def minigrad_model(problem: Problem):
    """minigrad_nn's MLP as a user builds it (same seed, so the same initial weights)."""
    import minigrad_nn

    minigrad_nn.seed(problem.seed)
    model = minigrad_nn.MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None)
    built = [[([w.data for w in n.w], n.b.data) for n in layer.neurons] for layer in model.layers]
    assert built == problem.weights, "minigrad_nn.seed no longer reproduces the benchmark's weights"
    return model


def make_eager_step(problem: Problem):
    """MiniGrad eager, written as a learner writes the training loop."""
    from minigrad_nn import losses, optim

    model = minigrad_model(problem)
    params = model.parameters()
    optimizer = optim.SGD(params, lr=LR)
    X, y = problem.X, problem.y

    def step():
        scores = [model(x) for x in X]
        loss = losses.hinge(scores, y) + losses.l2(params, ALPHA)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.data

    return step


def make_replay_step(problem: Problem):
    """The same step, recorded once and replayed on floats."""
    from minigrad_nn import losses, optim
    from minigrad_replay import record

    model = minigrad_model(problem)
    params = model.parameters()
    optimizer = optim.SGD(params, lr=LR)

    def loss_fn(X, y):
        return losses.hinge([model(x) for x in X], y) + losses.l2(params, ALPHA)

    tape = record(loss_fn, problem.X, problem.y)
    X, y = problem.X, problem.y

    def step():
        optimizer.zero_grad()
        loss = tape.backward(X, y)
        optimizer.step()
        return loss

    return step


def make_batched_step(problem: Problem):
    """The per-example loss recorded once and run for the whole batch with numpy; the L2
    term (which depends on no example) is a replay of its own."""
    import numpy as np

    from minigrad_nn import losses, optim
    from minigrad_replay import record, record_batch

    model = minigrad_model(problem)
    params = model.parameters()
    optimizer = optim.SGD(params, lr=LR)

    def example_loss(x, y):
        return losses.hinge([model(x)], [y])

    batched = record_batch(example_loss, problem.X[0], problem.y[0])
    regularizer = record(lambda: losses.l2(params, ALPHA))
    X, y = np.array(problem.X), np.array(problem.y)

    def step():
        optimizer.zero_grad()
        loss = batched.backward(X, y, reduce="mean") + regularizer.backward()
        optimizer.step()
        return loss

    return step


# -- the closure-per-node reference ---------------------------------------------------------


def make_closure_step(problem: Problem):
    """The seed's design: micrograd's MLP on ClosureValue (a closure per node)."""
    layers = [[([ClosureValue(w) for w in ws], ClosureValue(b)) for ws, b in layer] for layer in problem.weights]
    params = [p for layer in layers for ws, b in layer for p in (*ws, b)]
    last = len(layers) - 1

    def model(x):
        for i, layer in enumerate(layers):
            x = [sum((wi * xi for wi, xi in zip(ws, x)), b) for ws, b in layer]
            if i != last:
                x = [v.relu() for v in x]
        return x[0]

    def step():
        inputs = [list(map(ClosureValue, row)) for row in problem.X]
        scores = [model(x) for x in inputs]
        data_loss = sum((1 + -yi * si).relu() for yi, si in zip(problem.y, scores)) * (1.0 / len(scores))
        loss = data_loss + ALPHA * sum(p * p for p in params)
        for p in params:
            p.grad = 0.0
        loss.backward()
        for p in params:
            p.data -= LR * p.grad
        return loss.data

    return step


# -- PyTorch --------------------------------------------------------------------------------


def make_torch_scalar_step(problem: Problem):
    """PyTorch autograd on 0-d float64 tensors, building the same scalar graph as micrograd."""
    import torch

    def tensor(v, grad=False):
        return torch.tensor(v, dtype=torch.float64, requires_grad=grad)

    layers = [[([tensor(w, True) for w in ws], tensor(b, True)) for ws, b in layer] for layer in problem.weights]
    params = [p for layer in layers for ws, b in layer for p in (*ws, b)]
    last = len(layers) - 1

    def model(x):
        for i, layer in enumerate(layers):
            x = [sum((wi * xi for wi, xi in zip(ws, x)), b) for ws, b in layer]
            if i != last:
                x = [v.relu() for v in x]
        return x[0]

    def step():
        inputs = [[tensor(v) for v in row] for row in problem.X]
        scores = [model(x) for x in inputs]
        data_loss = sum((1 + -yi * si).relu() for yi, si in zip(problem.y, scores)) * (1.0 / len(scores))
        loss = data_loss + ALPHA * sum(p * p for p in params)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
        return loss.item()

    return step


def make_torch_batched_step(problem: Problem):
    """PyTorch on whole tensors (float64, one thread): the batched floor."""
    import torch

    torch.set_num_threads(1)
    weights = [
        torch.tensor([ws for ws, _ in layer], dtype=torch.float64, requires_grad=True) for layer in problem.weights
    ]
    biases = [torch.tensor([b for _, b in layer], dtype=torch.float64, requires_grad=True) for layer in problem.weights]
    params = weights + biases
    X = torch.tensor(problem.X, dtype=torch.float64)
    y = torch.tensor(problem.y, dtype=torch.float64)

    def step():
        h = X
        for i, (W, b) in enumerate(zip(weights, biases)):
            h = torch.addmm(b, h, W.T)
            if i != len(weights) - 1:
                h = h.relu()
        loss = (1 - y * h[:, 0]).relu().mean() + ALPHA * sum((p * p).sum() for p in params)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
        return loss.item()

    return step


# -- hand-written backprop on floats ------------------------------------------------------


def make_floats_step(problem: Problem):
    """Forward and backward written out by hand on Python floats: the pure-Python floor."""
    (layer1, layer2, layer3) = problem.weights
    W1, B1 = [list(ws) for ws, _ in layer1], [b for _, b in layer1]
    W2, B2 = [list(ws) for ws, _ in layer2], [b for _, b in layer2]
    W3, B3 = list(layer3[0][0]), [layer3[0][1]]
    mul = operator.mul
    n = len(problem.X)

    def step():
        gW1 = [[0.0, 0.0] for _ in W1]
        gB1 = [0.0] * len(B1)
        gW2 = [[0.0] * len(W2[0]) for _ in W2]
        gB2 = [0.0] * len(B2)
        gW3 = [0.0] * len(W3)
        gB3 = 0.0
        data_loss = 0.0
        for (x0, x1), label in zip(problem.X, problem.y):
            z1 = [b + w[0] * x0 + w[1] * x1 for w, b in zip(W1, B1)]
            h1 = [z if z > 0 else 0.0 for z in z1]
            z2 = [b + sum(map(mul, w, h1)) for w, b in zip(W2, B2)]
            h2 = [z if z > 0 else 0.0 for z in z2]
            score = B3[0] + sum(map(mul, W3, h2))
            margin = 1.0 - label * score
            if margin <= 0:
                continue  # relu(margin) is 0 here, and so is its gradient
            data_loss += margin
            d_score = -label / n
            gB3 += d_score
            for j, h in enumerate(h2):
                gW3[j] += h * d_score
            d_z2 = [w * d_score if z > 0 else 0.0 for w, z in zip(W3, z2)]
            d_h1 = [0.0] * len(h1)
            for j, d in enumerate(d_z2):
                if d:
                    gB2[j] += d
                    row, w = gW2[j], W2[j]
                    for k, h in enumerate(h1):
                        row[k] += h * d
                        d_h1[k] += w[k] * d
            for k, (d, z) in enumerate(zip(d_h1, z1)):
                if z > 0:
                    gB1[k] += d
                    gW1[k][0] += x0 * d
                    gW1[k][1] += x1 * d
        all_params = [v for w in W1 for v in w] + B1 + [v for w in W2 for v in w] + B2 + W3 + B3
        loss = data_loss / n + ALPHA * sum(p * p for p in all_params)
        # d(alpha * p**2)/dp = 2 alpha p, then the update
        for w, g in zip(W1 + W2 + [W3], gW1 + gW2 + [gW3]):
            for k in range(len(w)):
                w[k] -= LR * (g[k] + 2 * ALPHA * w[k])
        for bs, gs in ((B1, gB1), (B2, gB2), (B3, [gB3])):
            for k in range(len(bs)):
                bs[k] -= LR * (gs[k] + 2 * ALPHA * bs[k])
        return loss

    return step


DEMO_ENGINES = {
    "closure": ("closure-per-node reference engine", make_closure_step),
    "torch_scalar": ("PyTorch autograd, 0-d tensors", make_torch_scalar_step),
    "eager": ("MiniGrad eager (minigrad_nn.MLP)", make_eager_step),
    "replay": ("MiniGrad replay (record once)", make_replay_step),
    "batched": ("MiniGrad batched replay (numpy)", make_batched_step),
    "floats": ("hand-written backprop, Python floats", make_floats_step),
    "torch_batched": ("PyTorch batched (float64, 1 thread)", make_torch_batched_step),
}


# -- graphs that grow: a deep chain and a wide sum ------------------------------------------


def minigrad_chain(n: int):
    """n ops in a chain (depth n): y = tanh(y * w), with one shared leaf w."""
    from minigrad_core import Value

    x, w = Value(0.5), Value(0.999)
    y = x
    for _ in range(n // 2):
        y = (y * w).tanh()
    return y


def closure_chain(n: int):
    x, w = ClosureValue(0.5), ClosureValue(0.999)
    y = x
    for _ in range(n // 2):
        y = (y * w).tanh()
    return y


def _pairwise_sum(level: list):
    while len(level) > 1:
        paired = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def minigrad_wide(n: int):
    """n leaves added in a balanced tree: n - 1 add nodes, depth log2(n)."""
    from minigrad_core import Value

    rng = random.Random(n)
    return _pairwise_sum([Value(rng.random()) for _ in range(n)])


def closure_wide(n: int):
    rng = random.Random(n)
    return _pairwise_sum([ClosureValue(rng.random()) for _ in range(n)])


# -- lifting (#12): forward + backward over a whole batch, against PyTorch batched ----------------
#
# Each ``make_*`` below returns a function that runs one forward and backward pass over the
# whole batch and leaves the gradients in the parameters (``.grad`` of the Values, or of the
# tensors), returning the loss: what ``record_batch(...).backward(X, Y, reduce="mean")``
# does, and PyTorch's ``loss.backward()`` after setting every ``grad`` to None.


@dataclass
class Network:
    """A classification task for an MLP: inputs, labels, and the initial weights per layer."""

    name: str
    X: object  # numpy array (examples, inputs)
    labels: object  # numpy int array: class indices (or, for the demo, 0/1)
    weights: list  # per layer, per neuron: (list of weights, bias)
    loss: str  # "hinge" (with ALPHA * L2) or "softmax"


def digits_arrays():
    """The 8x8 digits as (X scaled to [0, 1], labels): minigrad_nn.datasets.load_digits if it
    is there, else random data of the same shape (1,797 x 64, 10 classes)."""
    import numpy as np

    from minigrad_nn import datasets

    try:
        X, y = datasets.load_digits()
        return np.asarray(X, dtype=float) / 16.0, np.asarray(y), "sklearn's 8x8 digits"
    except (AttributeError, FileNotFoundError):
        rng = np.random.default_rng(0)
        return rng.integers(0, 17, (1797, 64)) / 16.0, rng.integers(0, 10, 1797), "random data of digits' shape"


def network(name: str, sizes: list, seed: int = 1) -> Network:
    import numpy as np

    import minigrad_nn

    if name == "demo":
        problem = demo_problem()
        X, labels, loss = np.array(problem.X), (np.array(problem.y) > 0).astype(np.int64), "hinge"
    else:
        X, labels, _ = digits_arrays()
        loss = "softmax"
    minigrad_nn.seed(seed)
    model = minigrad_nn.MLP(sizes[0], sizes[1:], nonlin="relu", out_nonlin=None)
    weights = [[([w.data for w in n.w], n.b.data) for n in layer.neurons] for layer in model.layers]
    return Network(name, X, labels, weights, loss)


def fused_model(net: Network):
    """minigrad_nn.MLP (fused weighted_sum neurons) holding the network's initial weights."""
    import minigrad_nn

    sizes = [len(net.weights[0][0][0])] + [len(layer) for layer in net.weights]
    model = minigrad_nn.MLP(sizes[0], sizes[1:], nonlin="relu", out_nonlin=None)
    for layer, weights in zip(model.layers, net.weights):
        for neuron, (ws, b) in zip(layer.neurons, weights):
            for w, value in zip(neuron.w, ws):
                w.data = value
            neuron.b.data = b
    return model


class LectureMLP:
    """The lecture's MLP: each neuron ``sum((wi * xi for wi, xi in zip(w, x)), b)``, then relu."""

    def __init__(self, net: Network):
        from minigrad_core import Value

        self.layers = [[([Value(w) for w in ws], Value(b)) for ws, b in layer] for layer in net.weights]

    def __call__(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = [sum((wi * xi for wi, xi in zip(ws, x)), b) for ws, b in layer]
            if i != last:
                x = [v.relu() for v in x]
        return x

    def parameters(self):
        return [p for layer in self.layers for ws, b in layer for p in (*ws, b)]


def make_lifted_pass(net: Network, style: str = "fused", lift: bool = True):
    """MiniGrad: one example's loss recorded once, run for the whole batch (lifted, or as
    batched replay with ``lift=False``); the demo's L2 term inside each example's loss."""
    import numpy as np

    from minigrad_nn import losses
    from minigrad_replay import record_batch

    model = fused_model(net) if style == "fused" else LectureMLP(net)
    params = model.parameters()
    forward = model.forward if style == "fused" else model

    if net.loss == "hinge":
        targets = 2.0 * net.labels - 1.0

        def example_loss(x, t):
            return losses.hinge([forward(x)[0]], [t]) + losses.l2(params, ALPHA)
    else:
        targets = np.eye(int(net.labels.max()) + 1)[net.labels]  # one-hot: one graph serves every label

        def example_loss(x, one_hot):
            z = forward(x)
            return losses.logsumexp(z) - sum(t * zi for t, zi in zip(one_hot, z))

    batched = record_batch(example_loss, net.X[0], targets[0], lift=lift)
    X = net.X

    def forward_backward():
        for p in params:
            p.grad = 0.0
        return batched.backward(X, targets, reduce="mean")

    forward_backward.params = params
    return forward_backward


def make_torch_pass(net: Network):
    """PyTorch on whole tensors (float64, one thread): the same forward and backward pass."""
    import torch

    torch.set_num_threads(1)
    weights = [torch.tensor([ws for ws, _ in layer], dtype=torch.float64, requires_grad=True) for layer in net.weights]
    biases = [torch.tensor([b for _, b in layer], dtype=torch.float64, requires_grad=True) for layer in net.weights]
    params = [p for pair in zip(weights, biases) for p in pair]
    X = torch.tensor(net.X, dtype=torch.float64)
    labels = torch.tensor(net.labels)
    signs = 2.0 * labels.to(torch.float64) - 1.0

    def forward_backward():
        h = X
        for i, (W, b) in enumerate(zip(weights, biases)):
            h = torch.addmm(b, h, W.T)
            if i != len(weights) - 1:
                h = h.relu()
        if net.loss == "hinge":
            loss = (1 - signs * h[:, 0]).relu().mean() + ALPHA * sum((p * p).sum() for p in params)
        else:
            loss = torch.nn.functional.cross_entropy(h, labels)
        for p in params:
            p.grad = None
        loss.backward()
        return loss.item()

    forward_backward.params = params
    return forward_backward
