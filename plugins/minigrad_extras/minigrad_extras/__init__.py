"""minigrad-extras: more ops for MiniGrad, published like any third-party op package.

MiniGrad finds this package through its entry point (group ``minigrad``, name ``extras``,
in ``pyproject.toml``); nothing in MiniGrad imports it by name.

Each op is a forward rule and a local-derivative rule. The derivative rules use only
arithmetic and ``minigrad_core.ops`` functions, so the same rule computes a number in an
ordinary backward pass and builds graph under ``backward(create_graph=True)``: every op
here can be differentiated twice. ``softplus`` and ``gelu`` build on the built-in
``sigmoid`` and ``exp`` ops.

The elementary functions (tan, sinh, cosh, the inverse trigonometric and hyperbolic
functions, arctan2, log1p, expm1, log2, log10, exp2, sign, maximum, minimum and clamp)
live in ``minigrad_extras.elementary``; this hook registers them with the rest.
"""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np

from minigrad_core import Domain, OpSpec, Value, hookimpl, ops

from .elementary import ELEMENTARY_OPS

try:  # the version is written once, in pyproject.toml
    __version__ = importlib.metadata.version("minigrad-extras")
except importlib.metadata.PackageNotFoundError:  # a source checkout, never installed
    __version__ = "0+unknown"

INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# -- forward rules that need care --------------------------------------------------------------


def softplus(x):
    """log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): e^-|x| <= 1, so nothing overflows."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def gelu(x):
    """x Φ(x) with Φ(x) = erfc(-x/√2) / 2, which stays accurate far into the left tail
    (where 1 + erf(x/√2) would cancel to 0)."""
    return x * 0.5 * math.erfc(-x * INV_SQRT_2)


def leaky_relu(x, slope):
    return x if x > 0 or x != x else slope * x  # nan passes through, as in PyTorch


# -- derivative rules (numbers or Values alike) -----------------------------------------------


def hypot_derivative(a, b, out):
    # At the origin (out = 0) the cone has no slope: nan for both, as PyTorch gives
    # (a / out would raise 0 / 0 there, in the backward pass of a forward that worked).
    if (out.data if isinstance(out, Value) else out) == 0:
        return (math.nan, math.nan)
    return (a / out, b / out)


def gelu_derivative(x, out):
    normal_cdf = 0.5 * (1 + ops.erf(x * INV_SQRT_2))
    normal_pdf = INV_SQRT_2PI * ops.exp(-0.5 * x * x)
    return (normal_cdf + x * normal_pdf,)


# -- batched rules for numpy arrays -------------------------------------------------------------

_erf_array = np.vectorize(math.erf, otypes=[float])
_erfc_array = np.vectorize(math.erfc, otypes=[float])


def np_gelu(x):
    return x * 0.5 * _erfc_array(-x * INV_SQRT_2)


def np_gelu_derivative(x, out):
    return (0.5 * _erfc_array(-x * INV_SQRT_2) + x * INV_SQRT_2PI * np.exp(-0.5 * x * x),)


def np_hypot_derivative(a, b, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a / out, b / out)  # 0 / 0 is nan at the origin, as the scalar rule


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


# -- torch equivalents (imported only when a test asks for them) ----------------------------------


def torch_softplus(x):
    import torch.nn.functional as F

    return F.softplus(x, beta=1.0, threshold=50.0)  # past 50 the correction is below float precision


def torch_gelu(x):
    import torch.nn.functional as F

    return F.gelu(x, approximate="none")


def torch_leaky_relu(x, slope):
    import torch.nn.functional as F

    return F.leaky_relu(x, negative_slope=slope)


def torch_hypot(a, b):
    import torch

    return torch.hypot(a, b)


OPS = [
    OpSpec(
        name="sin",
        arity=1,
        formula="sin(x)",
        derivative_formula=("cos(x)",),
        forward=math.sin,
        derivative=lambda x, out: (ops.cos(x),),
        torch=lambda x: x.sin(),
        np_forward=np.sin,
        np_derivative=lambda x, out: (np.cos(x),),
        doc="sine of x (radians)",
    ),
    OpSpec(
        name="cos",
        arity=1,
        formula="cos(x)",
        derivative_formula=("-sin(x)",),
        forward=math.cos,
        derivative=lambda x, out: (-ops.sin(x),),
        torch=lambda x: x.cos(),
        np_forward=np.cos,
        np_derivative=lambda x, out: (-np.sin(x),),
        doc="cosine of x (radians)",
    ),
    OpSpec(
        name="erf",
        arity=1,
        formula="erf(x)",
        derivative_formula=("2/sqrt(pi) * exp(-x**2)",),
        forward=math.erf,
        derivative=lambda x, out: (TWO_OVER_SQRT_PI * ops.exp(-x * x),),
        torch=lambda x: x.erf(),
        np_forward=_erf_array,
        np_derivative=lambda x, out: (TWO_OVER_SQRT_PI * np.exp(-x * x),),
        doc="the error function, 2/sqrt(pi) times the integral of exp(-t**2) from 0 to x",
    ),
    OpSpec(
        name="softplus",
        arity=1,
        formula="log(1 + exp(x))",
        derivative_formula=("sigmoid(x)",),
        forward=softplus,
        derivative=lambda x, out: (ops.sigmoid(x),),
        torch=torch_softplus,
        np_forward=lambda x: np.logaddexp(0.0, x),
        np_derivative=lambda x, out: (np_sigmoid(x),),
        doc="a smooth relu: log(1 + e^x), computed without overflow for any x",
    ),
    OpSpec(
        name="gelu",
        arity=1,
        formula="x * Phi(x)",
        derivative_formula=("Phi(x) + x * phi(x)",),
        forward=gelu,
        derivative=gelu_derivative,
        torch=torch_gelu,
        np_forward=np_gelu,
        np_derivative=np_gelu_derivative,
        doc="Gaussian error linear unit, exact form: x times the standard normal CDF Phi(x)",
    ),
    OpSpec(
        name="leaky_relu",
        arity=1,
        formula="x if x > 0 else slope * x",
        derivative_formula=("1 if x > 0 else slope",),
        params={"slope": 0.01},
        forward=leaky_relu,
        derivative=lambda x, out, slope: (1.0 if x > 0 else slope,),
        domain=Domain(kinks=((0.0,),), params={"slope": (0.01, 0.2, 0.5)}),
        torch=torch_leaky_relu,
        np_forward=lambda x, slope: np.where(x > 0, x, slope * x),
        np_derivative=lambda x, out, slope: (np.where(x > 0, 1.0, slope),),
        doc="relu with a small slope for negative inputs: x.leaky_relu(0.1)",
    ),
    OpSpec(
        name="hypot",
        arity=2,
        formula="sqrt(a**2 + b**2)",
        derivative_formula=("a / out", "b / out"),
        forward=math.hypot,
        derivative=hypot_derivative,
        methods=("hypot",),
        # Not differentiable at the origin (the tip of a cone): checks keep both inputs off 0.
        domain=Domain(kinks=((0.0,), (0.0,)), where=lambda a, b: a != 0 or b != 0, description="a and b not both 0"),
        torch=torch_hypot,
        np_forward=np.hypot,
        np_derivative=np_hypot_derivative,
        doc="the length sqrt(a**2 + b**2) of the vector (a, b): a.hypot(b)",
    ),
]


@hookimpl
def minigrad_register_ops(register):
    for spec in (*OPS, *ELEMENTARY_OPS):
        register(spec)
