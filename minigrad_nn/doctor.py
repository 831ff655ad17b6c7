"""Teaching checks: warnings for the classic mistakes of training a network by hand.

    from minigrad_nn import doctor
    doctor.enable()                    # or MINIGRAD_TEACHING_CHECKS=1 in the environment
    ...                                # your training loop, as you wrote it
    doctor.disable()

    with doctor.teaching_checks() as checkup:
        ...
    print(checkup.findings)            # what was found inside the block

Each check looks at the graph at the start of every ``backward()`` (through the kernel's
``backward_observers`` hook) and warns, with a ``TeachingWarning``, when it sees:

- **gradients never zeroed**: parameters that still hold the gradient of an earlier pass
  although their values changed since (an update used it and nobody set it back to 0);
- **no gradient at all**: some parameters of a model or optimizer are in this loss's graph
  and others of the same model are not (not connected to the loss);
- **dead relu neurons**: a relu neuron that outputs 0 on every example of the batch the
  first time the checks see it, or at least a quarter of a layer's relu neurons dead (one
  that dies while training, among many, is harmless: the demo's layers have one each);
- **saturated tanh/sigmoid neurons**: a neuron within 0.01 of its limits on most examples;
- **a rising loss**: the loss rose ``RISES`` passes in a row, by 10% or more in all.

A warning says what it saw, with numbers, and what to try, and names the neuron or parameter
by its label ("layer 1 neuron 3" for ``L1.N3.b``; layers and neurons count from 0, as in the
labels). Each problem is reported once while the checks stay on. Which parameters form a
model is known for the MLPs, Layers and Neurons built while the checks are on, the optimizers
made while they are on, and what ``watch(model)`` names.

Off by default (accumulating gradients on purpose is legitimate), and then nothing runs:
``enable()`` adds an observer to the kernel's list and ``disable()`` removes it. ``examine``
and ``check_losses`` run the same judgements on a model and a list of losses directly, for
training that never calls ``backward()`` on Values (replay); ``minigrad demo`` uses them.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from types import FrameType

from minigrad_core import Value, topological_order
from minigrad_core import value as kernel

ENVIRONMENT_VARIABLE = "MINIGRAD_TEACHING_CHECKS"
MIN_EXAMPLES = 10  # fewer examples than this say too little about a neuron
DEAD_SHARE = 0.25  # the share of a layer's relu neurons that must be dead to warn
SATURATION = 0.01  # within this of a limit (±1 for tanh; 0, 1 for sigmoid) counts as saturated
SATURATED_SHARE = 0.75  # "most examples"
RISES = 5  # rises in a row ...
RISE_TOTAL = 0.10  # ... adding up to at least this much more loss
SUM_OPS = ("add", "sub", "mul")  # the ops a neuron's weighted sum is made of, written by hand
ACTIVATIONS = ("relu", "tanh", "sigmoid")


class TeachingWarning(UserWarning):
    """A likely training mistake the teaching checks saw (see ``minigrad_nn.doctor``)."""


@dataclass(frozen=True)
class Finding:
    """One problem a check found: which check, about what, and the whole message."""

    check: str  # "gradients not zeroed", "no gradient", "dead relu", "saturated", "loss rising"
    subject: str  # the neuron, layer, parameters or loss it is about
    message: str

    def __str__(self) -> str:
        return self.message


class _State:
    def __init__(self):
        self.on = False
        self.findings: list[Finding] = []
        self.reported: set[tuple[str, str]] = set()
        self.previous: dict[Value, float] = {}  # the leaves of the last pass and their data then
        self.losses: list[float] = []  # the root of each pass, most recent last
        self.modules: weakref.WeakSet = weakref.WeakSet()  # models whose parameters belong together
        self.optimizers: weakref.WeakSet = weakref.WeakSet()
        self.neurons_seen: set[str] = set()  # relu neurons judged before (one dead from the start is a bug)

    def restart(self):
        self.findings.clear()
        self.reported.clear()
        self.previous = {}
        self.losses = []
        self.neurons_seen = set()


_state = _State()


# -- switching the checks on and off ----------------------------------------------------------


def enabled() -> bool:
    return _state.on


def enable() -> None:
    """Switch the teaching checks on (a fresh start if they were off)."""
    if _state.on:
        return
    from . import nn, optim

    _state.restart()
    _state.on = True
    kernel.backward_observers.append(_observe_backward)
    nn.module_observers.append(watch)
    optim.optimizer_observers.append(_watch_optimizer)


def disable() -> None:
    """Switch the teaching checks off; nothing is checked or slowed afterwards."""
    if not _state.on:
        return
    from . import nn, optim

    _state.on = False
    _remove(kernel.backward_observers, _observe_backward)
    _remove(nn.module_observers, watch)
    _remove(optim.optimizer_observers, _watch_optimizer)
    _state.previous = {}  # let the last graph's leaves go


def _remove(hooks: list, hook) -> None:
    if hook in hooks:
        hooks.remove(hook)


class Checkup:
    """What ``teaching_checks()`` found inside its block."""

    def __init__(self, start: int):
        self._start = start
        self._found: list[Finding] | None = None  # set when the block ends

    @property
    def findings(self) -> list[Finding]:
        if self._found is not None:
            return list(self._found)
        return _state.findings[self._start :]

    def __bool__(self) -> bool:
        return bool(self.findings)


@contextlib.contextmanager
def teaching_checks() -> Iterator[Checkup]:
    """The checks on inside the block (and as they were afterwards); yields a ``Checkup``."""
    was_on = _state.on
    enable()
    checkup = Checkup(len(_state.findings))
    try:
        yield checkup
    finally:
        checkup._found = _state.findings[checkup._start :]
        if not was_on:
            disable()


def findings() -> list[Finding]:
    """Everything found since the checks were last switched on."""
    return list(_state.findings)


def watch(model) -> None:
    """Tell the checks which parameters belong together: a Module, or a list of parameters.

    Models built while the checks are on are watched already; so are optimizers' parameters."""
    if hasattr(model, "parameters"):
        _state.modules.add(model)
    else:
        _state.optimizers.add(_ParameterList(model))


