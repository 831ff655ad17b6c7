"""A testing kit for op authors: gradient checks that need no hand-picked test cases.

    from minigrad_testing import check_op, check_grads

    check_op("tanh")              # each local derivative vs finite differences (and PyTorch)
    check_op("tanh", order=2)     # ... and the derivative of the derivative rule
    check_grads(lambda x, y: (x * y).tanh(), 0.5, -1.2)

``check_op`` draws inputs with hypothesis from the op's declared ``Domain`` (inside its
bounds, a little away from its kinks, where its ``where`` predicate holds, with each of
the parameter values it lists) and, at each, compares the partials that the op's
``derivative`` rule returns with

- central differences of the op's own ``forward`` rule, and
- ``torch.autograd.grad`` of ``spec.torch`` in float64, when the spec names a PyTorch
  equivalent and torch is installed.

A mismatch raises ``GradientCheckError`` (an ``AssertionError``) whose message says which
op, which input, what each method expected and what the rule gave.

The hypothesis strategies behind it are public: ``op_inputs(spec)`` draws valid inputs for
one op, ``expressions()`` draws random expressions over all registered ops that can be
built both as a MiniGrad graph and as the same computation in PyTorch.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

try:
    from hypothesis import Phase, assume, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import FailedHealthCheck, Unsatisfiable
except ImportError as error:  # a test dependency, not one of MiniGrad's own
    raise ImportError("minigrad_testing draws its inputs with hypothesis: pip install hypothesis") from error

from minigrad_core import (
    Domain,
    HigherOrderError,
    MiniGradError,
    OpDomainError,
    OpSpec,
    OpSpecError,
    Registry,
    Value,
    apply,
    backward,
    evaluate,
    get_registry,
    local_derivatives,
    using,
)

__all__ = [
    "check_op",
    "check_grads",
    "op_inputs",
    "expressions",
    "allowed_intervals",
    "GradientCheckError",
    "OpCheckResult",
    "OpExample",
    "RandomExpression",
]

EPS = sys.float_info.epsilon
# Central differences err by ~h² (truncation) and by ~eps/h (rounding): h = eps^(1/3)
# times the scale of the input balances the two.
STEP = EPS ** (1 / 3)
SAMPLE_RANGE = (-10.0, 10.0)  # where inputs are drawn when the domain is wider
KINK_MARGIN = 1e-3  # keep this far (times max(1, |kink|)) from kinks and finite bounds
RTOL, ATOL = 1e-5, 1e-7  # against finite differences (plus their own error estimate)
TORCH_RTOL, TORCH_ATOL = 1e-7, 1e-10  # against PyTorch: both are exact formulas
MAX_VARIADIC_INPUTS = 5


class GradientCheckError(AssertionError):
    """A derivative disagrees with finite differences or with PyTorch (the message says where)."""


class OpExample(NamedTuple):
    """One drawn input of an op: its input values and its parameters."""

    inputs: tuple[float, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class OpCheckResult:
    """What ``check_op`` checked (it raises on a failure, so a result means it passed)."""

    op: str
    plugin: str
    order: int
    examples: int  # inputs checked
    oracles: tuple[str, ...]  # "finite differences", and "PyTorch" when it took part


# -- drawing inputs from an op's domain ----------------------------------------------------------


def allowed_intervals(
    domain: Domain, index: int, sample_range=SAMPLE_RANGE, margin: float = KINK_MARGIN
) -> list[tuple[float, float]]:
    """The closed intervals to draw input ``index`` from: the domain's bounds within the
    sampling range, with a gap of ``margin * max(1, |point|)`` around each kink and finite bound."""
    low, high = _bounds_of(domain, index)
    sample_low, sample_high = sample_range
    lo, hi = max(low, sample_low), min(high, sample_high)
    if lo >= hi:  # the domain lies outside the sampling range: sample right next to it
        width = sample_high - sample_low
        lo, hi = (max(low, high - width), high) if high <= sample_low else (low, min(high, low + width))
    intervals = [(lo, hi)]
    for point in (*_kinks_of(domain, index), low, high):
        if not math.isfinite(point):
            continue
        gap = margin * max(1.0, abs(point))
        cut = []
        for a, b in intervals:
            if b < point - gap or a > point + gap:
                cut.append((a, b))
                continue
            if a < point - gap:
                cut.append((a, point - gap))
            if b > point + gap:
                cut.append((point + gap, b))
        intervals = cut
    return [(a, b) for a, b in intervals if b > a]


def _bounds_of(domain: Domain, index: int) -> tuple[float, float]:
    pairs = cast(tuple[tuple[float, float], ...], domain.bounds)  # the per-input form Domain keeps
    return pairs[min(index, len(pairs) - 1)]


def _kinks_of(domain: Domain, index: int) -> tuple[float, ...]:
    points = cast(tuple[tuple[float, ...], ...], domain.kinks)  # the per-input form Domain keeps
    if not points:
        return ()
    return tuple(points[min(index, len(points) - 1)])


def _room(domain: Domain, index: int, x: float) -> float:
    """How far ``x`` is from the nearest kink or finite bound of input ``index``."""
    points = [p for p in (*_kinks_of(domain, index), *_bounds_of(domain, index)) if math.isfinite(p)]
    return min((abs(x - p) for p in points), default=math.inf)


def parameter_values(spec: OpSpec) -> dict[str, tuple]:
    """The values each parameter is tested with: ``domain.params``, else its default."""
    values = {}
    for name, default in spec.params.items():
        listed = tuple(spec.domain.params.get(name, ()))
        if listed:
            values[name] = listed
        elif default is not None:
            values[name] = (default,)
        else:
            raise OpSpecError(
                f"op {spec.name!r} (plugin {spec.plugin!r}) needs a value for its parameter {name!r} to be "
                f"tested: list some in its domain, e.g. Domain(params={{{name!r}: (2, 0.5, -1)}})"
            )
    return values


def _input_strategy(domain: Domain, index: int, sample_range, margin):
    intervals = allowed_intervals(domain, index, sample_range, margin)
    if not intervals:
        raise OpSpecError(
            f"the domain {domain.description!r} leaves nothing to draw input {index} from "
            f"(bounds {_bounds_of(domain, index)}, kinks {_kinks_of(domain, index)})"
        )
    return st.one_of([st.floats(a, b, allow_nan=False, allow_infinity=False) for a, b in intervals])


def op_inputs(
    spec: OpSpec, *, sample_range=SAMPLE_RANGE, margin: float = KINK_MARGIN, max_inputs: int = MAX_VARIADIC_INPUTS
) -> st.SearchStrategy[OpExample]:
    """A hypothesis strategy of valid inputs for ``spec``: ``OpExample(inputs, params)``.

    Inputs lie inside the domain's bounds (intersected with ``sample_range``), at least
    ``margin`` (relative) away from its kinks and finite bounds, and satisfy its ``where``;
    parameters take the values listed in ``domain.params``. A variadic op gets 1 to
    ``max_inputs`` inputs (the counts its forward accepts).
    """
    params = parameter_values(spec)
    domain = spec.domain
    arity = spec.arity
    per_input = [
        _input_strategy(domain, i, sample_range, margin) for i in range(arity if arity is not None else max_inputs)
    ]
    counts = (arity,) if arity is not None else _input_counts(spec, params, max_inputs)

    @st.composite
    def examples(draw):
        chosen = {name: draw(st.sampled_from(values)) for name, values in params.items()}
        count = draw(st.sampled_from(counts))
        inputs = tuple(draw(per_input[i]) for i in range(count))
        assume(_where(domain, inputs, chosen))
        return OpExample(inputs, chosen)

    return examples()


def _input_counts(spec: OpSpec, params: Mapping[str, tuple], max_inputs: int) -> tuple[int, ...]:
    """How many inputs a variadic op accepts, up to ``max_inputs``: a count its forward
    refuses with a TypeError (a wrong call shape, say 2n + 1 inputs expected) is left out."""
    first = {name: values[0] for name, values in params.items()}
    accepted = []
    for count in range(1, max_inputs + 1):
        try:
            evaluate(spec, [0.5] * count, first)
        except TypeError:
            continue
        except Exception:
            pass
        accepted.append(count)
    if not accepted:
        raise OpSpecError(
            f"{_who(spec)} accepts none of 1 to {max_inputs} inputs (its forward raised TypeError "
            f"for each): there is nothing to check"
        )
    return tuple(accepted)


def _where(domain: Domain, inputs, params) -> bool:
    return domain.where is None or bool(domain.where(*inputs, **params))


# -- comparing numbers and reporting ------------------------------------------------------------


@dataclass
class _Comparison:
    quantity: str  # e.g. "d out / d x"
    got: float  # what the rule under test gave
    expected: float
    allowed: float
    oracle: str  # e.g. "finite differences"
    trusted: bool = True  # False: this oracle disagrees with finite differences here, so it does not judge

    @property
    def ok(self) -> bool:
        return _close(self.got, self.expected, self.allowed)

    @property
    def failed(self) -> bool:
        return self.trusted and not self.ok


def _close(a: float, b: float, allowed: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= allowed


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def _report(title: str, where: list[str], comparisons: list[_Comparison], notes: list[str]) -> str:
    lines = [title] + [f"  {line}" for line in where]
    by_quantity: dict[str, list[_Comparison]] = {}
    for c in comparisons:
        by_quantity.setdefault(c.quantity, []).append(c)
    for quantity, rows in by_quantity.items():
        if not any(c.failed for c in rows):
            continue
        width = max(len("the rule under test:"), *(len(c.oracle) + 1 for c in rows)) + 2
        lines.append(f"  {quantity}:")
        lines.append(f"    {'the rule under test:':<{width}}{_fmt(rows[0].got)}")
        for c in rows:
            if c.ok:
                verdict = "agrees"
            elif not c.trusted:
                verdict = "(disagrees with finite differences at this point, so it does not count)"
            else:
                verdict = f"WRONG: off by {abs(c.got - c.expected):.3g} (allowed {c.allowed:.3g})"
            lines.append(f"    {c.oracle + ':':<{width}}{_fmt(c.expected):<20}{verdict}")
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def _agree(
    quantity: str, got: float, expected: float, oracle: str, rtol: float, atol: float, error: float = 0.0
) -> _Comparison:
    return _Comparison(quantity, got, expected, atol + rtol * abs(expected) + error, oracle)


def _oracle(
    quantity: str,
    got: float,
    expected: float,
    oracle: str,
    finite_difference: _Comparison | None,
    rtol: float = TORCH_RTOL,
    atol: float = TORCH_ATOL,
) -> _Comparison:
    """A comparison with PyTorch. Where PyTorch itself disagrees with finite differences
    (a convention at a special point, e.g. the derivative of a ** b at b = 0), it does not judge."""
    comparison = _agree(quantity, got, expected, oracle, rtol, atol)
    if finite_difference is not None:
        comparison.trusted = _close(expected, finite_difference.expected, finite_difference.allowed)
    return comparison


def _central_difference(
    f: Callable[[list[float]], float], point: Sequence[float], index: int, h: float
) -> tuple[float, float]:
    """d f / d point[index] by central differences with step ``h``, and an error estimate
    (how much the step-2h estimate differs, plus the rounding of f's values)."""
    x = point[index]

    def at(offset: float) -> tuple[float, float]:
        moved = list(point)
        moved[index] = x + offset
        return f(moved), moved[index]

    (f1, x1), (f_1, x_1) = at(h), at(-h)
    (f2, x2), (f_2, x_2) = at(2 * h), at(-2 * h)
    near = (f1 - f_1) / (x1 - x_1)  # divide by the distance the floats really moved
    far = (f2 - f_2) / (x2 - x_2)
    rounding = 4 * EPS * max(abs(f1), abs(f_1), abs(f2), abs(f_2)) / h
    return near, abs(near - far) + rounding


# -- torch, when it is installed --------------------------------------------------------------

_torch_module: Any = None


def _torch():
    global _torch_module
    if _torch_module is None:
        try:
            import torch
        except ImportError:
            _torch_module = False
        else:
            _torch_module = torch
    return _torch_module or None


def _torch_derivatives(fn: Callable, inputs: Sequence[float], params: Mapping, order: int):
    """(value, gradient, Hessian or None) of ``fn`` on float64 tensors."""
    torch = _torch()
    tensors = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in inputs]
    out = fn(*tensors, **params)
    if not isinstance(out, torch.Tensor):
        out = torch.tensor(float(out), dtype=torch.float64)
    n = len(tensors)
    if not out.requires_grad:  # a constant
        zeros = [0.0] * n
        return out.item(), zeros, [zeros[:] for _ in range(n)] if order > 1 else None
    first = torch.autograd.grad(out, tensors, create_graph=order > 1, allow_unused=True)
    gradient = [0.0 if g is None else g.item() for g in first]
    hessian = None
    if order > 1:
        hessian = []
        for g in first:
            if g is None or not g.requires_grad:
                hessian.append([0.0] * n)
                continue
            row = torch.autograd.grad(g, tensors, retain_graph=True, allow_unused=True)
            hessian.append([0.0 if r is None else r.item() for r in row])
    return out.item(), gradient, hessian


