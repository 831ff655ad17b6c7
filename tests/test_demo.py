"""``minigrad demo``: the default run reaches 100% on moons and writes real pictures and the model."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
import minigrad_replay.plugin
from minigrad_core import hookimpl, Registry, using
from minigrad_core.cli import main
from minigrad_nn import demo
from minigrad_nn.cli import ProgressBar, default_folder
from minigrad_nn.demo import DemoConfig, DemoConfigError, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ("decision_boundary.png", "curves.png", "model.json")


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, minigrad_replay.plugin)) as registry:
        yield registry


def run_minigrad(*args, cwd):
    """The installed command as a user runs it (only the ops and nn plugins, whatever else is installed)."""
    env = dict(os.environ, MINIGRAD_PLUGINS="ops,nn")
    return subprocess.run([sys.executable, "-m", "minigrad_core", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_real_picture(path, min_size=300, ink=0.2):
    """A PNG that decodes to a sizeable, colourful image (not a blank or a single colour),
    with at least the fraction ``ink`` of its pixels clearly not white."""
    import matplotlib.image

    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert height >= min_size and width >= min_size
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05  # not blank
    assert len(np.unique((rgb * 255).round().astype(np.uint8), axis=0)) > 100  # many colours: filled regions, points
    assert np.mean(rgb.min(axis=1) < 0.9) > ink


def test_the_default_demo_reaches_100_percent_on_moons_and_writes_three_files(tmp_path):
    out = tmp_path / "run"
    result = run_minigrad("demo", "--out", str(out), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training accuracy 100.0%" in result.stdout
    assert sorted(os.listdir(out)) == sorted(OUTPUTS)
    for name in OUTPUTS:
        assert str(out / name) in result.stdout  # it says where they are
    assert_real_picture(out / "decision_boundary.png")
    assert_real_picture(out / "curves.png", ink=0.01)  # lines and text on white
    assert "MLP(2, [16, 16, 1])" in result.stderr and "moons" in result.stderr

    model = minigrad_nn.load(out / "model.json")
    assert repr(model) == "MLP(2, [16, 16, 1], nonlin='relu', out_nonlin=None)"
    X, y = demo.make_data(DemoConfig())
    scores = np.array([model(row).data for row in X.tolist()])
    assert np.all((scores > 0) == (y == 1))  # the saved model classifies every training point right
    metadata = json.loads((out / "model.json").read_text())["metadata"]
    assert metadata["final_accuracy"] == 1.0 and metadata["config"]["dataset"] == "moons"


def test_a_small_run_with_a_progress_bar_and_the_default_folder(tmp_path):
    result = run_minigrad("demo", "--dataset", "circles", "--samples", "30", "--hidden", "4", "--steps", "5",
                          "--seed", "3", "--lr", "0.5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folders = [name for name in os.listdir(tmp_path) if name.startswith("minigrad-demo-")]
    assert len(folders) == 1
    assert sorted(os.listdir(tmp_path / folders[0])) == sorted(OUTPUTS)
    assert os.path.join(".", folders[0], "model.json") in result.stdout
    # not a terminal: the progress bar prints whole lines, the first and the last among them
    assert "step 1/5 [" in result.stderr and "step 5/5 [##############################]" in result.stderr
    assert "\r" not in result.stderr
    assert "loss" in result.stderr and "accuracy" in result.stderr
    assert_real_picture(tmp_path / folders[0] / "decision_boundary.png")


def test_several_classes_with_softmax_and_adam(tmp_path, capsys):
    status = main(["demo", "--dataset", "spirals", "--classes", "3", "--loss", "softmax", "--optimizer", "adam",
                   "--samples", "30", "--hidden", "6", "--steps", "4", "--out", str(tmp_path), "--no-progress"])
    assert status == 0
    assert sorted(os.listdir(tmp_path)) == sorted(OUTPUTS)
    assert repr(minigrad_nn.load(tmp_path / "model.json")) == "MLP(2, [6, 3], nonlin='relu', out_nonlin=None)"
    assert_real_picture(tmp_path / "decision_boundary.png")
    assert "decision boundary:" in capsys.readouterr().out


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["demo", "--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dataset", "--samples", "--hidden", "--nonlin", "--loss", "--optimizer", "--lr", "--steps",
                   "--seed", "--out", "--engine", "--no-progress"):
        assert option in text
    assert "100% training accuracy" in text and "decision_boundary.png" in text
    assert "{eager,batched,replay}" in text  # the engines to choose from: eager and each registered one


@pytest.mark.parametrize("args, message", [
    (["--dataset", "spirals"], "spirals dataset has 3 classes but the hinge loss separates two; use the softmax"),
    (["--nonlin", "swish"], "unknown op 'swish'; known ops:.*relu"),
    (["--nonlin", "add"], "nonlin 'add': a neuron's nonlinearity must be a one-input op"),
    (["--samples", "1"], "1 sample.* cannot show 2 classes"),
])
def test_settings_that_cannot_work_are_refused_before_training(args, message, tmp_path, capsys):
    assert main(["demo", *args, "--out", str(tmp_path / "out")]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--hidden", "16,x"], "expected layer sizes separated by commas"),
    (["--hidden", "0"], "every layer needs at least 1 neuron"),
    (["--steps", "0"], "expected a whole number >= 1"),
    (["--loss", "cosine"], "invalid choice: 'cosine'"),
    (["--engine", "warp"], "invalid choice: 'warp'"),
])
def test_bad_options_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["demo", *args])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    assert main(["demo", "--out", str(tmp_path / "taken"), "--steps", "1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_diverging_run_says_so_and_writes_nothing(tmp_path, capsys):
    status = main(["demo", "--loss", "mse", "--lr", "100", "--steps", "10", "--samples", "20", "--hidden", "4",
                   "--out", str(tmp_path / "out"), "--no-progress"])
    assert status == 1
    assert "training diverged" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_minigrad_plugins_shows_the_nn_plugin_and_what_it_provides(tmp_path):
    result = run_minigrad("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = {row["name"]: row for row in json.loads(result.stdout)}
    nn = plugins["nn"]
    assert nn["module"] == "minigrad_nn.plugin" and nn["distribution"] == "minigrad-edu"
    assert nn["provides"] == {"ops": ["weighted_sum"], "commands": ["demo"]}
    table = run_minigrad("plugins", cwd=tmp_path).stdout
    assert "nn" in table and "ops: weighted_sum; commands: demo" in table


# -- the training function behind the command -----------------------------------------------

SMALL = dict(samples=24, hidden=(5,), steps=6)


def test_a_seed_repeats_a_whole_run_bit_for_bit():
    first, second = train(DemoConfig(**SMALL, seed=9)), train(DemoConfig(**SMALL, seed=9))
    other = train(DemoConfig(**SMALL, seed=10))
    assert first.losses == second.losses and first.accuracies == second.accuracies
    assert [p.data for p in first.model.parameters()] == [p.data for p in second.model.parameters()]
    assert first.X.tobytes() == second.X.tobytes()
    assert first.losses != other.losses


def test_the_eager_step_computes_the_loss_and_gradients_torch_computes():
    config = DemoConfig(**SMALL, seed=1)
    model = demo.make_model(config)
    X, y = demo.make_data(config)
    engine = demo.EagerEngine(demo.Task(model, X, y, config.loss, config.l2))
    outcome = engine.loss_and_grads()

    module = minigrad_nn.to_torch(model)
    scores = module(torch.tensor(X))[:, 0]
    labels = torch.tensor(2.0 * y - 1.0)
    penalty = sum((p * p).sum() for p in module.parameters())
    expected = torch.clamp(1 - labels * scores, min=0).mean() + config.l2 * penalty
    expected.backward()
    torch_grads = [g for linear in module.linears
                   for row, b in zip(linear.weight.grad.tolist(), linear.bias.grad.tolist()) for g in (*row, b)]
    assert outcome.loss == pytest.approx(expected.item(), rel=1e-12)
    assert [p.grad for p in model.parameters()] == pytest.approx(torch_grads, rel=1e-10, abs=1e-14)
    assert np.allclose(np.array(outcome.outputs)[:, 0], scores.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_another_engine_plugs_in_through_the_engines_hook():
    """What a plugin's engine provides: engine(loss_fn).backward(*args) filling in the gradients."""
    calls = []

    class Recording:
        def __init__(self, loss_fn):
            self.loss_fn, self.recordings = loss_fn, 0

        def backward(self, *args):
            calls.append(1)
            loss, outputs = self.loss_fn(*args)
            loss.backward()
            return loss.data, [[v.data for v in row] for row in outputs]

    class EnginePlugin:
        @hookimpl
        def minigrad_register_engines(self, register):
            register("recording", Recording)

    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, EnginePlugin())):
        assert demo.engines() == ["eager", "recording"]
        other = train(DemoConfig(**SMALL, seed=4, engine="recording"))
        eager = train(DemoConfig(**SMALL, seed=4, engine="eager"))
    assert len(calls) == SMALL["steps"] + 1  # every step, and the final evaluation
    assert other.losses == eager.losses
    assert other.accuracies == eager.accuracies
    assert other.final_accuracy == eager.final_accuracy


