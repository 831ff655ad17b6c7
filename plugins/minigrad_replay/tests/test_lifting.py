"""Lifting gives eager's numbers: weighted sums found in the recorded graph run as matrix
products, and the losses and gradients of whole training runs stay within 1e-12 (relative)
of eager MiniGrad's; PyTorch float64 checks the digits-sized network.

Relative here means: |lifted - eager| <= 1e-12 * max(|eager|, the largest |gradient| of
the step), i.e. relative to the scale of the numbers being compared (a gradient that is a
sum of terms cancelling to nearly zero is compared at the scale of its terms).
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
import torch

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
import minigrad_replay.plugin
from minigrad_core import OpSpec, Registry, Value, apply, get_registry, register_op, using
from minigrad_nn import losses, optim
from minigrad_replay import GraphChangedError, LiftedRecorder, ReplayFallbackWarning, record, record_batch
from minigrad_replay.lifting import find_sums

TOLERANCE = 1e-12
ALPHA = 1e-4


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, minigrad_replay.plugin)) as active:
        yield active


def assert_close(lifted, eager, what: str) -> float:
    """Check lifted against eager at the scale of eager's numbers; return the largest relative gap."""
    lifted, eager = np.atleast_1d(np.asarray(lifted, dtype=float)), np.atleast_1d(np.asarray(eager, dtype=float))
    scale = max(float(np.max(np.abs(eager))), 1e-300)
    gap = float(np.max(np.abs(lifted - eager))) / scale
    assert gap <= TOLERANCE, f"{what}: lifted and eager differ by {gap:.3g} (relative), more than {TOLERANCE:g}"
    return gap


def grads_of(params) -> np.ndarray:
    return np.array([p.grad for p in params])


def train_side_by_side(make_model, X, targets, example_loss, full_loss, steps: int, lr: float):
    """Two copies of one model, trained with SGD from the same weights: one by eager
    backward() on the whole batch, one by a lifted batched tape of one example's loss.
    Every step's loss and gradients are compared; returns the largest relative gap."""
    eager_model, lifted_model = make_model(), make_model()
    eager_params, lifted_params = eager_model.parameters(), lifted_model.parameters()
    assert [p.data for p in eager_params] == [p.data for p in lifted_params]
    lifted = record_batch(lambda x, t: example_loss(lifted_model, x, t), X[0], targets[0], lift=True)
    assert lifted.lifted is not None
    eager_sgd, lifted_sgd = optim.SGD(eager_params, lr=lr), optim.SGD(lifted_params, lr=lr)
    worst = 0.0
    rows = X.tolist()
    for step in range(steps):
        eager_sgd.zero_grad()
        lifted_sgd.zero_grad()
        loss = full_loss(eager_model, rows, targets)
        loss.backward()
        lifted_loss = lifted.backward(X, targets, reduce="mean")
        worst = max(worst, assert_close(lifted_loss, loss.data, f"loss at step {step}"))
        worst = max(worst, assert_close(grads_of(lifted_params), grads_of(eager_params), f"gradients at step {step}"))
        eager_sgd.step()
        lifted_sgd.step()
    return lifted, worst


# -- the demo network: moons, MLP(2, [16, 16, 1]), hinge + L2 ----------------------------------


def demo_model():
    minigrad_nn.seed(7)
    return minigrad_nn.MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None)


def demo_example_loss(model, x, t):
    return losses.hinge([model(x)], [t]) + losses.l2(model.parameters(), ALPHA)


def demo_full_loss(model, rows, targets):
    return losses.hinge([model(x) for x in rows], targets.tolist()) + losses.l2(model.parameters(), ALPHA)


def test_the_demo_network_trains_with_eager_numbers_and_its_layers_become_matrix_products():
    X, labels = minigrad_nn.datasets.make_moons(100, noise=0.1, seed=3)
    y = 2.0 * labels - 1.0
    lifted, worst = train_side_by_side(demo_model, X, y, demo_example_loss, demo_full_loss, steps=15, lr=0.5)
    kinds = [group.kind for group in lifted.lifted.groups]
    assert kinds.count("rows") == 3  # one product W @ X per layer
    assert "W @ X" in lifted.lifted.source
    print(f"demo: largest relative gap to eager over 15 steps {worst:.2g}")