# -- second derivatives on the graph --------------------------------------------------------------


def _graph_derivatives(build: Callable[[list[Value]], Value], point: Sequence[float]):
    """First derivatives as Values (backward with create_graph=True), then each of them
    differentiated again: (gradient, Hessian) as numbers. Raises HigherOrderError when a
    derivative rule works on numbers only."""
    xs = [Value(x) for x in point]
    out = build(xs)
    if not isinstance(out, Value):
        zeros = [0.0] * len(xs)
        return zeros, [zeros[:] for _ in xs]
    backward(out, create_graph=True)
    first = [x.grad if isinstance(x.grad, Value) else Value(x.grad) for x in xs]
    hessian = []
    for partial in first:
        for x in xs:
            x.grad = 0.0
        partial.backward()
        hessian.append([float(x.grad.data if isinstance(x.grad, Value) else x.grad) for x in xs])
    return [p.data for p in first], hessian


# -- check_op -------------------------------------------------------------------------------------


def _resolve(op: str | OpSpec, registry: Registry | None) -> OpSpec:
    if isinstance(op, OpSpec):
        return op
    return (registry or get_registry()).get(op)


def _who(spec: OpSpec) -> str:
    return f"op {spec.name!r}" + (f" (plugin {spec.plugin!r})" if spec.plugin else "")


