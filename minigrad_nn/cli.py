"""``minigrad demo``: train a small network, show its progress, and save what it learned.

Kept light to import (the CLI imports it to build its parser); training and plotting load
when the command runs.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import textwrap

HELP = "train a small neural network on 2-D points or handwritten digits and plot what it learned"

DESCRIPTION = """\
Train a multi-layer perceptron made of MiniGrad Values, with a progress bar showing the loss
and training accuracy. With no options this is micrograd's demo: 100 points of 'moons',
MLP(2, [16, 16, 1]) with relu hidden layers and a linear output, the hinge loss plus
1e-4 * sum(p**2), and 100 steps of SGD with the learning rate going from 1.0 down to 0.1.
It reaches 100% training accuracy.

--dataset digits reads handwritten digits instead: 1,797 images of 8x8 pixels (shipped with
MiniGrad), MLP(64, [32, 10]) trained on 80% of them with softmax cross-entropy and Adam for
200 steps, and tested on the 20% it never saw (about 97-98% right).

The teaching checks (minigrad_nn.doctor) watch the run: dead relu layers, saturated neurons,
a rising loss; the summary says what they found.

It writes these files into the output folder and prints where they are:
  decision_boundary.png  the data, coloured by class, over the model's decision regions
                         (digits: test_digits.png, test digits with the model's answers, and
                         confusion_matrix.png, which digit was read as which)
  curves.png             the loss and training accuracy after each step
  model.json             the trained parameters and the settings used (load with minigrad_nn.load)
"""

EXAMPLES = """\
examples:
  minigrad demo
  minigrad demo --dataset digits
  minigrad demo --dataset circles --hidden 8,8 --steps 50 --out circles
  minigrad demo --dataset spirals --loss softmax --optimizer adam --hidden 32,32 --steps 200
