"""Graph replay and batched replay give eager's numbers, and refuse what they cannot replay.

Eager MiniGrad is the reference for replay; PyTorch float64 is the oracle for both.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
from minigrad_core import OpDomainError, OpSpec, OpZeroDivisionError, Registry, Value, hookimpl, using
from minigrad_nn import losses
from minigrad_replay import (
    GraphChangedError,
    Recorder,
    ReplayArgumentError,
    ReplayFallbackWarning,
    record,
    record_batch,
)

TOLERANCE = 1e-12


class CubeOps:
    """A plugin op with no numpy rules: replay calls its own rules (on arrays too: plain arithmetic)."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(
                name="cube",
                arity=1,
                forward=lambda x: x * x * x,
                derivative=lambda x, out: (3 * x * x,),
                torch=lambda x: x**3,
            )
        )


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, CubeOps())) as active:
        yield active


def close(a, b, tolerance=TOLERANCE) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def eager_value_and_grad(f, *numbers):
    inputs = [Value(x) for x in numbers]
    out = f(*inputs)
    out.backward()
    return out.data, [x.grad for x in inputs]


def torch_value_and_grad(f, *numbers):
    inputs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in numbers]
    out = f(*inputs)
    out.backward()
    return out.item(), [x.grad.item() for x in inputs]


# -- every built-in op, replayed ------------------------------------------------------------


def every_op(a, b, c):
    """Uses each built-in op once (a, c > 0), and a relu on each side of its kink."""
    s = a * b + a / c - b - (-c)
    s = s + a**2 + c**0.5 + a ** (-1.5) + c**b
    s = s + (a - 2.0).exp() + c.log() + b.tanh() + (b * 0.3).sigmoid()
    return s + (b - 0.25).relu() + (0.25 - b).relu() * a


def every_op_torch(a, b, c):
    s = a * b + a / c - b - (-c)
    s = s + a**2 + c**0.5 + a ** (-1.5) + c**b
    s = s + (a - 2.0).exp() + c.log() + b.tanh() + (b * 0.3).sigmoid()
    return s + (b - 0.25).relu() + (0.25 - b).relu() * a


EVERY_OP_TAPE = {}


def every_op_tape():
    # One recording serves every drawn example (hypothesis runs the test many times).
    if "tape" not in EVERY_OP_TAPE:
        EVERY_OP_TAPE["tape"] = record(every_op, 1.3, 0.7, 0.9)
    return EVERY_OP_TAPE["tape"]


@given(
    a=st.floats(0.2, 3.0),
    b=st.floats(-2.0, 2.0).filter(lambda b: abs(b - 0.25) > 1e-6),
    c=st.floats(0.2, 3.0),
)
def test_replay_gives_eager_and_torch_values_and_gradients_for_every_builtin_op(a, b, c):
    replayed, grads = every_op_tape().value_and_grad(a, b, c)
    eager, eager_grads = eager_value_and_grad(every_op, a, b, c)
    oracle, oracle_grads = torch_value_and_grad(every_op_torch, a, b, c)
    assert close(replayed, eager) and close(replayed, oracle, 1e-10)
    for mine, reference, truth in zip(grads, eager_grads, oracle_grads):
        assert close(mine, reference)
        assert close(mine, truth, 1e-10)


def test_generated_source_reads_like_the_graph():
    tape = record(lambda x, y: (x * y).tanh() + x, 0.5, 2.0)
    source = tape.source
    assert "def forward_backward(inputs, parameters, grads):" in source
    # forward: each node calls its op's own forward rule
    assert "v0 = forward_mul(x0, x1)" in source
    assert "v1 = forward_tanh(v0)" in source
    assert "v2 = forward_add(v1, x0)" in source
    # backward: the kernel's local_derivatives gives the partials; the loss always passes its gradient on
    assert "d2_0, d2_1 = partials(spec_add, (v1, x0), v2, None)\n" in source
    # other nodes pass nothing on when their gradient is 0 and their value finite, as backward() does
    assert "d1_0, = partials(spec_tanh, (v0,), v1, None) if g_v1 != 0.0 or v1 - v1 != 0.0 else zeros1" in source
    assert "g_v0 = 0.0 + d1_0 * g_v1" in source
    assert "g_x0 = 0.0 + d2_1 * g_v2 + d0_0 * g_v0" in source  # the sum over x0's users, in the kernel's order
    assert "math." not in source and "v1 * v1" not in source  # no op's math is written a second time
    compile(source, "<check>", "exec")


