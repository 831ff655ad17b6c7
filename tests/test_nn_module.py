"""Neuron, Layer, MLP and the fused weighted_sum op, with PyTorch float64 as the oracle."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad_nn
import minigrad_nn.plugin
import minigrad_ops
from minigrad_core import (
    OpSpec,
    Registry,
    UnknownOpError,
    Value,
    hookimpl,
    local_derivatives,
    ops,
    topological_order,
    using,
)
from minigrad_nn import MLP, Layer, Module, Neuron, predict_numpy
from minigrad_nn.fused import WEIGHTED_SUM


@pytest.fixture(autouse=True)
def nn_registry():
    """Exactly the built-in ops and the nn plugin, whatever else is installed."""
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin)) as registry:
        yield registry


def seed_example_initial_loss():
    """The loss of the seed example's network before any step (the same seed, so the same weights)."""
    minigrad_nn.seed(1337)
    n = MLP(3, [4, 4, 1])
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    return sum((n(x) - y) ** 2 for x, y in zip(xs, ys)).data


def test_the_seed_example_loop_drives_the_loss_down():
    initial = seed_example_initial_loss()
    minigrad_nn.seed(1337)
    # -- the seed's example loop, pasted as written there (the import is at the top) ------
    n = MLP(3, [4, 4, 1])
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    for _k in range(20):
        ypred = [n(x) for x in xs]
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
        for p in n.parameters():
            p.grad = 0.0
        loss.backward()
        for p in n.parameters():
            p.data += -0.1 * p.grad
    # ----------------------------------------------------------------------------------------
    assert initial > 1.0  # a real problem to solve
    assert loss.data <= 0.1 * initial, (initial, loss.data)  # the loss of the 20th step: down by 90% or more


def test_parameters_are_listed_layer_by_layer_weights_then_bias():
    n = MLP(3, [4, 4, 1])
    params = n.parameters()
    assert len(params) == (3 + 1) * 4 + (4 + 1) * 4 + (4 + 1) * 1 == 41
    expected = [p for layer in n.layers for neuron in layer.neurons for p in (*neuron.w, neuron.b)]
    assert all(a is b for a, b in zip(params, expected)) and len(expected) == 41
    assert all(isinstance(p, Value) and p.is_leaf for p in params)
    assert [p.label for p in params[:5]] == ["L0.N0.w0", "L0.N0.w1", "L0.N0.w2", "L0.N0.b", "L0.N1.w0"]
    assert params[-1].label == "L2.N0.b"
    assert [p.label for p in Layer(2, 2).parameters()] == ["N0.w0", "N0.w1", "N0.b", "N1.w0", "N1.w1", "N1.b"]
    assert [p.label for p in Neuron(2).parameters()] == ["w0", "w1", "b"]


def test_weights_start_uniform_in_minus_one_one_and_biases_at_zero():
    minigrad_nn.seed(0)
    layer = Layer(50, 40)
    weights = [w.data for n in layer.neurons for w in n.w]
    assert all(-1.0 <= w <= 1.0 for w in weights)
    assert min(weights) < -0.9 and max(weights) > 0.9  # they do fill the range
    assert abs(np.mean(weights)) < 0.05
    assert all(n.b.data == 0.0 for n in layer.neurons)


def test_seed_makes_the_same_model_and_other_seeds_do_not():
    minigrad_nn.seed(7)
    first = [p.data for p in MLP(2, [3, 1]).parameters()]
    minigrad_nn.seed(7)
    again = [p.data for p in MLP(2, [3, 1]).parameters()]
    minigrad_nn.seed(8)
    other = [p.data for p in MLP(2, [3, 1]).parameters()]
    assert first == again
    assert first != other


@pytest.mark.parametrize("pre_activation", [0.75, -0.75])
@pytest.mark.parametrize("nonlin", ["tanh", "relu", "sigmoid", None])
def test_a_neuron_computes_nonlin_of_w_dot_x_plus_b_and_its_gradients(nonlin, pre_activation):
    minigrad_nn.seed(3)
    neuron = Neuron(4, nonlin)
    x = [Value(v) for v in (0.5, -1.5, 2.0, 0.1)]
    # the bias puts w.x + b at pre_activation: relu is on (0.75) or off (-0.75), and each is tested
    bias = pre_activation - sum(w.data * v.data for w, v in zip(neuron.w, x))
    neuron.b.data = bias
    out = neuron(x)
    out.backward()

    w = torch.tensor([p.data for p in neuron.w], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    tx = torch.tensor([v.data for v in x], dtype=torch.float64, requires_grad=True)
    z = (w * tx).sum() + b
    expected = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, None: lambda t: t}[nonlin](z)
    expected.backward()
    assert out.data == pytest.approx(expected.item(), rel=1e-14, abs=1e-15)
    assert [p.grad for p in neuron.w] == pytest.approx(w.grad.tolist(), rel=1e-13, abs=1e-15)
    assert neuron.b.grad == pytest.approx(b.grad.item(), rel=1e-13, abs=1e-15)
    assert [v.grad for v in x] == pytest.approx(tx.grad.tolist(), rel=1e-13, abs=1e-15)
    # an active neuron passes a gradient to every weight (x has no zero), an off relu to none
    relu_off = nonlin == "relu" and pre_activation < 0
    assert all((p.grad == 0.0) == relu_off for p in neuron.w), [p.grad for p in neuron.w]


