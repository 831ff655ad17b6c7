"""Every registered op against PyTorch float64, generated from the registry.

Nothing here names an op: the cases come from ``get_registry().ops`` (the built-ins, the nn
plugin's ``weighted_sum``, the extras, any op installed tomorrow) and from each op's ``Domain``.
So a new op is covered the day it is registered.

1. Special points. The gradient checks elsewhere keep away from kinks on purpose; here we go
   straight at them: each input at 0 and -0, at every kink and finite bound the domain declares,
   one float inside each finite bound, at the finite values its parameters are tested with, and
   two inputs equal (the seam of maximum and minimum). At each point the value and every gradient
   of ``apply`` + ``backward`` must equal PyTorch's in float64 (nan where PyTorch gives nan, inf of
   the same sign where it gives inf). Where the op refuses an input (``OpDomainError``), PyTorch
   must have no finite value there either: we refuse poles, never real numbers.

2. Array rules, on whole batches (ordinary points of the domain plus every special point the
   scalar rule accepts): ``np_forward``, ``np_derivative`` and the derivative rule run on numpy
   arrays through the kernel's ``local_derivatives`` (what batched replay does when an op has no
   ``np_derivative``), each against ``torch.autograd.grad`` on the whole batch.

An op without a PyTorch equivalent is compared with its own scalar rule, example by example,
for its array rules (the message says so); at special points its derivative must lie between
the one-sided difference quotients of its forward rule (a subgradient), which is all a rule
can be held to without an oracle.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from minigrad_core import (
    Domain,
    MiniGradError,
    OpDomainError,
    OpSpec,
    Registry,
    Value,
    apply,
    evaluate,
    get_registry,
    hookimpl,
    local_derivatives,
    using,
)
from minigrad_testing.kit import allowed_intervals, parameter_values

REL, ABS = 1e-9, 1e-12
ORDINARY = (1.5, -0.7, 0.5)  # companions for the other input of a binary op (0.5: a square root)
VARIADIC_COUNTS = (1, 3, 5)  # input counts tried for an op of any arity (weighted_sum: 2n + 1)

# Where an op differs from PyTorch on purpose (each documented in the op's module):
# (op, what) -> why. ``what`` is "refuses" (we raise where PyTorch gives a number).
DELIBERATE = {
    ("tan", "refuses"): "tan(±inf) raises; PyTorch gives nan (minigrad_extras.elementary)",
}


# -- the registry, as test cases ------------------------------------------------------------------


def registered_ops() -> list[OpSpec]:
    return sorted(get_registry().ops.values(), key=lambda spec: spec.name)


def parameter_choices(spec: OpSpec) -> list[dict]:
    values = parameter_values(spec)
    names = sorted(values)
    return [dict(zip(names, combination)) for combination in itertools.product(*(values[n] for n in names))]


def _unique(points) -> list[float]:
    """Points without repeats; 0.0 and -0.0 count as two (their derivatives may differ in sign)."""
    seen, kept = set(), []
    for p in points:
        key = (p, math.copysign(1.0, p)) if p == p else "nan"
        if key not in seen:
            seen.add(key)
            kept.append(p)
    return kept


def special_points(domain: Domain, index: int, params: dict) -> list[float]:
    """Where input ``index`` is most likely to be wrong: 0, -0, every kink, every finite bound
    and the first float inside it, and the finite parameter values (clamp's low and high)."""
    low, high = domain.bounds_of(index)
    points = [0.0, -0.0, *domain.kinks_of(index)]
    if math.isfinite(low):
        points += [low, math.nextafter(low, math.inf)]
    if math.isfinite(high):
        points += [high, math.nextafter(high, -math.inf)]
    points += [float(v) for v in params.values() if isinstance(v, (int, float)) and math.isfinite(v)]
    return _unique(points)


def input_counts(spec: OpSpec) -> tuple[int, ...]:
    return (spec.arity,) if spec.arity is not None else VARIADIC_COUNTS


def special_cases(spec: OpSpec):
    """(inputs, params) at the op's special points, each input in turn and together."""
    for params in parameter_choices(spec):
        for count in input_counts(spec):
            per_input = [special_points(spec.domain, min(i, len(spec.domain.bounds) - 1), params) for i in range(count)]
            if count <= 2:  # every combination, ordinary companions included, and ties
                choices = [points + list(ORDINARY) for points in per_input]
                for inputs in itertools.product(*choices):
                    if not all(x in ORDINARY for x in inputs):
                        yield inputs, params
                if count == 2:
                    for x in _unique(per_input[0] + per_input[1] + list(ORDINARY)):
                        yield (x, x), params
            else:  # many inputs: one special input at a time, the others ordinary
                base = [ORDINARY[i % 2] for i in range(count)]
                for i, points in enumerate(per_input):
                    for x in points:
                        yield tuple([*base[:i], x, *base[i + 1 :]]), params


# -- the oracle -------------------------------------------------------------------------------------


def agree(ours: float, theirs: float, rel: float = REL, abs_: float = ABS) -> bool:
    if math.isnan(theirs) or math.isnan(ours):
        return math.isnan(theirs) and math.isnan(ours)
    if math.isinf(theirs) or math.isinf(ours):
        return ours == theirs
    return abs(ours - theirs) <= abs_ + rel * abs(theirs)


def same_zero(ours: float, theirs: float) -> bool:
    """A zero value has PyTorch's sign (relu(-0.0) is -0.0, sign(-0.0) is 0.0). Only values:
    a zero *gradient* may lose its sign, as the chain rule adds contributions to 0.0 (see
    docs/testing.md)."""
    return ours != 0 or theirs != 0 or math.copysign(1.0, ours) == math.copysign(1.0, theirs)


def torch_at(spec: OpSpec, inputs, params):
    """PyTorch's value and gradients (float64); gradients of an unused input are 0."""
    tensors = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in inputs]
    out = spec.torch(*tensors, **params)
    grads = torch.autograd.grad(out, tensors, allow_unused=True) if out.requires_grad else [None] * len(tensors)
    return out.item(), [0.0 if g is None else g.item() for g in grads]


