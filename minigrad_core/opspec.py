"""OpSpec: an operation declared as data.

An op is a forward rule and a local-derivative rule, plus the metadata that tools
need (a symbol for pictures, formulas for explanations, the input domain for
property tests, the PyTorch equivalent for oracle tests). The kernel applies the
chain rule once, for every op alike: ``child.grad += partial * node.grad``.
"""

from __future__ import annotations

import inspect
import keyword
import math
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

from .errors import OpSpecError, shorten

REQUIRED = None  # a parameter whose default is REQUIRED must be given at every call

_DEFAULT_INPUT_NAMES: dict[int | None, tuple[str, ...]] = {1: ("x",), 2: ("a", "b"), 3: ("a", "b", "c")}

# What Domain accepts: one (low, high) pair for every input, or one pair per input; one tuple of
# kink points for every input, or one tuple per input. Domain keeps the per-input form.
Bounds: TypeAlias = tuple[float, float] | tuple[tuple[float, float], ...]
Kinks: TypeAlias = tuple[float, ...] | tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Domain:
    """Where an op is defined, used by property tests, error messages and explanations.

    ``bounds`` is one ``(low, high)`` pair for every input, or a tuple of pairs, one per
    input; the ends are excluded when ``open`` is true. ``kinks`` are the points where the
    derivative jumps or is undefined (relu at 0), so gradient checks keep away from them:
    ``(0.0,)`` for every input, or a tuple of tuples, one per input (``((), (0.0,))`` for
    division: only the divisor has one). ``where`` is an optional predicate on all inputs
    together, for conditions that bounds cannot say (``b != 0`` for division).
    """

    bounds: Bounds = ((-math.inf, math.inf),)
    kinks: Kinks = ()
    where: Callable[..., bool] | None = None  # where(*inputs, **params) -> bool
    open: bool = True
    description: str = "any real number"
    params: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # parameter -> values to test with

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", _per_input_pairs(self.bounds))
        object.__setattr__(self, "kinks", _per_input_points(self.kinks))
        if self.where is not None and not callable(self.where):
            raise OpSpecError(f"Domain(where=...) must be a function of the inputs, got {self.where!r}")
        if not isinstance(self.description, str):
            raise OpSpecError(f"Domain(description=...) must be text, got {self.description!r}")
        for name, values in dict(self.params).items():
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)):
                raise OpSpecError(
                    f"Domain(params=...): the values to test {name!r} with must be a tuple, got {values!r}"
                )
        object.__setattr__(self, "params", {k: tuple(v) for k, v in dict(self.params).items()})

    def bounds_of(self, index: int) -> tuple[float, float]:
        """The ``(low, high)`` interval of input ``index`` (the shared one when one pair is given)."""
        pairs = cast(tuple[tuple[float, float], ...], self.bounds)  # the per-input form, made in __post_init__
        return pairs[index] if len(pairs) > 1 else pairs[0]

    def kinks_of(self, index: int) -> tuple[float, ...]:
        """The points where the derivative with respect to input ``index`` jumps or is undefined."""
        points = cast(tuple[tuple[float, ...], ...], self.kinks)  # the per-input form, made in __post_init__
        if not points:
            return ()
        return tuple(points[index]) if len(points) > 1 else tuple(points[0])

    def contains(self, *inputs: float, **params: Any) -> bool:
        """Whether the op is defined at ``inputs`` (with ``params``): inside the bounds, and ``where`` holds."""
        for i, x in enumerate(inputs):
            low, high = self.bounds_of(i)
            inside = (low < x < high) if self.open else (low <= x <= high)
            if not inside:
                return False
        return self.where is None or bool(self.where(*inputs, **params))


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _per_input_pairs(bounds: object) -> tuple[tuple[float, float], ...]:
    """``(low, high)`` or ``((low, high), ...)`` as a tuple of pairs, checked."""
    if isinstance(bounds, (tuple, list)) and len(bounds) == 2 and all(_is_number(b) for b in bounds):
        bounds = (tuple(bounds),)
    if not isinstance(bounds, (tuple, list)) or not bounds:
        raise OpSpecError(f"Domain(bounds=...) must be a (low, high) pair or a tuple of them, got {bounds!r}")
    pairs = []
    for pair in bounds:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(_is_number(b) for b in pair)):
            raise OpSpecError(
                f"Domain(bounds=...): each entry must be a (low, high) pair of numbers, got {pair!r} in {bounds!r}"
            )
        if not pair[0] < pair[1]:
            raise OpSpecError(f"Domain(bounds=...): low must be below high, got {tuple(pair)!r}")
        pairs.append((float(pair[0]), float(pair[1])))
    return tuple(pairs)


