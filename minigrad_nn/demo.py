"""The training demo: a small network learns to separate 2-D points (``minigrad demo``).

The default is micrograd's demo: 100 points of the moons dataset, MLP(2, [16, 16, 1]) with
relu hidden layers and a linear score, the hinge loss plus 1e-4 * sum(p**2), and 100 steps
of full-batch SGD with the learning rate going from 1.0 down towards 0.1.

One training step is split in two:

    outcome = engine.loss_and_grads()   # forward and backward: loss, outputs, every p.grad
    optimizer.step()                    # move the parameters

An engine is the "compute the loss and its gradients" half. ``eager`` builds the graph
again from Values at every step, as a learner writes it by hand. ``replay`` (the default)
records that graph once and replays it as generated Python on floats: the same numbers,
several times faster. An engine is a class that takes the Task, provides
``loss_and_grads() -> StepOutcome`` and is listed in ENGINES; ``--engine`` offers it. ``Task.loss_graph`` is the loss as a function of the inputs and targets, ready
to be recorded.
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from minigrad_core import MiniGradError, Value, get_registry

from . import datasets, losses, optim
from .nn import MLP, check_nonlin, predict_numpy, seed as seed_weights

LOSSES = ("hinge", "bce", "mse", "softmax")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_LR = {"sgd": 1.0, "adam": 0.05, "adamw": 0.05}
DEFAULT_SGD_LR_FOR_MSE = 0.1  # squared errors give larger gradients: SGD at 1.0 diverges
MULTICLASS_DATASETS = ("spirals", "blobs")


class DemoConfigError(MiniGradError, ValueError):
    """A demo setting that cannot work, with what would."""


@dataclass
class DemoConfig:
    """Everything that decides a training run; the same config and seed give the same run."""

    dataset: str = "moons"
    samples: int = 100
    noise: float | None = None  # None: the dataset's own default
    classes: int = 3  # for the multi-class datasets (spirals, blobs)
    hidden: tuple[int, ...] = (16, 16)
    nonlin: str = "relu"
    loss: str = "hinge"
    l2: float = 1e-4
    optimizer: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR of the optimizer (0.1 for SGD on mse)
    lr_end: float | None = None  # None: a tenth of lr
    momentum: float = 0.0
    steps: int = 100
    seed: int = 1337
    engine: str = ""  # "": the fastest engine with eager's numbers (see default_engine); "eager" to watch Values

    def __post_init__(self):
        self.hidden = tuple(self.hidden)
        if self.dataset not in datasets.DATASETS:
            raise DemoConfigError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(datasets.DATASETS)}")
        if self.loss not in LOSSES:
            raise DemoConfigError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise DemoConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not self.engine:
            self.engine = default_engine()
        if self.engine not in engines():
            raise DemoConfigError(f"unknown engine {self.engine!r}; choose one of {', '.join(engines())}")
        if self.class_count > 2 and self.loss != "softmax":
            raise DemoConfigError(
                f"the {self.dataset} dataset has {self.class_count} classes but the {self.loss} loss separates "
                f"two; use the softmax loss (--loss softmax)"
            )
        for name in ("samples", "steps"):
            if getattr(self, name) < 1:
                raise DemoConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.samples < self.class_count:
            raise DemoConfigError(
                f"{self.samples} sample(s) cannot show {self.class_count} classes: use at least {self.class_count}")
        if self.momentum and self.optimizer != "sgd":
            raise DemoConfigError(f"--momentum applies to sgd only; {self.optimizer} keeps its own running averages")
        if any(size < 1 for size in self.hidden):
            raise DemoConfigError(f"hidden layer sizes must be at least 1, got {list(self.hidden)}")
        if self.dataset in MULTICLASS_DATASETS and self.classes < 2:
            raise DemoConfigError(f"the {self.dataset} dataset needs at least 2 classes, got {self.classes}")
        for name in ("lr", "lr_end", "l2", "momentum", "noise"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise DemoConfigError(f"{name} must be a number >= 0, got {value!r}")

    @property
    def class_count(self) -> int:
        return self.classes if self.dataset in MULTICLASS_DATASETS else 2

    @property
    def outputs(self) -> int:
        """One score per example for the two-class losses, one logit per class for softmax."""
        return self.class_count if self.loss == "softmax" else 1

    @property
    def start_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.optimizer == "sgd" and self.loss == "mse":
            return DEFAULT_SGD_LR_FOR_MSE
        return DEFAULT_LR[self.optimizer]

    @property
    def end_lr(self) -> float:
        return self.start_lr / 10 if self.lr_end is None else self.lr_end

    def architecture(self) -> str:
        return f"MLP(2, {[*self.hidden, self.outputs]})"


def make_data(config: DemoConfig):
    """The seeded training set as numpy arrays (X of shape (n, 2), y of class indices)."""
    make = datasets.DATASETS[config.dataset]
    options = {} if config.noise is None else {"noise": config.noise}
    if config.dataset == "spirals":
        options["classes"] = config.classes
    elif config.dataset == "blobs":
        options = {"centers": config.classes, **({"std": config.noise} if config.noise is not None else {})}
    return make(config.samples, seed=config.seed, **options)


def make_model(config: DemoConfig) -> MLP:
    try:
        check_nonlin(config.nonlin)  # an unknown op raises UnknownOpError, listing the known ones
    except ValueError as error:
        raise DemoConfigError(str(error)) from None
    seed_weights(config.seed)
    return MLP(2, [*config.hidden, config.outputs], nonlin=config.nonlin, out_nonlin=None)


# -- the task: what a step computes, whatever the engine -------------------------------------

@dataclass
class Task:
    """The model, the data and the loss: enough to compute a step's loss and gradients."""

    model: MLP
    X: np.ndarray
    y: np.ndarray  # class indices
    loss: str
    l2: float

    def targets(self) -> list:
        """The labels in the form the loss wants: ±1 (hinge, mse), 0/1 (bce), indices (softmax)."""
        if self.loss in ("hinge", "mse"):
            return [2.0 * label - 1.0 for label in self.y.tolist()]
        if self.loss == "bce":
            return [float(label) for label in self.y.tolist()]
        return self.y.tolist()

    def loss_graph(self, inputs: list[list[Value]], targets: list) -> tuple[Value, list[list[Value]]]:
        """Build the full-batch loss from Values: (loss, each example's outputs)."""
        model = self.model
        outputs = [model.forward(x) for x in inputs]
        if self.loss == "softmax":
            data_loss = losses.softmax_cross_entropy(outputs, targets)
        else:
            scores = [out[0] for out in outputs]
            binary_loss = {"hinge": losses.hinge, "bce": losses.bce_with_logits, "mse": losses.mse}[self.loss]
            data_loss = binary_loss(scores, targets)
        total = data_loss + losses.l2(model.parameters(), self.l2) if self.l2 else data_loss
        return total, outputs