"""


def _hidden_sizes(text: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes separated by commas, like 16,16; got {text!r}"
        ) from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"every layer needs at least 1 neuron; got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    from .demo import (
        DEFAULT_LR,
        DEFAULT_SGD_LR_FOR_MSE,
        DEFAULTS,
        DEMO_DATASETS,
        LOSSES,
        OPTIMIZERS,
        DemoConfig,
        default_engine,
        engines,
    )

    defaults = DemoConfig()
    # None: the dataset's default, e.g. 16,16 hidden on the 2-D datasets and 32 on digits
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        choices=list(DEMO_DATASETS),
        default=defaults.dataset,
        help="what to classify (default: %(default)s); spirals and blobs have several classes, "
        "digits are 8x8 images of handwritten digits 0-9",
    )
    data.add_argument(
        "--samples",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"how many points (default: {DEFAULTS['samples']}; digits: all 1797)",
    )
    data.add_argument(
        "--noise",
        type=_non_negative,
        default=None,
        metavar="SD",
        help="standard deviation of the noise added to the points (default: the dataset's own)",
    )
    data.add_argument(
        "--classes",
        type=_positive_int,
        default=defaults.classes,
        metavar="K",
        help="number of classes of spirals and blobs (default: %(default)s)",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--hidden",
        type=_hidden_sizes,
        default=None,
        metavar="SIZES",
        help="hidden layer sizes separated by commas (default: 16,16; digits: 32); '' for none. The "
        "output layer is added: 1 score, or one logit per class with --loss softmax",
    )
    model.add_argument(
        "--nonlin",
        default=defaults.nonlin,
        metavar="OP",
        help="the hidden layers' nonlinearity: any registered one-input op, e.g. relu, tanh, "
        "sigmoid (default: %(default)s; `minigrad ops` lists them)",
    )
    training = parser.add_argument_group("training")
    training.add_argument(
        "--loss",
        choices=LOSSES,
        default=None,
        help="hinge: max-margin on labels ±1; bce: binary cross-entropy on the logit; "
        "mse: squared error to ±1; softmax: cross-entropy over classes "
        f"(default: {DEFAULTS['loss']}; digits: softmax)",
    )
    training.add_argument(
        "--l2",
        type=_non_negative,
        default=None,
        metavar="ALPHA",
        help=f"weight of the L2 penalty alpha * sum(p**2) added to the loss (default: {DEFAULTS['l2']:g})",
    )
    training.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=None,
        help="sgd (with --momentum), adam, or adamw (Adam with decoupled weight decay 0.01) "
        f"(default: {DEFAULTS['optimizer']}; digits: adam)",
    )
    training.add_argument(
        "--lr",
        type=_non_negative,
        default=None,
        help="the first step's learning rate (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + f"; sgd on mse {DEFAULT_SGD_LR_FOR_MSE:g})",
    )
    training.add_argument(
        "--lr-end",
        type=_non_negative,
        default=None,
        metavar="LR",
        help="the learning rate decays linearly towards this (default: a tenth of --lr)",
    )
    training.add_argument(
        "--momentum", type=_non_negative, default=defaults.momentum, help="SGD momentum (default: %(default)s)"
    )
    training.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"full-batch training steps (default: {DEFAULTS['steps']}; digits: 200)",
    )
    training.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seeds the data and the initial weights: the same seed repeats a run bit for bit (default: %(default)s)",
    )
    training.add_argument(
        "--engine",
        choices=engines(),
        default=default_engine(),
        help="how each step computes the loss and its gradients: eager builds the graph of "
        "Values anew every step, as you would by hand; replay records the graph once and "
        "replays it as generated Python on floats (the same numbers, faster); batched runs "
        "the recorded graph with numpy; lifted runs its weighted sums as matrix products "
        "(eager's numbers up to rounding, fastest). Default: the fastest with eager's "
        "numbers that is installed (%(default)s)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="folder for the pictures and the model, created if needed "
        "(default: a new folder ./minigrad-demo-YYYYmmdd-HHMMSS)",
    )
    output.add_argument("--no-progress", action="store_true", help="don't show the progress bar")


class ProgressBar:
    """The training's progress as tqdm draws it (``tqdm.auto``: a widget in a notebook, one
    redrawn line on a terminal), with the loss and training accuracy of the parameters as they
    are: before each step's update, and at the end, after the last one (the final loss)."""

    def __init__(self, file=None):
        self.file = file
        self.bar = None

    def __call__(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps, desc="training", unit="step", file=self.file, dynamic_ncols=True)
        self.bar.set_postfix_str(f"loss {loss:.4f}, accuracy {100 * accuracy:.1f}%", refresh=False)
        self.bar.update(step - self.bar.n)  # the final numbers come with step == steps again: no move

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def default_folder(now: datetime.datetime | None = None, where: str = ".") -> str:
    """A new folder name like ./minigrad-demo-20240131-142501 (with -2, -3 ... if taken)."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    candidate = os.path.join(where, f"minigrad-demo-{stamp}")
    suffix = 2
    while os.path.exists(candidate):
        candidate = os.path.join(where, f"minigrad-demo-{stamp}-{suffix}")
        suffix += 1
    return candidate


def config_from_args(args):
    from .demo import DemoConfig

    return DemoConfig(
        dataset=args.dataset,
        samples=args.samples,
        noise=args.noise,
        classes=args.classes,
        hidden=args.hidden,
        nonlin=args.nonlin,
        loss=args.loss,
        l2=args.l2,
        optimizer=args.optimizer,
        lr=args.lr,
        lr_end=args.lr_end,
        momentum=args.momentum,
        steps=args.steps,
        seed=args.seed,
        engine=args.engine,
    )


def run(args) -> int:
    from .demo import DIGITS, make_model, train
    from .serialize import save

    config = config_from_args(args)
    make_model(config)  # an unknown --nonlin fails here, before any output is made
    try:
        from . import plots

        plots.require_matplotlib()  # say so now, not after training
    except ImportError as error:
        print(f"minigrad demo: {error}", file=sys.stderr)
        return 1
    folder = args.out or default_folder()  # relative to where the user stands
    if os.path.exists(folder) and not os.path.isdir(folder):
        print(f"minigrad demo: --out {folder!r} is a file, not a folder", file=sys.stderr)
        return 2

    layers = f"{config.nonlin} hidden layers" if config.hidden else "no hidden layer"
    digits = config.dataset == DIGITS
    data = (
        f"{round(config.samples * (1 - config.test_fraction))} of {config.samples} digits (the rest held out "
        f"for testing)"
        if digits
        else f"{config.samples} points of {config.dataset}"
    )
    print(
        f"training {config.architecture()} ({layers}) on {data}: {config.loss} loss, {config.optimizer} with "
        f"lr {config.start_lr:g} -> {config.end_lr:g}, {config.steps} steps, seed {config.seed}, "
        f"{config.engine} engine",
        file=sys.stderr,
    )
    bar = None if args.no_progress else ProgressBar()
    try:
        result = train(config, progress=bar, checks=True)
    finally:
        if bar is not None:
            bar.close()
    if not math.isfinite(result.final_loss):
        step = next((k + 1 for k, loss in enumerate(result.losses) if not math.isfinite(loss)), config.steps)
        print(
            f"minigrad demo: training diverged: the loss became {result.final_loss} by step {step}. "
            f"Try a smaller learning rate (--lr, now {config.start_lr:g}). Nothing was written.",
            file=sys.stderr,
        )
        return 1

    os.makedirs(folder, exist_ok=True)
    tested = len(result.y_test) > 0
    score = (
        f"{100 * result.test_accuracy:.1f}% test accuracy"
        if tested
        else f"{100 * result.final_accuracy:.0f}% training accuracy"
    )
    title = f"{config.architecture()} on {config.dataset}: {score}"
    subtitle = (
        f"{config.nonlin} hidden layers, {config.loss} loss"
        + (f" + {config.l2:g}·Σp²" if config.l2 else "")
        + f", {config.optimizer} lr {config.start_lr:g}→{config.end_lr:g}, "
        f"{config.steps} steps, seed {config.seed}"
    )
    pictures = []
    if digits:
        images = result.X_test / result.X_test.max() if result.X_test.max() > 0 else result.X_test
        pictures.append(
            (
                "test digits:      ",
                plots.digit_grid(
                    images,
                    result.y_test,
                    result.test_predictions,
                    os.path.join(folder, "test_digits.png"),
                    f"{config.architecture()} reads digits it never saw: {score} (mistakes in red)",
                ),
            )
        )
        pictures.append(
            (
                "confusion matrix: ",
                plots.confusion_matrix(
                    result.y_test,
                    result.test_predictions,
                    os.path.join(folder, "confusion_matrix.png"),
                    10,
                    f"{config.architecture()} on {len(result.y_test)} test digits",
                ),
            )
        )
    else:
        pictures.append(
            (
                "decision boundary:",
                plots.decision_boundary(
                    result.model, result.X, result.y, os.path.join(folder, "decision_boundary.png"), title, subtitle
                ),
            )
        )
    losses, accuracies = result.history()
    pictures.append(
        (
            "loss and accuracy:",
            plots.curves(
                losses,
                accuracies,
                os.path.join(folder, "curves.png"),
                f"training {config.architecture()} on {config.dataset}",
                test_accuracy=result.test_accuracy if tested else None,
            ),
        )
    )
    model_path = save(result.model, os.path.join(folder, "model.json"), metadata=result.summary())

    test = (
        f", test accuracy {100 * result.test_accuracy:.1f}% on {len(result.y_test)} examples it never saw"
        if tested
        else ""
    )
    print(f"final loss {result.final_loss:.4f}, training accuracy {100 * result.final_accuracy:.1f}%{test}")
    print(
        f"{result.engine} engine: {config.steps} steps at {1000 * result.seconds_per_step:.0f} ms per step, "
        f"{result.seconds:.1f} s in all (loading the data and recording included)"
    )
    if result.findings:
        print(f"teaching checks found {len(result.findings)} problem(s):")
        for finding in result.findings:
            print(textwrap.fill(finding.message, 100, initial_indent="  - ", subsequent_indent="    "))
    else:
        print("teaching checks: nothing to report (no dead relu layer, saturated neuron or rising loss)")
    for name, path in pictures:
        print(f"{name} {path}")
    print(f"trained model:     {model_path}")
    return 0