class _ParameterList:
    def __init__(self, params):
        self.params = list(params)


def _watch_optimizer(optimizer) -> None:
    _state.optimizers.add(optimizer)


# -- reporting ----------------------------------------------------------------------------------


def _report(check: str, subject: str, message: str) -> None:
    key = (check, subject)
    if key in _state.reported:
        return
    _state.reported.add(key)
    _state.findings.append(Finding(check, subject, message))
    warnings.warn(TeachingWarning(message), stacklevel=_caller_level())


_OWN_FILES = (os.path.dirname(kernel.__file__), os.path.dirname(__file__))


def _caller_level() -> int:
    """The stack level of the learner's code (the first frame outside MiniGrad), so the
    warning points at their ``backward()`` or training loop."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_OWN_FILES):
        frame, level = frame.f_back, level + 1
    return level


# -- naming what the checks talk about -------------------------------------------------------------

_POSITION = re.compile(r"^(?:L(\d+)\.)?N(\d+)\.")


def neuron_name(params: Sequence[Value]) -> str:
    """ "layer 1 neuron 3" from labels like ``L1.N3.b``; else the parameters' labels."""
    for p in params:
        match = _POSITION.match(p.label or "")
        if match:
            layer, neuron = match.groups()
            return f"neuron {neuron}" if layer is None else f"layer {layer} neuron {neuron}"
    return "the neuron with parameters " + _names(params)


def layer_name(params: Sequence[Value]) -> str | None:
    for p in params:
        match = _POSITION.match(p.label or "")
        if match:
            return "a layer" if match.group(1) is None else f"layer {match.group(1)}"
    return None


def parameter_name(p: Value) -> str:
    return p.label if p.label else f"an unlabelled parameter (data {p.data:.4g})"