@dataclass
class StepOutcome:
    """What one forward-and-backward pass found: the loss and every example's outputs."""

    loss: float
    # one row per example, one number per model output; an engine that does not keep them
    # may give None, and the outputs are then computed from the parameters (not yet updated)
    outputs: list[list[float]] | None = None


class EagerEngine:
    """Build the whole graph from Values at every step, then backpropagate through it."""

    name = "eager"

    def __init__(self, task: Task):
        self.task = task
        self.inputs = [[Value(x) for x in row] for row in task.X.tolist()]
        self.targets = task.targets()

    def loss_and_grads(self) -> StepOutcome:
        """Forward and backward: afterwards every parameter's ``grad`` holds d loss / d p."""
        collecting = gc.isenabled()
        gc.disable()  # the graph has no reference cycles: don't let the collector trace it as it grows
        try:
            loss, outputs = self.task.loss_graph(self.inputs, self.targets)
            loss.backward()
        finally:
            if collecting:
                gc.enable()
        return StepOutcome(loss.data, [[v.data for v in row] for row in outputs])


class PluginEngine:
    """An engine a plugin registered (``minigrad_register_engines``), e.g. the replay plugin's
    "replay": record the step's graph once, then replay it as generated straight-line Python
    on floats, with the eager engine's numbers. When a comparison inside the loss turns out
    otherwise the engine records the graph again; if that keeps happening, recording costs
    more than it saves, so the demo says so and carries on eagerly.
    """

    MAX_RECORDINGS = 4

    def __init__(self, task: Task, name: str):
        self.task, self.name = task, name
        self.rows = task.X.tolist()
        self.targets = task.targets()
        self.recorder = get_registry().engines[name](self.loss_graph)
        self.eager: EagerEngine | None = None

    def loss_graph(self, rows):
        return self.task.loss_graph(rows, self.targets)

    def loss_and_grads(self) -> StepOutcome:
        if self.eager is not None:
            return self.eager.loss_and_grads()
        loss, outputs = self.recorder.backward(self.rows)
        if getattr(self.recorder, "recordings", 0) >= self.MAX_RECORDINGS:
            print(f"{self.name}: the graph changed {self.recorder.recordings - 1} times (the loss branches on "
                  f"its values), so the remaining steps run on the eager engine", file=sys.stderr)
            self.eager = EagerEngine(self.task)
        return StepOutcome(loss, outputs)