def test_a_layer_of_one_neuron_returns_a_value_and_wider_layers_a_list():
    assert isinstance(Layer(2, 1)([1.0, 2.0]), Value)
    out = Layer(2, 3)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 3 and all(isinstance(v, Value) for v in out)
    assert isinstance(MLP(2, [3, 1])([1.0, 2.0]), Value)
    assert len(MLP(2, [3, 2])([1.0, 2.0])) == 2
    assert len(MLP(2, [3, 1]).forward([1.0, 2.0])) == 1  # forward() always gives a list


def test_a_layer_wraps_number_inputs_once_and_all_neurons_share_them():
    layer = Layer(2, 3)
    out = layer([1.0, 2.0])
    inputs_of = [o._prev[0]._prev[2:4] for o in out]  # tanh <- weighted_sum(w1, w2, x1, x2, b)
    assert [v.data for v in inputs_of[0]] == [1.0, 2.0]
    assert all(a is b for other in inputs_of[1:] for a, b in zip(inputs_of[0], other))
    given = [Value(1.0), Value(2.0)]  # Values passed in are used as they are
    assert layer(given)[0]._prev[0]._prev[2] is given[0]


def test_each_neuron_is_two_nodes_thanks_to_the_fused_weighted_sum():
    out = MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None)([0.3, -0.7])
    interior = [v for v in topological_order(out) if not v.is_leaf]
    assert len(interior) == 16 * 2 + 16 * 2 + 1
    assert {v._spec.name for v in interior} == {"weighted_sum", "relu"}
    assert out._op == "Σwx+b"


@pytest.mark.parametrize(
    "make, call, expected",
    [
        (lambda: Neuron(3), lambda m: m([1.0, 2.0]), "Neuron(nin=3) expects 3 input(s), got 2"),
        (lambda: Layer(3, 2), lambda m: m([1.0, 2.0, 3.0, 4.0]), "Layer(nin=3, nout=2) expects 3 input(s), got 4"),
        (lambda: MLP(3, [4, 1]), lambda m: m([1.0]), "expects 3 input(s), got 1"),
    ],
)
def test_the_wrong_number_of_inputs_is_an_error_naming_both_sizes(make, call, expected):
    model = make()
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        call(model)


def test_a_one_input_neuron_takes_a_value_but_a_bare_number_is_not_a_sequence():
    neuron = Neuron(1, None)
    assert neuron(Value(2.0)).data == pytest.approx(2.0 * neuron.w[0].data)
    with pytest.raises(TypeError, match="sequence of 1 inputs"):
        neuron(2.0)


def test_nonlin_may_be_any_registered_one_input_op():
    class Square:
        @hookimpl
        def minigrad_register_ops(self, register):
            register(
                OpSpec(
                    name="square",
                    arity=1,
                    forward=lambda x: x * x,
                    derivative=lambda x, out: (2 * x,),
                    np_forward=lambda x: x * x,
                )
            )

    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, Square())):
        neuron = Neuron(2, "square")
        out = neuron([1.0, 2.0])
        z = neuron.w[0].data * 1.0 + neuron.w[1].data * 2.0
        assert out.data == pytest.approx(z * z)
        out.backward()
        assert neuron.w[1].grad == pytest.approx(2 * z * 2.0)


def test_micrograds_boolean_nonlin_gets_a_hint():
    with pytest.raises(TypeError, match="got True \\(micrograd's nonlin=True is nonlin='relu' here\\)"):
        Neuron(2, nonlin=True)


def test_an_unknown_nonlin_lists_the_known_ops():
    with pytest.raises(UnknownOpError, match=r"unknown op 'swish'.*known ops:.*relu.*tanh"):
        MLP(2, [3, 1], nonlin="swish")


