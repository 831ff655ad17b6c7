"""Replay hardened (issue #13), replay on the kernel's public API, and the two engines.

- nothing a user names (a function's ``__name__``) is pasted into generated source;
- an op without inputs replays;
- a recording sees only the comparisons made in its own thread;
- error messages quote values with ``minigrad_core.shorten``;
- the ``replay`` and ``batched`` engines keep the hook's contract.
"""

from __future__ import annotations

import builtins
import importlib.metadata
import math
import sys
import threading
import warnings

import numpy as np
import pytest

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
import minigrad_replay
import minigrad_replay.plugin
from minigrad_core import (
    MissingRuleError,
    OpDomainError,
    OpSpec,
    OpSpecError,
    Registry,
    Value,
    apply,
    register_op,
    using,
)
from minigrad_nn import losses
from minigrad_replay import (
    BatchedRecorder,
    GraphChangedError,
    Recorder,
    ReplayArgumentError,
    ReplayFallbackWarning,
    record,
    record_batch,
)


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, minigrad_replay.plugin)) as active:
        yield active


# -- (a) a function's name is not code --------------------------------------------------------

INJECTED = "f\nimport builtins; builtins.MINIGRAD_PWNED = True; import os; os.system('touch pwned')\n#"


def guarded(x):
    y = (x * 2.0).tanh()
    if y > 0:  # a guard, whose line carries a comment in the generated source
        return y + x
    return y - x


def test_a_function_name_with_a_newline_and_code_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def f(x):
        return guarded(x)

    f.__name__ = INJECTED
    f.__qualname__ = INJECTED

    class Callable:
        def __call__(self, x):
            return guarded(x)

    obj = Callable()
    obj.__name__ = INJECTED
    NamedClass = type(
        "C\nimport builtins; builtins.MINIGRAD_PWNED = True\n#", (), {"__call__": lambda self, x: guarded(x)}
    )

    for function in (f, obj, NamedClass()):
        tape = record(function, 1.0)
        assert tape.backward(0.5) == guarded(Value(0.5)).data
        tape.forward(0.25)
        batched = tape.batched()
        batched.backward(np.array([0.5, 1.5]))
        assert Recorder(function).backward(0.5) == tape.forward(0.5)
        assert BatchedRecorder(function).backward(0.5) == pytest.approx(tape.forward(0.5), abs=1e-15)
        assert "\n" not in tape.name and "'" not in tape.name and ";" not in tape.name
        for source in (tape.source, batched.source):
            lines = source.splitlines()
            assert lines[0].startswith("# ") and lines[1].startswith("def ")  # the name is in the comment only
            assert all(line.startswith("    ") for line in lines[2:])
            assert not any(line.strip().startswith("import") for line in lines)
        with pytest.raises(GraphChangedError) as caught:
            tape(-1.0)
        assert "\n" not in str(caught.value)
    assert not hasattr(builtins, "MINIGRAD_PWNED")
    assert not (tmp_path / "pwned").exists()


def test_names_shown_in_source_and_messages_are_cleaned():
    def f(x):
        return x * 3

    f.__name__ = "loss fn\r\n\x00é"
    tape = record(f, 1.0)
    assert tape.name == "loss_fn____"
    assert "# Replay of loss_fn____:" in tape.source


# -- (b) ops without inputs ----------------------------------------------------------------------


def test_an_op_without_inputs_replays():
    one = register_op(OpSpec(name="one", arity=0, forward=lambda: 1.0, derivative=lambda out: ()))
    seven = register_op(OpSpec(name="seven", arity=0, forward=lambda: 7, derivative=lambda out: ()))  # an int

    def f(x):
        return x * apply(one, ()) + apply(seven, ()) * x * x

    tape = record(f, 2.0)
    assert " = forward_one()\n" in tape.source  # and no line for its (empty) partials
    assert "evaluate(spec_seven, (), None)" in tape.source  # an int result goes through the kernel
    out, (grad,) = tape.value_and_grad(3.0)
    x = Value(3.0)
    eager = f(x)
    eager.backward()
    assert (out, grad) == (eager.data, x.grad) == (66.0, 43.0)
    assert type(out) is float
    loss, (grads,) = record_batch(f, 2.0).value_and_grad(np.array([3.0, 1.0]), reduce="sum")
    assert loss == 66.0 + 8.0 and grads.tolist() == [43.0, 15.0]
    assert BatchedRecorder(f).backward(3.0) == 66.0
    assert record(lambda: apply(one, ()) * 2).forward() == 2.0  # no arguments, no inputs at all