def test_every_op_is_replayed_through_its_own_rules():
    tape = record(lambda x: x.cube() * 2, 1.5)
    assert "forward_cube(x0)" in tape.source and "partials(spec_cube, (x0,), v0, None)" in tape.source
    out, (grad,) = tape.value_and_grad(-0.5)
    assert out == pytest.approx(2 * (-0.5) ** 3, abs=0) and grad == pytest.approx(6 * 0.25, abs=0)


def test_replay_gradients_are_eager_s_bit_for_bit_also_when_they_accumulate():
    """Parameters' gradients continue from what they hold, added in backward()'s order."""
    minigrad_nn.seed(5)
    model = minigrad_nn.MLP(3, [4, 4, 1], nonlin="tanh", out_nonlin=None)
    twin = minigrad_nn.MLP(3, [4, 4, 1], nonlin="tanh", out_nonlin=None)
    for p, q in zip(model.parameters(), twin.parameters()):
        q.data = p.data
    rows = [[0.1, -0.7, 0.3], [1.1, 0.2, -0.4], [-0.5, 0.9, 0.8]]

    def loss_fn(net, X):
        return sum(((net(x) - 0.5) ** 2 for x in X), Value(0.0)).log()

    tape = record(lambda X: loss_fn(model, X), rows)
    for _ in range(3):  # no zero_grad: the gradients accumulate
        replayed = tape.backward(rows)
        eager = loss_fn(twin, [[Value(v) for v in row] for row in rows])
        eager.backward()
        assert replayed == eager.data
        assert [p.grad for p in model.parameters()] == [q.grad for q in twin.parameters()]
        rows = [[v * 1.1 for v in row] for row in rows]


# -- a whole training run -------------------------------------------------------------------


def moons_task(samples=24, seed=3):
    X, labels = minigrad_nn.datasets.make_moons(samples, noise=0.1, seed=seed)
    return X, 2.0 * labels - 1.0


def new_model(seed=11):
    minigrad_nn.seed(seed)
    return minigrad_nn.MLP(2, [6, 6, 1], nonlin="relu", out_nonlin=None)


ALPHA = 1e-3


def torch_loss_and_grads(model, X, y):
    """The same step in PyTorch (float64, whole tensors): the oracle."""
    weights, biases = [], []
    for layer in model.layers:
        weights.append(
            torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64, requires_grad=True)
        )
        biases.append(torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True))
    h = torch.tensor(X, dtype=torch.float64)
    for i, (W, b) in enumerate(zip(weights, biases)):
        h = h @ W.T + b
        if i < len(weights) - 1:
            h = h.relu()
    data_loss = (1 - torch.tensor(y) * h[:, 0]).relu().mean()
    loss = data_loss + ALPHA * sum((p * p).sum() for p in weights + biases)
    loss.backward()
    grads = []
    for W, b in zip(weights, biases):
        for row, bias in zip(W.grad.tolist(), b.grad.tolist()):
            grads += [*row, bias]
    return loss.item(), grads


def test_replay_and_batched_replay_train_exactly_like_eager():
    X, y = moons_task()
    rows, labels = X.tolist(), y.tolist()
    models = {name: new_model() for name in ("eager", "replay", "batched")}
    params = {name: model.parameters() for name, model in models.items()}

    def loss_fn(X, y):
        return losses.hinge([models["replay"](x) for x in X], y) + losses.l2(params["replay"], ALPHA)

    tape = record(loss_fn, rows, labels)
    batched = record_batch(lambda x, t: losses.hinge([models["batched"](x)], [t]), rows[0], labels[0])
    regularizer = record(lambda: losses.l2(params["batched"], ALPHA))

    active_units = []
    for step in range(25):
        oracle_loss, oracle_grads = torch_loss_and_grads(models["eager"], X, y)
        for name in models:
            for p in params[name]:
                p.grad = 0.0
        eager_loss = losses.hinge([models["eager"](x) for x in rows], labels) + losses.l2(params["eager"], ALPHA)
        eager_loss.backward()
        replay_loss = tape.backward(rows, labels)
        batched_loss = batched.backward(X, y, reduce="mean") + regularizer.backward()

        assert abs(replay_loss - eager_loss.data) <= TOLERANCE
        assert abs(batched_loss - eager_loss.data) <= TOLERANCE
        assert abs(eager_loss.data - oracle_loss) <= TOLERANCE
        for p_eager, p_replay, p_batched, truth in zip(
            params["eager"], params["replay"], params["batched"], oracle_grads
        ):
            assert abs(p_replay.grad - p_eager.grad) <= TOLERANCE
            assert abs(p_batched.grad - p_eager.grad) <= TOLERANCE
            assert abs(p_eager.grad - truth) <= TOLERANCE
        learning_rate = 0.5 - 0.4 * step / 25
        for name in models:
            for p in params[name]:
                p.data -= learning_rate * p.grad
        first_layer = models["eager"].layers[0]
        active_units.append(
            [sum(w.data * v for w, v in zip(n.w, row)) + n.b.data > 0 for row in rows for n in first_layer.neurons]
        )
    # Relus took other branches as the weights moved; no recording was needed for that.
    assert active_units[0] != active_units[-1]