# -- a digits-sized network: 1,797 examples of 64, MLP(64, [32, 10]), softmax cross-entropy ------


def digits_model():
    minigrad_nn.seed(11)
    return minigrad_nn.MLP(64, [32, 10], nonlin="relu", out_nonlin=None)


def softmax_example_loss(model, x, one_hot):
    """Cross-entropy with the label as a one-hot vector, so that one recorded graph serves
    every label: logsumexp(z) - sum(t_i * z_i)."""
    z = model.forward(x)
    return losses.logsumexp(z) - sum(t * zi for t, zi in zip(one_hot, z))


def digits_data(rows: int = 1797):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 17, size=(rows, 64)).astype(float) / 16  # like sklearn's digits: 0..16 per pixel
    labels = rng.integers(0, 10, size=rows)
    return X, labels, np.eye(10)[labels]


def test_a_digits_sized_network_gives_eager_numbers():
    X, labels, one_hot = digits_data(rows=120)  # eager builds the whole batch's graph: kept small

    def full_loss(model, rows, targets):
        return losses.softmax_cross_entropy([model.forward(x) for x in rows], labels.tolist())

    _, worst = train_side_by_side(digits_model, X, one_hot, softmax_example_loss, full_loss, steps=3, lr=0.5)
    print(f"digits: largest relative gap to eager over 3 steps {worst:.2g}")


def test_a_digits_sized_network_on_1797_examples_matches_pytorch():
    X, labels, one_hot = digits_data()
    model = digits_model()
    params = model.parameters()
    lifted = record_batch(lambda x, t: softmax_example_loss(model, x, t), X[0], one_hot[0], lift=True)
    layers = [
        (
            torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64, requires_grad=True),
            torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True),
        )
        for layer in model.layers
    ]
    sgd = optim.SGD(params, lr=0.5)
    for step in range(3):
        sgd.zero_grad()
        loss = lifted.backward(X, one_hot)
        h = torch.tensor(X)
        for k, (W, b) in enumerate(layers):
            h = torch.addmm(b, h, W.T)
            h = h.relu() if k < len(layers) - 1 else h
        expected = torch.nn.functional.cross_entropy(h, torch.tensor(labels))
        for W, b in layers:
            W.grad = b.grad = None
        expected.backward()
        torch_grads = np.concatenate(
            [np.concatenate([W.grad.numpy(), b.grad.numpy()[:, None]], axis=1).ravel() for W, b in layers]
        )
        assert_close(loss, expected.item(), f"loss at step {step}")
        assert_close(grads_of(params), torch_grads, f"gradients at step {step}")
        sgd.step()
        with torch.no_grad():
            for W, b in layers:
                W -= 0.5 * W.grad
                b -= 0.5 * b.grad


# -- a network written the lecture's way: sum((wi * xi for ...), b) --------------------------


class LectureNeuron(minigrad_nn.Module):
    def __init__(self, nin, nonlin=True):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        self.nonlin = nonlin

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self):
        return [*self.w, self.b]


class LectureLayer(minigrad_nn.Module):
    def __init__(self, nin, nout, **kwargs):
        self.neurons = [LectureNeuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]


class LectureMLP(minigrad_nn.Module):
    def __init__(self, nin, nouts):
        sizes = [nin, *nouts]
        self.layers = [LectureLayer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]


def lecture_model():
    random.seed(13)
    return LectureMLP(2, [16, 16, 1])


