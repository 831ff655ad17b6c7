"""The training demo: a small network learns to separate 2-D points, or to read handwritten
digits (``minigrad demo``).

The default is micrograd's demo: 100 points of the moons dataset, MLP(2, [16, 16, 1]) with
relu hidden layers and a linear score, the hinge loss plus 1e-4 * sum(p**2), and 100 steps
of full-batch SGD with the learning rate going from 1.0 down towards 0.1.

``dataset="digits"`` trains MLP(64, [32, 10]) on 80% of the 1,797 8x8 digits (softmax
cross-entropy + 1e-4 L2, 200 full-batch steps of Adam from lr 0.05 down to 0.005) and tests it
on the 20% it never saw.

One training step is split in two:

    outcome = engine.loss_and_grads()   # forward and backward: loss, outputs, every p.grad
    optimizer.step()                    # move the parameters

An engine is the "compute the loss and its gradients" half. ``eager`` builds the graph
again from Values at every step, as a learner writes it by hand. Plugins register the others
(``minigrad_register_engines``): ``replay`` records that graph once and replays it as
generated Python on floats (the same numbers, several times faster), ``batched`` runs it with
numpy, and ``lifted`` runs its weighted sums as matrix products. The default is the first of
PREFERRED_ENGINES that is installed: the fastest that gives eager's numbers. A plugin engine
is wrapped in PluginEngine, which provides ``loss_and_grads() -> StepOutcome``; ``--engine``
offers every one. ``Task.loss_graph`` is the loss as a function of the inputs and targets,
ready to be recorded.
"""

from __future__ import annotations

import gc
import inspect
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from minigrad_core import MiniGradError, Value, get_registry

from . import datasets, doctor, losses, optim
from .nn import MLP, check_nonlin, predict_numpy
from .nn import seed as seed_weights

LOSSES = ("hinge", "bce", "mse", "softmax")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_LR = {"sgd": 1.0, "adam": 0.05, "adamw": 0.05}
DEFAULT_SGD_LR_FOR_MSE = 0.1  # squared errors give larger gradients: SGD at 1.0 diverges
MULTICLASS_DATASETS = ("spirals", "blobs")
DIGITS = "digits"
DEMO_DATASETS = (*datasets.DATASETS, DIGITS)
DIGITS_COUNT = 1797
# Pixels 0..16 become 0..0.25: a neuron adds up 64 of them with weights uniform in [-1, 1], so
# its first weighted sums stay about as large as 1 (pixels in 0..1 make them 4x larger, and the
# first steps then overshoot: test accuracy ends 1-2 points lower).
DIGITS_SCALE = 1 / 64

# What a setting left as None (DATASET_DEFAULT) becomes, per dataset.
DATASET_DEFAULT: Any = None
DEFAULTS = dict(samples=100, hidden=(16, 16), loss="hinge", l2=1e-4, optimizer="sgd", steps=100, test_fraction=0.0)
DATASET_DEFAULTS = {
    DIGITS: dict(
        samples=DIGITS_COUNT, hidden=(32,), loss="softmax", l2=1e-4, optimizer="adam", steps=200, test_fraction=0.2
    ),
}


class DemoConfigError(MiniGradError, ValueError):
    """A demo setting that cannot work, with what would."""