def _call_derivative(spec: OpSpec, inputs: Sequence, out, params: Mapping) -> list[float]:
    """The rule's partials through the kernel's own call (the checks backward() makes);
    a rule that is wrong or raises is reported in the kit's words, with its formula."""
    try:
        partials = local_derivatives(spec, list(inputs), out, dict(params) or None)
        return [float(p.data if isinstance(p, Value) else p) for p in partials]
    except (OpSpecError, TypeError, ValueError, ArithmeticError) as error:
        if isinstance(error, HigherOrderError):
            raise
        report = _rule_report(spec, inputs, params, error)
        if isinstance(error, OpDomainError):  # e.g. a division by zero at a point the domain allows
            report += (
                "\n  The forward rule is defined here, so the derivative rule must be too. If the derivative "
                "really is undefined at this point, declare it in the op's Domain (kinks=... or bounds=...)."
            )
        raise GradientCheckError(report) from error
    except MiniGradError as error:
        raise GradientCheckError(_rule_report(spec, inputs, params, error)) from error


def _rule_report(spec: OpSpec, inputs: Sequence, params: Mapping, error: Exception) -> str:
    names = _input_names(spec, len(inputs))
    at = ", ".join(f"{n} = {_fmt(float(x.data if isinstance(x, Value) else x))}" for n, x in zip(names, inputs))
    at += "".join(f", {k} = {v!r}" for k, v in params.items())
    lines = [f"the derivative rule of {_who(spec)} failed at {at}", f"  {error}"]
    if spec.derivative_formula:
        lines.append(
            "  its formula: " + "; ".join(f"d out / d {n} = {f}" for n, f in zip(names, spec.derivative_formula))
        )
    return "\n".join(lines)


