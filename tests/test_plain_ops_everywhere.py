"""An op that declares only ``forward`` and ``derivative`` works wherever a built-in op works:
batched replay, ``minigrad demo --nonlin <op>`` and the numpy predictor behind the
decision-boundary picture. Registered at run time, and installed through an entry point.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
import minigrad_replay
import minigrad_replay.plugin
from minigrad_core import Registry, Value, using
from minigrad_nn.demo import DemoConfig, train

SOFTSIGN_SOURCE = """
from minigrad_core import OpSpec, hookimpl

def softsign(x):
    return x / (1 + abs(x))

def softsign_derivative(x, out):
    return (1 / (1 + abs(x)) ** 2,)

@hookimpl
def minigrad_register_ops(register):
    register(OpSpec(name="softsign", arity=1, forward=softsign, derivative=softsign_derivative,
                    methods=("softsign",)))
"""
namespace: dict = {}
exec(compile(SOFTSIGN_SOURCE, "softsign_plugin.py", "exec"), namespace)  # the same module the entry point loads


class SoftsignPlugin:
    minigrad_register_ops = staticmethod(namespace["minigrad_register_ops"])


@pytest.fixture
def registry():
    with using(
        Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, minigrad_replay.plugin, SoftsignPlugin())
    ) as active:
        yield active


def torch_mlp_loss_and_grads(model, X, y):
    """The same network and hinge loss in PyTorch float64, softsign written out."""
    params = [torch.tensor(p.data, dtype=torch.float64, requires_grad=True) for p in model.parameters()]
    it = iter(params)
    activations = torch.tensor(X, dtype=torch.float64)
    for layer_index, layer in enumerate(model.layers):
        columns = []
        for neuron in layer.neurons:
            w = torch.stack([next(it) for _ in neuron.w])
            b = next(it)
            columns.append(activations @ w + b)
        z = torch.stack(columns, dim=1)
        last = layer_index == len(model.layers) - 1
        activations = z if last else z / (1 + z.abs())
    scores = activations[:, 0]
    signs = torch.tensor(y, dtype=torch.float64)
    loss = torch.relu(1 - signs * scores).mean()
    loss.backward()
    return loss.item(), [p.grad.item() for p in params]


def test_the_registered_op_has_no_array_rules(registry):
    spec = registry.ops["softsign"]
    assert spec.np_forward is None and spec.np_derivative is None


def test_batched_replay_of_a_plain_op_equals_pytorch(registry):
    minigrad_nn.seed(3)
    model = minigrad_nn.MLP(2, [5, 1], nonlin="softsign", out_nonlin=None)
    X = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, -0.5], [1.5, 1.0]])
    y = np.array([1.0, -1.0, -1.0, 1.0])

    def loss_of_one(x, label):
        score = model(list(x))
        return minigrad_nn.hinge([score], [label])

    tape = minigrad_replay.record_batch(loss_of_one, X[0], y[0])
    model.zero_grad()
    loss = tape.backward(X, y, reduce="mean")
    expected_loss, expected_grads = torch_mlp_loss_and_grads(model, X, y)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-12)
    assert [p.grad for p in model.parameters()] == pytest.approx(expected_grads, rel=1e-10, abs=1e-14)


def test_the_numpy_predictor_runs_a_plain_op_row_by_row(registry):
    minigrad_nn.seed(5)
    model = minigrad_nn.MLP(2, [4, 1], nonlin="softsign", out_nonlin=None)
    X = np.array([[0.1, 0.2], [-3.0, 4.0], [10.0, -0.5]])
    predicted = minigrad_nn.predict_numpy(model, X)
    eager = [model(list(row)).data for row in X]
    assert np.asarray(predicted).ravel() == pytest.approx(eager, rel=1e-12)


@pytest.mark.parametrize("engine", ["eager", "batched", "replay"])
def test_the_demo_trains_and_draws_with_a_plain_op(registry, tmp_path, engine):
    result = train(DemoConfig(nonlin="softsign", steps=30, engine=engine, seed=1))
    assert result.losses[-1] < result.losses[0]
    from minigrad_nn import plots

    path = plots.decision_boundary(result.model, result.X, result.y, tmp_path / "boundary.png", title="softsign")
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_engine_gives_eager_numbers_for_a_plain_op(registry):
    losses = {
        engine: train(DemoConfig(nonlin="softsign", steps=5, engine=engine, seed=2)).losses
        for engine in ("eager", "batched", "replay")
    }
    for engine in ("batched", "replay"):
        assert losses[engine] == pytest.approx(losses["eager"], rel=1e-12)


@pytest.fixture
def installed_softsign(tmp_path):
    """A distribution installed the way pip installs one: a module and a dist-info folder
    whose entry_points.txt names it in the ``minigrad`` group."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "softsign_plugin.py").write_text(SOFTSIGN_SOURCE)
    info = site / "softsign_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: softsign-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[minigrad]\nsoftsign = softsign_plugin\n")
    return site


def test_the_demo_command_trains_with_an_installed_plain_op(installed_softsign, tmp_path):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(installed_softsign), os.environ.get("PYTHONPATH", "")]),
        MINIGRAD_PLUGINS="ops,nn,replay,softsign",
        MINIGRAD_STRICT_PLUGINS="1",
    )
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "minigrad_core",
            "demo",
            "--nonlin",
            "softsign",
            "--steps",
            "20",
            "--engine",
            "batched",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "decision_boundary.png").stat().st_size > 10_000
    listing = subprocess.run(
        [sys.executable, "-m", "minigrad_core", "ops"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "softsign" in listing.stdout and "softsign-plugin" in listing.stdout


def test_a_plain_op_value_matches_its_math(registry):
    x = Value(-2.0)
    y = x.softsign()
    y.backward()
    assert y.data == pytest.approx(-2.0 / 3.0)
    assert x.grad == pytest.approx(1 / 9)
    assert math.isclose(namespace["softsign"](0.5), 1 / 3)