@dataclass
class DemoConfig:
    """Everything that decides a training run; the same config and seed give the same run."""

    dataset: str = "moons"
    # DATASET_DEFAULT (None): the dataset's own default, set by __post_init__ (see DEFAULTS)
    samples: int = DATASET_DEFAULT  # 100 points (digits: all 1,797)
    noise: float | None = None  # None: the dataset's own default
    classes: int = 3  # for the multi-class datasets (spirals, blobs)
    hidden: tuple[int, ...] = DATASET_DEFAULT  # (16, 16) (digits: (32,))
    nonlin: str = "relu"
    loss: str = DATASET_DEFAULT  # hinge (digits: softmax)
    l2: float = DATASET_DEFAULT  # 1e-4
    optimizer: str = DATASET_DEFAULT  # sgd (digits: adam)
    lr: float | None = None  # None: DEFAULT_LR of the optimizer (0.1 for SGD on mse)
    lr_end: float | None = None  # None: a tenth of lr
    momentum: float = 0.0
    steps: int = DATASET_DEFAULT  # 100 (digits: 200)
    seed: int = 1337
    engine: str = ""  # "": the fastest engine with eager's numbers (see default_engine); "eager" to watch Values
    test_fraction: float = DATASET_DEFAULT  # 0: no test set (digits: 0.2 of each digit held out)

    def __post_init__(self):
        if self.dataset not in DEMO_DATASETS:
            raise DemoConfigError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DEMO_DATASETS)}")
        for name, default in {**DEFAULTS, **DATASET_DEFAULTS.get(self.dataset, {})}.items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        self.hidden = tuple(self.hidden)
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
        if self.dataset == DIGITS:
            if not 50 <= self.samples <= DIGITS_COUNT:
                raise DemoConfigError(
                    f"the digits dataset has {DIGITS_COUNT} images; --samples must be from 50 to {DIGITS_COUNT}, "
                    f"got {self.samples}"
                )
            if self.noise is not None:
                raise DemoConfigError("--noise applies to the generated 2-D datasets, not to digits")
        if not 0 <= self.test_fraction < 1:
            raise DemoConfigError(f"test_fraction must be at least 0 and below 1, got {self.test_fraction!r}")
        if self.samples < self.class_count:
            raise DemoConfigError(
                f"{self.samples} sample(s) cannot show {self.class_count} classes: use at least {self.class_count}"
            )
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
        if self.dataset == DIGITS:
            return 10
        return self.classes if self.dataset in MULTICLASS_DATASETS else 2

    @property
    def inputs(self) -> int:
        """Numbers per example: 64 pixels for digits, 2 coordinates for the others."""
        return 64 if self.dataset == DIGITS else 2

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
        return f"MLP({self.inputs}, {[*self.hidden, self.outputs]})"

    def used(self) -> dict:
        """Every setting as the run uses it: the real class count, learning rates and noise."""
        settings = asdict(self)
        settings.update(classes=self.class_count, lr=self.start_lr, lr_end=self.end_lr)
        if self.dataset in datasets.DATASETS and self.noise is None:
            make = inspect.signature(datasets.DATASETS[self.dataset]).parameters
            settings["noise"] = (make.get("noise") or make["std"]).default
        return settings


def make_data(config: DemoConfig):
    """The seeded data as numpy arrays (X of shape (n, inputs), y of class indices): all of it,
    before a test set is held out (see ``make_split``). Digits come scaled by DIGITS_SCALE."""
    if config.dataset == DIGITS:
        X, y = datasets.load_digits()
        if config.samples < len(y):  # a random subset, the same for the same seed
            rows = np.sort(np.random.default_rng(config.seed).permutation(len(y))[: config.samples])
            X, y = X[rows], y[rows]
        return X * DIGITS_SCALE, y
    make = datasets.DATASETS[config.dataset]
    options = {} if config.noise is None else {"noise": config.noise}
    if config.dataset == "spirals":
        options["classes"] = config.classes
    elif config.dataset == "blobs":
        options = {"centers": config.classes, **({"std": config.noise} if config.noise is not None else {})}
    return make(config.samples, seed=config.seed, **options)


def make_split(config: DemoConfig):
    """``(X_train, y_train, X_test, y_test)``; the test part is empty without a test_fraction."""
    X, y = make_data(config)
    if not config.test_fraction:
        return X, y, X[:0], y[:0]
    return datasets.split(X, y, config.test_fraction, seed=config.seed)