def _input_names(spec: OpSpec, count: int) -> list[str]:
    names = list(spec.input_names)
    if spec.arity is None or len(names) != count:
        names = [f"x{i}" for i in range(count)]
    return names


def _step(spec: OpSpec, inputs: Sequence[float], index: int, params: Mapping) -> float | None:
    """A finite-difference step for input ``index`` whose stencil (x ± h, x ± 2h) stays
    inside the domain and away from kinks; None when there is none."""
    x = inputs[index]
    scale = min(max(1.0, abs(x)), _room(spec.domain, index, x))
    h = STEP * scale
    for _ in range(4):
        stencil_ok = True
        for offset in (h, -h, 2 * h, -2 * h):
            moved = list(inputs)
            moved[index] = x + offset
            if not spec.domain.contains(*moved, **params):
                stencil_ok = False
                break
        if stencil_ok:
            return h
        h /= 16
    return None


def _check_op_example(
    spec: OpSpec, inputs: tuple, params: dict, order: int, use_torch: bool, rtol: float, atol: float
) -> bool:
    """Check one example; returns False when it cannot be checked (then it is skipped)."""
    names = _input_names(spec, len(inputs))
    where = [
        "at "
        + ", ".join(f"{n} = {_fmt(x)}" for n, x in zip(names, inputs))
        + "".join(f", {k} = {v!r}" for k, v in params.items())
    ]

    def forward(point: Sequence[float]) -> float:
        try:
            return evaluate(spec, list(point), params)
        except OpDomainError as error:
            raise GradientCheckError(
                f"{_who(spec)}: forward raised {type(error).__name__} at an input its domain allows "
                f"({spec.domain.description}):\n  {error}\n  Declare the domain precisely (bounds, kinks, "
                f"where) so that checks and users know where the op is defined."
            ) from error

    out = forward(inputs)
    if not math.isfinite(out):
        return False  # overflow: no derivative to compare
    where.append(f"out = {spec.describe()} = {_fmt(out)}")
    found_steps = [_step(spec, inputs, i, params) for i in range(len(inputs))]
    steps = [h for h in found_steps if h is not None]
    if len(steps) < len(found_steps):
        return False  # an input with no room for the finite-difference stencil
    got = _call_derivative(spec, inputs, out, params)

    first_fd = []
    for i, (name, h) in enumerate(zip(names, steps)):
        expected, error = _central_difference(forward, inputs, i, h)
        first_fd.append(_agree(f"d out / d {name}", got[i], expected, "finite differences", rtol, atol, error))
    comparisons = list(first_fd)
    second_fd = []
    notes = []
    if spec.derivative_formula:
        notes.append(
            "its derivative_formula says: "
            + ", ".join(f"d out / d {n} = {f}" for n, f in zip(names, spec.derivative_formula))
        )
    notes.append(
        "(finite differences = (forward(x + h) - forward(x - h)) / 2h, with h ~ 6e-6 times the scale of x"
        + ("; PyTorch = torch.autograd.grad of spec.torch in float64)" if use_torch else ")")
    )

    if order > 1:
        graph_first, hessian = _graph_derivatives(lambda xs: apply(spec, xs, params), inputs)
        for i, name in enumerate(names):
            comparisons.append(
                _agree(
                    f"d out / d {name}", got[i], graph_first[i], "the same rule run on Values", TORCH_RTOL, TORCH_ATOL
                )
            )

        def partial(i: int) -> Callable[[list[float]], float]:
            return lambda point: _call_derivative(spec, point, forward(point), params)[i]

        hessian_fd = [
            [_central_difference(partial(i), inputs, j, steps[j]) for j in range(len(inputs))]
            for i in range(len(inputs))
        ]
        for i, j in itertools.product(range(len(inputs)), repeat=2):
            expected, error = hessian_fd[i][j]
            quantity = f"d² out / d {names[i]} d {names[j]}"
            second_fd.append(
                _agree(quantity, hessian[i][j], expected, "finite differences of the rule", rtol, atol, error)
            )
        comparisons += second_fd
        notes.append(
            "(second derivatives: the derivative rule run on Values with backward(create_graph=True), "
            "then backward() again; compared with finite differences of the rule)"
        )

    if use_torch:
        assert spec.torch is not None  # check_op asks for PyTorch only when the spec names it
        t_out, t_grad, t_hessian = _torch_derivatives(spec.torch, inputs, params, order)
        comparisons.append(_oracle("out", out, t_out, "PyTorch (spec.torch)", None))
        for i, name in enumerate(names):
            comparisons.append(_oracle(f"d out / d {name}", got[i], t_grad[i], "PyTorch autograd", first_fd[i]))
        if order > 1:
            for (i, j), fd in zip(itertools.product(range(len(inputs)), repeat=2), second_fd):
                comparisons.append(_oracle(fd.quantity, hessian[i][j], t_hessian[i][j], "PyTorch autograd", fd))
    if any(c.failed for c in comparisons):
        title = f"Gradient check failed for {_who(spec)}: {spec.describe()}"
        raise GradientCheckError(_report(title, where, comparisons, notes))
    return True