def test_a_network_written_the_lectures_way_is_lifted_to_the_same_matrix_products():
    X, labels = minigrad_nn.datasets.make_moons(40, noise=0.1, seed=4)
    y = 2.0 * labels - 1.0

    def example_loss(model, x, t):
        return (1 - t * model(x)).relu() + ALPHA * sum(p * p for p in model.parameters())

    def full_loss(model, rows, targets):
        data = sum((1 - t * model(x)).relu() for x, t in zip(rows, targets.tolist())) * (1.0 / len(rows))
        return data + ALPHA * sum(p * p for p in model.parameters())

    lifted, worst = train_side_by_side(lecture_model, X, y, example_loss, full_loss, steps=8, lr=0.5)
    program = lifted.lifted
    assert [group.kind for group in program.groups].count("rows") == 3
    assert program.absorbed_nodes >= 2 * (2 * 16 + 16 * 16 + 16)  # the * and + nodes of every neuron
    print(f"lecture-style: largest relative gap to eager over 8 steps {worst:.2g}")


def test_sums_are_found_in_the_graph_whichever_order_a_term_is_written():
    w, b = [Value(0.5), Value(-1.5)], Value(0.25)

    def neuron(x):  # x * w in one term, w * x in the other, and the bias first
        return (b + x[0] * w[0] + w[1] * x[1]).tanh()

    tape = record(neuron, [1.0, 2.0])
    batched = tape.batched(lift=True)
    [found] = find_sums(tape, batched.is_batch).values()
    assert {tape.params[i - tape.n_inputs] for i in found.ws} == set(w)  # the shared factor is the weight
    assert set(found.xs) == {0, 1}
    X = np.array([[1.0, 2.0], [-0.5, 0.3], [2.0, -1.0]])
    loss = batched.backward(X, reduce="sum")
    lifted_grads = [p.grad for p in (*w, b)]
    for p in (*w, b):
        p.grad = 0.0
    total = sum((neuron([Value(a), Value(c)]) for a, c in X.tolist()), Value(0.0))
    total.backward()
    assert_close(loss, total.data, "loss")
    assert_close(lifted_grads, [p.grad for p in (*w, b)], "gradients")


# -- what cannot be lifted runs as before ---------------------------------------------------


def test_a_graph_mixing_liftable_parts_and_an_op_without_array_rules_gives_eager_numbers():
    # an op registered at run time with rules for numbers only (math, and an if): no numpy rules
    softsign = register_op(
        OpSpec(
            name="softsign_math",
            arity=1,
            forward=lambda x: x / (1.0 + math.fabs(x)),
            derivative=lambda x, out: (1.0 / (1.0 + (x if x > 0 else -x)) ** 2,),
        )
    )
    X, labels = minigrad_nn.datasets.make_moons(40, noise=0.1, seed=8)
    y = 2.0 * labels - 1.0

    def example_loss(model, x, t):
        hidden = [apply(softsign, (h,)) for h in model.layers[0](x)]
        score = model.layers[1](hidden)  # one neuron: a Value
        return (1 - t * score).relu()

    def full_loss(model, rows, targets):
        return sum(example_loss(model, x, t) for x, t in zip(rows, targets.tolist())) * (1.0 / len(rows))

    def make_model():
        minigrad_nn.seed(17)
        return minigrad_nn.MLP(2, [8, 1], nonlin=None)

    with pytest.warns(ReplayFallbackWarning, match="softsign_math"):
        lifted, _ = train_side_by_side(make_model, X, y, example_loss, full_loss, steps=5, lr=0.3)
    kinds = [group.kind for group in lifted.lifted.groups]
    assert kinds.count("rows") == 2  # the layers are still matrix products
    assert lifted.fallback_ops == ["softsign_math"]


def test_a_domain_error_inside_a_lifted_graph_is_the_ops_own():
    w = Value(1.0)
    batched = record_batch(lambda x: (w * x + 1.0).log(), 1.0, lift=True)
    assert batched.backward(np.array([1.0, 2.0])) == pytest.approx((math.log(2.0) + math.log(3.0)) / 2, abs=1e-15)
    with pytest.raises(Exception, match="log"):
        batched.backward(np.array([1.0, -3.0]))  # log(-2): the op's own error, naming it