def test_batched_input_gradients_match_eager_per_example():
    model = new_model()

    def example(x, t):
        return losses.hinge([model(x)], [t])

    X, y = moons_task(samples=6)
    batched = record_batch(example, X[0].tolist(), float(y[0]))
    loss, (grad_X, grad_y) = batched.value_and_grad(X, y, reduce="sum")
    total = 0.0
    for i, (row, label) in enumerate(zip(X.tolist(), y.tolist())):
        inputs, target = [Value(v) for v in row], Value(label)
        out = example(inputs, target)
        out.backward()
        total += out.data
        assert [v.grad for v in inputs] == pytest.approx(grad_X[i].tolist(), abs=TOLERANCE)
        assert target.grad == pytest.approx(grad_y[i], abs=TOLERANCE)
    assert loss == pytest.approx(total, abs=TOLERANCE)
    assert grad_X.shape == X.shape and grad_y.shape == y.shape


# -- what replay reads and writes -----------------------------------------------------------


def test_parameters_are_read_again_at_every_replay():
    w = Value(2.0)
    tape = record(lambda x: x * w + 1, 3.0)
    assert tape.forward(3.0) == 7.0
    w.data = -1.0
    assert tape.forward(3.0) == -2.0
    assert any(p is w for p in tape.params)  # the Value itself, not a copy of its number


def test_backward_accumulates_into_grads_as_loss_backward_does():
    w, x = Value(1.5), Value(2.0)

    def f(x):
        return (x * w).tanh()

    tape = record(f, x)
    tape.backward(x)
    tape.backward(x)
    replayed = (w.grad, x.grad)
    w.grad = x.grad = 0.0
    f(x).backward()
    f(x).backward()
    assert replayed[0] == pytest.approx(w.grad, abs=0) and replayed[1] == pytest.approx(x.grad, abs=0)


def test_a_graph_building_gradient_left_by_create_graph_is_read_as_a_number():
    w = Value(3.0)
    (w * w).backward(create_graph=True)
    assert isinstance(w.grad, Value)
    tape = record(lambda x: x * w, 2.0)
    tape.backward(2.0)
    assert w.grad == 6.0 + 2.0


def test_outputs_and_input_gradients_keep_their_shapes():
    def f(points, scale):
        total = sum((p[0] * p[1] for p in points), Value(0.0)) * scale
        return total, [points[0][0] * 2, 7.0]

    tape = record(f, [[1.0, 2.0], [3.0, 4.0]], 0.5)
    (total, [doubled, seven]), (grad_points, grad_scale) = tape.value_and_grad([[1.0, 1.0], [2.0, 2.0]], 2.0)
    assert (total, doubled, seven) == (10.0, 2.0, 7.0)
    assert grad_points == [[2.0, 2.0], [4.0, 4.0]] and grad_scale == 5.0


def test_arrays_are_accepted_where_lists_were_recorded():
    tape = record(lambda rows: rows[0][0] * rows[1][1], [[1.0, 2.0], [3.0, 4.0]])
    assert tape(np.array([[2.0, 0.0], [0.0, 5.0]])) == 10.0


# -- a graph that no longer fits ------------------------------------------------------------


def branchy(x, y):
    if x > y:
        return x * y
    return x + y


def test_a_comparison_that_turns_out_otherwise_raises_graph_changed():
    tape = record(branchy, 2.0, 1.0)
    assert tape.value_and_grad(5.0, 3.0) == (15.0, (3.0, 5.0))
    with pytest.raises(GraphChangedError) as caught:
        tape(1.0, 3.0)
    message = str(caught.value)
    assert "input x0 > input x1" in message and "was True" in message and "False now" in message
    assert "record" in message


def test_truth_tests_of_values_are_guarded_too():
    def f(x):
        return x * 2 if x else x - 1

    tape = record(f, 3.0)
    assert tape(4.0) == 8.0
    with pytest.raises(GraphChangedError, match=r"!= 0.0"):
        tape(0.0)