def check_op(
    op: str | OpSpec,
    order: int = 1,
    *,
    registry: Registry | None = None,
    max_examples: int | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    use_torch: bool | None = None,
    sample_range=SAMPLE_RANGE,
    margin: float = KINK_MARGIN,
) -> OpCheckResult:
    """Check an op's derivative rule on inputs drawn from its domain; raise on a mismatch.

    ``op`` is a registered op's name or an ``OpSpec`` (registered or not). ``order=2`` also
    checks the second derivatives (the derivative rule differentiated on Values); an op whose
    rule works on numbers only raises ``HigherOrderError`` then. ``use_torch`` (default: when
    torch is installed and the spec names ``torch``) adds PyTorch as a second oracle.
    ``max_examples`` defaults to the active hypothesis profile's.
    """
    if order not in (1, 2):
        raise ValueError(f"check_op checks order 1 or 2, not {order!r}")
    spec = _resolve(op, registry)
    if order == 2 and spec.higher_order is False:
        raise HigherOrderError(
            f"check_op({spec.name!r}, order=2): second derivatives are not supported by {_who(spec)}: "
            f"its OpSpec says higher_order=False (its derivative rule works on numbers only)"
        )
    if use_torch is None:
        use_torch = spec.torch is not None and _torch() is not None
    elif use_torch and (spec.torch is None or _torch() is None):
        raise ValueError(
            f"check_op({spec.name!r}, use_torch=True): "
            + ("torch is not installed" if _torch() is None else "the OpSpec names no torch equivalent")
        )
    checked = []

    def check_one(example: OpExample) -> None:
        assume(_check_op_example(spec, example.inputs, example.params, order, use_torch, rtol, atol))
        checked.append(example)

    # Timing is not what is checked here (the first call may import torch): no deadline. Nor are
    # hypothesis's list of lines only failing examples ran, or its blob to replay a test case
    # with a decorator (there is no decorated test here): the report says what failed.
    limits: dict[str, Any] = {
        "deadline": None,
        "print_blob": False,
        "report_multiple_bugs": False,  # one clear report, not an exception group of every failure found
        "phases": [p for p in settings().phases if p is not Phase.explain],
    }
    if max_examples is not None:
        limits["max_examples"] = max_examples
    test = settings(**limits)(given(op_inputs(spec, sample_range=sample_range, margin=margin))(check_one))
    nothing_checked = GradientCheckError(
        f"check_op: no input of {_who(spec)} could be checked: every one drawn from its domain "
        f"({spec.domain.description}) was refused by its `where`, overflowed, or sat on its edge"
    )
    try:
        with using(registry) if registry is not None else contextlib.nullcontext():
            test()
    except HigherOrderError as error:
        raise HigherOrderError(
            f"check_op({spec.name!r}, order=2): second derivatives are not supported: {error}"
        ) from None
    except Unsatisfiable:
        raise nothing_checked from None
    except FailedHealthCheck as error:
        raise GradientCheckError(
            f"check_op: too few inputs drawn for {_who(spec)} were valid: its domain ({spec.domain.description}) "
            f"refuses most of {sample_range} (its `where`, bounds or kinks), so hypothesis gave up. Give "
            f"check_op a sample_range where the op is mostly defined. (hypothesis: {str(error).splitlines()[0]})"
        ) from None
    if not checked:
        raise nothing_checked
    oracles = ("finite differences",) + (("PyTorch",) if use_torch else ())
    return OpCheckResult(spec.name, spec.plugin, order, len(checked), oracles)


