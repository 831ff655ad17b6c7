"""Optimizers and the learning-rate schedule, step by step against torch.optim."""

import math

import pytest
import torch

import minigrad_nn.plugin
import minigrad_ops
from minigrad_core import Registry, Value, using
from minigrad_nn import optim

START = [0.5, -1.5, 2.0, 0.1, -0.3]
TARGETS = [0.2, 0.4, -0.6, 0.8, 0.0]


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin)) as registry:
        yield registry


def objective(ps, tanh):
    """A small non-quadratic loss, so gradients change in direction and size from step to step."""
    loss = ps[0] * ps[1]
    for p, target, scale in zip(ps, TARGETS, (1.0, 2.0, 0.5, 3.0, 1.5)):
        loss = loss + (tanh(p * scale) - target) ** 2
    return loss


def run_both(make_ours, make_torch, steps=8, schedules=None):
    """Take ``steps`` steps with each optimizer from the same start; compare after every one.

    ``schedules``: a pair of functions that wrap each optimizer in a learning-rate schedule.
    """
    ours = [Value(x) for x in START]
    theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in START]
    optimizer, reference = make_ours(ours), make_torch(theirs)
    if schedules:
        schedule, reference_schedule = schedules[0](optimizer), schedules[1](reference)
    for step in range(steps):
        optimizer.zero_grad()
        objective(ours, lambda v: v.tanh()).backward()
        reference.zero_grad()
        objective(theirs, torch.tanh).backward()
        assert [p.grad for p in ours] == pytest.approx([t.grad.item() for t in theirs], rel=1e-13, abs=1e-15)
        optimizer.step()
        reference.step()
        if schedules:
            schedule.step()
            reference_schedule.step()
            assert optimizer.lr == pytest.approx(reference.param_groups[0]["lr"], rel=1e-13)
        got, expected = [p.data for p in ours], [t.item() for t in theirs]
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-14), f"after step {step + 1}"
    assert [p.data for p in ours] != START  # the parameters did move
    return ours


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"momentum": 0.9},
        {"momentum": 0.5, "weight_decay": 0.1},
        {"weight_decay": 0.01},
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
    ],
)
def test_sgd_matches_torch(options):
    run_both(lambda ps: optim.SGD(ps, lr=0.1, **options), lambda ts: torch.optim.SGD(ts, lr=0.1, **options))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"betas": (0.8, 0.99), "eps": 1e-6},
        {"weight_decay": 0.05},
        {"betas": (0.0, 0.5), "weight_decay": 0.05},  # beta1 = 0: no running average of the gradient
    ],
)
def test_adam_matches_torch(options):
    run_both(lambda ps: optim.Adam(ps, lr=0.05, **options), lambda ts: torch.optim.Adam(ts, lr=0.05, **options))


@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.2}])
def test_adamw_matches_torch(options):
    run_both(lambda ps: optim.AdamW(ps, lr=0.05, **options), lambda ts: torch.optim.AdamW(ts, lr=0.05, **options))


def test_adamw_decays_differently_from_adam_with_weight_decay():
    adam = run_both(
        lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.2), lambda ts: torch.optim.Adam(ts, lr=0.05, weight_decay=0.2)
    )
    adamw = run_both(
        lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.2),
        lambda ts: torch.optim.AdamW(ts, lr=0.05, weight_decay=0.2),
    )
    assert [p.data for p in adam] != [p.data for p in adamw]


def test_linear_schedule_matches_torch_linear_lr_and_micrograds_formula():
    ours = optim.SGD([Value(1.0)], lr=123.0)
    schedule = optim.LinearSchedule(ours, start=1.0, end=0.1, steps=100)
    tensor = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.SGD([tensor], lr=1.0)
    reference = torch.optim.lr_scheduler.LinearLR(theirs, start_factor=1.0, end_factor=0.1, total_iters=100)
    for k in range(110):
        assert ours.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12)
        if k < 100:
            assert ours.lr == pytest.approx(1.0 - 0.9 * k / 100, rel=1e-15)  # micrograd's demo
        theirs.step()
        reference.step()
        schedule.step()
    assert ours.lr == 0.1  # and it stays at the end


def test_a_schedule_ends_exactly_at_its_end_after_its_steps():
    """After ``steps`` steps the rate is ``end`` itself, not start + (end - start) rounded
    (1.0 + (0.1 - 1.0) is 0.09999999999999998); a schedule of one step goes there at once."""
    for steps in (1, 5):
        sgd = optim.SGD([Value(1.0)], lr=123.0)
        schedule = optim.LinearSchedule(sgd, start=1.0, end=0.1, steps=steps)
        assert sgd.lr == 1.0
        for _ in range(steps):
            schedule.step()
        assert sgd.lr == 0.1


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, "5"])
def test_a_schedule_needs_a_whole_number_of_steps(steps):
    with pytest.raises(ValueError) as error:
        optim.LinearSchedule(optim.SGD([Value(1.0)], lr=0.1), 1.0, 0.1, steps)
    assert str(error.value) == f"LinearSchedule: steps must be a whole number >= 1, got {steps!r}"


