"""Teaching checks (minigrad_nn.doctor): each fires on a case built to trigger it, names the right
neuron or parameter, and stays silent on the demo's healthy run; off, nothing is hooked in."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import minigrad_nn.plugin
import minigrad_ops
import minigrad_replay.plugin
from minigrad_core import Registry, Value, using
from minigrad_core import value as kernel
from minigrad_nn import MLP, SGD, Module, doctor, nn, optim, seed
from minigrad_nn.demo import DemoConfig, train
from minigrad_nn.doctor import TeachingWarning

XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]
POINTS = np.random.default_rng(0).normal(size=(20, 2)).tolist()


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, minigrad_replay.plugin)) as registry:
        yield registry


@pytest.fixture
def checks():
    """The checks on for one test, warnings recorded (not printed); off again afterwards."""
    with warnings.catch_warnings(record=True) as caught, doctor.teaching_checks() as checkup:
        warnings.simplefilter("always")
        checkup.warnings = caught
        yield checkup
    assert not doctor.enabled()


def only(checkup, check):
    found = [f for f in checkup.findings if f.check == check]
    assert len(found) == 1, [str(f) for f in checkup.findings]
    return found[0]


def seed_loop(model, steps, zero=True, lr=0.05):
    """The walkthrough's training loop, with or without zeroing the gradients."""
    for _ in range(steps):
        loss = sum((model(x) - y) ** 2 for x, y in zip(XS, YS))
        if zero:
            for p in model.parameters():
                p.grad = 0.0
        loss.backward()
        for p in model.parameters():
            p.data += -lr * p.grad


def test_gradients_never_zeroed_are_caught_on_the_second_pass(checks):
    seed(1)
    model = MLP(3, [4, 4, 1])
    seed_loop(model, 1, zero=False)
    assert checks.findings == []  # the first pass starts from zero gradients
    seed_loop(model, 1, zero=False)
    finding = only(checks, "gradients not zeroed")
    assert "41 parameter(s) (L0.N0.b, L0.N0.w0" in finding.message
    assert "p.grad = 0.0" in finding.message and "optimizer.zero_grad()" in finding.message
    # the number it quotes is the gradient L0.N0.b held before the second pass
    assert next(w for w in checks.warnings if issubclass(w.category, TeachingWarning)).filename == __file__


def test_zeroed_gradients_and_accumulating_without_an_update_stay_silent(checks):
    seed(1)
    model = MLP(3, [4, 4, 1])
    seed_loop(model, 4, zero=True)
    model.zero_grad()
    loss = sum((model(x) - y) ** 2 for x, y in zip(XS, YS))
    loss.backward()
    loss.backward()  # accumulating on purpose: nothing moved in between
    assert checks.findings == []


def test_a_neuron_whose_output_is_not_used_gets_no_gradient_and_is_named(checks):
    seed(2)
    model = MLP(2, [3, 2])
    outputs = [model(x) for x in POINTS]
    loss = sum(out[0] for out in outputs)  # the second output neuron is never used
    loss.backward()
    finding = only(checks, "no gradient")
    assert finding.subject == "L1.N1.b, L1.N1.w0, L1.N1.w1, L1.N1.w2"
    assert "4 of the 17 parameters of MLP(2, [3, 2], nonlin='tanh')" in finding.message


def test_a_parameter_the_forward_pass_forgets_is_found_through_the_optimizer(checks):
    class Line(Module):
        def __init__(self):
            self.w, self.b = Value(0.5, label="w"), Value(0.0, label="b")

        def __call__(self, x):
            return self.w * x  # forgot + self.b

        def parameters(self):
            return [self.w, self.b]

    line = Line()
    optimizer = SGD(line.parameters(), lr=0.1)
    loss = sum((line(x) - 1.0) ** 2 for x in [1.0, 2.0])
    loss.backward()
    optimizer.step()
    finding = only(checks, "no gradient")
    assert finding.subject == "b"
    assert "1 of the 2 parameters of the SGD optimizer get no gradient at all" in finding.message


def dead_model(dead=(1, 2), nin=2, hidden=4):
    seed(2)
    model = MLP(nin, [hidden, 1], nonlin="relu", out_nonlin=None)
    for j in dead:
        model.layers[0].neurons[j].b.data = -100.0
    return model


def test_a_layer_with_dead_relus_is_named_neuron_by_neuron(checks):
    model = dead_model()
    sum(model(x) for x in POINTS).backward()
    finding = only(checks, "dead relu")
    assert finding.subject == "layer 0"
    assert finding.message.startswith(
        "layer 0: 2 of its 4 relu neurons output 0 on all 20 examples of the batch (layer 0 neuron 1, layer 0 neuron 2)"
    )
    assert "leaky_relu" in finding.message


def test_one_relu_dead_from_the_start_is_named_even_among_many(checks):
    model = dead_model(dead=(3,), hidden=16)
    sum(model(x) for x in POINTS).backward()
    finding = only(checks, "dead relu")
    assert finding.subject == "layer 0 neuron 3"
    assert "1 of its 16 relu neurons output 0 on all 20 examples" in finding.message