# -- check_grads: a whole function of Values -----------------------------------------------------


def check_grads(
    f: Callable[..., Value],
    *inputs: float,
    order: int = 1,
    rtol: float = RTOL,
    atol: float = ATOL,
    torch_fn: Callable | None = None,
) -> tuple[float, ...]:
    """Check the gradient of ``f`` (Values in, one Value out) at ``inputs`` against central
    differences of ``f`` itself, and against ``torch_fn`` (the same function on torch tensors)
    when given. ``order=2`` checks the second derivatives too. Returns the gradient."""
    if order not in (1, 2):
        raise ValueError(f"check_grads checks order 1 or 2, not {order!r}")
    point = [float(x.data if isinstance(x, Value) else x) for x in inputs]
    names = _argument_names(f, len(point))
    name = getattr(f, "__name__", "f")
    where = ["at " + ", ".join(f"{n} = {_fmt(x)}" for n, x in zip(names, point))]

    def value_at(p: list[float]) -> float:
        out = f(*[Value(x) for x in p])
        return out.data if isinstance(out, Value) else float(out)

    def gradient_at(p: list[float]) -> list[float]:
        xs = [Value(x) for x in p]
        out = f(*xs)
        if isinstance(out, Value):
            out.backward()
        return [float(x.grad) for x in xs]

    def gradient_component(i: int) -> Callable[[list[float]], float]:
        return lambda p: gradient_at(p)[i]

    xs = [Value(x) for x in point]
    out = f(*xs)
    if not isinstance(out, Value):
        raise TypeError(f"check_grads: {name} must return a Value, got {out!r} of type {type(out).__name__}")
    out.backward()
    got = [float(x.grad) for x in xs]
    where.append(f"out = {_fmt(out.data)}")
    steps = [STEP * max(1.0, abs(x)) for x in point]
    comparisons = []
    for i, n in enumerate(names):
        expected, error = _central_difference(value_at, point, i, steps[i])
        comparisons.append(_agree(f"d out / d {n}", got[i], expected, "finite differences", rtol, atol, error))
    first_fd, second_fd = list(comparisons), []
    if order > 1:
        _, hessian = _graph_derivatives(lambda vs: f(*vs), point)
        for i, j in itertools.product(range(len(point)), repeat=2):
            expected, error = _central_difference(gradient_component(i), point, j, steps[j])
            second_fd.append(
                _agree(
                    f"d² out / d {names[i]} d {names[j]}",
                    hessian[i][j],
                    expected,
                    "finite differences of the gradient",
                    rtol,
                    atol,
                    error,
                )
            )
        comparisons += second_fd
    if torch_fn is not None:
        t_out, t_grad, t_hessian = _torch_derivatives(torch_fn, point, {}, order)
        loose = 10 * TORCH_RTOL  # a composed function rounds differently in each engine
        comparisons.append(_oracle("out", out.data, t_out, "PyTorch", None, loose))
        for i, n in enumerate(names):
            comparisons.append(_oracle(f"d out / d {n}", got[i], t_grad[i], "PyTorch autograd", first_fd[i], loose))
        if order > 1:
            for (i, j), fd in zip(itertools.product(range(len(point)), repeat=2), second_fd):
                comparisons.append(_oracle(fd.quantity, hessian[i][j], t_hessian[i][j], "PyTorch autograd", fd, loose))
    if any(c.failed for c in comparisons):
        raise GradientCheckError(_report(f"Gradient check failed for {_describe(f)}", where, comparisons, []))
    return tuple(got)


