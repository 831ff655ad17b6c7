"""The 8x8 digits shipped inside minigrad_nn, and ``minigrad demo --dataset digits``."""

import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import torch

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
import minigrad_replay.plugin
from minigrad_core import Registry, using
from minigrad_core.cli import main
from minigrad_nn import datasets, demo
from minigrad_nn.demo import DemoConfig, DemoConfigError, train

CLASS_SIZES = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, minigrad_replay.plugin)) as registry:
        yield registry


def test_load_digits_gives_the_uci_digits_as_scikit_learn_does():
    X, y = minigrad_nn.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert np.bincount(y).tolist() == CLASS_SIZES
    # checksums of scikit-learn 1.9.1's load_digits (see minigrad_nn/data/README.md)
    assert X.sum() == 561_718 and y.sum() == 8_070
    assert (X * np.arange(1, 65)).sum() == 18_222_371
    assert minigrad_nn.load_digits is datasets.load_digits
    first_zero = X[0].reshape(8, 8)
    assert y[0] == 0 and first_zero[0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_the_data_ships_inside_the_package_small_with_its_source_and_licence():
    folder = os.path.dirname(datasets.DIGITS_FILE)
    assert folder == os.path.join(os.path.dirname(minigrad_nn.__file__), "data")
    assert os.path.getsize(datasets.DIGITS_FILE) < 120_000
    readme = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    assert "CC BY 4.0" in readme and "Optical Recognition of Handwritten Digits" in readme
    assert "sklearn.datasets import load_digits" in readme  # how it was extracted


def test_loading_needs_no_scikit_learn(tmp_path):
    script = "import sys, minigrad_nn\nX, y = minigrad_nn.load_digits()\nprint(X.shape, 'sklearn' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1797, 64) False"


def test_split_holds_out_the_same_share_of_each_class_and_repeats_with_a_seed():
    X, y = minigrad_nn.load_digits()
    _, y_train, X_test, y_test = datasets.split(X, y, 0.2, seed=5)
    assert len(y_train) + len(y_test) == 1797
    assert np.bincount(y_test).tolist() == [round(0.2 * n) for n in CLASS_SIZES]
    ids = np.arange(1797)
    train_ids, _, test_ids, _ = datasets.split(ids, y, 0.2, seed=5)
    assert not set(train_ids) & set(test_ids) and len(set(train_ids) | set(test_ids)) == 1797
    again = datasets.split(X, y, 0.2, seed=5)
    assert np.array_equal(again[3], y_test) and np.array_equal(again[2], X_test)
    other = datasets.split(X, y, 0.2, seed=6)
    assert not np.array_equal(other[3], y_test)
    with pytest.raises(ValueError, match=r"test_fraction must be between 0 and 1, got 1\.5"):
        datasets.split(X, y, 1.5)
    with pytest.raises(ValueError, match="X has 3 rows but y has 2 labels"):
        datasets.split(X[:3], y[:2])


def test_the_digits_settings():
    config = DemoConfig(dataset="digits")
    assert config.architecture() == "MLP(64, [32, 10])"
    assert (config.loss, config.optimizer, config.steps, config.start_lr, config.end_lr) == (
        "softmax",
        "adam",
        200,
        0.05,
        0.005,
    )
    assert (config.samples, config.test_fraction, config.class_count, config.l2) == (1797, 0.2, 10, 1e-4)
    assert DemoConfig().architecture() == "MLP(2, [16, 16, 1])"  # the others keep theirs
    assert DemoConfig(dataset="digits", hidden=(16, 16), steps=5).architecture() == "MLP(64, [16, 16, 10])"


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(loss="hinge"), "the digits dataset has 10 classes but the hinge loss separates two; use the softmax"),
        (dict(samples=2000), "--samples must be from 50 to 1797, got 2000"),
        (dict(noise=0.1), "--noise applies to the generated 2-D datasets, not to digits"),
    ],
)
def test_digits_settings_that_cannot_work_are_refused(settings, message):
    with pytest.raises(DemoConfigError, match=message):
        DemoConfig(dataset="digits", **settings)


