"""The kernel's shape (issue: the kernel is a kernel) and the seed's ways (issue: code written
for micrograd and the lecture runs), checked as a user meets them."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import minigrad_ops
from minigrad_core import (
    AnomalyError,
    MissingRuleError,
    OpSpec,
    OpSpecError,
    Registry,
    Value,
    backward_steps,
    detect_anomaly,
    grad,
    jvp,
    using,
)
from minigrad_explain import explain

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("MINIGRAD_PLUGINS", "MINIGRAD_STRICT_PLUGINS")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment, timeout=120
    )


def test_importing_the_kernel_loads_neither_numpy_nor_hypothesis():
    result = _python("import sys, minigrad_core\nprint(sorted({'numpy', 'hypothesis'} & set(sys.modules)))")
    assert result.stdout.strip() == "[]", result.stderr


def test_a_bare_source_checkout_on_pythonpath_computes(tmp_path):
    # only the three packages of the root distribution, no install, so no entry-point metadata
    for package in ("minigrad_core", "minigrad_ops", "minigrad_nn"):
        (tmp_path / package).symlink_to(ROOT / package)
    code = "from minigrad_core import Value\ny = Value(2.0) * 3\ny.backward()\nprint(y.data, y._prev[0].grad)"
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{_site_of('pluggy')}", "PATH": os.environ["PATH"]},
    )
    assert result.stdout.strip() == "6.0 3.0", result.stderr


def _site_of(module: str) -> str:
    return str(Path(__import__(module).__file__).resolve().parents[1])


def test_eight_threads_doing_first_use_at_once_never_fail():
    code = """
        import threading
        from minigrad_core import Value
        errors, barrier = [], threading.Barrier(8)
        def first_use(i):
            try:
                barrier.wait()
                y = (Value(float(i)) * 2 + 1).tanh().exp()
                y.backward()
            except BaseException as error:
                errors.append(repr(error))
        threads = [threading.Thread(target=first_use, args=(i,)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print("errors:", errors)
    """
    for _ in range(5):  # fresh processes: each one's first use races
        result = _python(code)
        assert result.stdout.strip() == "errors: []", result.stdout + result.stderr


def test_strict_mode_turns_a_broken_plugin_into_an_error(tmp_path):
    dist = tmp_path / "minigrad_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: minigrad-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[minigrad]\nbroken = minigrad_broken_plugin\n")
    (tmp_path / "minigrad_broken_plugin.py").write_text("raise RuntimeError('half installed')\n")
    code = "from minigrad_core import Value\nprint((Value(2.0) * 3).data)"
    lenient = _python(code, PYTHONPATH=str(tmp_path))
    assert lenient.stdout.strip() == "6.0"
    assert (
        "PluginLoadWarning" in lenient.stderr and "'broken'" in lenient.stderr and "minigrad-broken" in lenient.stderr
    )
    assert "RuntimeError: half installed" in lenient.stderr and "MINIGRAD_STRICT_PLUGINS=1" in lenient.stderr
    strict = _python(code, PYTHONPATH=str(tmp_path), MINIGRAD_STRICT_PLUGINS="1")
    assert strict.returncode != 0 and "PluginLoadError" in strict.stderr and "half installed" in strict.stderr


@pytest.mark.parametrize("returned, words", [(2.0, "a bare number"), (None, "None"), ((1.0, 2.0), "2 partial")])
def test_a_bad_derivative_gets_the_same_error_from_backward_and_explain(returned, words):
    spec = OpSpec(name="sloppy", arity=1, forward=lambda x: x, derivative=lambda x, out: returned)
    with using(Registry.from_plugins(minigrad_ops)):
        from minigrad_core import register_op

        register_op(spec)
        import minigrad_replay
        from minigrad_testing import check_op

        def replayed(y):
            minigrad_replay.record(lambda x: x.sloppy(), 3.0).backward(3.0)

        def batched(y):
            minigrad_replay.record_batch(lambda x: x.sloppy(), 3.0).backward([3.0, 4.0])

        messages = []
        for tool in (lambda y: y.backward(), lambda y: explain(y), replayed, batched):
            with pytest.raises(OpSpecError) as info:
                tool(Value(3.0).sloppy())
            messages.append(str(info.value))
        assert words in messages[0] and "'sloppy'" in messages[0]
        assert messages == [messages[0]] * len(messages)
        with pytest.raises(Exception) as info:
            check_op("sloppy", max_examples=3)
        assert words in str(info.value) and "'sloppy'" in str(info.value)


def test_backward_steps_yields_each_node_before_its_gradient_flows():
    x, w = Value(2.0, label="x"), Value(-3.0, label="w")
    y = (x * w).tanh()
    seen = [(node._op, node.grad, [c.grad for c in node._prev]) for node, _ in backward_steps(y)]
    assert [op for op, _, _ in seen] == ["tanh", "*"]
    assert seen[1][2] == [0.0, 0.0]  # the inputs of * had not received anything yet


# -- the seed's ways -------------------------------------------------------------------------


def lecture_tanh(self):
    """tanh written the lecture's way: a node made by hand and a closure."""
    x = self.data
    t = (math.exp(2 * x) - 1) / (math.exp(2 * x) + 1)
    out = Value(t, (self,), "tanh")

    def _backward():
        self.grad += (1 - t**2) * out.grad

    out._backward = _backward
    return out


def test_the_lecture_neuron_with_a_closure_tanh_gives_micrograd_s_numbers():
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b  # registered ops ...
    o = lecture_tanh(n)  # ... and a closure node, in one graph
    o.backward()
    assert o.has_closure and o._op == "tanh"
    assert x1.grad == pytest.approx(-1.5) and w1.grad == pytest.approx(1.0)
    assert x2.grad == pytest.approx(0.5) and w2.grad == pytest.approx(0.0)
    text = explain(o).text
    assert "_backward closure" in text


def test_value_tanh_can_be_replaced_the_lecture_way_and_restored():
    Value.lecture_tanh = lecture_tanh
    try:
        y = Value(0.5).lecture_tanh()
        y.backward()
        assert y._prev[0].grad == pytest.approx(1 - math.tanh(0.5) ** 2)
    finally:
        del Value.lecture_tanh


def test_a_hand_made_node_without_a_rule_says_both_ways_to_fix_it():
    node = Value(1.0, (Value(0.5),), "ReLU")
    with pytest.raises(MissingRuleError, match=r"(?s)'ReLU'.*_backward.*OpSpec"):
        node.backward()


def test_leaf_backward_does_nothing_grad_none_counts_as_zero_and_extra_attributes_are_allowed():
    b = Value(1.0)
    b.grad = 0.5
    b._backward()
    assert b.grad == 0.5
    p = Value(2.0)
    p.m = 0.0  # a hand-written optimizer's state
    p.grad = None
    y = p * p
    y.backward()
    assert p.grad == 4.0 and p.m == 0.0


def test_a_subclass_of_value_is_an_operand():
    class V(Value):
        pass

    y = Value(3.0) * V(2.0)
    y.backward()
    assert y.data == 6.0 and y._prev[1].grad == 3.0


def test_backward_takes_a_seed_gradient_as_pytorch_does():
    x = Value(3.0)
    y = x * x
    y.backward(gradient=0.5)
    t = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    (t * t).backward(gradient=torch.tensor(0.5, dtype=torch.float64))
    assert x.grad == t.grad.item()
    z = Value(3.0)
    (z * z).backward(gradient=2.0, create_graph=True)
    assert z.grad.data == 12.0


@pytest.mark.parametrize(
    "f, point",
    [
        (lambda x: x**0.5, 0.0),
        (lambda x: 0.0**x, 0.5),
        (lambda x: x.sqrt(), 0.0),
    ],
)
def test_create_graph_gives_the_plain_first_derivative_at_zero_bases(f, point):
    plain, graph = Value(point), Value(point)
    f(plain).backward()
    f(graph).backward(create_graph=True)
    assert graph.grad.data == plain.grad


def test_second_derivative_of_zero_to_the_y_composes():
    assert grad(grad(lambda y: 0.0**y))(0.5) == 0.0


@pytest.mark.parametrize(
    "f, torch_f, point",
    [
        (lambda x: x.relu(), lambda t: t.relu(), math.nan),
        (lambda x: x**0.5, lambda t: t**0.5, -0.0),
        (lambda x: abs(x), lambda t: t.abs(), 0.0),
        (lambda x: x.sqrt(), lambda t: t.sqrt(), 0.0),
    ],
)
def test_edge_derivatives_match_pytorch(f, torch_f, point):
    x = Value(point)
    f(x).backward()
    t = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    torch_f(t).backward()
    expected = t.grad.item()
    assert (math.isnan(expected) and math.isnan(x.grad)) or x.grad == expected


def test_power_of_zero_to_nan_has_pytorch_s_exponent_partial():
    a, b = Value(0.0), Value(math.nan)
    (a**b).backward()
    assert math.isnan(b.grad)


def test_forward_mode_agrees_with_reverse_mode_and_torch_func_jvp():
    def f(x, y):
        return (x * y + x.exp()).tanh() * y.sqrt()

    value, tangent = jvp(f, (0.3, 2.0), (1.0, -0.5))
    x, y = Value(0.3), Value(2.0)
    out = f(x, y)
    out.backward()
    assert value == out.data and tangent == pytest.approx(x.grad * 1.0 + y.grad * -0.5, rel=1e-12)
    primals = (torch.tensor(0.3, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64))
    tangents = (torch.tensor(1.0, dtype=torch.float64), torch.tensor(-0.5, dtype=torch.float64))
    _, expected = torch.func.jvp(lambda a, b: (a * b + a.exp()).tanh() * b.sqrt(), primals, tangents)
    assert tangent == pytest.approx(expected.item(), rel=1e-12)


# -- the doctor: anomaly detection -------------------------------------------------------------


def test_detect_anomaly_names_the_forward_step_that_made_an_inf():
    w = Value(800.0, label="w")
    with detect_anomaly():
        with pytest.raises(AnomalyError, match=r"forward.*'exp'.*800\.0.*inf.*path: w"):
            (w * 1.0).exp()
    assert (w * 1.0).exp().data == math.inf  # outside the block nothing is checked


def test_detect_anomaly_names_the_backward_step_that_made_a_nan():
    x = Value(0.0, label="x")
    y = x.sqrt()  # d/dx sqrt(x) at 0 is inf: a finite gradient becomes inf
    with detect_anomaly():
        with pytest.raises(AnomalyError, match=r"backward.*'sqrt'.*input x = 0\.0"):
            y.backward()
    y.backward()
    assert x.grad == math.inf


def test_bad_operator_names_and_dunders_are_refused():
    for dunder in ("__del__", "__hash__", "__getattribute__", "__class__", "__setattr__"):
        with pytest.raises(OpSpecError, match="cannot be installed on Value"):
            OpSpec(name="evil", arity=1, forward=lambda x: x, derivative=lambda x, out: (1.0,), operators=(dunder,))
    with pytest.raises(OpSpecError, match="must be an identifier not starting with '_'"):
        OpSpec(name="evil", arity=1, forward=lambda x: x, derivative=lambda x, out: (1.0,), methods=("__del__",))