def ours_at(spec: OpSpec, inputs, params):
    """Our value and gradients, through the whole scalar path: apply (forward) and backward."""
    values = [Value(x) for x in inputs]
    out = apply(spec, values, params)
    out.backward()
    return out.data, [v.grad for v in values]


def one_sided_quotients(spec: OpSpec, inputs, params, index: int, h: float = 1e-7):
    """(left, right) difference quotients of the forward rule in input ``index``."""

    def f(offset):
        moved = list(inputs)
        moved[index] += offset
        return evaluate(spec, moved, params)

    middle = f(0.0)
    return (middle - f(-h)) / h, (f(h) - middle) / h


def special_point_problems(spec: OpSpec) -> list[str]:
    """Every disagreement with the oracle at the op's special points, described."""
    problems = []
    for inputs, params in special_cases(spec):
        where = f"{spec.name}{tuple(inputs)}" + (f" {params}" if params else "")
        try:
            value, grads = ours_at(spec, inputs, params)
        except OpDomainError as error:
            if spec.torch is None:
                continue  # refusing is the op's call; without an oracle there is nothing to hold it to
            try:
                theirs, _ = torch_at(spec, inputs, params)
            except Exception:  # PyTorch refuses too
                continue
            if math.isfinite(theirs) and (spec.name, "refuses") not in DELIBERATE:
                problems.append(f"{where}: we refuse ({error}) where PyTorch gives {theirs!r}")
            continue
        except MiniGradError as error:
            problems.append(f"{where}: {type(error).__name__}: {error}")
            continue
        if spec.torch is None:
            for i, grad in enumerate(grads):
                left, right = one_sided_quotients(spec, inputs, params, i)
                low, high = min(left, right), max(left, right)
                slack = 1e-5 * (1 + abs(low) + abs(high))
                if not (low - slack <= grad <= high + slack):
                    problems.append(
                        f"{where}: d/d input {i} is {grad!r}, not between the one-sided "
                        f"difference quotients {left!r} and {right!r} (no PyTorch equivalent)"
                    )
            continue
        theirs, their_grads = torch_at(spec, inputs, params)
        if not (agree(value, theirs) and same_zero(value, theirs)):
            problems.append(f"{where}: value {value!r}, PyTorch {theirs!r}")
        for i, (grad, their_grad) in enumerate(zip(grads, their_grads)):
            if not agree(grad, their_grad):
                problems.append(f"{where}: d/d input {i} is {grad!r}, PyTorch {their_grad!r}")
    return problems