def test_a_recorder_records_again_when_the_graph_changed():
    w = Value(0.5)

    def f(x):
        return branchy(x, w)

    step = Recorder(f)
    xs = (2.0, 3.0, 0.25, 0.1, 4.0)
    results = [step.value_and_grad(x) for x in xs]
    assert step.recordings == 3  # the first call, then each time x > w turned out otherwise
    for x, (out, (grad,)) in zip(xs, results):
        eager_out, (eager_grad,) = eager_value_and_grad(lambda v: branchy(v, Value(0.5)), x)
        assert (out, grad) == (eager_out, eager_grad)
    assert w.grad == 2.0 + 3.0 + 1.0 + 1.0 + 4.0  # d(x * w)/dw = x, d(x + w)/dw = 1, accumulated


def test_a_guard_on_an_interior_node_is_checked_where_it_was_made():
    def f(x):
        y = x.log()
        if y < 0:
            return y * -1
        return y

    tape = record(f, 0.5)
    assert tape(0.25) == pytest.approx(-math.log(0.25))
    with pytest.raises(GraphChangedError, match=r"the log node v0 < 0.0"):
        tape(4.0)


def test_a_relu_taking_its_other_branch_needs_no_new_recording():
    tape = record(lambda x: (x * 3).relu() + x, 1.0)
    assert tape.value_and_grad(-2.0) == (-2.0, (1.0,))
    assert tape.value_and_grad(2.0) == (8.0, (4.0,))


def test_batched_replay_refuses_a_batch_whose_examples_branch_differently():
    batched = record_batch(branchy, 2.0, 1.0)
    assert batched.forward(np.array([2.0, 3.0]), np.array([1.0, 1.0])).tolist() == [2.0, 3.0]
    with pytest.raises(GraphChangedError, match=r"for 2 example\(s\) of the batch \(the first is example 1\)"):
        batched.forward(np.array([2.0, 0.5, 0.0]), np.array([1.0, 1.0, 1.0]))


GRAPH = {"double": True}


def reshaping(x):
    return x * 2 if GRAPH["double"] else x + 2


def test_verify_notices_a_function_that_now_builds_another_graph():
    tape = record(reshaping, 1.0)
    assert tape.verify(3.0)
    assert tape.matches(record(reshaping, 5.0))
    GRAPH["double"] = False
    try:
        assert not tape.matches(record(reshaping, 5.0))
        with pytest.raises(GraphChangedError, match=r"node v0 was mul.* is now add"):
            tape.verify(3.0)
    finally:
        GRAPH["double"] = True


def test_verify_notices_numbers_the_graph_does_not_show():
    def cut(x):
        return x * Value(x.data)  # a leaf made from data: replay reads the recorded one

    tape = record(cut, 2.0)
    assert tape.verify(2.0)
    with pytest.raises(GraphChangedError, match="reads a number the graph does not show"):
        tape.verify(3.0)


# -- bad arguments ----------------------------------------------------------------------------


def test_arguments_of_another_count_or_shape_are_refused():
    tape = record(lambda rows, t: rows[0][0] * t, [[1.0, 2.0]], 1.0)
    with pytest.raises(
        ReplayArgumentError, match=r"recorded with 2 argument\(s\) \(argument 0 \(rows\), argument 1 \(t\)\), got 1"
    ):
        tape([[1.0, 2.0]])
    with pytest.raises(
        ReplayArgumentError,
        match=r"argument 0 \(rows\)\[0\]: expected a sequence of 2 numbers as when recorded, got 3 items",
    ):
        tape([[1.0, 2.0, 3.0]], 1.0)
    with pytest.raises(ReplayArgumentError, match=r"argument 1 \(t\): expected a number, got 'one'"):
        tape([[1.0, 2.0]], "one")
    with pytest.raises(ReplayArgumentError, match=r"argument 0 \(rows\): expected a sequence of 1 items, got 1.0"):
        tape(1.0, 1.0)


def test_record_refuses_what_it_cannot_replay():
    with pytest.raises(ReplayArgumentError, match=r"argument 0 .* is 'text'"):
        record(lambda s: s, "text")
    x = Value(1.0)
    with pytest.raises(ReplayArgumentError, match="passed twice"):
        record(lambda a, b: a * b, x, x)
    with pytest.raises(ReplayArgumentError, match="result of an op"):
        record(lambda a: a * 2, x + 1)
    with pytest.raises(TypeError, match="must return a Value"):
        record(lambda a: {"loss": a}, 1.0)
    tape = record(lambda a: 3.0, 1.0)
    assert tape(2.0) == 3.0
    with pytest.raises(TypeError, match="nothing to differentiate"):
        tape.backward(2.0)


