"""The demo's pictures: the decision boundary over the data, and the training curves.

Drawn with matplotlib's object API on an Agg canvas, so nothing here touches pyplot's
global state or needs a display.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from .nn import predict_numpy

# Class colours: the two-class picture fills negative scores red and positive ones blue.
CLASS_COLORS = ["#d7301f", "#2b6cb0", "#2ca25f", "#8856a7", "#ec7014", "#636363", "#e7298a", "#a6761d"]


def require_matplotlib() -> None:
    """Fail early, and say how to fix it, when matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError(
            "the demo's pictures need matplotlib: pip install 'minigrad-edu[demo]' (or pip install matplotlib)"
        )


def _figure(width: float, height: float):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _grid(X: np.ndarray, resolution: int):
    low, high = X.min(axis=0), X.max(axis=0)
    pad = 0.15 * (high - low) + 1e-9
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy, np.column_stack([gx.ravel(), gy.ravel()])


def decision_boundary(model, X, y, path, title: str = "", subtitle: str = "", resolution: int = 250) -> str:
    """Colour the plane by the model's prediction and draw the labelled points over it."""
    from matplotlib.colors import ListedColormap, TwoSlopeNorm
    from matplotlib.lines import Line2D

    X, y = np.asarray(X, dtype=float), np.asarray(y)
    classes = max(int(y.max()) + 1, 2)
    gx, gy, points = _grid(X, resolution)
    outputs = predict_numpy(model, points)
    figure = _figure(6.4, 5.6)
    axes = figure.add_subplot()
    if outputs.shape[1] == 1:  # one score: its sign is the class, its size the confidence
        score = outputs[:, 0].reshape(gx.shape)
        limit = float(np.percentile(np.abs(score), 98)) or 1.0
        levels = np.linspace(-limit, limit, 21)
        filled = axes.contourf(gx, gy, np.clip(score, -limit, limit), levels=levels, cmap="RdBu",
                               norm=TwoSlopeNorm(0.0, -limit, limit), alpha=0.55)
        axes.contour(gx, gy, score, levels=[0.0], colors="black", linewidths=1.6)
        colorbar = figure.colorbar(filled, ax=axes, shrink=0.85, ticks=np.linspace(-limit, limit, 5), format="%.1f")
        colorbar.set_label("score: class 1 where > 0, class 0 where < 0")
    else:  # one logit per class: the largest wins
        winner = outputs.argmax(axis=1).reshape(gx.shape)
        colors = ListedColormap(CLASS_COLORS[:outputs.shape[1]])
        axes.contourf(gx, gy, winner, levels=np.arange(outputs.shape[1] + 1) - 0.5, cmap=colors, alpha=0.3)
        axes.contour(gx, gy, winner, levels=np.arange(outputs.shape[1]) + 0.5, colors="black", linewidths=1.2)
    handles = []
    for k in range(classes):
        mine = y == k
        color = CLASS_COLORS[k % len(CLASS_COLORS)]
        axes.scatter(X[mine, 0], X[mine, 1], s=36, c=color, edgecolors="white", linewidths=0.8, zorder=3)
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor=color, markeredgecolor="white",
                              markersize=8, label=f"class {k} ({int(mine.sum())} points)"))
    handles.append(Line2D([], [], color="black", linewidth=1.6, label="decision boundary"))
    axes.legend(handles=handles, loc="best", framealpha=0.9, fontsize=9)
    axes.set_xlim(gx.min(), gx.max())
    axes.set_ylim(gy.min(), gy.max())
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    figure.suptitle(title, fontsize=12, fontweight="bold")
    axes.set_title(subtitle, fontsize=9, color="#444444")
    figure.savefig(path)
    return str(path)


def curves(losses, accuracies, path, title: str = "") -> str:
    """Loss (log scale) and training accuracy against the step."""
    from matplotlib.ticker import PercentFormatter

    steps = np.arange(1, len(losses) + 1)
    figure = _figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(steps, losses, color="#2b6cb0", linewidth=2)
    if np.all(np.asarray(losses) > 0):
        loss_axes.set_yscale("log")
    loss_axes.set_title(f"loss (last: {losses[-1]:.4g})")
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("training loss")
    accuracy = 100 * np.asarray(accuracies)
    accuracy_axes.plot(steps, accuracy, color="#2ca25f", linewidth=2)
    accuracy_axes.axhline(100, color="#999999", linestyle="--", linewidth=1)
    accuracy_axes.set_ylim(min(45.0, accuracy.min() - 5), 102)
    accuracy_axes.yaxis.set_major_formatter(PercentFormatter())
    accuracy_axes.set_title(f"training accuracy (last: {accuracy[-1]:.0f}%)")
    accuracy_axes.set_xlabel("step")
    accuracy_axes.set_ylabel("examples classified right")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(True, alpha=0.3)
        axes.set_xlim(1, max(len(losses), 2))
    if title:
        figure.suptitle(title, fontsize=12, fontweight="bold")
    figure.savefig(path)
    return str(path)