def _per_input_points(kinks: object) -> tuple[tuple[float, ...], ...]:
    """``(0.0,)`` (every input) or ``((0.0,), ())`` (per input) as a tuple of tuples, checked."""
    if not isinstance(kinks, (tuple, list)):
        raise OpSpecError(
            f"Domain(kinks=...) must be a tuple of points such as (0.0,), or one tuple per input "
            f"such as ((), (0.0,)); got {kinks!r}"
        )
    if all(_is_number(k) for k in kinks):
        return (tuple(float(k) for k in kinks),) if kinks else ()
    per_input = []
    for points in kinks:
        if not (isinstance(points, (tuple, list)) and all(_is_number(k) for k in points)):
            raise OpSpecError(
                f"Domain(kinks=...): mix of numbers and tuples in {kinks!r}; give points such as "
                f"(0.0,) for every input, or one tuple per input such as ((), (0.0,))"
            )
        per_input.append(tuple(float(k) for k in points))
    return tuple(per_input)


# The Python operators an op may install on Value: arithmetic only. Every other dunder
# (__del__, __hash__, __getattribute__, __class__ ...) is the kernel's own.
OPERATORS = frozenset(
    {
        "__add__",
        "__radd__",
        "__sub__",
        "__rsub__",
        "__mul__",
        "__rmul__",
        "__truediv__",
        "__rtruediv__",
        "__floordiv__",
        "__rfloordiv__",
        "__mod__",
        "__rmod__",
        "__pow__",
        "__rpow__",
        "__matmul__",
        "__rmatmul__",
        "__neg__",
        "__pos__",
        "__abs__",
    }
)


