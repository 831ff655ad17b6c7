"""The way out when a learner outgrows scalars: the same network as a PyTorch module.

``to_torch(model)`` builds a float64 ``torch.nn.Module`` of ``nn.Linear`` layers holding
the model's weights (row j of a layer's weight matrix is neuron j's weights), with each
layer's nonlinearity taken from its op's ``torch`` rule. ``from_torch(module, model)``
copies the weights back. Imported only when used: torch takes a while to load.
"""

from __future__ import annotations

import functools

import torch

from .nn import Module, check_nonlin, layers_of


class TorchMLP(torch.nn.Module):
    """Linear layers, each followed by the torch version of a registered op (or nothing)."""

    def __init__(self, sizes: list[int], nonlins: list[str | None]):
        super().__init__()
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(sizes[i], sizes[i + 1], dtype=torch.float64) for i in range(len(nonlins))
        )
        self.nonlins = list(nonlins)
        self._activations = [_torch_rule(name) for name in nonlins]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear, activation in zip(self.linears, self._activations):
            x = linear(x)
            if activation is not None:
                x = activation(x)
        return x

    def extra_repr(self) -> str:
        return f"nonlins={self.nonlins}"


def _torch_rule(name: str | None):
    spec = check_nonlin(name)
    if spec is None:
        return None
    if spec.torch is None:
        raise NotImplementedError(
            f"cannot convert to PyTorch: op {name!r} (plugin {spec.plugin!r}) has no torch rule (OpSpec torch=)"
        )
    return functools.partial(spec.torch, **spec.params) if spec.params else spec.torch


def to_torch(model: Module) -> TorchMLP:
    layers = layers_of(model)
    sizes = [layers[0][0][0].nin] + [len(neurons) for neurons, _ in layers]
    module = TorchMLP(sizes, [nonlin for _, nonlin in layers])
    with torch.no_grad():
        linears: list[torch.nn.Linear] = list(module.linears)  # type: ignore[arg-type]
        for linear, (neurons, _) in zip(linears, layers):
            linear.weight.copy_(torch.tensor([[w.data for w in n.w] for n in neurons], dtype=torch.float64))
            linear.bias.copy_(torch.tensor([n.b.data for n in neurons], dtype=torch.float64))
    return module


def from_torch(torch_module: torch.nn.Module, model: Module) -> Module:
    """Copy the weights of the ``nn.Linear`` layers of ``torch_module`` (in order) into ``model``.

    Every shape is checked before anything is copied, so a mismatch leaves ``model`` unchanged.
    """
    layers = layers_of(model)
    linears = [m for m in torch_module.modules() if isinstance(m, torch.nn.Linear)]
    if len(linears) != len(layers):
        raise ValueError(
            f"from_torch: the torch module has {len(linears)} Linear layer(s), {model!r} has {len(layers)}"
        )
    updates = []
    for index, (linear, (neurons, _)) in enumerate(zip(linears, layers)):
        expected = (len(neurons), neurons[0].nin)
        if tuple(linear.weight.shape) != expected:
            raise ValueError(
                f"from_torch: Linear layer {index} has weights of shape {tuple(linear.weight.shape)}, "
                f"{model!r} needs {expected} (outputs, inputs)"
            )
        if linear.bias is None:
            raise ValueError(f"from_torch: Linear layer {index} has no bias; every MiniGrad neuron has one")
        weights = linear.weight.detach().to(torch.float64).tolist()
        biases = linear.bias.detach().to(torch.float64).tolist()
        updates.append((neurons, weights, biases))
    for neurons, weights, biases in updates:
        for n, row, bias in zip(neurons, weights, biases):
            for w, x in zip(n.w, row):
                w.data = x
            n.b.data = bias
    return model