@pytest.mark.parametrize("spec", registered_ops(), ids=lambda spec: spec.name)
def test_op_at_its_special_points_matches_pytorch(spec):
    cases = list(special_cases(spec))
    assert cases, f"no special points for {spec.name}"
    problems = special_point_problems(spec)
    assert not problems, f"{len(problems)} disagreement(s):\n" + "\n".join(problems[:20])


# -- array rules on whole batches ------------------------------------------------------------------


def ordinary_column(domain: Domain, index: int, per_interval: int = 6) -> list[float]:
    """Points spread over the domain (within [-3, 3]), away from kinks and bounds."""
    points = []
    for a, b in allowed_intervals(domain, index, sample_range=(-3.0, 3.0), margin=1e-2):
        points += [float(x) for x in np.linspace(a, b, per_interval + 2)[1:-1]]
    return points


def batch_of(spec: OpSpec, params: dict, count: int) -> list[np.ndarray]:
    """One column per input: ordinary points (columns rotated against each other, so pairs
    differ), then every special point at which the scalar rules work, kinks and ties included."""
    columns = [ordinary_column(spec.domain, min(i, len(spec.domain.bounds) - 1)) for i in range(count)]
    size = max(len(c) for c in columns)
    rows = [tuple(c[(k + 3 * i) % len(c)] for i, c in enumerate(columns)) for k in range(size)]
    rows = [row for row in rows if spec.domain.contains(*row, **params)]
    for inputs, case_params in special_cases(spec):
        if case_params == params and len(inputs) == count:
            try:
                ours_at(spec, inputs, params)
            except MiniGradError:
                continue  # a point the scalar rule refuses is not in any batch
            rows.append(tuple(inputs))
    assert len(rows) >= 2, f"{spec.name}: no batch to test"
    return [np.array(column, dtype=float) for column in zip(*rows)]


def batch_reference(spec: OpSpec, columns, params):
    """Values and gradients for the batch, and the name of where they come from."""
    if spec.torch is not None:
        tensors = [torch.tensor(c, dtype=torch.float64, requires_grad=True) for c in columns]
        out = spec.torch(*tensors, **params)
        grads = torch.autograd.grad(out.sum(), tensors, allow_unused=True)
        size = len(columns[0])
        grads = [np.zeros(size) if g is None else g.detach().numpy() for g in grads]
        return out.detach().numpy(), grads, "PyTorch float64"
    rows = list(zip(*columns))
    outs = [evaluate(spec, row, params) for row in rows]
    partials = [local_derivatives(spec, row, out, params) for row, out in zip(rows, outs)]
    return np.array(outs), [np.array(p, dtype=float) for p in zip(*partials)], "the scalar rule at each example"


def array_disagreements(what: str, got, expected, columns, oracle: str) -> list[str]:
    got = np.broadcast_to(np.asarray(got, dtype=float), expected.shape)
    bad = [k for k in range(expected.size) if not agree(float(got[k]), float(expected[k]))]
    return [
        f"{what} at {tuple(float(c[k]) for c in columns)}: {float(got[k])!r}, {oracle} {float(expected[k])!r}"
        for k in bad[:5]
    ] + ([f"... and {len(bad) - 5} more"] if len(bad) > 5 else [])


def array_rule_problems(spec: OpSpec) -> tuple[list[str], list[str]]:
    """(disagreements, array forms checked) for one op over all its parameter choices."""
    problems, checked = [], set()
    for params in parameter_choices(spec):
        for count in input_counts(spec):
            columns = batch_of(spec, params, count)
            values, grads, oracle = batch_reference(spec, columns, params)
            ours = np.array([evaluate(spec, row, params) for row in zip(*columns)])
            label = f"{spec.name}" + (f" {params}" if params else "")
            # the outputs the batched pass hands to the derivative rules are our own
            with np.errstate(all="ignore"):
                if spec.np_forward is not None:
                    checked.add("np_forward")
                    problems += array_disagreements(
                        f"{label} np_forward", spec.np_forward(*columns, **params), values, columns, oracle
                    )
                if spec.np_derivative is not None:
                    checked.add("np_derivative")
                    partials = spec.np_derivative(*columns, ours, **params)
                    assert len(partials) == count, f"{label}: np_derivative gave {len(partials)} partials"
                    for i, (partial, expected) in enumerate(zip(partials, grads)):
                        problems += array_disagreements(
                            f"{label} np_derivative d/d input {i}", partial, expected, columns, oracle
                        )
                try:
                    partials = local_derivatives(spec, columns, ours, params)
                except MiniGradError:
                    # its rule needs one number at a time (a Python `if`): batched replay runs it
                    # example by example, or uses np_derivative, checked above
                    continue
                checked.add("derivative rule on arrays")
                for i, (partial, expected) in enumerate(zip(partials, grads)):
                    problems += array_disagreements(
                        f"{label} derivative rule on arrays d/d input {i}", partial, expected, columns, oracle
                    )
    return problems, sorted(checked)