def test_batched_arguments_need_a_batch_axis_of_one_length():
    batched = record_batch(lambda x, t: x[0] * x[1] * t, [1.0, 2.0], 1.0)
    with pytest.raises(ReplayArgumentError, match=r"must have shape \(batch, 2\).*got shape \(3,\)"):
        batched.forward(np.ones(3), np.ones(3))
    with pytest.raises(ReplayArgumentError, match="has 4 examples, the arguments before it 3"):
        batched.forward(np.ones((3, 2)), np.ones(4))
    with pytest.raises(ReplayArgumentError, match="the batch is empty"):
        batched.forward(np.ones((0, 2)), np.ones(0))
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'sum'"):
        batched.backward(np.ones((3, 2)), np.ones(3), reduce="max")


# -- errors inside ops ----------------------------------------------------------------------


def test_an_op_outside_its_domain_raises_the_op_error_naming_it():
    tape = record(lambda x, y: x.log() + 1 / y, 1.0, 1.0)
    with pytest.raises(OpDomainError, match=r"log\(-1.0\) is undefined"):
        tape(-1.0, 1.0)
    with pytest.raises(OpZeroDivisionError, match="div"):
        tape.backward(1.0, 0.0)


def test_replay_gives_the_rule_s_result_where_python_arithmetic_would_raise():
    tape = record(lambda x: x**3, 2.0)  # x ** 3.0 overflows in Python where the op gives inf
    assert tape(1e200) == math.inf
    big = Value(1e200)
    assert tape.forward(1e200) == (big**3).data


# -- batched replay and ops without numpy rules ------------------------------------------------


def test_an_op_without_numpy_rules_runs_its_own_rules_on_arrays():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cube's rules are plain arithmetic: they run on arrays, no warning
        batched = record_batch(lambda x: x.cube() + x, 1.0)
        loss, (grad,) = batched.value_and_grad(np.array([1.0, 2.0, -1.0]), reduce="sum")
    assert loss == 1 + 1 + 8 + 2 - 1 - 1
    assert grad.tolist() == [4.0, 13.0, 4.0]
    assert batched.fallback_ops == []


class BranchyOps:
    """An op whose rules branch with a Python ``if``: they cannot run on arrays."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(
                name="leaky",
                arity=1,
                forward=lambda x: x if x > 0 else 0.1 * x,
                derivative=lambda x, out: (1.0 if x > 0 else 0.1,),
            )
        )


def test_an_op_whose_rules_cannot_run_on_arrays_is_evaluated_per_example_and_says_so_once():
    with using(Registry.from_plugins(minigrad_ops, BranchyOps())):
        batched = record_batch(lambda x: x.leaky() * x, 1.0)  # recording decides nothing yet
        xs = np.array([2.0, -1.0, 0.5])
        with pytest.warns(ReplayFallbackWarning) as caught:
            loss, (grad,) = batched.value_and_grad(xs, reduce="sum")
        messages = [str(w.message) for w in caught]
        assert len(messages) == 2  # forward and derivative, each once
        assert all("'leaky'" in m and "one example at a time" in m for m in messages)
        assert any("np_forward" in m for m in messages) and any("np_derivative" in m for m in messages)
        assert batched.fallback_ops == ["leaky"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # decided: running it again warns no more
            again, (grad_again,) = batched.value_and_grad(xs, reduce="sum")
        assert (again, grad_again.tolist()) == (loss, grad.tolist())
        for x, g in zip(xs.tolist(), grad.tolist()):
            v = Value(x)
            (v.leaky() * v).backward()
            assert v.grad == g
        assert loss == sum((x if x > 0 else 0.1 * x) * x for x in xs.tolist())


def test_batched_parameter_gradients_are_summed_over_the_batch():
    w, b = Value(0.5), Value(-0.25)
    batched = record_batch(lambda x: (x * w + b).tanh(), 1.0)
    xs = np.array([0.1, 0.7, -1.3, 2.0])
    mean = batched.backward(xs)
    batched_grads = (w.grad, b.grad)
    w.grad = b.grad = 0.0
    total = sum(((Value(float(x)) * w + b).tanh() for x in xs), Value(0.0)) * (1 / len(xs))
    total.backward()
    assert mean == pytest.approx(total.data, abs=TOLERANCE)
    assert batched_grads == pytest.approx((w.grad, b.grad), abs=TOLERANCE)


def test_batched_pow_refuses_what_eager_refuses():
    import numpy as np

    from minigrad_core import OpDomainError

    batched = record(lambda x: x**0.5, 4.0).batched()
    assert list(batched.forward(np.array([4.0, 9.0]))) == [2.0, 3.0]
    with pytest.raises(OpDomainError, match="pow"):
        batched.forward(np.array([4.0, -1.0]))
