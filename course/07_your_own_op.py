# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 7: Your own op
#
# Backpropagation needs exactly two things from each operation: how to compute its output
# (forward) and the derivative of its output with respect to each input (the local derivative).
# The chain rule does the rest. There are two ways to give MiniGrad those two things.

# %%
import math

import torch
from hypothesis import settings

from minigrad_core import Domain, OpSpec, Value, ops, register_op
from minigrad_explain import explain
from minigrad_graphviz import draw_dot
from minigrad_testing import GradientCheckError, check_op

# check_op draws inputs with hypothesis: the same inputs on every run, and no example database
settings.register_profile("course", derandomize=True, database=None, deadline=None)
settings.load_profile("course")


# %% [markdown]
# ## The walkthrough's way: a node with a closure
#
# Make the output node by hand and give it a `_backward` function that pushes its gradient into
# its input. Here is *x³*:

# %%
def cube_closure(x):
    out = Value(x.data**3, (x,), "x³")

    def _backward():
        x.grad += 3 * x.data**2 * out.grad

    out._backward = _backward
    return out


x = Value(2.0, label="x")
y = cube_closure(x)
y.backward()
print(y, x)
assert (y.data, x.grad) == (8.0, 12.0)

# %% [markdown]
# It works, and it is how micrograd writes every op. But the derivative is hidden inside a
# closure: no tool can read it, test it, draw its formula or run it again on Values to get a
# second derivative.
#
# ## MiniGrad's way: declare the op
#
# An `OpSpec` states the same two rules as plain functions, plus what tools need to know: a
# formula for pictures and explanations, the domain it is defined on, and the same op in PyTorch
# for checking. The derivative rule gets the inputs and the output and returns one partial
# derivative per input.

# %%
cube = register_op(OpSpec(
    name="cube", arity=1,
    forward=lambda x: x**3,
    derivative=lambda x, out: (3 * x**2,),
    formula="x**3", derivative_formula=("3 * x**2",),
    torch=lambda x: x**3,
))
x = Value(2.0, label="x")
y = x.cube()
y.label = "y"
y.backward()
print(y, x)
assert (y.data, x.grad) == (8.0, 12.0)

# %% [markdown]
# Both kinds of node can live in one graph; `backward()` calls each node's own rule.

# %%
x = Value(1.5, label="x")
both = cube_closure(x) + x.cube()
both.label = "both"
both.backward()
assert x.grad == 2 * 3 * 1.5**2
draw_dot(both)

# %% [markdown]
# ## `check_op` catches a wrong derivative
#
# A derivative rule is easy to get subtly wrong. `check_op` draws inputs from the op's domain and
# compares its derivative with finite differences of its own forward, and with PyTorch. Here is a
# cube whose author forgot that the exponent comes down as a factor of 3:

# %%
wrong_cube = OpSpec(name="wrong_cube", arity=1, forward=lambda x: x**3,
                    derivative=lambda x, out: (2 * x**2,), torch=lambda x: x**3)
try:
    check_op(wrong_cube, max_examples=20)
    caught = None
except GradientCheckError as error:
    caught = error
print(caught)
assert caught is not None and "WRONG" in str(caught)

# %%
result = check_op("cube", max_examples=30)
print(result)
assert result.oracles == ("finite differences", "PyTorch")

# %% [markdown]
# ## Exercise: swish
#
# Swish (also called SiLU) is **x·σ(x)** with **σ(x) = 1 / (1 + e⁻ˣ)**. Its forward
# rule is below. Write its derivative.
#
# Hint: σ′(x) = σ(x)·(1 − σ(x)), and the product rule. Use `ops.exp` rather
# than `math.exp`: it works on numbers and on Values, so the op can be differentiated twice.

# %%
def swish_forward(x):
    return x / (1 + math.exp(-x))


# %% tags=["exercise"]
def swish_derivative(x, out):
    # BEGIN SOLUTION
    s = 1 / (1 + ops.exp(-x))
    return (s * (1 + x * (1 - s)),)
    # END SOLUTION


# %%
def check_swish():
    register_op(OpSpec(name="swish", arity=1, forward=swish_forward, derivative=swish_derivative,
                       formula="x * sigmoid(x)", derivative_formula=("sigmoid(x) * (1 + x * (1 - sigmoid(x)))",),
                       domain=Domain(bounds=(-30.0, 30.0)),
                       torch=torch.nn.functional.silu))
    try:
        result = check_op("swish", max_examples=50)
    except Exception as error:
        if "NotImplementedError" in f"{type(error).__name__}: {error}":
            print("Not written yet: replace the `raise NotImplementedError` in swish_derivative.")
        elif isinstance(error, GradientCheckError):
            print("Not yet. check_op found an input where your derivative is wrong:\n")
            print(error)
        else:  # the rule itself failed on some input
            print(f"Your derivative raised an error instead of returning a number:\n  {type(error).__name__}: {error}")
        return False
    print(f"Right: your derivative agrees with {' and '.join(result.oracles)} on {result.examples} inputs.")
    return True


assert check_swish()

# %% [markdown]
# ## Your op in a graph
#
# A registered op is a method on every `Value`, appears in pictures under its name, and
# `explain` narrates its step with your formula.

# %%
x = Value(1.5, label="x")
w = Value(-0.5, label="w")
z = x * w
z.label = "z"
s = z.swish()
s.label = "s"
s.backward()
t = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
torch.nn.functional.silu(t[0] * t[1]).backward()
assert max(abs(x.grad - t.grad[0].item()), abs(w.grad - t.grad[1].item())) < 1e-12
draw_dot(s)

# %%
print(explain(s))