@pytest.mark.parametrize("spec", registered_ops(), ids=lambda spec: spec.name)
def test_op_array_rules_match_pytorch_on_a_batch(spec):
    problems, checked = array_rule_problems(spec)
    assert not problems, f"{len(problems)} disagreement(s):\n" + "\n".join(problems[:20])
    if spec.np_forward is not None or spec.np_derivative is not None:
        assert checked, f"{spec.name}: has numpy rules, but none was checked"


def test_every_op_has_at_least_one_array_derivative_checked():
    """Batched training needs a derivative on arrays: np_derivative, or the rule itself."""
    missing = [
        spec.name
        for spec in registered_ops()
        if not ({"np_derivative", "derivative rule on arrays"} & set(array_rule_problems(spec)[1]))
    ]
    assert missing == []


# -- the generator itself: it sees a new op, and it catches bugs at kinks and in array rules ------


def _cube(x):
    return x * x * x


NEW_OPS = [
    # a new op with no PyTorch equivalent: checked against its own scalar rule and the
    # one-sided difference quotients
    OpSpec(
        name="cube",
        arity=1,
        forward=_cube,
        derivative=lambda x, out: (3 * x * x,),
        np_forward=_cube,
        np_derivative=lambda x, out: (3 * x * x,),
    ),
    # a relu whose derivative at 0 is 2: outside [0, 1], whatever convention one picks
    OpSpec(
        name="bad_relu",
        arity=1,
        forward=lambda x: max(x, 0.0),
        derivative=lambda x, out: (1.0 - (x < 0) + (x == 0),),
        domain=Domain(kinks=(0.0,)),
    ),
    # a relu whose derivative at 0 is 1 (PyTorch: 0), with a torch equivalent
    OpSpec(
        name="relu_one_at_zero",
        arity=1,
        forward=lambda x: max(x, 0.0),
        derivative=lambda x, out: (1.0 - (x < 0),),
        domain=Domain(kinks=(0.0,)),
        torch=lambda x: x.relu(),
    ),
    # a sigmoid whose numpy derivative has the wrong sign
    OpSpec(
        name="sigmoid_flipped",
        arity=1,
        forward=lambda x: 1 / (1 + math.exp(-x)),
        derivative=lambda x, out: (out * (1 - out),),
        torch=lambda x: x.sigmoid(),
        np_forward=lambda x: 1 / (1 + np.exp(-x)),
        np_derivative=lambda x, out: (-out * (1 - out),),
    ),
]


class NewOps:
    @hookimpl
    def minigrad_register_ops(self, register):
        for spec in NEW_OPS:
            register(spec)


@pytest.fixture(scope="module")
def new_ops():
    registry = Registry.from_plugins(NewOps())
    with using(registry):
        yield registry


def test_a_new_op_is_in_the_generated_cases(new_ops):
    assert {"cube", "bad_relu", "relu_one_at_zero", "sigmoid_flipped"} <= {s.name for s in registered_ops()}


def test_an_op_without_pytorch_is_checked_against_its_own_rules(new_ops):
    cube = new_ops.get("cube")
    assert special_point_problems(cube) == []
    problems, checked = array_rule_problems(cube)
    assert problems == [] and checked == ["derivative rule on arrays", "np_derivative", "np_forward"]
    assert batch_reference(cube, [np.array([1.0, 2.0])], {})[2] == "the scalar rule at each example"


def test_a_wrong_derivative_at_a_kink_is_caught(new_ops):
    assert any("not between the one-sided" in p for p in special_point_problems(new_ops.get("bad_relu")))
    assert any(
        "relu_one_at_zero(0.0,): d/d input 0 is 1.0, PyTorch 0.0" in p
        for p in special_point_problems(new_ops.get("relu_one_at_zero"))
    )


def test_a_wrong_numpy_derivative_is_caught(new_ops):
    problems, _ = array_rule_problems(new_ops.get("sigmoid_flipped"))
    assert problems and all("np_derivative" in p for p in problems if not p.startswith("..."))
