"""to_torch / from_torch: the same network as a float64 PyTorch module, and back."""

import numpy as np
import pytest
import torch

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
from minigrad_core import OpSpec, Registry, hookimpl, using
from minigrad_nn import MLP, Layer, Neuron, from_torch, losses, to_torch


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin)) as registry:
        yield registry


def inputs(nin, count=25):
    return np.random.default_rng(1).normal(scale=2.0, size=(count, nin))


def scalar_outputs(model, X):
    return np.array([[v.data for v in model.forward(row)] for row in X.tolist()])


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP(3, [4, 4, 1]),
        lambda: MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None),
        lambda: MLP(2, [8, 3], nonlin="sigmoid", out_nonlin="tanh"),
        lambda: Layer(3, 5, None),
        lambda: Neuron(4, "relu"),
    ],
)
def test_to_torch_gives_the_same_outputs(make):
    minigrad_nn.seed(2)
    model = make()
    for i, p in enumerate(model.parameters()):
        p.data += 0.01 * i  # biases away from 0 too
    module = to_torch(model)
    assert isinstance(module, torch.nn.Module)
    assert all(p.dtype == torch.float64 for p in module.parameters())
    X = inputs(model.nin)
    got = module(torch.tensor(X)).detach().numpy()
    np.testing.assert_allclose(got, scalar_outputs(model, X), rtol=1e-12, atol=1e-12)


def test_to_torch_gradients_match_the_scalar_engine():
    minigrad_nn.seed(4)
    model = MLP(2, [6, 1], nonlin="tanh", out_nonlin=None)
    X, y = inputs(2, 10), [1.0, -1.0] * 5
    loss = losses.hinge([model(row) for row in X.tolist()], y)
    loss.backward()
    module = to_torch(model)
    scores = module(torch.tensor(X))[:, 0]
    torch.clamp(1 - torch.tensor(y, dtype=torch.float64) * scores, min=0).mean().backward()
    torch_grads = [
        g
        for linear in module.linears
        for row_w, b in zip(linear.weight.grad.tolist(), linear.bias.grad.tolist())
        for g in (*row_w, b)
    ]
    assert [p.grad for p in model.parameters()] == pytest.approx(torch_grads, rel=1e-12, abs=1e-15)


def test_from_torch_brings_trained_weights_back():
    minigrad_nn.seed(5)
    model = MLP(2, [5, 1], nonlin="relu", out_nonlin=None)
    before = [p.data for p in model.parameters()]
    module = to_torch(model)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(-2.0).add_(0.125)
    assert from_torch(module, model) is model
    assert [p.data for p in model.parameters()] == [-2.0 * x + 0.125 for x in before]  # exact in float64
    X = inputs(2)
    np.testing.assert_allclose(
        scalar_outputs(model, X), module(torch.tensor(X)).detach().numpy(), rtol=1e-12, atol=1e-12
    )


def test_from_torch_takes_any_module_of_matching_linear_layers():
    model = MLP(3, [4, 2], nonlin="tanh")
    sequential = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2), torch.nn.Tanh())
    from_torch(sequential, model)
    assert model.layers[1].neurons[1].b.data == pytest.approx(sequential[2].bias[1].item())  # float32 -> float
    assert model.layers[0].neurons[2].w[1].data == pytest.approx(sequential[0].weight[2, 1].item())


@pytest.mark.parametrize(
    "module, message",
    [
        (torch.nn.Sequential(torch.nn.Linear(3, 4)), "has 1 Linear layer"),
        (
            torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 3)),
            r"layer 1 has weights of shape \(3, 4\).*\(2, 4\)",
        ),
        (torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2, bias=False)), "layer 1 has no bias"),
    ],
)
def test_from_torch_refuses_a_mismatch_and_leaves_the_model_unchanged(module, message):
    model = MLP(3, [4, 2])
    before = [p.data for p in model.parameters()]
    with pytest.raises(ValueError, match=message):
        from_torch(module, model)
    assert [p.data for p in model.parameters()] == before


def test_a_nonlin_without_a_torch_rule_cannot_be_converted():
    class Cube:
        @hookimpl
        def minigrad_register_ops(self, register):
            register(OpSpec(name="cube", arity=1, forward=lambda x: x**3, derivative=lambda x, out: (3 * x * x,)))

    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, Cube())):
        model = MLP(2, [2, 1], nonlin="cube")
        with pytest.raises(NotImplementedError, match=r"op 'cube' .*has no torch rule"):
            to_torch(model)