def test_one_relu_that_dies_while_training_among_many_and_a_small_batch_stay_silent(checks):
    model = dead_model(dead=(), hidden=16)
    sum(model(x) for x in POINTS).backward()  # every neuron alive: the checks have seen them all
    model.layers[0].neurons[3].b.data = -100.0  # then one dies, as one of each demo layer does
    model.zero_grad()
    sum(model(x) for x in POINTS).backward()
    small = dead_model()
    sum(small(x) for x in POINTS[:4]).backward()  # 4 examples say too little
    assert checks.findings == []


def test_a_saturated_tanh_neuron_is_named_with_how_often(checks):
    seed(3)
    model = MLP(2, [3, 1], nonlin="tanh", out_nonlin=None)
    for w in model.layers[0].neurons[1].w:
        w.data *= 50
    sum(model(x) for x in POINTS).backward()
    finding = only(checks, "saturated")
    assert finding.subject == "layer 0 neuron 1"
    assert finding.message.startswith("layer 0 neuron 1 (tanh) is saturated on 18 of 20 examples (90%)")


def test_a_saturated_sigmoid_neuron_in_a_lecture_style_network_is_found_by_its_labels(checks):
    """A neuron written the lecture's way, from * and +, with labelled parameters."""
    w = [Value(40.0, label="N0.w0"), Value(-40.0, label="N0.w1")]
    b = Value(0.0, label="N0.b")
    outputs = [sum((wi * xi for wi, xi in zip(w, x)), b).sigmoid() for x in POINTS]
    sum(outputs).backward()
    assert only(checks, "saturated").subject == "neuron 0"


def test_a_rising_loss_says_the_learning_rate(checks):
    x = Value(1.0, label="x")
    optimizer = SGD([x], lr=1.5)  # each step x <- x - 1.5 * 2x = -2x: the loss x² grows 4x
    for _ in range(8):
        optimizer.zero_grad()
        (x * x).backward()
        optimizer.step()
    finding = only(checks, "loss rising")
    assert finding.message.startswith(
        "the loss rose 5 steps in a row, from 1 to 1024 (+102300%) with the learning rate at 1.5"
    )


def test_a_noisy_loss_that_rises_a_little_stays_silent(checks):
    doctor.check_losses([1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06, 0.5])  # 6 rises, but only 6% in all
    doctor.check_losses([3.0, 2.0, 2.5, 1.0, 1.2, 0.5])
    assert checks.findings == []
    doctor.check_losses([0.5, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.3], lr=2.0)
    assert "(+125%, steps 2 to 7) with the learning rate at 2" in only(checks, "loss rising").message


def test_examine_judges_a_model_on_arrays_as_backward_judges_its_graph(checks):
    doctor.examine(dead_model(), np.array(POINTS))
    assert only(checks, "dead relu").message.startswith(
        "layer 0: 2 of its 4 relu neurons output 0 on all 20 examples of the batch (layer 0 neuron 1, layer 0 neuron 2)"
    )


def test_each_problem_is_reported_once_while_the_checks_stay_on(checks):
    model = dead_model()
    for _ in range(3):
        for p in model.parameters():
            p.grad = 0.0
        sum(model(x) for x in POINTS).backward()
    assert len(checks.findings) == 1
    assert len([w for w in checks.warnings if issubclass(w.category, TeachingWarning)]) == 1


def test_the_demos_healthy_run_is_silent_with_every_check_watching_each_step():
    """The eager engine calls backward() every step, so every graph check sees every step."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", TeachingWarning)
        result = train(DemoConfig(engine="eager"), checks=True)
    assert result.final_accuracy == 1.0
    assert result.findings == []


@pytest.mark.parametrize("engine", ["lifted", "replay"])
def test_the_demos_healthy_run_is_silent_on_the_engines_that_examine_the_model_on_arrays(engine):
    """Engines that never call backward() on Values are checked by examining the model before
    and after training: a neuron that died while training is no finding on its own."""
    result = train(DemoConfig(engine=engine), checks=True)
    assert result.engine == engine and result.final_accuracy == 1.0
    assert result.findings == []


def test_the_demo_reports_what_the_checks_found():
    result = train(DemoConfig(loss="mse", engine="replay"), checks=True)  # a run with dead relu layers
    assert {f.check for f in result.findings} == {"dead relu"}
    assert [f.subject for f in result.findings] == ["layer 0", "layer 1"]


def test_off_by_default_and_nothing_stays_hooked_in():
    assert not doctor.enabled()
    hooks = (kernel.backward_observers, nn.module_observers, optim.optimizer_observers)
    assert all(
        doctor._observe_backward not in hook and doctor.watch not in hook and doctor._watch_optimizer not in hook
        for hook in hooks
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", TeachingWarning)
        seed(1)
        seed_loop(MLP(3, [4, 4, 1]), 3, zero=False)  # the mistake, unchecked
    doctor.enable()
    assert doctor._observe_backward in kernel.backward_observers
    doctor.disable()
    assert [len(hook) for hook in hooks] == [0, 0, 0]


def test_the_environment_variable_switches_them_on(tmp_path):
    script = (
        "import warnings, minigrad_nn\n"
        "from minigrad_nn import MLP, doctor\n"
        "print(doctor.enabled())\n"
        "m = MLP(2, [3, 2])\n"
        "sum(m(x)[0] for x in [[1.0, 2.0]] * 3).backward()\n"
        "print(doctor.findings()[0].check)\n"
    )
    env = dict(os.environ, MINIGRAD_TEACHING_CHECKS="1", MINIGRAD_PLUGINS="ops,nn")
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["True", "no gradient"]
