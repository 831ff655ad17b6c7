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
from minigrad_core import Registry, hookimpl, using
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
    return subprocess.run(
        [sys.executable, "-m", "minigrad_core", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


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
    # what was used, not what was left to a default: two classes, the learning rates, the noise
    assert metadata["config"]["classes"] == 2
    assert (metadata["config"]["lr"], metadata["config"]["lr_end"], metadata["config"]["noise"]) == (1.0, 0.1, 0.1)
    assert metadata["engine"] == "eager"  # MINIGRAD_PLUGINS=ops,nn: no replay plugin, and the summary says so
    assert "eager engine: 100 steps" in result.stdout


def test_one_final_loss_everywhere(tmp_path):
    """The progress bar's last numbers, the curves' "final" and the summary are the same loss:
    the loss of the trained parameters, after the last update."""
    out = tmp_path / "run"
    result = run_minigrad("demo", "--out", str(out), "--steps", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    final, accuracy = re.search(r"final loss (\d\.\d{4}), training accuracy (\d+\.\d)%", result.stdout).groups()
    bar = result.stderr.rstrip().split("\r")[-1]
    assert "20/20" in bar and bar.endswith(f"loss {final}, accuracy {accuracy}%]")  # the bar ends on it
    metadata = json.loads((out / "model.json").read_text())["metadata"]
    assert f"{metadata['final_loss']:.4f}" == final
    assert result.stdout.count("final loss") == 1


def test_the_curves_end_on_the_final_loss(tmp_path):
    from minigrad_nn import plots

    result = train(DemoConfig(**SMALL, seed=9))
    losses, accuracies = result.history()
    assert losses == [*result.losses, result.final_loss] and len(accuracies) == SMALL["steps"] + 1
    path = plots.curves(losses, accuracies, tmp_path / "curves.png", "small")
    assert_real_picture(path, ink=0.01)


def test_a_small_run_with_a_progress_bar_and_the_default_folder(tmp_path):
    result = run_minigrad(
        "demo",
        "--dataset",
        "circles",
        "--samples",
        "30",
        "--hidden",
        "4",
        "--steps",
        "5",
        "--seed",
        "3",
        "--lr",
        "0.5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    folders = [name for name in os.listdir(tmp_path) if name.startswith("minigrad-demo-")]
    assert len(folders) == 1
    assert sorted(os.listdir(tmp_path / folders[0])) == sorted(OUTPUTS)
    assert os.path.join(".", folders[0], "model.json") in result.stdout
    # tqdm's bar: the steps done out of all, then the loss and accuracy
    assert re.search(r"training: 100%\|.*\| 5/5 .*loss \d\.\d{4}, accuracy \d+\.\d%\]", result.stderr)
    assert_real_picture(tmp_path / folders[0] / "decision_boundary.png")


def test_the_default_folder_is_made_where_the_user_stands(tmp_path):
    """Relative to the working directory, not to the repository or the package."""
    here = tmp_path / "elsewhere"
    here.mkdir()
    result = run_minigrad("demo", "--samples", "20", "--hidden", "3", "--steps", "2", "--no-progress", cwd=here)
    assert result.returncode == 0, result.stderr
    [folder] = [name for name in os.listdir(here) if name.startswith("minigrad-demo-")]
    assert os.path.isfile(here / folder / "model.json")
    assert not [name for name in os.listdir(tmp_path) if name.startswith("minigrad-demo-")]


def test_several_classes_with_softmax_and_adam(tmp_path, capsys):
    status = main(
        [
            "demo",
            "--dataset",
            "spirals",
            "--classes",
            "3",
            "--loss",
            "softmax",
            "--optimizer",
            "adam",
            "--samples",
            "30",
            "--hidden",
            "6",
            "--steps",
            "4",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
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
    for option in (
        "--dataset",
        "--samples",
        "--hidden",
        "--nonlin",
        "--loss",
        "--optimizer",
        "--lr",
        "--steps",
        "--seed",
        "--out",
        "--engine",
        "--no-progress",
    ):
        assert option in text
    assert "100% training accuracy" in text and "decision_boundary.png" in text
    assert "{eager,batched,lifted,replay}" in text  # the engines to choose from: eager and each registered one
    assert "{moons,circles,xor,spirals,blobs,digits}" in text and "confusion_matrix.png" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "spirals"], "spirals dataset has 3 classes but the hinge loss separates two; use the softmax"),
        (["--nonlin", "swish"], "unknown op 'swish'; known ops:.*relu"),
        (["--nonlin", "add"], "nonlin 'add': a neuron's nonlinearity must be a one-input op"),
        (["--samples", "1"], "1 sample.* cannot show 2 classes"),
    ],
)
def test_settings_that_cannot_work_are_refused_before_training(args, message, tmp_path, capsys):
    assert main(["demo", *args, "--out", str(tmp_path / "out")]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hidden", "16,x"], "expected layer sizes separated by commas"),
        (["--hidden", "0"], "every layer needs at least 1 neuron"),
        (["--steps", "0"], "expected a whole number >= 1"),
        (["--loss", "cosine"], "invalid choice: 'cosine'"),
        (["--engine", "warp"], "invalid choice: 'warp'"),
    ],
)
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
    status = main(
        [
            "demo",
            "--loss",
            "mse",
            "--lr",
            "100",
            "--steps",
            "10",
            "--samples",
            "20",
            "--hidden",
            "4",
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
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
    torch_grads = [
        g
        for linear in module.linears
        for row, b in zip(linear.weight.grad.tolist(), linear.bias.grad.tolist())
        for g in (*row, b)
    ]
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


@pytest.mark.parametrize(
    "loss, dataset", [("bce", "xor"), ("mse", "moons"), ("softmax", "blobs"), ("hinge", "circles")]
)
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
    with pytest.raises(DemoConfigError, match="unknown engine 'warp'; choose one of eager, batched, lifted, replay"):
        DemoConfig(engine="warp")


def test_the_progress_bar_is_tqdms_and_ends_on_the_final_numbers():
    """tqdm.auto's bar (a widget in a notebook); train() gives it the final loss after the last step."""
    import tqdm

    stream = io.StringIO()
    bar = ProgressBar(stream)
    for step in range(1, 5):
        bar(step, 4, 1.0 / step, step / 4)
    assert isinstance(bar.bar, tqdm.tqdm) and bar.bar.n == 4
    bar(4, 4, 0.1234, 1.0)  # the final numbers: the bar stays at 4/4
    bar.close()
    last = stream.getvalue().split("\r")[-1]
    assert bar.bar.n == 4 and "4/4" in last and "loss 0.1234, accuracy 100.0%" in last


def test_train_tells_the_progress_bar_each_step_and_then_the_final_numbers():
    calls = []
    result = train(DemoConfig(**SMALL, seed=3), progress=lambda *args: calls.append(args))
    assert [call[0] for call in calls] == [1, 2, 3, 4, 5, 6, 6]
    assert [call[2] for call in calls] == [*result.losses, result.final_loss]


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
    assert replayed.engine == "replay"
    assert replayed.losses == eager.losses and replayed.accuracies == eager.accuracies
    assert replayed.final_loss == eager.final_loss
    assert [p.data for p in replayed.model.parameters()] == [p.data for p in eager.model.parameters()]


def test_the_default_engine_is_the_first_preferred_one_installed():
    assert demo.PREFERRED_ENGINES == ("lifted", "replay")
    assert DemoConfig().engine == "lifted"  # the replay plugin registers lifted
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin)):
        assert DemoConfig().engine == "eager"


def test_model_json_records_the_real_class_count_and_learning_rate():
    summary = train(DemoConfig(**SMALL, optimizer="adam", seed=2)).summary()
    assert summary["config"]["classes"] == 2 and summary["config"]["lr"] == 0.05
    assert summary["config"]["lr_end"] == pytest.approx(0.005)
    blobs = train(DemoConfig(dataset="blobs", classes=4, loss="softmax", samples=24, hidden=(3,), steps=2)).summary()
    assert blobs["config"]["classes"] == 4 and blobs["config"]["noise"] == 0.3  # blobs' std


def test_the_legend_sits_below_the_data_and_the_subtitle_fits(tmp_path):
    """Spirals: the legend once covered points in a corner; a long subtitle ran off the image."""
    from minigrad_nn import plots

    result = train(DemoConfig(dataset="spirals", loss="softmax", samples=60, hidden=(8,), steps=3))
    subtitle = "relu hidden layers, softmax loss + 0.0001·Σp², adam lr 0.05→0.005, 200 steps, seed 1337, " * 2
    figure_text = {}

    def keep(figure):
        figure_text["axes"] = figure.axes[0]
        figure_text["renderer"] = figure.canvas.get_renderer()

    import matplotlib.figure

    original = matplotlib.figure.Figure.savefig

    def savefig(figure, *args, **kwargs):
        original(figure, *args, **kwargs)
        keep(figure)

    matplotlib.figure.Figure.savefig = savefig
    try:
        plots.decision_boundary(result.model, result.X, result.y, tmp_path / "b.png", "title", subtitle)
    finally:
        matplotlib.figure.Figure.savefig = original
    axes, renderer = figure_text["axes"], figure_text["renderer"]
    legend = axes.get_legend().get_window_extent(renderer)
    plot_area = axes.get_window_extent(renderer)
    assert legend.y1 <= plot_area.y0  # entirely below the plotting area
    title = axes.title.get_window_extent(renderer)
    width = axes.figure.bbox.width
    assert 0 <= title.x0 and title.x1 <= width and legend.x0 >= 0 and legend.x1 <= width
    assert axes.title.get_text().count("\n") >= 1  # wrapped


def test_the_log_axis_labels_few_ticks(tmp_path):
    from minigrad_nn import plots

    for losses in (np.geomspace(1.07, 0.012, 101), np.geomspace(3.0, 0.12, 101), np.geomspace(10, 1e-4, 101)):
        path = plots.curves(losses, np.linspace(0.5, 1, 101), tmp_path / "c.png", "t")
        import matplotlib.image

        assert matplotlib.image.imread(path).shape[0] > 300
    import matplotlib.figure

    captured = []
    original = matplotlib.figure.Figure.savefig

    def savefig(figure, *args, **kwargs):
        original(figure, *args, **kwargs)
        captured.append(figure)

    matplotlib.figure.Figure.savefig = savefig
    try:
        plots.curves(np.geomspace(3.0, 0.12, 101), np.linspace(0.5, 1, 101), tmp_path / "c.png")
        plots.curves(np.geomspace(10, 1e-4, 101), np.linspace(0.5, 1, 101), tmp_path / "c.png")
    finally:
        matplotlib.figure.Figure.savefig = original
    for figure in captured:
        axis = figure.axes[0].yaxis
        low, high = figure.axes[0].get_ylim()
        labels = [
            tick.label1.get_text()
            for tick in axis.get_major_ticks()
            if low <= tick.get_loc() <= high and tick.label1.get_text()
        ]
        assert 2 <= len(labels) <= 7, labels
        assert not [t for t in axis.get_minor_ticks() if t.label1.get_text()]  # minor ticks unlabelled


def test_momentum_with_an_adaptive_optimizer_is_refused_not_ignored():
    with pytest.raises(DemoConfigError, match="--momentum applies to sgd only"):
        DemoConfig(optimizer="adam", momentum=0.9)
