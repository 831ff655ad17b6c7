"""The demo's pictures: the decision boundary over the data, the training curves, and for the
digits a grid of test digits with the model's answers and a confusion matrix.

Drawn with matplotlib's object API on an Agg canvas, so nothing here touches pyplot's
global state or needs a display.
"""

from __future__ import annotations

import importlib.util
import textwrap

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


def _fit(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` broken into lines that fit the width (a character is ~0.6 of the font size wide)."""
    return textwrap.fill(text, width=max(20, int(width_inches * 72 / (0.6 * fontsize)))) if text else text


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
        filled = axes.contourf(
            gx,
            gy,
            np.clip(score, -limit, limit),
            levels=levels,
            cmap="RdBu",
            norm=TwoSlopeNorm(0.0, -limit, limit),
            alpha=0.55,
        )
        axes.contour(gx, gy, score, levels=[0.0], colors="black", linewidths=1.6)
        colorbar = figure.colorbar(filled, ax=axes, shrink=0.85, ticks=np.linspace(-limit, limit, 5), format="%.1f")
        colorbar.set_label("score: class 1 where > 0, class 0 where < 0")
    else:  # one logit per class: the largest wins
        winner = outputs.argmax(axis=1).reshape(gx.shape)
        colors = ListedColormap(CLASS_COLORS[: outputs.shape[1]])
        axes.contourf(gx, gy, winner, levels=np.arange(outputs.shape[1] + 1) - 0.5, cmap=colors, alpha=0.3)
        axes.contour(gx, gy, winner, levels=np.arange(outputs.shape[1]) + 0.5, colors="black", linewidths=1.2)
    handles = []
    for k in range(classes):
        mine = y == k
        color = CLASS_COLORS[k % len(CLASS_COLORS)]
        axes.scatter(X[mine, 0], X[mine, 1], s=36, c=color, edgecolors="white", linewidths=0.8, zorder=3)
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor=color,
                markeredgecolor="white",
                markersize=8,
                label=f"class {k} ({int(mine.sum())} points)",
            )
        )
    handles.append(Line2D([], [], color="black", linewidth=1.6, label="decision boundary"))
    # below the plot, never over the data
    columns = len(handles) if len(handles) <= 3 else 2
    axes.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=columns, frameon=False, fontsize=9
    )
    axes.set_xlim(gx.min(), gx.max())
    axes.set_ylim(gy.min(), gy.max())
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    figure.suptitle(title, fontsize=12, fontweight="bold")
    axes.set_title(_fit(subtitle, 6.0, 9), fontsize=9, color="#444444")
    figure.savefig(path)
    return str(path)


def curves(losses, accuracies, path, title: str = "", test_accuracy: float | None = None) -> str:
    """Loss and training accuracy after 0, 1, ..., n steps (``TrainResult.history()``: the last
    point is the final loss, the one the demo's summary reports). The loss gets a log scale
    when it falls by more than a factor of 10, labelled at powers of 10 only."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    losses, accuracy = np.asarray(losses, dtype=float), 100 * np.asarray(accuracies, dtype=float)
    steps = np.arange(len(losses))
    figure = _figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(steps, losses, color="#2b6cb0", linewidth=2)
    finite = losses[np.isfinite(losses)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10:
        loss_axes.set_yscale("log")
        # labels at 1, 10, 100 ... over a wide range; at 1, 2, 5, 10 ... over one or two
        # decades, where powers of 10 alone would leave a single label; the other ticks unlabelled
        wide = finite.max() / finite.min() > 100
        loss_axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0), numticks=8))
        if not wide:
            loss_axes.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        loss_axes.yaxis.set_minor_locator(
            LogLocator(base=10, subs=[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], numticks=12)
        )
        loss_axes.yaxis.set_minor_formatter(NullFormatter())
    loss_axes.set_title(f"loss (final: {losses[-1]:.4g})")
    loss_axes.set_ylabel("training loss")
    accuracy_axes.plot(steps, accuracy, color="#2ca25f", linewidth=2, label="training")
    accuracy_axes.axhline(100, color="#999999", linestyle="--", linewidth=1)
    low = accuracy.min()
    if test_accuracy is not None:
        accuracy_axes.axhline(
            100 * test_accuracy,
            color="#8856a7",
            linestyle=":",
            linewidth=1.8,
            label=f"test, final: {100 * test_accuracy:.1f}%",
        )
        accuracy_axes.legend(loc="lower right", fontsize=9)
        low = min(low, 100 * test_accuracy)
    accuracy_axes.set_ylim(min(45.0, low - 5), 102)
    accuracy_axes.yaxis.set_major_formatter(PercentFormatter())
    accuracy_axes.set_title(f"training accuracy (final: {accuracy[-1]:.1f}%)")
    accuracy_axes.set_ylabel("examples classified right")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(True, alpha=0.3)
        axes.set_xlim(0, max(len(losses) - 1, 1))
        axes.set_xlabel("steps done")
    if title:
        figure.suptitle(_fit(title, 10, 12), fontsize=12, fontweight="bold")
    figure.savefig(path)
    return str(path)


def digit_grid(images, labels, predicted, path, title: str = "", count: int = 48) -> str:
    """Test digits with the model's answer above each: the mistakes first (in red, framed, with
    the right answer), then digits it read right, ``count`` in all."""
    images, labels, predicted = np.asarray(images, dtype=float), np.asarray(labels), np.asarray(predicted)
    wrong = np.flatnonzero(predicted != labels)
    right = np.flatnonzero(predicted == labels)
    shown = np.concatenate([wrong[: count // 2], right])[:count]
    columns = 12
    rows = max(1, -(-len(shown) // columns))
    figure = _figure(columns * 0.85, rows * 1.0 + 0.9)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.ravel():
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_axis_off()
    for axes, k in zip(grid.ravel(), shown):
        axes.set_axis_on()
        axes.imshow(images[k].reshape(8, 8), cmap="gray_r", interpolation="nearest")
        mistake = predicted[k] != labels[k]
        axes.set_title(
            f"{predicted[k]} (is {labels[k]})" if mistake else f"{predicted[k]}",
            fontsize=9,
            color="#d7301f" if mistake else "black",
            fontweight="bold" if mistake else "normal",
        )
        for spine in axes.spines.values():
            spine.set_color("#d7301f" if mistake else "#bbbbbb")
            spine.set_linewidth(2.5 if mistake else 0.8)
    figure.suptitle(
        _fit(title or "test digits and what the model read", columns * 0.85, 11), fontsize=11, fontweight="bold"
    )
    figure.savefig(path)
    return str(path)


def confusion_matrix(labels, predicted, path, classes: int | None = None, title: str = "") -> str:
    """How often each true class (row) was predicted as each class (column); the diagonal is right."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    classes = classes or int(max(labels.max(), predicted.max())) + 1
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    figure = _figure(6.4, 5.8)
    axes = figure.add_subplot()
    shown = axes.imshow(counts, cmap="Blues")
    figure.colorbar(shown, ax=axes, shrink=0.8, label="test examples")
    for (true, guess), count in np.ndenumerate(counts):
        if count:
            dark = count > counts.max() / 2
            axes.text(
                guess,
                true,
                str(count),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else ("#d7301f" if true != guess else "black"),
                fontweight="bold" if true != guess else "normal",
            )
    axes.set_xticks(range(classes))
    axes.set_yticks(range(classes))
    axes.set_xlabel("the model's answer")
    axes.set_ylabel("the true class")
    right = int(np.trace(counts))
    figure.suptitle(_fit(title or "confusion matrix", 6.4, 12), fontsize=12, fontweight="bold")
    axes.set_title(
        f"{right} of {counts.sum()} test examples right ({100 * right / max(counts.sum(), 1):.1f}%); mistakes in red",
        fontsize=9,
        color="#444444",
    )
    figure.savefig(path)
    return str(path)
