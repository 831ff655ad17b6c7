"""Derivatives of derivatives with MiniGrad.

Two small programs, both made only of scalar Values:

1. tanh and its first four derivatives, each one computed by composing ``grad``:
   ``grad(tanh)``, ``grad(grad(tanh))``, ... and plotted into a PNG.
2. Newton's method on the Rosenbrock function f(x, y) = (1 - x)**2 + 100 (y - x**2)**2.
   Each step needs the gradient and the Hessian. ``backward(create_graph=True)`` makes the
   gradient out of Values that are still connected to the graph, so calling ``backward()``
   on each gradient entry gives one row of the Hessian.

Run it from the repository root:

    python docs/examples/higher_order.py [PNG_PATH]

PNG_PATH defaults to tanh_derivatives.png beside this script.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from minigrad_core import Value, grad, ops

DEFAULT_PNG = Path(__file__).with_name("tanh_derivatives.png")


# -- 1. tanh and its derivatives ------------------------------------------------------------


def tanh(x):
    return ops.tanh(x)  # a number for a number, a graph node for a Value


def derivatives(f, count: int) -> list:
    """[f, f', f'', ...]: each derivative is grad of the one before, up to ``count``."""
    functions = [f]
    for _ in range(count):
        functions.append(grad(functions[-1]))
    return functions


def plot_tanh_derivatives(path: Path, low: float = -4.0, high: float = 4.0, points: int = 321) -> None:
    import matplotlib

    matplotlib.use("Agg")  # draw into a file; no window, no display needed
    import matplotlib.pyplot as plt

    xs = [low + (high - low) * i / (points - 1) for i in range(points)]
    names = ["tanh(x)", "tanh'(x)", "tanh''(x)", "tanh'''(x)", "tanh''''(x)"]
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for order, (function, name) in enumerate(zip(derivatives(tanh, 4), names)):
        ys = [function(x) for x in xs]  # called on numbers, each returns a number
        axes.plot(xs, ys, linewidth=2.4 if order == 0 else 1.7, label=name)
    axes.axhline(0.0, color="0.55", linewidth=0.8)
    axes.axvline(0.0, color="0.55", linewidth=0.8)
    axes.set_xlim(low, high)
    axes.set_xlabel("x")
    axes.set_ylabel("value")
    axes.set_title("tanh and its first four derivatives\ncomputed with MiniGrad: grad(tanh), grad(grad(tanh)), ...")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", frameon=True)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


# -- 2. Newton's method with a Hessian built from Values --------------------------------------


def rosenbrock(x, y):
    """The classic curved valley; its one minimum is f(1, 1) = 0."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def gradient_and_hessian(f, point):
    """f(point), its gradient and its Hessian, as numbers.

    backward(create_graph=True) leaves in each input's .grad a Value that is a function of
    the inputs; backward() on that Value then fills the inputs' .grad with one Hessian row.
    """
    inputs = [Value(p) for p in point]
    value = f(*inputs)
    value.backward(create_graph=True)
    gradient = [x.grad for x in inputs]  # Values, still connected to the graph
    hessian = []
    for partial in gradient:
        for x in inputs:
            x.grad = 0.0  # otherwise backward() would add onto the first derivative, as in PyTorch
        partial.backward()
        hessian.append([x.grad for x in inputs])
    return value.data, [g.data for g in gradient], hessian


def solve_2x2(matrix, rhs):
    """The solution s of matrix @ s = rhs (Cramer's rule: enough for two unknowns)."""
    (a, b), (c, d) = matrix
    determinant = a * d - b * c
    if determinant == 0:
        raise ZeroDivisionError(f"the Hessian {matrix} is singular: Newton's step is undefined")
    return [(d * rhs[0] - b * rhs[1]) / determinant, (a * rhs[1] - c * rhs[0]) / determinant]


def newton(f, start, steps: int = 30, tolerance: float = 1e-12):
    """Newton's method for a minimum: point -= Hessian^-1 @ gradient, until the gradient
    vanishes. Returns the iterates, each as (point, f(point), gradient)."""
    point = list(start)
    iterates = []
    for _ in range(steps + 1):
        value, gradient, hessian = gradient_and_hessian(f, point)
        iterates.append((point, value, gradient))
        if math.hypot(*gradient) <= tolerance:
            break
        step = solve_2x2(hessian, gradient)
        point = [p - s for p, s in zip(point, step)]
    return iterates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "png", nargs="?", type=Path, default=DEFAULT_PNG, help=f"where to write the plot (default: {DEFAULT_PNG})"
    )
    args = parser.parse_args(argv)

    plot_tanh_derivatives(args.png)
    print(f"wrote {args.png}")

    start = (-1.2, 1.0)
    print(f"\nNewton's method on the Rosenbrock function from {start}:")
    print(f"{'step':>4}  {'x':>20}  {'y':>20}  {'f(x, y)':>11}  {'|gradient|':>10}")
    iterates = newton(rosenbrock, start)
    for step, ((x, y), value, gradient) in enumerate(iterates):
        print(f"{step:>4}  {x:>20.16f}  {y:>20.16f}  {value:>11.4e}  {math.hypot(*gradient):>10.3e}")
    (x, y), value, _ = iterates[-1]
    print(f"minimum: f({x:.12f}, {y:.12f}) = {value:.3e} after {len(iterates) - 1} Newton steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