def make_model(config: DemoConfig) -> MLP:
    try:
        check_nonlin(config.nonlin)  # an unknown op raises UnknownOpError, listing the known ones
    except ValueError as error:
        raise DemoConfigError(str(error)) from None
    seed_weights(config.seed)
    return MLP(config.inputs, [*config.hidden, config.outputs], nonlin=config.nonlin, out_nonlin=None)


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

    def example_targets(self) -> np.ndarray:
        """One target per example for ``example_loss``: the labels as numbers, or one-hot rows
        for softmax (a class index cannot be an input of a recorded graph: picking the
        logit ``z[label]`` would fix the label that was recorded)."""
        if self.loss == "softmax":
            return np.eye(len(self.model.layers[-1].neurons))[self.y]
        return np.asarray(self.targets(), dtype=np.float64)

    def example_loss(self, x: list[Value], target: Any) -> Value:
        """One example's loss, with the whole L2 penalty: the mean over the batch of
        (loss_i + L2) is the full-batch loss, mean(loss_i) + L2."""
        out = self.model.forward(x)
        if self.loss == "softmax":  # log Σ exp(z) - Σ t_k z_k, each z shifted as softmax_cross_entropy does
            shift = losses.logsumexp(out)
            data_loss = shift - sum((t * z for t, z in zip(target, out)), Value(0.0))
        else:
            binary_loss = {"hinge": losses.hinge, "bce": losses.bce_with_logits, "mse": losses.mse}[self.loss]
            data_loss = binary_loss([out[0]], [target])
        return data_loss + losses.l2(self.model.parameters(), self.l2) if self.l2 else data_loss


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
        # one numpy row per example: a replay engine reads a 1-D array's numbers at once, where
        # a list of lists is read number by number at every step
        self.rows = list(task.X)
        self.targets = task.targets()
        factory = get_registry().engines[name]
        self.recorder = factory(self.loss_graph)
        self.eager: EagerEngine | None = None
        # An engine that runs one example's graph for the whole batch records far less (one
        # example rather than all of them); the whole-batch recording is the fallback.
        self.per_example: Any = None
        if hasattr(factory, "per_example") and len(task.y):
            self.example_targets = task.example_targets()
            try:
                self.per_example = factory.per_example(task.example_loss, task.X[0], self.example_targets[0])
            except MiniGradError as error:
                self._give_up_per_example(error)

    def loss_graph(self, rows):
        return self.task.loss_graph(rows, self.targets)

    def _give_up_per_example(self, error: Exception) -> None:
        self.per_example = None
        print(
            f"{self.name}: one example's graph does not fit every example ({error}); recording the whole batch instead",
            file=sys.stderr,
        )

    def loss_and_grads(self) -> StepOutcome:
        if self.eager is not None:
            return self.eager.loss_and_grads()
        if self.per_example is not None:
            try:  # outputs None: computed from the parameters, which are not updated yet
                return StepOutcome(self.per_example.backward(self.task.X, self.example_targets), None)
            except MiniGradError as error:  # a changed graph, or trouble in array code: before any .grad is written
                self._give_up_per_example(error)
        loss, outputs = self.recorder.backward(self.rows)
        if getattr(self.recorder, "recordings", 0) >= self.MAX_RECORDINGS:
            print(
                f"{self.name}: the graph changed {self.recorder.recordings - 1} times (the loss branches on "
                f"its values), so the remaining steps run on the eager engine",
                file=sys.stderr,
            )
            self.eager = EagerEngine(self.task)
        return StepOutcome(loss, outputs)