@pytest.mark.parametrize("loss, dataset",
                         [("bce", "xor"), ("mse", "moons"), ("softmax", "blobs"), ("hinge", "circles")])
def test_every_loss_trains(loss, dataset):
    result = train(DemoConfig(loss=loss, dataset=dataset, samples=40, hidden=(8,), steps=15, seed=2))
    assert result.losses[-1] < 0.7 * result.losses[0]
    assert result.final_accuracy >= 0.7  # far from chance after only 15 steps
    assert len(result.losses) == len(result.accuracies) == 15


def test_the_learning_rate_follows_micrograds_schedule_by_default():
    config = DemoConfig()
    assert (config.start_lr, config.end_lr, config.steps, config.l2) == (1.0, 0.1, 100, 1e-4)
    assert config.architecture() == "MLP(2, [16, 16, 1])"
    assert DemoConfig(loss="mse").start_lr == 0.1 and DemoConfig(optimizer="adam").start_lr == 0.05


def test_config_errors_name_the_choices():
    with pytest.raises(DemoConfigError, match="unknown dataset 'swirl'; choose one of moons, circles"):
        DemoConfig(dataset="swirl")
    with pytest.raises(DemoConfigError, match="unknown engine 'warp'; choose one of eager, batched, replay"):
        DemoConfig(engine="warp")


