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

HELP = "train a small neural network on 2-D points and plot what it learned"

DESCRIPTION = """\
Train a multi-layer perceptron made of MiniGrad Values on a 2-D dataset, with a progress bar
showing the loss and training accuracy. With no options this is micrograd's demo: 100 points of
'moons', MLP(2, [16, 16, 1]) with relu hidden layers and a linear output, the hinge loss plus
1e-4 * sum(p**2), and 100 steps of SGD with the learning rate going from 1.0 down to 0.1.
It reaches 100% training accuracy.

It writes three files into the output folder and prints where they are:
  decision_boundary.png  the data, coloured by class, over the model's decision regions
  curves.png             the loss and training accuracy at each step
  model.json             the trained parameters (load them with minigrad_nn.load)
"""

EXAMPLES = """\
examples:
  minigrad demo
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
            f"expected layer sizes separated by commas, like 16,16; got {text!r}") from None
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
    from .datasets import DATASETS
    from .demo import DEFAULT_LR, DEFAULT_SGD_LR_FOR_MSE, LOSSES, OPTIMIZERS, DemoConfig, default_engine, engines

    defaults = DemoConfig()
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=list(DATASETS), default=defaults.dataset,
                      help="the points to classify (default: %(default)s); spirals and blobs have several classes")
    data.add_argument("--samples", type=_positive_int, default=defaults.samples, metavar="N",
                      help="how many points (default: %(default)s)")
    data.add_argument("--noise", type=_non_negative, default=None, metavar="SD",
                      help="standard deviation of the noise added to the points (default: the dataset's own)")
    data.add_argument("--classes", type=_positive_int, default=defaults.classes, metavar="K",
                      help="number of classes of spirals and blobs (default: %(default)s)")
    model = parser.add_argument_group("model")
    model.add_argument("--hidden", type=_hidden_sizes, default=defaults.hidden, metavar="SIZES",
                       help="hidden layer sizes separated by commas (default: 16,16); '' for none. The output "
                            "layer is added: 1 score, or one logit per class with --loss softmax")
    model.add_argument("--nonlin", default=defaults.nonlin, metavar="OP",
                       help="the hidden layers' nonlinearity: any registered one-input op, e.g. relu, tanh, "
                            "sigmoid (default: %(default)s; `minigrad ops` lists them)")
    training = parser.add_argument_group("training")
    training.add_argument("--loss", choices=LOSSES, default=defaults.loss,
                          help="hinge: max-margin on labels ±1; bce: binary cross-entropy on the logit; "
                               "mse: squared error to ±1; softmax: cross-entropy over classes "
                               "(default: %(default)s)")
    training.add_argument("--l2", type=_non_negative, default=defaults.l2, metavar="ALPHA",
                          help="weight of the L2 penalty alpha * sum(p**2) added to the loss (default: %(default)s)")
    training.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer,
                          help="sgd (with --momentum), adam, or adamw (Adam with decoupled weight decay 0.01) "
                               "(default: %(default)s)")
    training.add_argument("--lr", type=_non_negative, default=None,
                          help="the first step's learning rate (default: "
                               + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
                               + f"; sgd on mse {DEFAULT_SGD_LR_FOR_MSE:g})")
    training.add_argument("--lr-end", type=_non_negative, default=None, metavar="LR",
                          help="the learning rate decays linearly towards this (default: a tenth of --lr)")
    training.add_argument("--momentum", type=_non_negative, default=defaults.momentum,
                          help="SGD momentum (default: %(default)s)")
    training.add_argument("--steps", type=_positive_int, default=defaults.steps, metavar="N",
                          help="full-batch training steps (default: %(default)s)")
    training.add_argument("--seed", type=int, default=defaults.seed,
                          help="seeds the data and the initial weights: the same seed repeats a run bit for bit "
                               "(default: %(default)s)")
    training.add_argument("--engine", choices=engines(), default=default_engine(),
                          help="how each step computes the loss and its gradients: replay records the graph "
                               "once and replays it as generated Python on floats (same numbers, faster); "
                               "eager builds the graph of Values anew every step, as you would by hand "
                               "(default: %(default)s)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", default=None,
                        help="folder for the pictures and the model, created if needed "
                             "(default: a new folder ./minigrad-demo-YYYYmmdd-HHMMSS)")
    output.add_argument("--no-progress", action="store_true", help="don't show the progress bar")


class ProgressBar:
    """A one-line progress bar on a terminal (redrawn with \\r); periodic lines elsewhere."""

    def __init__(self, stream=None, width: int = 30, lines: int = 10):
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.lines = lines  # how many lines a non-terminal gets over the run
        self._drawn = 0  # length of the line on screen, to blank out what a shorter one leaves

    def __call__(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        done = round(self.width * step / steps)
        text = (f"step {step:>{len(str(steps))}}/{steps} [{'#' * done}{'.' * (self.width - done)}] "
                f"loss {loss:.4f}  accuracy {100 * accuracy:5.1f}%")
        if self.interactive:
            padding = " " * max(0, self._drawn - len(text))
            self._drawn = len(text)
            self.stream.write("\r" + text + padding + ("\n" if step == steps else ""))
            self.stream.flush()
        elif step == 1 or step == steps or step % max(1, steps // self.lines) == 0:
            self.stream.write(text + "\n")
            self.stream.flush()


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
        dataset=args.dataset, samples=args.samples, noise=args.noise, classes=args.classes,
        hidden=args.hidden, nonlin=args.nonlin, loss=args.loss, l2=args.l2, optimizer=args.optimizer,
        lr=args.lr, lr_end=args.lr_end, momentum=args.momentum, steps=args.steps, seed=args.seed,
        engine=args.engine,
    )


def run(args) -> int:
    from .demo import make_model, train
    from .serialize import save

    config = config_from_args(args)
    make_model(config)  # an unknown --nonlin fails here, before any output is made
    try:
        from . import plots

        plots.require_matplotlib()  # say so now, not after training
    except ImportError as error:
        print(f"minigrad demo: {error}", file=sys.stderr)
        return 1
    folder = args.out or default_folder()
    if os.path.exists(folder) and not os.path.isdir(folder):
        print(f"minigrad demo: --out {folder!r} is a file, not a folder", file=sys.stderr)
        return 2

    layers = f"{config.nonlin} hidden layers" if config.hidden else "no hidden layer"
    print(f"training {config.architecture()} ({layers}) on {config.samples} points of "
          f"{config.dataset}: {config.loss} loss, {config.optimizer} with lr {config.start_lr:g} -> "
          f"{config.end_lr:g}, {config.steps} steps, seed {config.seed}, {config.engine} engine", file=sys.stderr)
    result = train(config, progress=None if args.no_progress else ProgressBar())
    if not math.isfinite(result.final_loss):
        step = next((k + 1 for k, loss in enumerate(result.losses) if not math.isfinite(loss)), config.steps)
        print(f"minigrad demo: training diverged: the loss became {result.final_loss} by step {step}. "
              f"Try a smaller learning rate (--lr, now {config.start_lr:g}). Nothing was written.", file=sys.stderr)
        return 1

    os.makedirs(folder, exist_ok=True)
    title = (f"{config.architecture()} on {config.dataset}: "
             f"{100 * result.final_accuracy:.0f}% training accuracy")
    subtitle = (f"{config.nonlin} hidden layers, {config.loss} loss"
                + (f" + {config.l2:g}·Σp²" if config.l2 else "")
                + f", {config.optimizer} lr {config.start_lr:g}→{config.end_lr:g}, "
                  f"{config.steps} steps, seed {config.seed}")
    boundary = plots.decision_boundary(result.model, result.X, result.y,
                                       os.path.join(folder, "decision_boundary.png"), title, subtitle)
    curves = plots.curves(result.losses, result.accuracies, os.path.join(folder, "curves.png"),
                          f"training {config.architecture()} on {config.dataset}")
    model_path = save(result.model, os.path.join(folder, "model.json"), metadata=result.summary())

    print(textwrap.dedent(f"""\
        final loss {result.final_loss:.4f}, training accuracy {100 * result.final_accuracy:.1f}% \
({1000 * result.seconds_per_step:.0f} ms per step)
        decision boundary: {boundary}
        loss and accuracy: {curves}
        trained model:     {model_path}"""))
    return 0
