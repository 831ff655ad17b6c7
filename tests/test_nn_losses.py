"""Losses: values and gradients against PyTorch's functional losses, and numerical stability."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import minigrad_nn.plugin
import minigrad_ops
from minigrad_core import Registry, Value, topological_order, using
from minigrad_nn import losses


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin)) as registry:
        yield registry


def values(numbers):
    return [Value(x) for x in numbers]


def tensor(numbers):
    return torch.tensor(numbers, dtype=torch.float64, requires_grad=True)


def check(loss, inputs, expected, expected_inputs, rel=1e-12):
    """``loss`` (a Value over ``inputs``) equals torch's ``expected``, and so do the gradients."""
    loss.backward()
    expected.backward()
    assert loss.data == pytest.approx(expected.item(), rel=rel, abs=1e-15)
    assert [v.grad for v in inputs] == pytest.approx(expected_inputs.grad.flatten().tolist(), rel=rel, abs=1e-15)


PREDS = [0.3, -1.2, 2.5, 0.0, -0.4]
TARGETS = [1.0, -1.0, 1.0, -1.0, 1.0]


def test_mse_matches_torch():
    preds = values(PREDS)
    t = tensor(PREDS)
    check(losses.mse(preds, TARGETS), preds, F.mse_loss(t, torch.tensor(TARGETS, dtype=torch.float64)), t)


def test_mse_of_one_prediction_and_value_targets():
    p, target = Value(3.0), Value(1.0)
    loss = losses.mse(p, target)
    loss.backward()
    assert loss.data == 4.0 and p.grad == 4.0 and target.grad == -4.0


def test_hinge_matches_torch_max_margin():
    scores = values(PREDS)
    t = tensor(PREDS)
    y = torch.tensor(TARGETS, dtype=torch.float64)
    check(losses.hinge(scores, TARGETS), scores, torch.clamp(1 - y * t, min=0).mean(), t)
    # for two classes it is PyTorch's multi-class margin loss on the scores (-s/2, s/2), doubled
    two = torch.stack([-t.detach() / 2, t.detach() / 2], dim=1)
    classes = ((y + 1) / 2).long()
    assert losses.hinge(values(PREDS), TARGETS).data == pytest.approx(2 * F.multi_margin_loss(two, classes).item())


def test_hinge_refuses_labels_other_than_plus_minus_one():
    with pytest.raises(ValueError, match="labels must be -1 or \\+1, got 0 at index 1"):
        losses.hinge(values([0.5, 0.5]), [1, 0])


LOGITS = [0.3, -1.2, 2.5, 0.0, -0.4, 8.0, -9.0]
BINARY = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_bce_with_logits_matches_torch():
    logits = values(LOGITS)
    t = tensor(LOGITS)
    y = torch.tensor(BINARY, dtype=torch.float64)
    check(losses.bce_with_logits(logits, BINARY), logits, F.binary_cross_entropy_with_logits(t, y), t)


def test_bce_with_logits_takes_soft_labels():
    logits, soft = values([1.0, -2.0]), [0.25, 0.9]
    t = tensor([1.0, -2.0])
    check(
        losses.bce_with_logits(logits, soft),
        logits,
        F.binary_cross_entropy_with_logits(t, torch.tensor(soft, dtype=torch.float64)),
        t,
    )
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\].*got 2 at index 0"):
        losses.bce_with_logits(values([1.0]), [2])


@pytest.mark.parametrize("logit", [1000.0, -1000.0, 745.0, -745.0, 40.0, -40.0, 30.0, -30.0, 20.0, -20.0])
@pytest.mark.parametrize("label", [0.0, 1.0, 0.3])
def test_bce_with_logits_is_stable_for_huge_logits(logit, label):
    z = Value(logit)
    loss = losses.bce_with_logits([z], [label])
    loss.backward()
    t = tensor([logit])
    expected = F.binary_cross_entropy_with_logits(t, torch.tensor([label], dtype=torch.float64))
    expected.backward()
    assert math.isfinite(loss.data) and math.isfinite(z.grad)
    # log(1 + e) for a tiny e loses e's low digits (here as in PyTorch): absolute errors < 1e-14
    assert loss.data == pytest.approx(expected.item(), rel=1e-12, abs=1e-14)
    assert z.grad == pytest.approx(t.grad.item(), rel=1e-12, abs=1e-15)


ROWS = [[0.2, -1.0, 3.0], [1.5, 1.5, -0.5], [-2.0, 0.0, 0.1], [0.0, 0.0, 0.0]]
CLASSES = [2, 0, 1, 1]


def test_softmax_cross_entropy_matches_torch():
    rows = [values(row) for row in ROWS]
    t = tensor(ROWS)
    flat = [v for row in rows for v in row]
    check(losses.softmax_cross_entropy(rows, CLASSES), flat, F.cross_entropy(t, torch.tensor(CLASSES)), t)