@pytest.mark.parametrize("name", ["start", "end"])
def test_a_schedule_refuses_a_negative_rate_naming_it(name):
    rates = {"start": 1.0, "end": 0.1, name: -0.5}
    with pytest.raises(ValueError) as error:
        optim.LinearSchedule(optim.SGD([Value(1.0)], lr=0.1), steps=5, **rates)
    assert str(error.value) == f"LinearSchedule: {name} must be a finite number >= 0, got -0.5"


def test_a_scheduled_optimizer_matches_torch_step_by_step():
    run_both(
        lambda ps: optim.SGD(ps, lr=0.2, momentum=0.5),
        lambda ts: torch.optim.SGD(ts, lr=0.2, momentum=0.5),
        steps=7,
        schedules=(
            lambda sgd: optim.LinearSchedule(sgd, 0.2, 0.02, 5),
            lambda sgd: torch.optim.lr_scheduler.LinearLR(sgd, 1.0, 0.1, 5),
        ),
    )


def test_zero_grad_and_gradients_that_are_values():
    p = Value(2.0)
    sgd = optim.SGD([p], lr=0.5)
    (p * p * p).backward(create_graph=True)  # p.grad is a Value: 3 p² = 12
    assert isinstance(p.grad, Value)
    sgd.step()
    assert p.data == 2.0 - 0.5 * 12.0
    sgd.zero_grad()
    assert p.grad == 0.0


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: optim.SGD([], lr=0.1), ValueError, "SGD: no parameters"),
        (lambda: optim.SGD([1.0], lr=0.1), TypeError, "SGD: parameter 0 is 1.0, not a Value"),
        (lambda: optim.SGD([Value(1.0)], lr=-1), ValueError, "SGD: lr must be a finite number >= 0, got -1"),
        (lambda: optim.SGD([Value(1.0)], lr=0.1, nesterov=True), ValueError, "nesterov=True needs a momentum"),
        (lambda: optim.Adam([Value(1.0)], betas=(1.0, 0.9)), ValueError, r"Adam: betas\[0\] must be in \[0, 1\)"),
        (
            lambda: optim.LinearSchedule(optim.SGD([Value(1.0)], lr=0.1), 1.0, 0.1, 0),
            ValueError,
            "LinearSchedule: steps must be a whole number",
        ),
    ],
)
def test_bad_settings_are_refused_with_what_was_expected(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_an_optimizer_trains_a_model():
    minigrad_nn.seed(0)
    model = minigrad_nn.MLP(1, [8, 1], nonlin="tanh", out_nonlin=None)
    xs, ys = [[-1.0], [-0.5], [0.0], [0.5], [1.0]], [1.0, 0.25, 0.0, 0.25, 1.0]
    adam = optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(100):
        adam.zero_grad()
        loss = minigrad_nn.losses.mse([model(x) for x in xs], ys)
        loss.backward()
        adam.step()
        first = loss.data if first is None else first
    assert loss.data < 0.05 * first


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_and_adamw_defaults_match_torch(name):
    """Made with nothing but the parameters, they take torch.optim's default steps."""
    run_both(lambda ps: getattr(optim, name)(ps), lambda ts: getattr(torch.optim, name)(ts))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: optim.SGD(p, lr=True), "SGD: lr must be a finite number >= 0, got True"),
        (lambda p: optim.SGD(p, lr="0.1"), "SGD: lr must be a finite number >= 0, got '0.1'"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "SGD: momentum must be a finite number >= 0, got -0.5"),
        (
            lambda p: optim.SGD(p, lr=0.1, weight_decay=math.nan),
            "SGD: weight_decay must be a finite number >= 0, got nan",
        ),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "SGD: nesterov=True needs a momentum > 0"),
        (lambda p: optim.Adam(p, betas=(0.9, 1.0)), "Adam: betas[1] must be in [0, 1), got 1.0"),
        (lambda p: optim.Adam(p, eps=math.inf), "Adam: eps must be a finite number >= 0, got inf"),
        (lambda p: optim.Adam(p, weight_decay=-1), "Adam: weight_decay must be a finite number >= 0, got -1"),
        (lambda p: optim.AdamW(p, weight_decay=-1), "AdamW: weight_decay must be a finite number >= 0, got -1"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_optimizer_the_setting_and_the_value(make, message):
    with pytest.raises(ValueError) as error:
        make([Value(1.0)])
    assert str(error.value) == message


def test_an_optimizer_observer_is_shown_each_new_optimizer():
    """The teaching checks learn which parameters are trained together from the optimizer itself."""
    seen = []
    optim.optimizer_observers.append(seen.append)
    try:
        sgd = optim.SGD([Value(1.0)], lr=0.1)
        adam = optim.Adam([Value(2.0)])
    finally:
        optim.optimizer_observers.remove(seen.append)
    assert seen == [sgd, adam]