# Engines whose numbers equal eager's, fastest first: the default is the first one installed.
PREFERRED_ENGINES = ("lifted", "replay")


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
    X: np.ndarray  # the training set
    y: np.ndarray
    losses: list[float] = field(default_factory=list)  # the loss of the parameters before each step's update
    accuracies: list[float] = field(default_factory=list)  # training accuracy, same moments
    final_loss: float = float("nan")  # after the last update: THE final loss, shown everywhere
    final_accuracy: float = float("nan")
    seconds_per_step: float = float("nan")  # mean wall time of loss_and_grads + the update
    seconds: float = float("nan")  # wall time of the whole run: loading the data, recording, training
    X_test: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # held out (none for the 2-D datasets)
    y_test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_predictions: np.ndarray | None = None
    test_accuracy: float = float("nan")
    engine: str = ""  # the engine that ran the steps (eager, if a plugin engine gave up)
    findings: list = field(default_factory=list)  # what the teaching checks found (train(checks=True))

    def history(self) -> tuple[list[float], list[float]]:
        """Loss and training accuracy after 0, 1, ..., steps updates (the last are the final ones)."""
        return [*self.losses, self.final_loss], [*self.accuracies, self.final_accuracy]

    def summary(self) -> dict:
        summary = {
            "config": self.config.used(),
            "engine": self.engine,
            "final_loss": self.final_loss,
            "final_accuracy": self.final_accuracy,
            "steps": len(self.losses),
            "training_examples": len(self.y),
        }
        if len(self.y_test):
            summary.update(test_accuracy=self.test_accuracy, test_examples=len(self.y_test))
        return summary


def train(
    config: DemoConfig | None = None,
    progress: Callable[[int, int, float, float], None] | None = None,
    checks: bool = False,
) -> TrainResult:
    """Train a model as ``config`` says (default: micrograd's demo);
    ``progress(step, steps, loss, accuracy)`` hears about each step, and once more with the
    final loss and accuracy. ``checks=True`` runs the teaching checks (``minigrad_nn.doctor``)
    over the run and puts what they found in ``result.findings`` instead of warning."""
    config = DemoConfig() if config is None else config
    # The demo's matrix products are small (1,438 x 64 by 64 x 32 for digits): BLAS threads only
    # wait on each other there, and on a busy machine they made a lifted step several times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        if not checks:
            return _train(config, progress)
        with doctor.teaching_checks() as checkup, warnings.catch_warnings():
            warnings.simplefilter("ignore", doctor.TeachingWarning)  # reported in the summary instead
            result = _train(config, progress, checkup=True)
    result.findings = checkup.findings
    return result


def _train(config: DemoConfig, progress, checkup: bool = False) -> TrainResult:
    started = time.perf_counter()
    X, y, X_test, y_test = make_split(config)
    model = make_model(config)
    task = Task(model, X, y, config.loss, config.l2)
    engine = make_engine(config.engine, task)
    optimizer = make_optimizer(config, model.parameters())
    schedule = optim.LinearSchedule(optimizer, config.start_lr, config.end_lr, config.steps)
    result = TrainResult(config, model, X, y, X_test=X_test, y_test=y_test)
    if checkup:  # a first look before training: what is dead from the start is a finding of its own
        doctor.examine(model, X)
    stepping = time.perf_counter()
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
    result.seconds_per_step = (time.perf_counter() - stepping) / config.steps
    # where the training ended: the loss and accuracy of the final parameters
    optimizer.zero_grad()
    final = engine.loss_and_grads()
    result.final_loss = final.loss
    result.final_accuracy = float(np.mean(predictions(outputs_of(final, task), config.loss) == y))
    optimizer.zero_grad()
    if progress is not None:
        progress(config.steps, config.steps, result.final_loss, result.final_accuracy)
    if len(y_test):
        result.test_predictions = predictions(predict_numpy(model, X_test), config.loss)
        result.test_accuracy = float(np.mean(result.test_predictions == y_test))
    result.engine = "eager" if getattr(engine, "eager", None) is not None else engine.name
    if checkup:  # the checks that need no graph, so that every engine gets them
        doctor.examine(model, X)
        doctor.check_losses([*result.losses, result.final_loss], lr=config.start_lr)
    result.seconds = time.perf_counter() - started
    return result