def test_a_node_made_by_hand_replays_only_if_an_op_gives_its_rules():
    def constant(x):
        return x * Value(3.0, (), "const")  # no inputs, no rule: its number is read like a leaf's

    assert record(constant, 2.0).value_and_grad(5.0) == (15.0, (3.0,))

    def bound(x):
        return Value(x.data * 2, (x, x), "add")  # named after a registered op: replay uses its rules

    assert record(bound, 2.0).value_and_grad(5.0) == (10.0, (2.0,))

    def closure(x):
        out = Value(x.data * 3, (x,), "triple")

        def _backward():
            x.grad += 3 * out.grad

        out._backward = _backward
        return out

    with pytest.raises(MissingRuleError, match="_backward closure"):
        record(closure, 2.0)
    with pytest.raises(MissingRuleError, match="no registered op of that name"):
        record(lambda x: Value(1.0, (x,), "mystery"), 2.0)


# -- (c) comparisons in other threads ---------------------------------------------------------------


def test_a_recording_sees_only_its_own_thread_s_comparisons():
    stop = threading.Event()
    errors: list = []

    def compare_forever():
        a, b = Value(1.0), Value(2.0)
        try:
            while not stop.is_set():
                _ = a < b, a >= 0.5, bool(b)
                c = a * b  # a node no recording knows
                _ = c > a
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    def f(x):
        y = x * 2.0
        if y > 1.0:
            return y.tanh()
        return y

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    threads = [threading.Thread(target=compare_forever) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(50):
            x = 1.0 + i / 50
            tape = record(f, x)
            assert len(tape.guards) == 1 and len(tape.params) == 1  # the constant 2.0
            assert tape.forward(x) == math.tanh(2 * x)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
    assert not errors


def test_recordings_in_several_threads_at_once_each_keep_their_own_guards():
    results: dict = {}
    failures: list = []

    def work(name: str, comparisons: int):
        def f(x):
            for _ in range(comparisons):
                if x < 10.0:
                    x = x + 1.0
            return x

        try:
            results[name] = [len(record(f, 0.5).guards) for _ in range(50)]
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=work, args=(f"t{n}", n)) for n in range(1, 5)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures
    assert results == {f"t{n}": [n] * 50 for n in range(1, 5)}


# -- (d) error messages stay short ---------------------------------------------------------------------


def test_error_messages_quote_values_shortly():
    huge_text = "x" * 100_000
    with pytest.raises(ReplayArgumentError) as caught:
        record(lambda s: s, huge_text)
    assert len(str(caught.value)) < 600 and "more characters" in str(caught.value)
    tape = record(lambda rows, t: rows[0][0] * t, [[1.0, 2.0]], 1.0)
    for bad_args in (([[1.0, 2.0]], huge_text), (list(range(100_000)), 1.0), ([[1.0, object()]], 1.0)):
        with pytest.raises(ReplayArgumentError) as caught:
            tape(*bad_args)
        assert len(str(caught.value)) < 600
    with pytest.raises(TypeError) as caught:
        record(lambda x: {"loss": [x] * 100_000}, 1.0)
    assert len(str(caught.value)) < 600
    with pytest.raises(TypeError) as caught:
        record(huge_text)
    assert len(str(caught.value)) < 600


# -- the kernel's rules, as backward() runs them ----------------------------------------------------


def test_a_node_whose_gradient_is_zero_passes_nothing_on_as_in_backward():
    def f(x):
        return x.sqrt() * 0.0 + x  # sqrt's slope is inf at 0, but its gradient is 0: skipped

    _, (grad,) = record(f, 1.0).value_and_grad(0.0)
    x = Value(0.0)
    f(x).backward()
    assert grad == x.grad == 1.0


def test_a_derivative_returning_a_non_number_gives_eager_s_error():
    bad = register_op(OpSpec(name="bad", arity=1, forward=lambda x: 2 * x, derivative=lambda x, out: (None,)))
    tape = record(lambda x: apply(bad, (x,)) + x, 1.0)
    assert tape.forward(2.0) == 6.0
    with pytest.raises(OpSpecError, match="each partial must be a number"):
        tape.backward(2.0)
    with pytest.raises(OpSpecError, match="each partial must be a number"):
        apply(bad, (Value(2.0),)).backward()


def test_batched_numbers_where_numpy_would_warn_are_the_rules_own():
    batched = record_batch(lambda x: x.sqrt() + x.exp(), 1.0)
    xs = np.array([0.0, 4.0, 800.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from numpy, no fallback warning
        loss, (grads,) = batched.value_and_grad(xs, reduce="sum")
    eager = []
    for x in xs.tolist():
        v = Value(x)
        (v.sqrt() + v.exp()).backward()
        eager.append(v.grad)
    assert grads.tolist() == eager  # inf at 0 (sqrt's slope), inf where exp overflows
    assert loss == math.inf
    assert batched.fallback_ops == []


def test_batched_replay_refuses_what_eager_refuses_naming_the_example():
    batched = record_batch(lambda x: x.log() * x, 2.0)
    with pytest.raises(OpDomainError, match=r"log\(-1.0\)"):
        batched.forward(np.array([1.0, -1.0, 3.0]))
    assert batched.fallback_ops == []  # the op runs on arrays; that batch was outside its domain


# -- the engines ------------------------------------------------------------------------------------------


def test_the_plugin_registers_both_engines_by_its_entry_point(registry):
    assert registry.engines["replay"] is Recorder
    assert isinstance(registry.engines["batched"](lambda x: x), BatchedRecorder)
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="minigrad")}
    assert points.get("replay") == "minigrad_replay.plugin"