def test_a_digits_step_computes_the_loss_and_gradients_torch_computes():
    config = DemoConfig(dataset="digits", samples=120, steps=1, seed=4)
    X, y, _, _ = demo.make_split(config)
    model = demo.make_model(config)
    outcome = demo.EagerEngine(demo.Task(model, X, y, config.loss, config.l2)).loss_and_grads()

    module = minigrad_nn.to_torch(model)
    logits = module(torch.tensor(X))
    penalty = sum((p * p).sum() for p in module.parameters())
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(y)) + config.l2 * penalty
    expected.backward()
    torch_grads = [
        g
        for linear in module.linears
        for row, b in zip(linear.weight.grad.tolist(), linear.bias.grad.tolist())
        for g in (*row, b)
    ]
    assert outcome.loss == pytest.approx(expected.item(), rel=1e-12)
    assert [p.grad for p in model.parameters()] == pytest.approx(torch_grads, rel=1e-9, abs=1e-13)


def torch_training(config):
    """The demo's digits run done by PyTorch from the same initial weights, data and schedule."""
    X, y, X_test, y_test = demo.make_split(config)
    module = minigrad_nn.to_torch(demo.make_model(config))
    optimizer = torch.optim.Adam(module.parameters(), lr=config.start_lr)
    inputs, targets = torch.tensor(X), torch.tensor(y)
    losses = []
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.start_lr + (config.end_lr - config.start_lr) * step / config.steps
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(inputs), targets) + config.l2 * sum(
            (p * p).sum() for p in module.parameters()
        )
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        guesses = module(torch.tensor(X_test)).argmax(dim=1).numpy()
    return losses, float(np.mean(guesses == y_test))


def test_the_digits_run_follows_torch_step_by_step():
    config = DemoConfig(dataset="digits", samples=150, steps=4, seed=2, engine="eager")
    ours = train(config)
    theirs, _ = torch_training(config)
    assert ours.losses == pytest.approx(theirs, rel=1e-10)


def test_the_default_digits_run_reaches_97_percent_on_the_held_out_digits():
    """The settings, checked with PyTorch (fast) from the run's own initial weights and split; the
    test above shows MiniGrad's steps are PyTorch's; whether an engine is fast enough lives in
    the benchmarks."""
    losses, test_accuracy = torch_training(DemoConfig(dataset="digits"))
    assert test_accuracy >= 0.97
    assert losses[-1] < 0.2


def test_minigrad_demo_on_digits_writes_its_pictures_and_reports_the_test_accuracy(tmp_path, capsys):
    out = tmp_path / "digits"
    status = main(
        [
            "demo",
            "--dataset",
            "digits",
            "--samples",
            "100",
            "--steps",
            "3",
            "--engine",
            "eager",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert status == 0
    text = capsys.readouterr()
    assert sorted(os.listdir(out)) == ["confusion_matrix.png", "curves.png", "model.json", "test_digits.png"]
    assert "on 80 of 100 digits (the rest held out for testing)" in text.err
    assert "test accuracy" in text.out and "on 20 examples it never saw" in text.out
    assert "eager engine: 3 steps" in text.out and "teaching checks" in text.out
    metadata = json.loads((out / "model.json").read_text())["metadata"]
    assert metadata["config"]["classes"] == 10 and metadata["test_examples"] == 20
    assert 0 <= metadata["test_accuracy"] <= 1
    for name, ink in (("test_digits.png", 0.05), ("confusion_matrix.png", 0.02), ("curves.png", 0.01)):
        pixels = matplotlib.image.imread(out / name)[..., :3]
        assert min(pixels.shape[:2]) >= 200 and pixels.std() > 0.05
        assert np.mean(pixels.min(axis=2) < 0.9) > ink  # drawn on, not blank
    assert repr(minigrad_nn.load(out / "model.json")) == "MLP(64, [32, 10], nonlin='relu', out_nonlin=None)"