@pytest.mark.parametrize(
    "name, why", [("add", "takes 2 inputs"), ("pow", "needs the parameter"), ("weighted_sum", "any number of")]
)
def test_a_nonlin_must_be_a_one_input_op_without_required_parameters(name, why):
    with pytest.raises(ValueError, match=f"nonlin '{name}'.*{why}"):
        Neuron(2, name)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="nin must be a whole number >= 1, got 0"):
        Neuron(0)
    with pytest.raises(ValueError, match="nout must be a whole number >= 1"):
        Layer(2, 0)
    with pytest.raises(ValueError, match="at least one layer"):
        MLP(2, [])


def test_out_nonlin_defaults_to_nonlin_and_can_be_linear():
    assert [layer.nonlin for layer in MLP(2, [3, 3, 1], "relu").layers] == ["relu", "relu", "relu"]
    assert [layer.nonlin for layer in MLP(2, [3, 3, 1], "relu", None).layers] == ["relu", "relu", None]
    assert [layer.nonlin for layer in MLP(2, [3, 1], None, "tanh").layers] == [None, "tanh"]
    assert repr(MLP(2, [3, 1], "relu", None)) == "MLP(2, [3, 1], nonlin='relu', out_nonlin=None)"


def test_zero_grad_clears_every_parameter():
    model = MLP(2, [3, 1])
    model([1.0, -1.0]).backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())
    assert Module().parameters() == []


def test_neurons_need_the_nn_plugins_op_and_say_where_it_comes_from():
    model = MLP(2, [1], nonlin=None)
    with using(Registry.from_plugins(minigrad_ops)):
        with pytest.raises(LookupError, match=r"'weighted_sum' is not registered.*nn plugin.*MINIGRAD_PLUGINS"):
            model([1.0, 2.0])


def test_predict_numpy_gives_the_same_numbers_as_the_scalar_forward():
    minigrad_nn.seed(5)
    model = MLP(2, [8, 8, 3], nonlin="tanh", out_nonlin=None)
    X = np.random.default_rng(0).normal(size=(20, 2))
    batched = predict_numpy(model, X)
    scalar = np.array([[v.data for v in model.forward(row)] for row in X.tolist()])
    assert batched.shape == (20, 3)
    np.testing.assert_allclose(batched, scalar, rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="expects rows of 2 inputs"):
        predict_numpy(model, np.zeros((4, 3)))


def test_the_second_derivative_flows_through_a_neuron():
    """d²/dx² tanh(w x + b) = -2 w² tanh(z) (1 - tanh(z)²), through the fused op's Value rule."""
    neuron = Neuron(1, "tanh")
    neuron.w[0].data, neuron.b.data = 0.7, -0.2
    x = Value(0.4)
    neuron([x]).backward(create_graph=True)
    first = x.grad
    x.grad = 0.0
    first.backward()
    t = math.tanh(0.7 * 0.4 - 0.2)
    assert first.data == pytest.approx(0.7 * (1 - t * t), rel=1e-14)
    assert x.grad == pytest.approx(-2 * 0.49 * t * (1 - t * t), rel=1e-12)


# -- the fused op itself ------------------------------------------------------------------------


def test_weighted_sum_is_registered_by_the_nn_plugin_with_its_metadata(nn_registry):
    spec = nn_registry.ops["weighted_sum"]
    assert spec.plugin == "minigrad_nn.plugin" and spec.arity is None
    assert spec.formula and spec.derivative_formula == ("x_i", "w_i", "1")
    assert spec.torch is not None  # its rules are plain arithmetic: they run on arrays as they are
    assert spec.np_forward is None and spec.np_derivative is None
    assert ops.weighted_sum(2.0, 3.0, 4.0, 5.0, 1.0) == 2.0 * 4.0 + 3.0 * 5.0 + 1.0
    assert ops.weighted_sum(0.5) == 0.5  # n = 0: just the bias


def test_weighted_sum_refuses_an_even_number_of_inputs():
    with pytest.raises(TypeError, match=r"'weighted_sum' takes 2n \+ 1 inputs.*got 4"):
        ops.weighted_sum(1.0, 2.0, 3.0, 4.0)


finite = st.floats(-10, 10, allow_nan=False)


def torch_weighted_sum(tensors):
    """w . x + b in PyTorch's own words (a dot product), not the fused op's forward rule:
    WEIGHTED_SUM.torch *is* that rule, so it cannot be the oracle for the values."""
    n = len(tensors) // 2
    ws, xs, b = tensors[:n], tensors[n : 2 * n], tensors[-1]
    if n == 0:
        return b * 1.0
    return torch.dot(torch.stack(ws), torch.stack(xs)) + b