# -- a changed graph is still detected --------------------------------------------------------


def test_a_batch_that_would_take_another_branch_is_refused_before_any_gradient():
    w = Value(2.0)

    def branchy(x):
        z = w * x
        return z * z if z > 0 else -z  # a comparison: a guard

    batched = record_batch(branchy, 1.0, lift=True)
    assert batched.lifted is not None
    batched.backward(np.array([1.0, 3.0]))
    before = w.grad
    with pytest.raises(GraphChangedError, match="example 1"):
        batched.backward(np.array([1.0, -3.0]))
    assert w.grad == before


def test_the_lifted_engine_records_again_when_the_graph_changes():
    w = Value(2.0)

    def loss_fn(xs):
        total = Value(0.0)
        for x in xs:
            z = w * x
            total = total + (z * z if z > 0 else -z)
        return total

    engine = LiftedRecorder(loss_fn)
    assert engine.backward([1.0, 3.0]) == pytest.approx(40.0)
    assert w.grad == pytest.approx(2 * 2 * (1 + 9))
    w.grad = 0.0
    assert engine.backward([1.0, -3.0]) == pytest.approx(4.0 + 6.0)
    assert engine.recordings == 2
    assert w.grad == pytest.approx(2 * 2 * 1 - (-3.0))


# -- the lifted engine: the demo's contract -----------------------------------------------------


def test_the_lifted_engine_is_registered_and_trains_the_demo_with_eager_numbers():
    from minigrad_nn import demo

    assert "lifted" in get_registry().engines
    config = dict(steps=15, samples=60)
    eager = demo.train(demo.DemoConfig(engine="eager", **config))
    lifted = demo.train(demo.DemoConfig(engine="lifted", **config))
    assert_close(lifted.losses, eager.losses, "losses over the run")
    assert_close(lifted.final_loss, eager.final_loss, "final loss")
    assert lifted.accuracies == eager.accuracies


def test_the_lifted_engine_runs_the_whole_graph_as_products_over_examples():
    model = demo_model()
    X, labels = minigrad_nn.datasets.make_moons(30, noise=0.1, seed=2)
    y = (2.0 * labels - 1.0).tolist()
    rows = X.tolist()

    def loss_fn(rows):
        return losses.hinge([model(x) for x in rows], y) + losses.l2(model.parameters(), ALPHA)

    engine = LiftedRecorder(loss_fn)
    params = model.parameters()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = engine.backward(rows)
    lifted_grads = grads_of(params)
    program = engine._program.lifted
    assert [group.kind for group in program.groups].count("outer") == 3  # each layer: X @ W.T over 30 examples
    for p in params:
        p.grad = 0.0
    eager = loss_fn([[Value(v) for v in row] for row in rows])
    eager.backward()
    assert_close(loss, eager.data, "loss")
    assert_close(lifted_grads, grads_of(params), "gradients")


def test_gradients_with_respect_to_the_inputs_equal_batched_replays():
    model = demo_model()
    X, labels = minigrad_nn.datasets.make_moons(25, noise=0.1, seed=9)
    y = 2.0 * labels - 1.0
    lifted = record_batch(lambda x, t: demo_example_loss(model, x, t), X[0], y[0], lift=True)
    plain = record_batch(lambda x, t: demo_example_loss(model, x, t), X[0], y[0])
    loss, (grad_x, grad_y) = lifted.value_and_grad(X, y, reduce="sum")
    expected_loss, (expected_x, expected_y) = plain.value_and_grad(X, y, reduce="sum")
    assert grad_x.shape == X.shape and grad_y.shape == y.shape
    assert_close(loss, expected_loss, "loss")
    assert_close(grad_x, expected_x, "gradients of the inputs")
    assert_close(grad_y, expected_y, "gradients of the labels")
    assert "np.matmul" in lifted.lifted.source  # dX = W.T @ dZ written straight into its rows
