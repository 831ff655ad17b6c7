"""The generated datasets: shapes, classes, geometry, and bit-for-bit seeding."""

import numpy as np
import pytest

from minigrad_nn import datasets
from minigrad_nn.datasets import make_blobs, make_circles, make_moons, make_spirals, make_xor

ALL = [
    (make_moons, {}, 2),
    (make_circles, {}, 2),
    (make_xor, {}, 2),
    (make_spirals, {"classes": 4}, 4),
    (make_blobs, {"centers": 5}, 5),
]


@pytest.mark.parametrize("make, options, classes", ALL)
def test_shapes_types_and_balanced_classes(make, options, classes):
    X, y = make(101, seed=0, **options)
    assert X.shape == (101, 2) and X.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    assert np.all(np.isfinite(X))
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes
    if make is not make_xor:  # xor's classes are as uniform points fall
        assert counts.max() - counts.min() <= 1
    else:
        assert counts.min() > 25


@pytest.mark.parametrize("make, options, classes", ALL)
def test_the_same_seed_gives_the_same_data_bit_for_bit(make, options, classes):
    X1, y1 = make(60, seed=42, **options)
    X2, y2 = make(60, seed=42, **options)
    X3, _ = make(60, seed=43, **options)
    assert X1.tobytes() == X2.tobytes() and y1.tobytes() == y2.tobytes()
    assert X1.tobytes() != X3.tobytes()


@pytest.mark.parametrize("make, options, classes", ALL)
def test_points_come_shuffled(make, options, classes):
    _, y = make(60, seed=1, **options)
    assert np.count_nonzero(np.diff(y)) > classes  # not one block per class


def test_moons_without_noise_lie_on_their_half_circles():
    X, y = make_moons(50, noise=0.0, seed=0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0)
    assert np.all(upper[:, 1] >= -1e-12)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0)
    assert np.all(lower[:, 1] <= 0.5 + 1e-12)


def test_circles_without_noise_have_their_radii():
    X, y = make_circles(40, noise=0.0, factor=0.3, seed=0)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0)
    np.testing.assert_allclose(radius[y == 1], 0.3)


def test_xor_labels_say_whether_the_coordinates_share_a_sign():
    X, y = make_xor(200, seed=3)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] > 0).astype(int))
    assert np.all(np.abs(X) >= 0.1 - 1e-12)  # the margin around the axes


def test_spirals_wind_outwards_and_blobs_gather_round_their_centres():
    X, y = make_spirals(300, classes=3, noise=0.0, seed=0)
    for k in range(3):
        radius = np.hypot(*X[y == k].T)
        assert radius.min() < 0.1 and radius.max() > 0.95
    X, y = make_blobs(300, centers=3, std=0.1, seed=0)
    for k in range(3):
        centre = X[y == k].mean(axis=0)
        assert np.hypot(*centre) == pytest.approx(2.0, abs=0.05)
        assert np.max(np.hypot(*(X[y == k] - centre).T)) < 0.6


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_moons(1), "make_moons: n must be a whole number >= 2, got 1"),
        (lambda: make_moons(10, noise=-0.1), "make_moons: noise must be a finite number >= 0"),
        (lambda: make_circles(10, factor=1.5), r"factor .* must be in \(0, 1\), got 1.5"),
        (lambda: make_spirals(10, classes=1), "classes must be a whole number >= 2, got 1"),
        (lambda: make_blobs(10, centers=0), "centers must be a whole number >= 1, got 0"),
        (lambda: make_blobs(10, std=float("inf")), "make_blobs: std must be a finite number"),
    ],
)
def test_bad_arguments_are_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_registry_of_datasets_names_them_all():
    assert set(datasets.DATASETS) == {"moons", "circles", "xor", "spirals", "blobs"}