@given(st.integers(0, 6).flatmap(lambda n: st.lists(finite, min_size=2 * n + 1, max_size=2 * n + 1)))
def test_weighted_sum_and_its_gradients_match_torch(inputs):
    values = [Value(v) for v in inputs]
    out = ops.weighted_sum(*values)
    out.backward()
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in inputs]
    expected = torch_weighted_sum(tensors)
    expected.backward()
    assert out.data == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)
    assert [v.grad for v in values] == pytest.approx([t.grad.item() for t in tensors], rel=1e-12, abs=1e-12)


@given(st.integers(0, 5).flatmap(lambda n: st.lists(finite, min_size=2 * n + 1, max_size=2 * n + 1)))
def test_weighted_sum_rules_on_a_batch_match_torch_on_the_batch(inputs):
    """The one rule, run on arrays (three examples at once) as batched replay runs it, against
    PyTorch's autograd of a batched dot product: a different computation, so a wrong rule shows."""
    n = len(inputs) // 2
    batch = [np.array([v, 2 * v - 1, -v]) for v in inputs]
    out = WEIGHTED_SUM.forward(*batch)
    partials = local_derivatives(WEIGHTED_SUM, batch, out)

    columns = torch.tensor(np.stack(batch, axis=1), dtype=torch.float64, requires_grad=True)  # (3, 2n + 1)
    expected = (columns[:, :n] * columns[:, n : 2 * n]).sum(dim=1) + columns[:, -1]
    (gradient,) = torch.autograd.grad(expected.sum(), [columns])
    assert list(out) == pytest.approx(expected.tolist(), rel=1e-12, abs=1e-12)
    assert len(partials) == 2 * n + 1
    for i, partial in enumerate(partials):
        assert list(np.broadcast_to(partial, (3,))) == pytest.approx(gradient[:, i].tolist(), rel=1e-12, abs=1e-12)
    # a weight or the bias may be one number shared by the whole batch
    shared = [*inputs[:n], *batch[n : 2 * n], inputs[-1]]
    shared_out = np.broadcast_to(WEIGHTED_SUM.forward(*shared), (3,))
    w = torch.tensor(inputs[:n], dtype=torch.float64)
    xs = torch.tensor(np.stack(batch[n : 2 * n], axis=1) if n else np.zeros((3, 0)), dtype=torch.float64)
    assert list(shared_out) == pytest.approx((xs @ w + inputs[-1]).tolist(), rel=1e-12, abs=1e-12)


def test_an_op_with_a_parameter_works_as_a_nonlinearity_everywhere():
    """leaky_relu (from the extras plugin) has a parameter, slope, with a default: neurons,
    the numpy predictor and the PyTorch bridge all apply it with that default."""
    import minigrad_extras as extras  # a test dependency: if it is broken, this test must fail, not skip

    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, extras)):
        minigrad_nn.seed(3)
        model = minigrad_nn.MLP(2, [4, 1], nonlin="leaky_relu", out_nonlin=None)
        X = np.array([[1.0, -2.0], [-0.5, 0.25], [2.0, 1.5]])
        outputs = [model(list(x)) for x in X]
        loss = sum(o * o for o in outputs)
        loss.backward()
        assert outputs[0]._prev[4]._op.startswith("leaky_relu")  # (w_1..w_4, x_1..x_4, b): x_1
        torch_model = minigrad_nn.to_torch(model)
        torch_out = torch_model(torch.tensor(X, dtype=torch.float64))[:, 0]
        torch_loss = (torch_out**2).sum()
        torch_loss.backward()
        assert [o.data for o in outputs] == pytest.approx(torch_out.tolist(), rel=1e-12)
        assert list(minigrad_nn.predict_numpy(model, X)[:, 0]) == pytest.approx([o.data for o in outputs], rel=1e-12)
        assert loss.data == pytest.approx(torch_loss.item(), rel=1e-12)
        # parameter by parameter, in model.parameters() order: per neuron its weights, then its bias
        theirs = [
            float(g)
            for linear in torch_model.linears
            for row, bias in zip(linear.weight.grad, linear.bias.grad)
            for g in (*row, bias)
        ]
        assert [p.grad for p in model.parameters()] == pytest.approx(theirs, rel=1e-10, abs=1e-15)
        # both sides of leaky_relu's kink are used, so the slope matters to the gradients
        hidden = [node.data for node in topological_order(loss) if node._op.startswith("leaky_relu")]
        assert min(hidden) < 0 < max(hidden)
