"""Neurons, layers and multi-layer perceptrons made of Values.

A neuron computes ``nonlin(w_1*x_1 + ... + w_n*x_n + b)``: the weighted sum is the nn
plugin's fused op ``weighted_sum`` (one graph node instead of 2n), and ``nonlin`` is the
name of any registered one-input op ("tanh", "relu", "sigmoid" ...) or None for a linear
neuron. Weights start uniform in [-1, 1] and biases at 0, drawn from the nn plugin's own
random generator: ``minigrad_nn.seed(n)`` makes every model built afterwards repeat exactly.
Parameters are labelled by where they sit, e.g. "L0.N1.w0" (layer 0, neuron 1, weight 0) and
"L0.N1.b", so graph pictures can name them and group a neuron's nodes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from minigrad_core import Value, apply, bind_params, evaluate, get_registry

WEIGHTED_SUM = "weighted_sum"

# The generator every new neuron draws its weights from.
_generator = random.Random()

# Called as observer(module) when a Neuron, Layer or MLP has been built (the teaching checks
# use it to learn which parameters belong together); empty unless they are on.
module_observers: list = []


def seed(n: int) -> None:
    """Seed the generator that initializes weights, so the same code builds the same model.

    Together with seeded data (``minigrad_nn.datasets``) a whole training run repeats bit for
    bit: everything else MiniGrad computes is deterministic.
    """
    _generator.seed(n)


class _SameAsNonlin:
    def __repr__(self) -> str:
        return "<same as nonlin>"


SAME_AS_NONLIN = _SameAsNonlin()


def check_nonlin(nonlin: str | None):
    """The registered op ``nonlin`` names (None for a linear neuron), or a clear error."""
    if nonlin is None:
        return None
    if not isinstance(nonlin, str):
        hint = " (micrograd's nonlin=True is nonlin='relu' here)" if isinstance(nonlin, bool) else ""
        raise TypeError(f"nonlin must be the name of a registered one-input op or None, got {nonlin!r}{hint}")
    spec = get_registry().get(nonlin)  # an unknown name raises, listing the known ops
    required = [name for name, default in spec.params.items() if default is None]
    if spec.arity != 1 or required:
        why = f"it takes {spec.arity if spec.arity is not None else 'any number of'} inputs"
        if spec.arity == 1:
            why = f"it needs the parameter(s) {required}"
        raise ValueError(
            f"nonlin {nonlin!r}: a neuron's nonlinearity must be a one-input op without required "
            f"parameters, but op {nonlin!r} (plugin {spec.plugin!r}) does not fit: {why}"
        )
    return spec


def _weighted_sum_spec():
    registry = get_registry()
    spec = registry.ops.get(WEIGHTED_SUM)
    if spec is None:
        raise LookupError(
            f"op {WEIGHTED_SUM!r} is not registered, so neurons cannot compute: it comes from MiniGrad's nn "
            f"plugin (entry point 'nn', module minigrad_nn.plugin). Load it (MINIGRAD_PLUGINS must include "
            f"'nn'), or register it: minigrad_core.register_plugin(minigrad_nn.plugin). "
            f"Registered ops: {', '.join(sorted(registry.ops)) or 'none'}"
        )
    return spec


def _as_values(x, module: Neuron | Layer | MLP) -> list[Value]:
    """The inputs as a list of Values (numbers wrapped once), checking how many there are."""
    nin = module.nin
    if isinstance(x, Value):
        x = [x]
    try:
        count = len(x)
    except TypeError:
        raise TypeError(f"{module._who()} expects a sequence of {nin} inputs (numbers or Values), got {x!r}") from None
    if count != nin:
        raise ValueError(f"{module._who()} expects {nin} input(s), got {count}: {_short_repr(x)}")
    return [v if type(v) is Value else Value(v) for v in x]


def _short_repr(x) -> str:
    text = repr(list(x)) if not isinstance(x, (list, tuple)) else repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


class Module:
    """Anything with parameters: a neuron, a layer, a network."""

    def parameters(self) -> list[Value]:
        """Every parameter (a leaf Value the optimizer moves), in a fixed order."""
        return []

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0.0 (before each backward(): gradients add up)."""
        for p in self.parameters():
            p.grad = 0.0

    def architecture(self) -> dict:
        """What ``minigrad_nn.load`` needs to build this module again (saved with its parameters)."""
        return {"type": type(self).__name__, "parameters": len(self.parameters())}

    def _who(self) -> str:
        """How error messages name this module."""
        return repr(self)

    def _prefix_labels(self, prefix: str) -> None:
        for p in self.parameters():
            p.label = prefix + p.label


