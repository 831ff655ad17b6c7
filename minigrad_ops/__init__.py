"""MiniGrad's built-in ops, registered through the same hook as any third-party plugin.

Each op is two rules: ``forward`` computes the value, ``derivative`` returns the local
partial derivative for each input (``out`` is the op's own result, handy for exp, tanh
and sigmoid). The derivative rules use only arithmetic and ``ops`` functions, so they work
on numbers for an ordinary backward pass and on Values when ``create_graph=True``: every
built-in op can be differentiated again and again.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad_core import Domain, OpDomainError, OpSpec, OpZeroDivisionError, Value, hookimpl, ops

ANY = Domain()
POSITIVE = Domain(bounds=(0.0, math.inf), kinks=(0.0,), description="x > 0")


# -- forward rules that need care (domain checks, overflow like PyTorch) ----------------------


def divide(a, b):
    if b == 0:
        raise OpZeroDivisionError("div", (a, b), "a non-zero divisor b", "division by zero")
    return a / b


def power_of(x, exponent, op="pow"):
    """x ** exponent on real numbers; overflow gives ±inf as in PyTorch."""
    if x < 0 and not float(exponent).is_integer():
        raise OpDomainError(
            op,
            (x, exponent),
            "a base >= 0 when the exponent is not a whole number",
            "the result would be a complex number",
        )
    if x == 0 and exponent < 0:
        raise OpZeroDivisionError(op, (x, exponent), "a non-zero base for a negative exponent", "division by zero")
    try:
        return math.pow(x, exponent)
    except OverflowError:
        odd = float(exponent).is_integer() and int(exponent) % 2 == 1
        return -math.inf if (x < 0 and odd) else math.inf


def pow_forward(x, exponent):
    if exponent == 0.5 and x == 0:
        return x  # PyTorch computes x ** 0.5 as sqrt(x), which keeps the sign of a zero
    return power_of(x, exponent)


def exponential(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf  # as PyTorch: exp(1000.) is inf


def logarithm(x):
    if not x > 0 and not math.isnan(x):
        raise OpDomainError("log", (x,), "x > 0", "log of zero is -inf" if x == 0 else "log of a negative number")
    return math.log(x)


def sigmoid(x):
    # Two forms so that exp never overflows: for any finite x the result is finite.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def relu(x):
    return 0.0 if x < 0 else x  # -0.0 and nan pass through unchanged, as in PyTorch


# -- derivative rules that need more than one line ------------------------------------------


def _power(x, exponent, sqrt_sign=True):
    """x ** exponent inside a derivative rule, on numbers or Values (records a node).

    At a zero base with a negative exponent the derivative is infinite, not an error (forward
    refuses 0 ** -1, but d/dx x ** 0.5 at 0 is inf), signed as PyTorch signs it: negative at
    -0.0 for -0.5 when the exponent is a number (PyTorch computes x ** -0.5 as 1 / sqrt(x)), not
    when it is a tensor (``sqrt_sign=False``: PyTorch's pow(tensor, tensor) gives +inf there).
    Only exponents in (-1, 0) get here (the forward rules refuse 0 ** e for e < 0), so no odd
    power needs a sign of its own.
    """
    base = x.data if isinstance(x, Value) else x
    if base == 0 and exponent < 0:
        # (a Value exponent comes only from power, which passes sqrt_sign=False)
        negative = sqrt_sign and math.copysign(1.0, base) < 0 and exponent == -0.5
        return -math.inf if negative else math.inf
    if isinstance(x, Value) or isinstance(exponent, Value):
        return x**exponent
    return power_of(x, exponent)


def reciprocal(x):
    """1 / x inside a derivative rule, where 1 / 0 is a signed inf (the slope at a vertical
    tangent, as PyTorch gives it) rather than an error. Numbers, Values and arrays alike."""
    base = x.data if isinstance(x, Value) else x
    if type(base) is float and base == 0:
        return math.copysign(math.inf, base)
    return 1 / x


def pow_derivative(x, out, exponent):
    if exponent == 0:
        return (0.0,)
    return (exponent * _power(x, exponent - 1),)


def power_derivative(a, b, out):
    d_base = 0.0 if (not isinstance(b, Value) and b == 0) else b * _power(a, b - 1, sqrt_sign=False)
    # d/db a**b = a**b * log(a); PyTorch's conventions where log(a) is undefined
    base = a.data if isinstance(a, Value) else a  # (a Value's == compares identity, not data)
    if base > 0:
        d_exponent = out * ops.log(a)
    elif base == 0:
        d_exponent = 0.0 if b >= 0 else math.nan  # b = nan: nan, as PyTorch
    else:
        d_exponent = math.nan
    return (d_base, d_exponent)


def square_root(x):
    if x < 0:
        raise OpDomainError("sqrt", (x,), "x >= 0", "the square root of a negative number is not real")
    return math.sqrt(x)


# -- batched (numpy) rules ------------------------------------------------------------------


def np_divide(a, b):
    if np.any(np.asarray(b) == 0):
        raise OpZeroDivisionError("div", ("array", "array containing 0"), "a non-zero divisor b", "division by zero")
    return a / b


def np_log(x):
    if np.any(np.asarray(x) <= 0):
        raise OpDomainError("log", ("array containing values <= 0",), "x > 0")
    return np.log(x)


def np_power_of(x, exponent, op="pow"):
    """x ** exponent on arrays, refusing what the scalar rule refuses."""
    x, e = np.asarray(x, dtype=float), np.asarray(exponent, dtype=float)
    if np.any((x < 0) & (np.mod(e, 1) != 0)):
        raise OpDomainError(op, ("array with a negative base",), "a base >= 0 when the exponent is not a whole number")
    if np.any((x == 0) & (e < 0)):
        raise OpZeroDivisionError(
            op, ("array with a zero base",), "a non-zero base for a negative exponent", "division by zero"
        )
    with np.errstate(over="ignore"):
        return np.power(x, e)


def np_power_derivative(x, exponent, sqrt_sign=True):
    """exponent * x ** (exponent - 1) on arrays, with the scalar rule's values at x = 0."""
    x, exponent = np.asarray(x, dtype=float), np.asarray(exponent, dtype=float)
    e = exponent - 1.0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        power = np.power(x, e)
        # as _power: at -0.0 the power -0.5 is PyTorch's 1 / sqrt(-0.0), -inf (numpy gives +inf)
        if sqrt_sign:
            power = np.where((x == 0) & np.signbit(x) & (e == -0.5), -np.inf, power)
        return np.where(exponent == 0, 0.0, exponent * power)


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


OPS = [
    OpSpec(
        name="add",
        arity=2,
        symbol="+",
        formula="a + b",
        derivative_formula=("1", "1"),
        forward=lambda a, b: a + b,
        derivative=lambda a, b, out: (1.0, 1.0),
        methods=(),
        operators=("__add__", "__radd__"),
        torch=lambda a, b: a + b,
    ),
    OpSpec(
        name="sub",
        arity=2,
        symbol="-",
        formula="a - b",
        derivative_formula=("1", "-1"),
        forward=lambda a, b: a - b,
        derivative=lambda a, b, out: (1.0, -1.0),
        methods=(),
        operators=("__sub__", "__rsub__"),
        torch=lambda a, b: a - b,
    ),
    OpSpec(
        name="mul",
        arity=2,
        symbol="*",
        formula="a * b",
        derivative_formula=("b", "a"),
        forward=lambda a, b: a * b,
        derivative=lambda a, b, out: (b, a),
        methods=(),
        operators=("__mul__", "__rmul__"),
        torch=lambda a, b: a * b,
    ),
    OpSpec(
        name="div",
        arity=2,
        symbol="/",
        formula="a / b",
        derivative_formula=("1 / b", "-a / b**2"),
        forward=divide,
        derivative=lambda a, b, out: (1 / b, -out / b),
        methods=(),
        operators=("__truediv__", "__rtruediv__"),
        domain=Domain(kinks=((), (0.0,)), where=lambda a, b: b != 0, description="a non-zero divisor b"),
        torch=lambda a, b: a / b,
        np_forward=np_divide,
    ),
    OpSpec(
        name="neg",
        arity=1,
        symbol="-",
        formula="-x",
        derivative_formula=("-1",),
        forward=lambda x: -x,
        derivative=lambda x, out: (-1.0,),
        operators=("__neg__",),
        torch=lambda x: -x,
    ),
    OpSpec(
        name="pow",
        arity=1,
        symbol="**",
        formula="x ** exponent",
        derivative_formula=("exponent * x ** (exponent - 1)",),
        params={"exponent": None},
        forward=pow_forward,
        derivative=pow_derivative,
        operators=("__pow__",),
        domain=Domain(
            kinks=((0.0,),),
            where=lambda x, exponent: x > 0 or float(exponent).is_integer(),
            description="a base >= 0 when the exponent is not a whole number (and a non-zero base "
            "for a negative exponent)",
            params={"exponent": (2, 3, -1, 0.5, 1.5, -2.5, 0, 1)},
        ),
        torch=lambda x, exponent: x**exponent,
        np_forward=np_power_of,
        np_derivative=lambda x, out, exponent: (np_power_derivative(x, exponent),),
        doc="x ** exponent with a number exponent: Value(3) ** 2",
    ),
    OpSpec(
        name="power",
        arity=2,
        symbol="**",
        formula="a ** b",
        derivative_formula=("b * a ** (b - 1)", "a ** b * log(a)"),
        forward=lambda a, b: power_of(a, b, op="power"),
        derivative=power_derivative,
        methods=(),
        operators=("__pow__", "__rpow__"),
        domain=Domain(
            bounds=((0.0, math.inf), (-math.inf, math.inf)),
            kinks=((0.0,), ()),
            description="a base a > 0 (a ** b with both a Value)",
        ),
        torch=lambda a, b: a**b,
        np_forward=lambda a, b: np_power_of(a, b, op="power"),
        np_derivative=lambda a, b, out: (
            np_power_derivative(a, b, sqrt_sign=False),
            np.where(a > 0, out * np.log(np.where(a > 0, a, 1.0)), np.where(a == 0, 0.0, np.nan)),
        ),
        doc="a ** b where the exponent is a Value: x ** y, 2 ** x",
    ),
    OpSpec(
        name="exp",
        arity=1,
        formula="exp(x)",
        derivative_formula=("exp(x)",),
        forward=exponential,
        derivative=lambda x, out: (out,),
        torch=lambda x: x.exp(),
        np_forward=np.exp,
    ),
    OpSpec(
        name="log",
        arity=1,
        formula="log(x)",
        derivative_formula=("1 / x",),
        forward=logarithm,
        derivative=lambda x, out: (1 / x,),
        domain=POSITIVE,
        torch=lambda x: x.log(),
        np_forward=np_log,
    ),
    OpSpec(
        name="tanh",
        arity=1,
        formula="tanh(x)",
        derivative_formula=("1 - tanh(x)**2",),
        forward=math.tanh,
        derivative=lambda x, out: (1 - out * out,),
        torch=lambda x: x.tanh(),
        np_forward=np.tanh,
    ),
    OpSpec(
        name="relu",
        arity=1,
        formula="max(0, x)",
        derivative_formula=("1 if x > 0 else 0",),
        forward=relu,
        # 1 where x > 0, else 0; nan gives 1, as PyTorch. Comparisons count as 0 and 1, so
        # the one rule runs on numbers, Values and arrays.
        derivative=lambda x, out: (1.0 - (x <= 0),),
        domain=Domain(kinks=(0.0,)),
        torch=lambda x: x.relu(),
        np_forward=lambda x: np.where(x < 0, 0.0, x),
    ),
    OpSpec(
        name="abs",
        arity=1,
        symbol="abs",
        formula="|x|",
        derivative_formula=("sign(x)",),
        forward=math.fabs,
        # sign(x): 1, -1, or 0 at 0 (and at nan), as PyTorch
        derivative=lambda x, out: ((x > 0) * 1.0 - (x < 0) * 1.0,),
        operators=("__abs__",),
        domain=Domain(kinks=(0.0,)),
        torch=lambda x: x.abs(),
        np_forward=np.abs,
    ),
    OpSpec(
        name="sqrt",
        arity=1,
        formula="sqrt(x)",
        derivative_formula=("1 / (2 * sqrt(x))",),
        forward=square_root,
        derivative=lambda x, out: (0.5 * reciprocal(out),),
        domain=Domain(bounds=(0.0, math.inf), kinks=(0.0,), open=False, description="x >= 0"),
        torch=lambda x: x.sqrt(),
        np_forward=np.sqrt,
    ),
    OpSpec(
        name="sigmoid",
        arity=1,
        formula="1 / (1 + exp(-x))",
        derivative_formula=("sigmoid(x) * (1 - sigmoid(x))",),
        forward=sigmoid,
        derivative=lambda x, out: (out * (1 - out),),
        torch=lambda x: x.sigmoid(),
        np_forward=np_sigmoid,
    ),
]


@hookimpl
def minigrad_register_ops(register):
    for spec in OPS:
        register(spec)