def test_the_progress_bar_redraws_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = ProgressBar(stream, width=10)
    for step in range(1, 5):
        bar(step, 4, 1.0 / step, step / 4)
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "step 4/4 [##########] loss 0.2500  accuracy 100.0%" in text
    bar(1, 4, 123.0, 0.5)  # a longer line, then a shorter one: no leftovers from the longer
    bar(2, 4, 1.0, 0.5)
    last, previous = stream.getvalue().split("\r")[-1], stream.getvalue().split("\r")[-2]
    assert len(last) == len(previous) and last.endswith(" ")


def test_the_progress_bar_prints_about_ten_lines_elsewhere():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for step in range(1, 101):
        bar(step, 100, 0.5, 0.5)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[0].startswith("step   1/100") and lines[-1].startswith("step 100/100")


def test_the_default_folder_is_new_and_dated(tmp_path):
    import datetime

    moment = datetime.datetime(2024, 1, 31, 14, 25, 1)
    first = default_folder(moment, str(tmp_path))
    assert first == os.path.join(str(tmp_path), "minigrad-demo-20240131-142501")
    os.makedirs(first)
    assert default_folder(moment, str(tmp_path)) == first + "-2"


@pytest.mark.parametrize("loss", ["hinge", "mse", "softmax", "bce"])
def test_replay_engine_gives_the_eager_numbers_bit_for_bit(loss):
    """The default engine replays the recorded graph; every loss, accuracy and trained weight
    equals the eager engine's exactly, for every loss (bce branches on its logits' signs)."""
    config = dict(samples=30, hidden=(6, 6), steps=8, loss=loss, seed=5)
    replayed = train(DemoConfig(**config, engine="replay"))
    eager = train(DemoConfig(**config, engine="eager"))
    assert DemoConfig().engine == "replay"
    assert replayed.losses == eager.losses and replayed.accuracies == eager.accuracies
    assert replayed.final_loss == eager.final_loss
    assert [p.data for p in replayed.model.parameters()] == [p.data for p in eager.model.parameters()]


def test_momentum_with_an_adaptive_optimizer_is_refused_not_ignored():
    with pytest.raises(DemoConfigError, match="--momentum applies to sgd only"):
        DemoConfig(optimizer="adam", momentum=0.9)