def demo_task(samples=16, seed=3):
    X, labels = minigrad_nn.datasets.make_moons(samples, noise=0.1, seed=seed)
    return X.tolist(), (2.0 * labels - 1.0).tolist()


def new_model(seed=11, nonlin="relu"):
    minigrad_nn.seed(seed)
    return minigrad_nn.MLP(2, [6, 6, 1], nonlin=nonlin, out_nonlin=None)


@pytest.mark.parametrize("name", ["replay", "batched"])
def test_an_engine_trains_like_eager(registry, name):
    rows, labels = demo_task()
    models = {"eager": new_model(), "engine": new_model()}

    def loss_graph(model):
        def loss_fn(inputs):  # as the demo: (loss, each example's outputs)
            outputs = [model(x) for x in inputs]
            total = losses.hinge(outputs, labels) + losses.l2(model.parameters(), 1e-3)
            return total, [[out] for out in outputs]

        return loss_fn

    engine = registry.engines[name](loss_graph(models["engine"]))
    for _ in range(8):
        for model in models.values():
            model.zero_grad()
        eager_loss, eager_outputs = loss_graph(models["eager"])([[Value(v) for v in row] for row in rows])
        eager_loss.backward()
        loss, outputs = engine.backward(rows)
        assert type(loss) is float and len(outputs) == len(rows)
        eager_grads = [p.grad for p in models["eager"].parameters()]
        grads = [p.grad for p in models["engine"].parameters()]
        if name == "replay":  # bit for bit
            assert loss == eager_loss.data and grads == eager_grads
            assert outputs == [[out.data] for [out] in eager_outputs]
        else:  # up to rounding: gradient sums are added in another order
            assert loss == pytest.approx(eager_loss.data, abs=1e-12)
            assert grads == pytest.approx(eager_grads, abs=1e-12)
            assert [out for [out] in outputs] == pytest.approx([out.data for [out] in eager_outputs], abs=1e-12)
        for model in models.values():
            for p in model.parameters():
                p.data -= 0.3 * p.grad
    assert engine.recordings == 1


@pytest.mark.parametrize("engine_type", [Recorder, BatchedRecorder])
def test_an_engine_records_again_when_a_branch_turns_out_otherwise(engine_type):
    w = Value(0.5)

    def f(x):
        return x * w if x > w else x + w

    engine = engine_type(f)
    outputs = [engine.backward(x) for x in (2.0, 3.0, 0.25, 0.1, 4.0)]
    assert outputs == [1.0, 1.5, 0.75, 0.6, 2.0]
    assert engine.recordings == 3
    assert w.grad == 2.0 + 3.0 + 1.0 + 1.0 + 4.0


def test_the_batched_engine_gives_eager_s_errors_and_numbers_where_numpy_cannot():
    engine = BatchedRecorder(lambda xs: sum((x.log() for x in xs), Value(0.0)))
    assert engine.backward([1.0, math.e]) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(OpDomainError, match=r"log\(-1.0\)"):
        engine.backward([1.0, -1.0])
    sqrt_engine = BatchedRecorder(lambda xs: sum((x.sqrt() for x in xs), Value(0.0)))
    xs = [Value(0.0), Value(4.0), Value(9.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sqrt_engine.backward(xs) == 5.0
    assert [x.grad for x in xs] == [math.inf, 0.25, 0.5 / 3]
    assert sqrt_engine.fallback_ops == []


def test_the_batched_engine_evaluates_a_branching_rule_one_node_at_a_time_and_says_so_once():
    with using(Registry.from_plugins(minigrad_ops, minigrad_replay.plugin)):
        leaky = register_op(
            OpSpec(
                name="leaky",
                arity=1,
                forward=lambda x: x if x > 0 else 0.1 * x,
                derivative=lambda x, out: (1.0 if x > 0 else 0.1,),
            )
        )

        def f(xs):
            return sum((apply(leaky, (x,)) * x for x in xs), Value(0.0))

        engine = BatchedRecorder(f)
        data = [2.0, -1.0, 0.5, -3.0]
        with pytest.warns(ReplayFallbackWarning, match="'leaky'.*one example at a time"):
            assert engine.backward(data) == pytest.approx(4.0 + 0.1 + 0.25 + 0.9, abs=1e-15)
        assert engine.fallback_ops == ["leaky"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            engine.backward(data)


def test_a_batched_function_that_returns_only_numbers_runs_forward_and_refuses_backward():
    tape = record(lambda x: 1.0, 1.0).batched()
    assert tape.forward(np.array([1.0, 2.0])) == 1.0
    with pytest.raises(TypeError, match="returned no Value"):
        tape.backward(np.array([1.0, 2.0]))