class Neuron(Module):
    """``nonlin(w·x + b)``: ``nin`` weights uniform in [-1, 1], a bias of 0."""

    def __init__(self, nin: int, nonlin: str | None = "tanh"):
        _check_size("Neuron", "nin", nin)
        check_nonlin(nonlin)
        self.w = [Value(_generator.uniform(-1, 1), label=f"w{i}") for i in range(nin)]
        self.b = Value(0.0, label="b")
        self.nonlin = nonlin
        for observer in module_observers:
            observer(self)

    @property
    def nin(self) -> int:
        return len(self.w)

    def __call__(self, x) -> Value:
        xs = _as_values(x, self)
        return self._activate(xs, [v.data for v in xs], _weighted_sum_spec(), check_nonlin(self.nonlin))

    def forward(self, x) -> list[Value]:
        """The neuron's output as a one-element list, like Layer.forward and MLP.forward."""
        return [self(x)]

    def _activate(self, xs: list[Value], x_data: list[float], weighted_sum, nonlin) -> Value:
        """The neuron on inputs already checked and wrapped (``x_data`` holds their numbers),
        with the ops already looked up: one weighted_sum node, then one nonlin node."""
        b = self.b
        z = apply(weighted_sum, (*self.w, *xs, b))
        if nonlin is None:
            return z
        return apply(nonlin, (z,))  # check_nonlin allows only parameters with defaults

    def parameters(self) -> list[Value]:
        """Every parameter in order: each neuron's weights, then its bias."""
        return [*self.w, self.b]

    def architecture(self) -> dict:
        """What ``minigrad_nn.load`` needs to build this module again (saved with its parameters)."""
        return {"type": "Neuron", "nin": self.nin, "nonlin": self.nonlin}

    def _who(self) -> str:
        return f"Neuron(nin={self.nin})"

    def __repr__(self) -> str:
        return f"Neuron({self.nin}, nonlin={self.nonlin!r})"


class Layer(Module):
    """``nout`` neurons that all see the same ``nin`` inputs.

    Returns a list of ``nout`` Values, or a single Value when ``nout`` is 1.
    """

    def __init__(self, nin: int, nout: int, nonlin: str | None = "tanh"):
        _check_size("Layer", "nin", nin)
        _check_size("Layer", "nout", nout)
        self.neurons = [Neuron(nin, nonlin) for _ in range(nout)]
        for j, neuron in enumerate(self.neurons):
            neuron._prefix_labels(f"N{j}.")
        self.nonlin = nonlin
        for observer in module_observers:
            observer(self)

    @property
    def nin(self) -> int:
        return self.neurons[0].nin

    @property
    def nout(self) -> int:
        return len(self.neurons)

    def __call__(self, x):
        out = self.forward(x)
        return out[0] if len(out) == 1 else out

    def forward(self, x) -> list[Value]:
        """The layer's outputs, always as a list."""
        xs = _as_values(x, self)
        weighted_sum, nonlin = _weighted_sum_spec(), check_nonlin(self.nonlin)
        x_data = [v.data for v in xs]
        return [n._activate(xs, x_data, weighted_sum, nonlin) for n in self.neurons]

    def parameters(self) -> list[Value]:
        """Every parameter in order: each neuron's weights, then its bias."""
        return [p for n in self.neurons for p in n.parameters()]

    def architecture(self) -> dict:
        """What ``minigrad_nn.load`` needs to build this module again (saved with its parameters)."""
        return {"type": "Layer", "nin": self.nin, "nout": self.nout, "nonlin": self.nonlin}

    def _who(self) -> str:
        return f"Layer(nin={self.nin}, nout={self.nout})"

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, nonlin={self.nonlin!r})"


class MLP(Module):
    """A multi-layer perceptron: ``MLP(3, [4, 4, 1])`` maps 3 inputs through layers of 4, 4 and 1.

    Hidden layers use ``nonlin``; the last layer uses ``out_nonlin`` (by default the same),
    e.g. ``MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None)`` for a linear score.
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        nonlin: str | None = "tanh",
        out_nonlin: str | _SameAsNonlin | None = SAME_AS_NONLIN,
    ):
        _check_size("MLP", "nin", nin)
        nouts = list(nouts)
        if not nouts:
            raise ValueError("MLP needs at least one layer: nouts is empty")
        if isinstance(out_nonlin, _SameAsNonlin):
            out_nonlin = nonlin
        sizes = [nin, *nouts]
        last = len(nouts) - 1
        self.layers = [Layer(sizes[i], sizes[i + 1], out_nonlin if i == last else nonlin) for i in range(len(nouts))]
        for k, layer in enumerate(self.layers):
            layer._prefix_labels(f"L{k}.")
        self.nonlin, self.out_nonlin = nonlin, out_nonlin
        for observer in module_observers:
            observer(self)

    @property
    def nin(self) -> int:
        return self.layers[0].nin

    @property
    def nouts(self) -> list[int]:
        return [layer.nout for layer in self.layers]

    def __call__(self, x):
        out = self.forward(x)
        return out[0] if len(out) == 1 else out

    def forward(self, x) -> list[Value]:
        """The network's outputs, always as a list."""
        xs = _as_values(x, self)
        weighted_sum = _weighted_sum_spec()
        for layer in self.layers:
            nonlin = check_nonlin(layer.nonlin)
            x_data = [v.data for v in xs]
            xs = [n._activate(xs, x_data, weighted_sum, nonlin) for n in layer.neurons]
        return xs

    def parameters(self) -> list[Value]:
        """Every parameter in order: each neuron's weights, then its bias."""
        return [p for layer in self.layers for p in layer.parameters()]

    def architecture(self) -> dict:
        """What ``minigrad_nn.load`` needs to build this module again (saved with its parameters)."""
        return {
            "type": "MLP",
            "nin": self.nin,
            "nouts": self.nouts,
            "nonlin": self.nonlin,
            "out_nonlin": self.out_nonlin,
        }

    def __repr__(self) -> str:
        tail = "" if self.out_nonlin == self.nonlin else f", out_nonlin={self.out_nonlin!r}"
        return f"MLP({self.nin}, {self.nouts}, nonlin={self.nonlin!r}{tail})"