def _argument_names(f: Callable, count: int) -> list[str]:
    try:
        parameters = [
            p
            for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        parameters = []
    if len(parameters) == count:
        return [p.name for p in parameters]
    return [f"x{i}" for i in range(count)]


def _describe(f: Callable) -> str:
    if isinstance(f, RandomExpression):
        return f"the expression {f}"
    name = getattr(f, "__name__", repr(f))
    return "a lambda" if name == "<lambda>" else f"function {name!r}"


# -- random expressions over the registered ops ---------------------------------------------------


@dataclass(frozen=True)
class _Variable:
    index: int

    def text(self) -> str:
        return f"x{self.index}"


@dataclass(frozen=True)
class _Constant:
    value: float

    def text(self) -> str:
        return _fmt(self.value) if self.value >= 0 else f"({_fmt(self.value)})"


@dataclass(frozen=True)
class _Call:
    spec: OpSpec
    args: tuple
    params: tuple = ()  # (name, value) pairs

    def text(self) -> str:
        args = [a.text() for a in self.args]
        symbol, params = self.spec.label, dict(self.params)
        if not symbol.isidentifier():
            if len(args) == 2 and not params:
                return f"({args[0]} {symbol} {args[1]})"
            if len(args) == 1 and len(params) == 1:
                return f"({args[0]} {symbol} {_fmt(next(iter(params.values())))})"
            if len(args) == 1 and not params:
                return f"{symbol}{args[0]}" if args[0].startswith("(") else f"{symbol}({args[0]})"
        shown = args + [f"{k}={v!r}" for k, v in self.params]
        return f"{self.spec.name}({', '.join(shown)})"


@dataclass(frozen=True)
class RandomExpression:
    """A random expression over the registered ops, with values for its variables.

    Call it with Values (or numbers) to build the MiniGrad graph; call ``torch`` with
    tensors to compute the same expression in PyTorch (each op's ``spec.torch``):

        out = expr(*[Value(x) for x in expr.inputs])
        check_grads(expr, *expr.inputs, torch_fn=expr.torch)
    """

    root: Any
    inputs: tuple[float, ...]
    ops: frozenset = field(default_factory=frozenset)  # names of the ops it uses

    @property
    def __name__(self) -> str:  # so check_grads' reports can name it
        return str(self)

    def __call__(self, *values) -> Value:
        leaves = [v if isinstance(v, Value) else Value(v) for v in values]
        return self._evaluate(
            self.root, leaves, lambda spec, args, params: apply(spec, args, params), lambda c: Value(c)
        )

    def torch(self, *tensors):
        """The same expression on torch tensors (the oracle's side of the comparison)."""
        torch = _torch()
        if torch is None:
            raise ImportError("RandomExpression.torch needs torch installed")
        return self._evaluate(
            self.root,
            list(tensors),
            lambda spec, args, params: spec.torch(*args, **params),
            lambda c: torch.tensor(c, dtype=torch.float64),
        )

    def _evaluate(self, node, variables, call, constant):
        if isinstance(node, _Variable):
            return variables[node.index]
        if isinstance(node, _Constant):
            return constant(node.value)
        args = [self._evaluate(a, variables, call, constant) for a in node.args]
        return call(node.spec, args, dict(node.params))

    def __str__(self) -> str:
        return self.root.text()

    def __repr__(self) -> str:
        values = ", ".join(f"x{i}={_fmt(x)}" for i, x in enumerate(self.inputs))
        return f"RandomExpression({self}, {values})"


def _usable(spec: OpSpec, args: Sequence[float], params: Mapping, margin: float, magnitude: float) -> bool:
    """Whether ``spec`` at ``args`` is inside its domain, away from its kinks, and its value
    and partials are finite and of moderate size (so both engines agree to rounding)."""
    for i, x in enumerate(args):
        if _room(spec.domain, i, x) < margin * max(1.0, abs(x)):
            return False
    try:
        if not spec.domain.contains(*args, **params):
            return False
        out = evaluate(spec, list(args), params or None)
        partials = _call_derivative(spec, list(args), out, params)
    except (ArithmeticError, ValueError, TypeError, GradientCheckError):
        return False
    return all(math.isfinite(v) and abs(v) <= magnitude for v in (out, *partials))


def expressions(
    registry: Registry | None = None,
    *,
    max_depth: int = 3,
    variables: int = 2,
    ops: Sequence[str] | None = None,
    require_torch: bool = True,
    sample_range=(-3.0, 3.0),
    margin: float = 1e-2,
    magnitude: float = 1e6,
) -> st.SearchStrategy[RandomExpression]:
    """A hypothesis strategy of random expressions over the registered ops (or ``ops``).

    Valid by construction: children are drawn first, and an op is applied only where its
    domain allows their values (away from its kinks); elsewhere the child stands in for it.
    With ``require_torch`` (the default) only ops that name a PyTorch equivalent are used, so
    every drawn expression can be computed in PyTorch too. The registry is read when drawing.
    """
    if max_depth < 0 or variables < 1:
        raise ValueError("expressions needs max_depth >= 0 and at least one variable")

    @st.composite
    def draw_expression(draw) -> RandomExpression:
        reg = registry or get_registry()
        specs = [
            s
            for s in sorted(reg.ops.values(), key=lambda s: s.name)
            if s.arity != 0
            and (ops is None or s.name in ops)
            and (s.torch is not None or not require_torch)
            and _testable_params(s)
        ]
        if not specs:
            raise ValueError(f"expressions: no registered op fits (ops={ops!r}, require_torch={require_torch})")
        number = st.floats(*sample_range, allow_nan=False, allow_infinity=False)
        values = [draw(number) for _ in range(variables)]
        used = set()

        def grow(depth: int):
            leaf = depth >= max_depth or (depth > 0 and draw(st.integers(0, 3)) == 0)
            if leaf:  # (drawing 0 makes a leaf, so examples shrink towards smaller trees)
                if draw(st.integers(0, 4)) == 0:
                    constant = draw(number)
                    return _Constant(constant), constant
                index = draw(st.integers(0, variables - 1))
                return _Variable(index), values[index]
            spec = draw(st.sampled_from(specs))
            count = spec.arity if spec.arity is not None else draw(st.integers(1, 3))
            children = [grow(depth + 1) for _ in range(count)]
            params = {name: draw(st.sampled_from(choices)) for name, choices in parameter_values(spec).items()}
            args = [value for _, value in children]
            if not _usable(spec, args, params, margin, magnitude):
                return children[0]  # this op is undefined (or too steep) here: keep its first input
            used.add(spec.name)
            return _Call(spec, tuple(node for node, _ in children), tuple(params.items())), evaluate(
                spec, args, params or None
            )

        root, _ = grow(0)
        return RandomExpression(root, tuple(values), frozenset(used))

    return draw_expression()


def _testable_params(spec: OpSpec) -> bool:
    try:
        parameter_values(spec)
    except OpSpecError:
        return False
    return True