@dataclass(frozen=True, eq=False)
class OpSpec:
    """The declaration of one operation.

    - ``forward(*inputs, **params) -> float`` computes the value.
    - ``derivative(*inputs, out, **params) -> tuple`` gives one local partial
      derivative per input: d out / d input_i.
    Write ``derivative`` with arithmetic and ``minigrad_core.ops`` functions rather than
    ``math`` so it works on Values as well as numbers; then it can be differentiated
    again (``backward(create_graph=True)``).
    """

    name: str
    arity: int | None  # None: any number of inputs
    forward: Callable[..., float]
    derivative: Callable[..., tuple[Any, ...]]
    symbol: str = ""  # short label for pictures; defaults to the name
    formula: str = ""  # the forward rule as text, e.g. "tanh(x)"
    derivative_formula: tuple[str, ...] = ()  # per input, e.g. ("1 - out**2",)
    inputs: tuple[str, ...] = ()  # names of the inputs; default x, or a and b
    params: Mapping[str, Any] = field(default_factory=dict)  # keyword parameters and defaults
    methods: tuple[str, ...] | None = None  # Value methods it installs; default: its name if unary
    operators: tuple[str, ...] = ()  # Python operators it installs, e.g. ("__add__", "__radd__")
    domain: Domain = field(default_factory=Domain)
    torch: Callable[..., Any] | None = None  # the same op on torch tensors, for oracle tests
    # Optional fast forms on numpy arrays, for batched evaluation. Without them the rules
    # above run on arrays when they can (plain arithmetic does), else one example at a time.
    np_forward: Callable[..., Any] | None = None
    np_derivative: Callable[..., tuple[Any, ...]] | None = None  # only where it measurably pays; tested equal
    higher_order: bool | None = None  # False: derivative works on numbers only
    doc: str = ""
    plugin: str = ""  # filled in by the registry: who provided this op

    def __post_init__(self) -> None:
        if not (
            isinstance(self.name, str)
            and self.name.isidentifier()
            and not keyword.iskeyword(self.name)
            and not self.name.startswith("_")
        ):
            raise OpSpecError(
                f"OpSpec name must be a Python identifier not starting with '_', got {shorten(self.name)}"
            )
        if unicodedata.normalize("NFKC", self.name) != self.name:
            raise OpSpecError(
                f"OpSpec name {self.name!r} changes under Unicode normalization (Python reads it as "
                f"{unicodedata.normalize('NFKC', self.name)!r}); use the normalized spelling"
            )
        if self.arity is not None and (not isinstance(self.arity, int) or self.arity < 0):
            raise OpSpecError(f"op {self.name!r}: arity must be a non-negative int or None (any), got {self.arity!r}")
        for role in ("forward", "derivative"):
            if not callable(getattr(self, role)):
                raise OpSpecError(f"op {self.name!r}: {role} must be callable, got {getattr(self, role)!r}")
        if self.inputs and self.arity is not None and len(self.inputs) != self.arity:
            raise OpSpecError(f"op {self.name!r}: {len(self.inputs)} input names given for arity {self.arity}")
        for role in ("methods", "operators", "inputs", "derivative_formula"):
            if isinstance(getattr(self, role), str):
                raise OpSpecError(
                    f"op {self.name!r}: {role} must be a tuple of strings, e.g. ({getattr(self, role)!r},)"
                )
        for dunder in self.operators:
            if dunder not in OPERATORS:
                raise OpSpecError(
                    f"op {self.name!r}: operator {dunder!r} cannot be installed on Value; an op may "
                    f"install these operators: {', '.join(sorted(OPERATORS))}"
                )
        for method in self.method_names:
            if not (isinstance(method, str) and method.isidentifier()) or method.startswith("_"):
                raise OpSpecError(
                    f"op {self.name!r}: method name {method!r} must be an identifier not starting "
                    f"with '_' (names with underscores belong to Value itself)"
                )
        if not isinstance(self.domain, Domain):
            raise OpSpecError(f"op {self.name!r}: domain must be a Domain, got {self.domain!r}")
        for param in self.params:
            if not (isinstance(param, str) and param.isidentifier() and not keyword.iskeyword(param)):
                raise OpSpecError(f"op {self.name!r}: parameter name {param!r} must be a Python identifier")
        object.__setattr__(self, "params", dict(self.params))
        self._check_signature("forward", self.forward, self.arity)
        self._check_signature("derivative", self.derivative, None if self.arity is None else self.arity + 1)

    def _check_signature(self, role: str, function: Callable[..., Any], positional: int | None) -> None:
        """Catch a wrong arity when the plugin registers, not deep inside a backward pass."""
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # some builtins have no signature: nothing to check
            return
        arguments = (0.0,) * (positional if positional is not None else 2)
        try:
            signature.bind(*arguments, **{p: 0.0 for p in self.params})
        except TypeError as error:
            raise OpSpecError(
                f"op {self.name!r}: {role} {_describe(function)} cannot be called with "
                f"{len(arguments)} positional input(s)"
                + (f" and parameters {sorted(self.params)}" if self.params else "")
                + f" (arity is {self.arity}): {error}"
            ) from None

    # -- derived metadata -------------------------------------------------------------
    @property
    def label(self) -> str:
        """The short text for pictures: the symbol, else the name."""
        return self.symbol or self.name

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs' names in formulas: ``inputs`` when given, else x, or a and b (and c)."""
        if self.inputs:
            return tuple(self.inputs)
        return _DEFAULT_INPUT_NAMES.get(self.arity, ("x",))

    @property
    def method_names(self) -> tuple[str, ...]:
        """The Value methods this op installs: ``methods`` when given, else its name for a one-input op."""
        if self.methods is not None:
            return tuple(self.methods)
        return (self.name,) if self.arity == 1 else ()

    def describe(self) -> str:
        """The forward rule as text: ``formula``, else ``name(inputs)``."""
        return self.formula or f"{self.name}({', '.join(self.input_names)})"


def _describe(function: Callable[..., Any]) -> str:
    return str(getattr(function, "__qualname__", repr(function)))
