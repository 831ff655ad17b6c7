"""Optimizers: they move each parameter's ``data`` against its ``grad``.

Each follows ``torch.optim``'s update rules (the tests check step by step), written for
plain scalars:

    SGD:   g = grad + weight_decay * p;  v = momentum * v + g;  p -= lr * v
    Adam:  g = grad + weight_decay * p;  m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
           p -= lr * (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps)
    AdamW: p -= lr * weight_decay * p, then Adam without weight decay in g

A schedule changes an optimizer's ``lr`` as the steps go by.
"""

from __future__ import annotations

import math

from minigrad_core import Value

# Called as observer(optimizer) when an optimizer is made (the teaching checks use it to learn
# which parameters are trained together); empty unless they are on.
optimizer_observers: list = []


class Optimizer:
    """The parameters to update and the learning rate; ``step()`` applies one update."""

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: no parameters to optimize (an empty list)")
        for i, p in enumerate(self.params):
            if not isinstance(p, Value):
                raise TypeError(f"{type(self).__name__}: parameter {i} is {p!r}, not a Value")
        _check_non_negative(self, "lr", lr)
        self.lr = float(lr)
        for observer in optimizer_observers:
            observer(self)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = 0.0

    def gradients(self) -> list[float]:
        """Each parameter's gradient as a number (a graph-building gradient is read as its data)."""
        return [p.grad.data if type(p.grad) is Value else p.grad for p in self.params]

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        _check_non_negative(self, "momentum", momentum)
        _check_non_negative(self, "weight_decay", weight_decay)
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), nesterov
        self.velocity: list[float] | None = None  # created by the first step, as in PyTorch

    def step(self) -> None:
        """Move each parameter once against its gradient (with momentum and weight decay if set)."""
        lr, momentum, decay = self.lr, self.momentum, self.weight_decay
        grads = self.gradients()
        if decay:
            grads = [g + decay * p.data for g, p in zip(grads, self.params)]
        if momentum:
            if self.velocity is None:
                self.velocity = list(grads)
            else:
                self.velocity = [momentum * v + g for v, g in zip(self.velocity, grads)]
            if self.nesterov:
                grads = [g + momentum * v for g, v in zip(grads, self.velocity)]
            else:
                grads = self.velocity
        for p, g in zip(self.params, grads):
            p.data -= lr * g


class Adam(Optimizer):
    """Adam: steps scaled by running averages of the gradient (m) and of its square (v)."""

    decoupled = False  # AdamW decays the weights directly instead of through the gradient

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        beta1, beta2 = betas
        for name, beta in (("betas[0]", beta1), ("betas[1]", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{type(self).__name__}: {name} must be in [0, 1), got {beta!r}")
        _check_non_negative(self, "eps", eps)
        _check_non_negative(self, "weight_decay", weight_decay)
        self.betas, self.eps, self.weight_decay = (float(beta1), float(beta2)), float(eps), float(weight_decay)
        self.t = 0
        self.m = [0.0] * len(self.params)  # running average of gradients
        self.v = [0.0] * len(self.params)  # running average of squared gradients

    def step(self) -> None:
        """Move each parameter once by Adam's rule (see the module's docstring)."""
        (beta1, beta2), lr, eps, decay = self.betas, self.lr, self.eps, self.weight_decay
        self.t += 1
        correction1 = 1 - beta1**self.t  # m and v start at 0: undo that bias
        correction2 = 1 - beta2**self.t
        grads = self.gradients()
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if decay and self.decoupled:
                p.data -= lr * decay * p.data
            elif decay:
                g = g + decay * p.data
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g * g
            p.data -= (lr / correction1) * self.m[i] / (math.sqrt(self.v[i]) / math.sqrt(correction2) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as PyTorch's AdamW)."""

    decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)


class LinearSchedule:
    """Move the learning rate linearly from ``start`` to ``end`` over ``steps`` steps.

    The optimizer gets ``lr = start`` at once; after each ``step()`` of the schedule it gets
    ``start + (end - start) * k / steps`` for step k (then stays at ``end``). With
    start=1.0, end=0.1, steps=100 this is micrograd's demo: lr = 1.0 - 0.9 * k / 100.
    """

    def __init__(self, optimizer: Optimizer, start: float, end: float, steps: int):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"LinearSchedule: steps must be a whole number >= 1, got {steps!r}")
        _check_non_negative(self, "start", start)
        _check_non_negative(self, "end", end)
        self.optimizer, self.start, self.end, self.steps = optimizer, float(start), float(end), steps
        self.k = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, k: int) -> float:
        """The learning rate after ``k`` steps of the schedule."""
        if k >= self.steps:
            return self.end
        return self.start + (self.end - self.start) * k / self.steps

    def step(self) -> None:
        """Advance the schedule one step and give the optimizer the next learning rate."""
        self.k += 1
        self.optimizer.lr = self.lr_at(self.k)


def _check_non_negative(who, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{type(who).__name__}: {name} must be a finite number >= 0, got {value!r}")