@pytest.mark.parametrize("scale", [1e3, -1e3, 1e5])
def test_softmax_cross_entropy_is_stable_for_huge_logits(scale):
    raw = [[scale * x for x in row] for row in ROWS]
    rows = [values(row) for row in raw]
    t = tensor(raw)
    flat = [v for row in rows for v in row]
    loss = losses.softmax_cross_entropy(rows, CLASSES)
    assert math.isfinite(loss.data)
    check(loss, flat, F.cross_entropy(t, torch.tensor(CLASSES)), t)


def test_logsumexp_matches_torch_and_does_not_overflow():
    for row in ([1.0, 2.0, 3.0], [1000.0, 999.0, -5.0], [-800.0, -801.0]):
        assert losses.logsumexp(values(row)).data == pytest.approx(
            torch.logsumexp(torch.tensor(row, dtype=torch.float64), 0).item(), rel=1e-14
        )


def test_softmax_cross_entropy_refuses_a_label_that_is_not_a_class():
    with pytest.raises(ValueError, match=r"label 3 of row 0 is not a class index in 0..2"):
        losses.softmax_cross_entropy([values([1.0, 2.0, 3.0])], [3])
    with pytest.raises(ValueError, match=r"label 0.5 of row 0"):
        losses.softmax_cross_entropy([values([1.0, 2.0])], [0.5])


@given(st.lists(st.floats(-30, 30), min_size=2, max_size=5), st.data())
def test_softmax_cross_entropy_matches_torch_on_any_row(row, data):
    label = data.draw(st.integers(0, len(row) - 1))
    logits = values(row)
    t = tensor([row])
    check(
        losses.softmax_cross_entropy([logits], [label]), logits, F.cross_entropy(t, torch.tensor([label])), t, rel=1e-10
    )


def test_l2_is_alpha_times_the_sum_of_squares_as_one_node():
    params = values([0.5, -2.0, 3.0])
    loss = losses.l2(params, 1e-2)
    loss.backward()
    assert loss.data == pytest.approx(1e-2 * (0.25 + 4.0 + 9.0))
    assert [p.grad for p in params] == pytest.approx([2e-2 * p.data for p in params])
    assert sum(not v.is_leaf for v in topological_order(loss)) == 2  # the fused sum, then the scaling


def test_l2_without_the_nn_plugin_falls_back_to_plain_ops():
    params = values([0.5, -2.0])
    with using(Registry.from_plugins(minigrad_ops)):
        loss = losses.l2(params, 0.1)
        loss.backward()
    assert loss.data == pytest.approx(0.1 * 4.25)
    assert [p.grad for p in params] == pytest.approx([0.1, -0.4])


@pytest.mark.parametrize(
    "loss, predictions, labels",
    [
        (losses.mse, "preds", "targets"),
        (losses.hinge, "scores", "labels"),
        (losses.bce_with_logits, "logits", "labels"),
    ],
)
def test_predictions_and_labels_must_pair_up(loss, predictions, labels):
    """The error names the loss and both arguments as its signature names them."""
    with pytest.raises(ValueError) as error:
        loss(values([1.0, 1.0]), [1, 1, 1])
    assert str(error.value) == f"{loss.__name__}: 2 {predictions} but 3 {labels}; they must pair up"
    with pytest.raises(ValueError) as error:
        loss([], [])
    assert str(error.value) == (f"{loss.__name__}: no examples (empty {predictions}); the mean of nothing is undefined")


def test_softmax_rows_and_labels_must_pair_up():
    with pytest.raises(ValueError) as error:
        losses.softmax_cross_entropy([values([1.0, 2.0])], [0, 1])
    assert str(error.value) == "softmax_cross_entropy: 1 rows of logits but 2 labels; they must pair up"


def test_l2_of_no_parameters_says_so():
    with pytest.raises(ValueError) as error:
        losses.l2([], 0.1)
    assert str(error.value) == "l2: no parameters given"


def test_losses_backpropagate_to_a_model():
    model = minigrad_nn.MLP(2, [4, 1], nonlin="tanh", out_nonlin=None)
    scores = [model([0.5, -0.5]), model([-1.0, 2.0])]
    loss = losses.hinge(scores, [1, -1]) + losses.l2(model.parameters(), 1e-4)
    loss.backward()
    assert any(p.grad != 0.0 for p in model.parameters())