def _reading_order(text: str) -> list:
    """Sort key putting L2.N10 after L2.N9 (numbers compared as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _names(params: Sequence[Value], shown: int = 4) -> str:
    params = sorted(params, key=lambda p: _reading_order(p.label))
    names = [parameter_name(p) for p in params[:shown]]
    more = f" and {len(params) - shown} more" if len(params) > shown else ""
    return ", ".join(names) + more


# -- the judgements, shared by the graph and the array checks --------------------------------------


@dataclass
class NeuronActivity:
    """What one neuron did over a batch: its pre-activations z and outputs."""

    name: str
    layer: str | None  # neurons of one layer are judged together for dead relus
    op: str
    pre: list  # w·x + b on each example
    out: list  # nonlin(w·x + b) on each example


def judge_neurons(neurons: Sequence[NeuronActivity]) -> None:
    """Dead relu layers and saturated tanh/sigmoid neurons."""
    layers: dict[str, list[NeuronActivity]] = {}
    for neuron in neurons:
        if len(neuron.out) < MIN_EXAMPLES:
            continue
        if neuron.op == "relu":
            layers.setdefault(neuron.layer or neuron.name, []).append(neuron)
        else:
            _judge_saturation(neuron)
    for layer, members in layers.items():
        _judge_dead(layer, members)


def _judge_dead(layer: str, members: list[NeuronActivity]) -> None:
    dead = sorted((n for n in members if all(z <= 0 for z in n.pre)), key=lambda n: _reading_order(n.name))
    born_dead = [n for n in dead if n.name not in _state.neurons_seen]
    _state.neurons_seen.update(n.name for n in members)
    subject = layer
    if born_dead and len(dead) < DEAD_SHARE * len(members):
        # Dead the first time the checks see it: it never learned anything (a bias set far
        # below 0, inputs that are never positive ...). One that died while training, as one
        # of the demo's 16 does, is harmless on its own; a quarter of a layer is not.
        dead, subject = born_dead, ", ".join(n.name for n in born_dead)
    elif not dead or len(dead) < DEAD_SHARE * len(members):
        return
    examples = len(dead[0].pre)
    worst = max(dead, key=lambda n: max(n.pre))
    who = ", ".join(n.name for n in dead[:6]) + (f" and {len(dead) - 6} more" if len(dead) > 6 else "")
    if len(members) == 1:
        head = f"{dead[0].name} (relu) outputs 0 on all {examples} examples of the batch"
    else:
        head = (
            f"{layer}: {len(dead)} of its {len(members)} relu neurons output 0 on all {examples} "
            f"examples of the batch ({who})"
        )
    _report(
        "dead relu",
        subject,
        (
            f"{head}. Their input w·x + b is <= 0 on every example (at most {max(worst.pre):.3g}, {worst.name}), so "
            f"they pass no gradient back and their weights stop learning: a dead relu stays dead. Try a smaller "
            f"learning rate, biases that start slightly above 0, inputs scaled to about [-1, 1], or leaky_relu."
        ),
    )


def _judge_saturation(neuron: NeuronActivity) -> None:
    if neuron.op == "tanh":
        saturated = [abs(a) > 1 - SATURATION for a in neuron.out]
        limits, slope = "±1", "1 - tanh² < 0.02"
    else:
        saturated = [a < SATURATION or a > 1 - SATURATION for a in neuron.out]
        limits, slope = "0 or 1", "σ(1 - σ) < 0.01"
    count = sum(saturated)
    if count < SATURATED_SHARE * len(saturated):
        return
    typical = sorted(abs(z) for z in neuron.pre)[len(neuron.pre) // 2]
    _report(
        "saturated",
        neuron.name,
        (
            f"{neuron.name} ({neuron.op}) is saturated on {count} of {len(saturated)} examples "
            f"({100 * count / len(saturated):.0f}%): its output is within {SATURATION} of {limits}, where its slope "
            f"({slope}) lets almost no gradient through; its input w·x + b has a typical size of {typical:.3g}. "
            f"Try inputs scaled to about [-1, 1], smaller initial weights, or a smaller learning rate."
        ),
    )


def check_losses(losses: Sequence[float], lr: float | None = None, numbered: bool = True) -> None:
    """Warn if the losses, one per step, rose ``RISES`` steps in a row by ``RISE_TOTAL`` in all
    (``numbered``: the list starts at step 1, so the message can say which steps)."""
    run_start = 0
    for k in range(1, len(losses)):
        if not losses[k] > losses[k - 1]:
            run_start = k
            continue
        first, last = losses[run_start], losses[k]
        if k - run_start >= RISES and last >= (1 + RISE_TOTAL) * first:
            rate = f" with the learning rate at {lr:g}" if lr is not None else ""
            when = f", steps {run_start + 1} to {k + 1}" if numbered else ""
            _report(
                "loss rising",
                "the loss",
                (
                    f"the loss rose {k - run_start} steps in a row, from {first:.4g} to {last:.4g} "
                    f"(+{100 * (last / first - 1):.0f}%{when}){rate}. A learning rate that "
                    f"is too large makes each step overshoot the minimum: try one 3 to 10 times smaller."
                ),
            )
            return


# -- the checks on a graph, at the start of backward() ---------------------------------------------


def _observe_backward(root: Value) -> None:
    order = topological_order(root)
    leaves = [n for n in order if n.is_leaf]
    _check_not_zeroed(leaves)
    _check_unconnected(set(leaves))
    judge_neurons(_neurons_in(order))
    if not root.is_leaf and isinstance(root.data, float):
        _state.losses = [*_state.losses, root.data][-(RISES + 1) :]
        check_losses(_state.losses, _learning_rate(), numbered=False)
    _state.previous = {leaf: leaf.data for leaf in leaves}


def _grad_number(grad) -> float:
    if isinstance(grad, Value):
        return grad.data
    return 0.0 if grad is None else grad


def _check_not_zeroed(leaves: list[Value]) -> None:
    previous = _state.previous
    stale = [
        leaf for leaf in leaves if leaf in previous and _grad_number(leaf.grad) != 0.0 and leaf.data != previous[leaf]
    ]
    if not stale:
        return
    example = min(stale, key=lambda p: _reading_order(p.label))
    _report(
        "gradients not zeroed",
        "gradients",
        (
            f"backward() is about to add new gradients to old ones: {len(stale)} parameter(s) ({_names(stale)}) still "
            f"hold the gradient of the previous backward() (e.g. {parameter_name(example)}: grad "
            f"{_grad_number(example.grad):.4g}), although their values changed since, so an update used it and "
            f"nothing set it back to 0. Gradients add up (+=) across backward() calls: zero them before each one, "
            f"`for p in model.parameters(): p.grad = 0.0` (or optimizer.zero_grad())."
        ),
    )


def _groups() -> list[tuple[object, list[Value]]]:
    groups = [(module, module.parameters()) for module in list(_state.modules)]
    groups += [(optimizer, optimizer.params) for optimizer in list(_state.optimizers)]
    return sorted(groups, key=lambda group: -len(group[1]))


def _check_unconnected(leaves: set[Value]) -> None:
    told: set[Value] = set()
    for owner, params in _groups():
        present = [p in leaves for p in params]
        if not any(present) or all(present):
            continue
        missing = [p for p, here in zip(params, present) if not here and p not in told]
        if not missing:
            continue
        told.update(missing)
        _report(
            "no gradient",
            _names(missing, shown=len(missing)),
            (
                f"{len(missing)} of the {len(params)} parameters of {_owner_name(owner)} get no gradient at all "
                f"from this loss: "
                f"{_names(missing, shown=6)}. The loss does not depend on them (they are not connected to it), so "
                f"backward() leaves their grad at 0 and training never moves them. Check that the forward pass "
                f"uses them: every weight and bias in the sum, every neuron's output passed on."
            ),
        )


def _owner_name(owner) -> str:
    if hasattr(owner, "parameters"):
        return repr(owner)
    if isinstance(owner, _ParameterList):
        return "the list given to watch()"
    return f"the {type(owner).__name__} optimizer"


def _learning_rate() -> float | None:
    rates = {optimizer.lr for optimizer in list(_state.optimizers) if hasattr(optimizer, "lr")}
    return rates.pop() if len(rates) == 1 else None


def _neurons_in(order: list[Value]) -> list[NeuronActivity]:
    """Each neuron's activity in the graph: activation nodes grouped by their neuron's parameters."""
    uses = Counter(chain.from_iterable(node._prev for node in order))
    known = {p for _, params in _groups() for p in params}
    neurons: dict[object, NeuronActivity] = {}
    for node in order:
        spec = node.op_spec
        if spec is None or spec.name not in ACTIVATIONS or len(node._prev) != 1:
            continue
        z = node._prev[0]
        if uses.get(z) != 1:  # a neuron's sum feeds its activation only (not so a loss's logit)
            continue
        params = _sum_parameters(z, known)
        if not params:
            continue
        key = (spec.name, params[-1] if _is_weighted_sum(z) else frozenset(params))
        if key not in neurons:
            neurons[key] = NeuronActivity(neuron_name(params), layer_name(params), spec.name, [], [])
        neurons[key].pre.append(z.data)
        neurons[key].out.append(node.data)
    return list(neurons.values())


def _is_weighted_sum(z: Value) -> bool:
    spec = z.op_spec
    return spec is not None and spec.name == "weighted_sum"


def _sum_parameters(z: Value, known: set) -> list[Value]:
    """The parameters in a neuron's sum: a fused weighted_sum's weights and bias (bias last), or
    the labelled or known leaves of a sum written with + and * (the lecture's way)."""
    if _is_weighted_sum(z):
        n = len(z._prev) // 2
        return [*z._prev[:n], z._prev[-1]]
    spec = z.op_spec
    if spec is None or spec.name not in SUM_OPS:
        return []
    found, stack, visited = [], [z], 0
    while stack and visited < 10_000:
        node = stack.pop()
        visited += 1
        for child in node._prev:
            if child.is_leaf:
                if child.label or child in known:
                    found.append(child)
            elif child.op_spec is not None and child.op_spec.name in SUM_OPS:
                stack.append(child)
    return found


# -- the same judgements on a model and a batch of inputs, without a graph ---------------------


def examine(model, X) -> None:
    """Judge every neuron of ``model`` (a Neuron, Layer or MLP) on the inputs ``X`` (one row per
    example): dead relu layers and saturated tanh/sigmoid neurons, as at ``backward()``."""
    from .nn import layer_activity

    activity = []
    for neurons, nonlin, pre, out in layer_activity(model, X):
        if nonlin not in ACTIVATIONS:
            continue
        for j, neuron in enumerate(neurons):
            params = neuron.parameters()
            activity.append(
                NeuronActivity(neuron_name(params), layer_name(params), nonlin, pre[:, j].tolist(), out[:, j].tolist())
            )
    judge_neurons(activity)


def _from_environment() -> None:
    if os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        enable()


__all__ = [
    "TeachingWarning",
    "Finding",
    "Checkup",
    "enable",
    "disable",
    "enabled",
    "teaching_checks",
    "findings",
    "watch",
    "examine",
    "check_losses",
    "ENVIRONMENT_VARIABLE",
]
