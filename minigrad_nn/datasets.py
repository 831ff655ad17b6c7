"""Small classification datasets: 2-D ones generated with numpy, and handwritten digits.

Each ``make_*`` returns ``(X, y)``: ``X`` of shape (n, 2) holding float64 points, ``y`` of
shape (n,) holding int64 class indices 0, 1, ... The same ``seed`` gives the same data, bit for
bit; ``seed=None`` draws fresh randomness. Points come shuffled, so classes are interleaved.

``load_digits()`` returns the 1,797 handwritten digits of 8x8 pixels shipped in
``minigrad_nn/data/digits.npz`` (see ``data/README.md`` for where they come from), and
``split`` divides a dataset into a training and a held-out test part.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check(name: str, n, noise, minimum: int = 1, noise_name: str = "noise") -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name}: n must be a whole number >= {minimum}, got {n!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0 or np.isinf(noise):
        raise ValueError(f"{name}: {noise_name} must be a finite number >= 0 (a standard deviation), got {noise!r}")


def _finish(X, y, noise: float, rng: np.random.Generator):
    X = X + rng.normal(scale=noise, size=X.shape) if noise else X
    order = rng.permutation(len(y))
    return np.ascontiguousarray(X[order], dtype=np.float64), np.ascontiguousarray(y[order], dtype=np.int64)


def _split(n: int, parts: int) -> list[int]:
    """n examples into ``parts`` classes as evenly as possible (earlier classes get the extra)."""
    return [n // parts + (1 if k < n % parts else 0) for k in range(parts)]


def make_moons(n: int = 100, noise: float = 0.1, seed=None):
    """Two interleaving half circles: class 0 is the upper moon, class 1 the lower one."""
    _check("make_moons", n, noise, minimum=2)
    rng = _rng(seed)
    n0, n1 = _split(n, 2)
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    X = np.concatenate([upper, lower])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    return _finish(X, y, noise, rng)


def make_circles(n: int = 100, noise: float = 0.05, factor: float = 0.5, seed=None):
    """A circle inside another: class 0 on the outer circle (radius 1), class 1 on the inner (``factor``)."""
    _check("make_circles", n, noise, minimum=2)
    if not 0 < factor < 1:
        raise ValueError(f"make_circles: factor (inner radius / outer radius) must be in (0, 1), got {factor!r}")
    rng = _rng(seed)
    n0, n1 = _split(n, 2)
    # endpoint=False: 0 and 2π are the same point
    t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0, 2 * np.pi, n1, endpoint=False)
    outer = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    inner = factor * np.stack([np.cos(t1), np.sin(t1)], axis=1)
    X = np.concatenate([outer, inner])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    return _finish(X, y, noise, rng)


def make_xor(n: int = 100, noise: float = 0.0, seed=None):
    """Points uniform in the square [-1, 1]²: class 1 where x and y have the same sign, else class 0.

    Points within 0.1 of an axis are moved away from it, so the classes have a visible gap.
    """
    _check("make_xor", n, noise)
    rng = _rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, 2))
    X = np.sign(X) * (0.1 + 0.9 * np.abs(X))  # keep a margin around the axes
    X[X == 0] = 0.1
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return _finish(X, y, noise, rng)


def make_spirals(n: int = 150, classes: int = 3, noise: float = 0.05, turns: float = 1.0, seed=None):
    """``classes`` spiral arms winding out from the origin, one class per arm."""
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"make_spirals: classes must be a whole number >= 2, got {classes!r}")
    _check("make_spirals", n, noise, minimum=classes)
    rng = _rng(seed)
    points, labels = [], []
    for k, count in enumerate(_split(n, classes)):
        radius = np.linspace(0.05, 1.0, count)
        angle = 2 * np.pi * (turns * radius + k / classes)
        points.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(count, k))
    return _finish(np.concatenate(points), np.concatenate(labels), noise, rng)


def make_blobs(n: int = 100, centers: int = 3, std: float = 0.3, seed=None):
    """``centers`` round clusters (standard deviation ``std``) with centres evenly spaced on a circle of radius 2."""
    if isinstance(centers, bool) or not isinstance(centers, int) or centers < 1:
        raise ValueError(f"make_blobs: centers must be a whole number >= 1, got {centers!r}")
    _check("make_blobs", n, std, minimum=centers, noise_name="std")
    rng = _rng(seed)
    counts = _split(n, centers)
    angles = 2 * np.pi * np.arange(centers) / centers + np.pi / 2
    middles = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    X = np.concatenate([np.repeat(middles[k : k + 1], count, axis=0) for k, count in enumerate(counts)])
    y = np.concatenate([np.full(count, k) for k, count in enumerate(counts)])
    return _finish(X, y, std, rng)


DIGITS_FILE = os.path.join(os.path.dirname(__file__), "data", "digits.npz")


def load_digits():
    """The 8x8 handwritten digits: ``X`` float64 of shape (1797, 64), each row an image's 64
    pixels (row by row) with values 0..16, and ``y`` int64 of shape (1797,), the digits 0..9.

    The UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak, 1998;
    CC BY 4.0), as scikit-learn bundles it; the same numbers as ``sklearn.datasets.load_digits``.
    """
    try:
        with np.load(DIGITS_FILE, allow_pickle=False) as data:
            pixels, labels = data["pixels"], data["labels"]
    except (OSError, KeyError, ValueError) as error:
        raise FileNotFoundError(
            f"load_digits: the digits file {DIGITS_FILE} is missing or damaged ({error}); it ships inside the "
            f"minigrad_nn package: reinstall it (pip install -e . from the repository)"
        ) from None
    return pixels.astype(np.float64), labels.astype(np.int64)


def split(X, y, test_fraction: float = 0.2, seed=None):
    """``(X_train, y_train, X_test, y_test)``: ``test_fraction`` of each class held out for testing,
    drawn at random (the same ``seed``, the same split), each part shuffled."""
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"split: X has {len(X)} rows but y has {len(y)} labels")
    if not 0 < test_fraction < 1:
        raise ValueError(f"split: test_fraction must be between 0 and 1, got {test_fraction!r}")
    rng = _rng(seed)
    test = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        test.extend(rng.permutation(members)[: round(test_fraction * len(members))].tolist())
    if not test or len(test) == len(y):
        raise ValueError(f"split: {len(y)} examples are too few to hold out {test_fraction:g} of each class")
    held_out = np.zeros(len(y), dtype=bool)
    held_out[test] = True
    train_rows = rng.permutation(np.flatnonzero(~held_out))
    test_rows = rng.permutation(np.flatnonzero(held_out))
    return X[train_rows], y[train_rows], X[test_rows], y[test_rows]


DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "moons": make_moons,
    "circles": make_circles,
    "xor": make_xor,
    "spirals": make_spirals,
    "blobs": make_blobs,
}


def class_count(y) -> int:
    return int(np.max(y)) + 1 if len(y) else 0