def test_a_recorded_softmax_label_is_checked_for_every_example_not_silently_fixed():
    """Picking z[label] reads the label's number: replay must not reuse the recorded class."""
    import numpy as np

    import minigrad_replay
    from minigrad_core import Value
    from minigrad_nn import MLP, seed
    from minigrad_nn.losses import softmax_cross_entropy
    from minigrad_replay import GraphChangedError

    seed(0)
    model = MLP(3, [4, 3], nonlin="relu", out_nonlin=None)
    X = np.random.default_rng(0).normal(size=(6, 3))
    y = np.array([0, 1, 2, 1, 0, 2])

    def loss(x, label):
        return softmax_cross_entropy([model.forward(list(x))], [label])

    tape = minigrad_replay.record(loss, X[0], y[0])
    assert tape.forward(X[4], y[4]) == loss(X[4], y[4]).data  # same label: replayed
    with pytest.raises(GraphChangedError):
        tape.forward(X[1], y[1])  # another label: refused, not computed with class 0
    middle = minigrad_replay.record(loss, X[1], y[1])  # class 1: a label above or below it is refused
    for i in (0, 2):
        with pytest.raises(GraphChangedError):
            middle.forward(X[i], y[i])
    with pytest.raises(GraphChangedError):
        minigrad_replay.record_batch(loss, X[0], y[0]).backward(X, y)
    assert softmax_cross_entropy([[Value(1.0), Value(2.0)]], [Value(1.0)]).data == pytest.approx(
        math.log(math.exp(1.0) + math.exp(2.0)) - 2.0
    )


@pytest.mark.parametrize(
    "loss, predictions, labels, expected",
    [
        (losses.mse, [1.0, 2.0], [3.0, 0.5], lambda p, y: F.mse_loss(p, y)),
        (losses.hinge, [0.5, -2.0], [1.0, 1.0], lambda p, y: torch.clamp(1 - y * p, min=0).mean()),
        (losses.bce_with_logits, [0.5, -1.0], [1.0, 0.0], F.binary_cross_entropy_with_logits),
    ],
)
def test_plain_number_predictions_give_a_value_as_torch_does(loss, predictions, labels, expected):
    """Predictions given as plain numbers (a model's output read back as floats) still give a Value."""
    result = loss(predictions, labels)
    p, y = (torch.tensor(xs, dtype=torch.float64) for xs in (predictions, labels))
    assert isinstance(result, Value)
    assert result.data == pytest.approx(expected(p, y).item(), rel=1e-14)


def test_softmax_cross_entropy_of_plain_number_logits_gives_a_value_as_torch_does():
    result = losses.softmax_cross_entropy([[0.5, -1.0, 2.0]], [1])
    assert isinstance(result, Value)
    expected = F.cross_entropy(torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64), torch.tensor([1]))
    assert result.data == pytest.approx(expected.item(), rel=1e-14)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: losses.mse(None, [1.0]), "mse: preds must be a Value, a number or a sequence of them, got None"),
        (lambda: losses.mse([1.0], None), "mse: targets must be a Value, a number or a sequence of them, got None"),
        (
            lambda: losses.softmax_cross_entropy([values([1.0, 2.0]), None], [0, 1]),
            "softmax_cross_entropy: row 1 of logits must be a Value, a number or a sequence of them, got None",
        ),
    ],
)
def test_an_argument_that_is_not_a_sequence_is_refused_naming_it(call, message):
    with pytest.raises(TypeError) as error:
        call()
    assert str(error.value) == message


def test_a_softmax_row_without_logits_is_refused_naming_its_index():
    with pytest.raises(ValueError) as error:
        losses.softmax_cross_entropy([values([1.0, 2.0]), []], [0, 1])
    assert str(error.value) == "softmax_cross_entropy: row 1 has no logits"


def test_a_masked_logit_of_minus_infinity_is_left_out_as_in_torch():
    """Masking a class with -inf (a common trick) gives it probability 0, and the rest is softmax as usual."""
    row = [-math.inf, 2.0, 0.5]
    logits = values(row)
    t = tensor([row])
    check(losses.softmax_cross_entropy([logits], [1]), logits, F.cross_entropy(t, torch.tensor([1])), t)
    expected = torch.logsumexp(torch.tensor(row, dtype=torch.float64), 0).item()
    assert losses.logsumexp(values(row)).data == pytest.approx(expected, rel=1e-14)


def test_logsumexp_of_an_infinite_logit_is_infinite_as_in_torch():
    """A row whose largest logit is inf cannot be shifted by it (inf - inf is nan): it is left unshifted."""
    row = [math.inf, 1.0]
    assert torch.logsumexp(torch.tensor(row, dtype=torch.float64), 0).item() == math.inf
    assert losses.logsumexp(values(row)).data == math.inf


@pytest.mark.parametrize("row", [[-math.inf, 1000.0, 999.0], [-1e308, 1e308, 0.0]])
def test_a_masked_row_or_one_of_extreme_logits_does_not_overflow(row):
    logits = values(row)
    t = tensor([row])
    loss = losses.softmax_cross_entropy([logits], [1])
    assert math.isfinite(loss.data)
    check(loss, logits, F.cross_entropy(t, torch.tensor([1])), t)