def _check_size(who: str, name: str, size) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{who}: {name} must be a whole number >= 1, got {size!r}")


def layers_of(model: Module) -> list[tuple[list[Neuron], str | None]]:
    """A Neuron, Layer or MLP as a list of (neurons, nonlin) per layer."""
    if isinstance(model, MLP):
        return [(layer.neurons, layer.nonlin) for layer in model.layers]
    if isinstance(model, Layer):
        return [(model.neurons, model.nonlin)]
    if isinstance(model, Neuron):
        return [([model], model.nonlin)]
    raise TypeError(f"expected a Neuron, Layer or MLP, got {type(model).__name__}")


def predict_numpy(model: Module, X):
    """The model's outputs for a whole batch at once, with the ops' numpy rules.

    ``X`` has one row per example; the result has one row per example and one column per
    output. Same numbers as calling the model on each row (the plots use it to evaluate a
    fine grid quickly). An op's array form is used where it has one (``np_forward``, or a
    forward rule that works on arrays); otherwise its forward rule runs row by row.
    """
    X = np.asarray(X, dtype=float)
    nin = layers_of(model)[0][0][0].nin
    if X.ndim != 2 or X.shape[1] != nin:
        raise ValueError(f"{model!r} expects rows of {nin} inputs, got an array of shape {X.shape}")
    weighted_sum = _weighted_sum_spec()
    columns = [X[:, j] for j in range(X.shape[1])]
    for neurons, nonlin_name in layers_of(model):
        nonlin = check_nonlin(nonlin_name)
        outputs = []
        for n in neurons:
            z = _on_arrays(weighted_sum, [*(w.data for w in n.w), *columns, n.b.data], X.shape[0])
            outputs.append(z if nonlin is None else _on_arrays(nonlin, [z], X.shape[0]))
        columns = outputs
    return np.stack(columns, axis=1)


def layer_activity(model: Module, X):
    """Each layer at work on a batch: ``(neurons, nonlin, pre, out)`` per layer, where ``pre``
    holds every neuron's w·x + b and ``out`` its output (one row per example, one column per
    neuron). The teaching checks read it to find dead and saturated neurons."""
    X = np.asarray(X, dtype=float)
    weighted_sum = _weighted_sum_spec()
    columns = [X[:, j] for j in range(X.shape[1])]
    activity = []
    for neurons, nonlin_name in layers_of(model):
        nonlin = check_nonlin(nonlin_name)
        pre = [_on_arrays(weighted_sum, [*(w.data for w in n.w), *columns, n.b.data], X.shape[0]) for n in neurons]
        out = pre if nonlin is None else [_on_arrays(nonlin, [z], X.shape[0]) for z in pre]
        activity.append((neurons, nonlin_name, np.stack(pre, axis=1), np.stack(out, axis=1)))
        columns = out
    return activity


def _on_arrays(spec, inputs: list, size: int):
    """An op's forward on a batch: its array form if it has one that works, else row by row."""
    params = bind_params(spec, None)
    rule = spec.np_forward or spec.forward
    try:
        with np.errstate(all="ignore"):
            result = np.asarray(rule(*inputs, **params) if params else rule(*inputs), dtype=float)
        if result.shape in ((size,), ()):
            return np.broadcast_to(result, (size,))
    except (TypeError, ValueError, ArithmeticError):
        pass  # a forward rule written for numbers only (math.tanh): one example at a time
    columns = [np.broadcast_to(np.asarray(x, dtype=float), (size,)).tolist() for x in inputs]
    return np.array([evaluate(spec, list(row), params) for row in zip(*columns)])
