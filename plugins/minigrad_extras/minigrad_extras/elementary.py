"""Elementary functions: tan, hyperbolic and inverse trigonometric functions, log1p and
friends, and the piecewise ops sign, maximum, minimum and clamp.

Conventions, the same for every op here:

- ``forward`` works on Python floats with the ``math`` module. An input outside the op's
  domain raises ``OpDomainError`` naming the op, the input and why (``arcsin(1.5)``: no
  angle has a sine outside [-1, 1]). A pole raises too, as MiniGrad's own ``log(0)`` does
  (``arctanh(1)``, ``log1p(-1)``, ``log2(0)``). A result too large for a float is ``±inf``,
  as in PyTorch (``sinh(1000)``, ``exp2(2000)``). nan passes through.
- ``derivative`` uses only arithmetic, comparisons turned into numbers (``(a > b) * 1.0``)
  and ``minigrad_core.ops`` functions, so the same rule runs on numbers, on Values (to be
  differentiated again) and on numpy arrays.
- At kinks and ties the gradient follows PyTorch (float64):

  * ``sign``: 0 everywhere, 0 included.
  * ``maximum`` / ``minimum``: 1 to the input that wins, 0 to the other, 0.5 to each at a tie
    ``a == b``; when an input is nan, 1 to each.
  * ``clamp``: 1 where ``low <= x <= high`` (the boundaries included), 0 outside.
  * ``arctan2`` at the origin: 0 for both inputs.
  * ``arcsin``, ``arccos``, ``arccosh`` at the ends of their domain (±1, 1): an infinite
    derivative (±inf), where Python's own ``0.0 ** -0.5`` would raise.

Where they differ from PyTorch on purpose: poles raise (above; PyTorch gives ±inf), ``tan(±inf)``
raises (PyTorch: nan), ``sign(nan)`` is nan (PyTorch: 0), and the derivative of ``expm1`` is
``exp(x)``, not PyTorch's ``expm1(x) + 1``, which loses it for x far below 0.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad_core import Domain, OpDomainError, OpSpec, ops

LN2 = math.log(2.0)
LN10 = math.log(10.0)
INF = math.inf

# The poles of tan, pi/2 + k pi, within |x| < 100: gradient checks keep away from them.
TAN_POLES = tuple(math.pi / 2 + k * math.pi for k in range(-32, 32))


# maximum, minimum and clamp are not differentiable where two numbers meet (a == b, x == low):
# their domains keep the two this far apart (relative to their size), as gradient checks keep
# every op this far from its kinks, so that no finite-difference step crosses the seam.
SEAM_GAP = 1e-3


def _apart(a, b) -> bool:
    """Whether a and b are more than SEAM_GAP (times their size, at least 1) apart; an
    infinite bound (clamp's defaults) is far from every finite number."""
    return abs(a - b) > SEAM_GAP * max(1.0, min(abs(a), abs(b)))


def _isnan(x) -> bool:
    return x != x


def _pole_sign(x) -> str:
    return "+inf" if x > 0 else "-inf"


# -- forward rules on floats ------------------------------------------------------------------


def tan(x):
    if math.isinf(x):
        raise OpDomainError("tan", (x,), "a finite x", "the tangent of an infinite angle is undefined")
    return math.tan(x)


def sinh(x):
    try:
        return math.sinh(x)
    except OverflowError:
        return math.copysign(INF, x)  # as PyTorch: sinh(1000.) is inf


def cosh(x):
    try:
        return math.cosh(x)
    except OverflowError:
        return INF


def arcsin(x):
    if not -1.0 <= x <= 1.0 and not _isnan(x):
        raise OpDomainError("arcsin", (x,), "-1 <= x <= 1", "|x| > 1: no angle has a sine outside [-1, 1]")
    return math.asin(x)


def arccos(x):
    if not -1.0 <= x <= 1.0 and not _isnan(x):
        raise OpDomainError("arccos", (x,), "-1 <= x <= 1", "|x| > 1: no angle has a cosine outside [-1, 1]")
    return math.acos(x)


def arccosh(x):
    if x < 1.0:
        raise OpDomainError("arccosh", (x,), "x >= 1", "cosh is never below 1, so x < 1 has no real arccosh")
    return math.acosh(x)


def arctanh(x):
    if abs(x) == 1.0:
        raise OpDomainError("arctanh", (x,), "-1 < x < 1", f"arctanh({x!r}) is {_pole_sign(x)}: a pole, like log(0)")
    if abs(x) > 1.0:
        raise OpDomainError(
            "arctanh", (x,), "-1 < x < 1", "|x| > 1: tanh is always between -1 and 1, so there is no real arctanh"
        )
    return math.atanh(x)


def log1p(x):
    if x == -1.0:
        raise OpDomainError("log1p", (x,), "x > -1", "log1p(-1) = log(0) is -inf")
    if x < -1.0:
        raise OpDomainError("log1p", (x,), "x > -1", "1 + x < 0: log of a negative number")
    return math.log1p(x)


def expm1(x):
    try:
        return math.expm1(x)
    except OverflowError:
        return INF  # as PyTorch: expm1(1000.) is inf


def _logarithm(name, function):
    def forward(x):
        if x == 0:
            raise OpDomainError(name, (x,), "x > 0", "log of zero is -inf")
        if x < 0:
            raise OpDomainError(name, (x,), "x > 0", "log of a negative number")
        return function(x)

    forward.__name__ = forward.__qualname__ = name
    return forward


log2 = _logarithm("log2", math.log2)
log10 = _logarithm("log10", math.log10)


def exp2(x):
    try:
        return 2.0**x
    except OverflowError:
        return INF  # as PyTorch: exp2(2000.) is inf


def sign(x):
    # nan passes through (as numpy's sign; PyTorch's sign(nan) is 0); -0.0 gives 0.0, as PyTorch
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0 if x == 0 else float(x)


def maximum(a, b):
    if _isnan(a) or _isnan(b):
        return math.nan  # nan wins, as in torch.maximum
    return float(a if a >= b else b)


def minimum(a, b):
    if _isnan(a) or _isnan(b):
        return math.nan
    return float(a if a <= b else b)


def clamp(x, low, high):
    """min(max(x, low), high): with low > high every x gives high, as torch.clamp."""
    if _isnan(x):
        return math.nan
    return float(min(max(x, low), high))


# -- derivative rules (numbers, Values or numpy arrays alike) -------------------------------


def _rsqrt(u):
    """u ** -0.5. Python refuses ``0.0 ** -0.5``; on a plain number 0 gives inf, the value
    PyTorch gives (its rsqrt); Values (a pow node) and arrays take the arithmetic as is."""
    if isinstance(u, (int, float)) and u == 0:
        return INF
    return u**-0.5


def arcsin_derivative(x, out):
    return (_rsqrt((1 - x) * (1 + x)),)  # (1 - x)(1 + x): no cancellation near |x| = 1


def arccos_derivative(x, out):
    return (-_rsqrt((1 - x) * (1 + x)),)


def arccosh_derivative(x, out):
    return (_rsqrt((x - 1) * (x + 1)),)


def arctan2_derivative(y, x, out):
    r2 = x * x + y * y
    # At the origin r2 is 0: add 1 there, so the partials are 0 / 1 = 0, as PyTorch gives.
    inverse = 1 / (r2 + (r2 <= 0) * 1.0)
    return (x * inverse, -y * inverse)


def maximum_derivative(a, b, out):
    # PyTorch: 1 to the larger, 0 to the smaller, 0.5 each at a tie (and 1 each when one is nan)
    return (1.0 - 0.5 * (a < b) - 0.5 * (a <= b), 1.0 - 0.5 * (b < a) - 0.5 * (b <= a))


def minimum_derivative(a, b, out):
    return (1.0 - 0.5 * (a > b) - 0.5 * (a >= b), 1.0 - 0.5 * (b > a) - 0.5 * (b >= a))


def clamp_derivative(x, out, low, high):
    return ((x >= low) * (x <= high) * 1.0,)  # 1 on [low, high], ends included, as PyTorch


# -- numpy forward rules (batched evaluation) ---------------------------------------------------


def _np_checked(name, function, inside, expected, reason):
    """``function`` on arrays, refusing (as the scalar rule does) any value that is not
    ``inside`` the domain; nan passes through."""

    def np_forward(x):
        x = np.asarray(x, dtype=float)
        outside = ~inside(x) & ~np.isnan(x)
        if np.any(outside):
            first = float(x[outside].flat[0])
            raise OpDomainError(
                name, (first,), expected, f"{reason}; {int(outside.sum())} of the {x.size} value(s) are outside"
            )
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return function(x)

    np_forward.__name__ = np_forward.__qualname__ = f"np_{name}"
    return np_forward


def _np_quiet(function):
    """A numpy rule where overflow gives ±inf silently, as the scalar rule does."""

    def np_forward(*args):
        with np.errstate(over="ignore"):
            return function(*args)

    np_forward.__name__ = np_forward.__qualname__ = f"np_{function.__name__}"
    return np_forward


np_tan = _np_checked("tan", np.tan, np.isfinite, "a finite x", "the tangent of an infinite angle is undefined")
np_arcsin = _np_checked("arcsin", np.arcsin, lambda x: np.abs(x) <= 1, "-1 <= x <= 1", "|x| > 1")
np_arccos = _np_checked("arccos", np.arccos, lambda x: np.abs(x) <= 1, "-1 <= x <= 1", "|x| > 1")
np_arccosh = _np_checked("arccosh", np.arccosh, lambda x: x >= 1, "x >= 1", "x < 1")
np_arctanh = _np_checked("arctanh", np.arctanh, lambda x: np.abs(x) < 1, "-1 < x < 1", "|x| >= 1")
np_log1p = _np_checked("log1p", np.log1p, lambda x: x > -1, "x > -1", "x <= -1")
np_log2 = _np_checked("log2", np.log2, lambda x: x > 0, "x > 0", "x <= 0")
np_log10 = _np_checked("log10", np.log10, lambda x: x > 0, "x > 0", "x <= 0")


def np_sign(x):
    return np.sign(x) * 1.0


def np_clamp(x, low, high):
    return np.minimum(np.maximum(x, low), high)  # nan passes through; low > high gives high


# -- the ops ------------------------------------------------------------------------------------

ELEMENTARY_OPS = [
    OpSpec(
        name="tan",
        arity=1,
        formula="tan(x)",
        derivative_formula=("1 + tan(x)**2",),
        forward=tan,
        derivative=lambda x, out: (1 + out * out,),
        domain=Domain(kinks=(TAN_POLES,), description="x not an odd multiple of pi/2 (the poles of tan)"),
        torch=lambda x: x.tan(),
        np_forward=np_tan,
        doc="tangent of x (radians)",
    ),
    OpSpec(
        name="sinh",
        arity=1,
        formula="sinh(x)",
        derivative_formula=("cosh(x)",),
        forward=sinh,
        derivative=lambda x, out: (ops.cosh(x),),
        torch=lambda x: x.sinh(),
        np_forward=_np_quiet(np.sinh),
        doc="hyperbolic sine, (e^x - e^-x) / 2; ±inf past about |x| = 710",
    ),
    OpSpec(
        name="cosh",
        arity=1,
        formula="cosh(x)",
        derivative_formula=("sinh(x)",),
        forward=cosh,
        derivative=lambda x, out: (ops.sinh(x),),
        torch=lambda x: x.cosh(),
        np_forward=_np_quiet(np.cosh),
        doc="hyperbolic cosine, (e^x + e^-x) / 2; inf past about |x| = 710",
    ),
    OpSpec(
        name="arcsin",
        arity=1,
        formula="arcsin(x)",
        derivative_formula=("1 / sqrt(1 - x**2)",),
        forward=arcsin,
        derivative=arcsin_derivative,
        domain=Domain(bounds=((-1.0, 1.0),), description="-1 <= x <= 1 (differentiable for -1 < x < 1)"),
        torch=lambda x: x.arcsin(),
        np_forward=np_arcsin,
        doc="inverse sine, in [-pi/2, pi/2]; its derivative is +inf at x = ±1",
    ),
    OpSpec(
        name="arccos",
        arity=1,
        formula="arccos(x)",
        derivative_formula=("-1 / sqrt(1 - x**2)",),
        forward=arccos,
        derivative=arccos_derivative,
        domain=Domain(bounds=((-1.0, 1.0),), description="-1 <= x <= 1 (differentiable for -1 < x < 1)"),
        torch=lambda x: x.arccos(),
        np_forward=np_arccos,
        doc="inverse cosine, in [0, pi]; its derivative is -inf at x = ±1",
    ),
    OpSpec(
        name="arctan",
        arity=1,
        formula="arctan(x)",
        derivative_formula=("1 / (1 + x**2)",),
        forward=math.atan,
        derivative=lambda x, out: (1 / (1 + x * x),),
        torch=lambda x: x.arctan(),
        np_forward=np.arctan,
        doc="inverse tangent, in (-pi/2, pi/2)",
    ),
    OpSpec(
        name="arcsinh",
        arity=1,
        formula="arcsinh(x)",
        derivative_formula=("1 / sqrt(x**2 + 1)",),
        forward=math.asinh,
        derivative=lambda x, out: ((x * x + 1) ** -0.5,),
        torch=lambda x: x.arcsinh(),
        np_forward=np.arcsinh,
        doc="inverse hyperbolic sine, log(x + sqrt(x**2 + 1))",
    ),
    OpSpec(
        name="arccosh",
        arity=1,
        formula="arccosh(x)",
        derivative_formula=("1 / sqrt(x**2 - 1)",),
        forward=arccosh,
        derivative=arccosh_derivative,
        domain=Domain(bounds=((1.0, INF),), description="x >= 1 (differentiable for x > 1)"),
        torch=lambda x: x.arccosh(),
        np_forward=np_arccosh,
        doc="inverse hyperbolic cosine, log(x + sqrt(x**2 - 1)) >= 0; its derivative is +inf at x = 1",
    ),
    OpSpec(
        name="arctanh",
        arity=1,
        formula="arctanh(x)",
        derivative_formula=("1 / (1 - x**2)",),
        forward=arctanh,
        derivative=lambda x, out: (1 / ((1 - x) * (1 + x)),),
        domain=Domain(bounds=((-1.0, 1.0),), description="-1 < x < 1"),
        torch=lambda x: x.arctanh(),
        np_forward=np_arctanh,
        doc="inverse hyperbolic tangent, log((1 + x) / (1 - x)) / 2; x = ±1 (poles) raise, as log(0) does",
    ),
    OpSpec(
        name="arctan2",
        arity=2,
        formula="atan2(y, x)",
        derivative_formula=("x / (x**2 + y**2)", "-y / (x**2 + y**2)"),
        inputs=("y", "x"),
        forward=math.atan2,
        derivative=arctan2_derivative,
        methods=("arctan2",),
        # Not differentiable on the cut y = 0, x < 0 (the angle jumps from pi to -pi) nor at the
        # origin (where it is 0, and PyTorch's gradient is 0): checks keep y away from 0.
        domain=Domain(
            kinks=((0.0,), ()),
            where=lambda y, x: y != 0 or x > 0,
            description="any y, x (differentiable except where y = 0 and x <= 0)",
        ),
        torch=lambda y, x: y.arctan2(x),
        np_forward=np.arctan2,
        doc="the angle of the point (x, y) in (-pi, pi], y first as in atan2: y.arctan2(x)",
    ),
    OpSpec(
        name="log1p",
        arity=1,
        formula="log(1 + x)",
        derivative_formula=("1 / (1 + x)",),
        forward=log1p,
        derivative=lambda x, out: (1 / (1 + x),),
        domain=Domain(bounds=((-1.0, INF),), description="x > -1"),
        torch=lambda x: x.log1p(),
        np_forward=np_log1p,
        doc="log(1 + x), accurate for x near 0",
    ),
    OpSpec(
        name="expm1",
        arity=1,
        formula="exp(x) - 1",
        derivative_formula=("exp(x)",),
        forward=expm1,
        derivative=lambda x, out: (ops.exp(x),),  # not out + 1, which loses e^x for x << 0
        torch=lambda x: x.expm1(),
        np_forward=_np_quiet(np.expm1),
        doc="e^x - 1, accurate for x near 0; inf past about x = 710",
    ),
    OpSpec(
        name="log2",
        arity=1,
        formula="log2(x)",
        derivative_formula=("1 / (x * log(2))",),
        forward=log2,
        derivative=lambda x, out: (1 / (x * LN2),),
        domain=Domain(bounds=((0.0, INF),), description="x > 0"),
        torch=lambda x: x.log2(),
        np_forward=np_log2,
        doc="base-2 logarithm",
    ),
    OpSpec(
        name="log10",
        arity=1,
        formula="log10(x)",
        derivative_formula=("1 / (x * log(10))",),
        forward=log10,
        derivative=lambda x, out: (1 / (x * LN10),),
        domain=Domain(bounds=((0.0, INF),), description="x > 0"),
        torch=lambda x: x.log10(),
        np_forward=np_log10,
        doc="base-10 logarithm",
    ),
    OpSpec(
        name="exp2",
        arity=1,
        formula="2 ** x",
        derivative_formula=("2**x * log(2)",),
        forward=exp2,
        derivative=lambda x, out: (out * LN2,),
        torch=lambda x: x.exp2(),
        np_forward=_np_quiet(np.exp2),
        doc="2 to the power x; inf past x = 1024",
    ),
    OpSpec(
        name="sign",
        arity=1,
        formula="1 if x > 0, -1 if x < 0, 0 if x == 0",
        derivative_formula=("0 (also at x = 0, as PyTorch)",),
        forward=sign,
        derivative=lambda x, out: (0.0,),
        domain=Domain(kinks=((0.0,),), description="any real number (it jumps at 0; its gradient is 0 everywhere)"),
        torch=lambda x: x.sign(),
        np_forward=np_sign,
        doc="the sign of x: -1.0, 0.0 or 1.0 (nan stays nan); its gradient is 0, as in PyTorch",
    ),
    OpSpec(
        name="maximum",
        arity=2,
        formula="max(a, b)",
        derivative_formula=("1 if a > b, 0.5 if a == b, else 0", "1 if b > a, 0.5 if a == b, else 0"),
        forward=maximum,
        derivative=maximum_derivative,
        methods=("maximum",),
        domain=Domain(
            where=_apart,
            description="any a, b (not differentiable where a == b, where each gets 0.5, as in "
            "PyTorch; checks keep a and b apart)",
        ),
        torch=lambda a, b: a.maximum(b),
        np_forward=np.maximum,
        doc="the larger of a and b (nan if either is nan): a.maximum(b)",
    ),
    OpSpec(
        name="minimum",
        arity=2,
        formula="min(a, b)",
        derivative_formula=("1 if a < b, 0.5 if a == b, else 0", "1 if b < a, 0.5 if a == b, else 0"),
        forward=minimum,
        derivative=minimum_derivative,
        methods=("minimum",),
        domain=Domain(
            where=_apart,
            description="any a, b (not differentiable where a == b, where each gets 0.5, as in "
            "PyTorch; checks keep a and b apart)",
        ),
        torch=lambda a, b: a.minimum(b),
        np_forward=np.minimum,
        doc="the smaller of a and b (nan if either is nan): a.minimum(b)",
    ),
    OpSpec(
        name="clamp",
        arity=1,
        formula="min(max(x, low), high)",
        derivative_formula=("1 if low <= x <= high else 0",),
        params={"low": -INF, "high": INF},
        forward=clamp,
        derivative=clamp_derivative,
        domain=Domain(
            where=lambda x, low, high: _apart(x, low) and _apart(x, high),
            description="any real number (not differentiable at x = low and x = high, where the "
            "gradient is 1, as in PyTorch; checks keep x away from them)",
            params={"low": (-INF, -1.0, 0.0), "high": (INF, 1.0, 2.5)},
        ),
        torch=lambda x, low, high: x.clamp(low, high),
        np_forward=np_clamp,
        doc="x limited to [low, high] (defaults -inf and inf: no limit on that side): x.clamp(0.0, 1.0), "
        "x.clamp(high=1.0); low > high gives high everywhere, as torch.clamp",
    ),
]