# Engines whose numbers equal eager's, fastest first: the default is the first one installed.
PREFERRED_ENGINES = ("replay",)


def engines() -> list[str]:
    """The engines ``--engine`` offers: eager, and every engine a plugin registered."""
    return ["eager", *sorted(get_registry().engines)]


def default_engine() -> str:
    return next((name for name in PREFERRED_ENGINES if name in get_registry().engines), "eager")


def make_engine(name: str, task: Task):
    """An engine takes a Task and provides loss_and_grads() -> StepOutcome."""
    return EagerEngine(task) if name == "eager" else PluginEngine(task, name)


def outputs_of(outcome: StepOutcome, task: Task):
    if outcome.outputs is not None:
        return outcome.outputs
    return predict_numpy(task.model, task.X)


def predictions(outputs, loss: str) -> np.ndarray:
    """The predicted class of each example: the sign of the score, or the largest logit."""
    rows = np.asarray(outputs, dtype=float)
    if loss == "softmax":
        return rows.argmax(axis=1)
    return (rows[:, 0] > 0).astype(np.int64)


def make_optimizer(config: DemoConfig, params):
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=config.start_lr, momentum=config.momentum)
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.start_lr)
    return optim.AdamW(params, lr=config.start_lr)


# -- training ------------------------------------------------------------------------------

@dataclass
class TrainResult:
    config: DemoConfig
    model: MLP
    X: np.ndarray
    y: np.ndarray
    losses: list[float] = field(default_factory=list)  # loss before each step's update
    accuracies: list[float] = field(default_factory=list)  # training accuracy, same moments
    final_loss: float = float("nan")  # after the last update
    final_accuracy: float = float("nan")
    seconds_per_step: float = float("nan")  # mean wall time of loss_and_grads + the update

    def summary(self) -> dict:
        return {
            "config": asdict(self.config),
            "final_loss": self.final_loss,
            "final_accuracy": self.final_accuracy,
            "steps": len(self.losses),
        }


def train(config: DemoConfig | None = None,
          progress: Callable[[int, int, float, float], None] | None = None) -> TrainResult:
    """Train a model as ``config`` says (default: micrograd's demo);
    ``progress(step, steps, loss, accuracy)`` hears about each step."""
    config = DemoConfig() if config is None else config
    X, y = make_data(config)
    model = make_model(config)
    task = Task(model, X, y, config.loss, config.l2)
    engine = make_engine(config.engine, task)
    optimizer = make_optimizer(config, model.parameters())
    schedule = optim.LinearSchedule(optimizer, config.start_lr, config.end_lr, config.steps)
    result = TrainResult(config, model, X, y)
    started = time.perf_counter()
    for step in range(config.steps):
        optimizer.zero_grad()
        outcome = engine.loss_and_grads()
        accuracy = float(np.mean(predictions(outputs_of(outcome, task), config.loss) == y))
        optimizer.step()
        schedule.step()
        result.losses.append(outcome.loss)
        result.accuracies.append(accuracy)
        if progress is not None:
            progress(step + 1, config.steps, outcome.loss, accuracy)
    result.seconds_per_step = (time.perf_counter() - started) / config.steps
    # where the training ended: the loss and accuracy of the final parameters
    optimizer.zero_grad()
    final = engine.loss_and_grads()
    result.final_loss = final.loss
    result.final_accuracy = float(np.mean(predictions(outputs_of(final, task), config.loss) == y))
    optimizer.zero_grad()
    return result
