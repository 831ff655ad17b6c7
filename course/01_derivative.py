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
# # Chapter 1: What a derivative is
#
# A derivative answers one question: **if I nudge the input a tiny bit, how much does the output
# move, and in which direction?** We will get that number three ways: by nudging a plain
# Python function, by working it out on paper, and from a MiniGrad `Value`.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minigrad_core import Value

# %% [markdown]
# ## A function and its picture
#
# Take *f(x) = 3x² − 4x + 5*, an ordinary Python function of one number.

# %%
def f(x):
    return 3 * x**2 - 4 * x + 5


f(3.0)

# %%
xs = np.arange(-5, 5, 0.25)
plt.figure(figsize=(5, 3.2))
plt.plot(xs, f(xs))
plt.xlabel("x")
plt.ylabel("f(x)")
plt.title("f(x) = 3x² - 4x + 5")
plt.show()

# %% [markdown]
# ## Nudge the input
#
# Move `x` by a small `h` and watch `f` move. The ratio *rise / run* is the slope of the curve at
# `x`: the derivative. At `x = 3` the curve climbs about 14 for every 1 to the right.

# %%
h = 0.0001
x = 3.0
slope = (f(x + h) - f(x)) / h
print(f"f({x}) = {f(x)}   f({x} + h) = {f(x + h)}   slope ≈ {slope:.6f}")
assert abs(slope - 14.0) < 1e-3

# %% [markdown]
# Left of the bottom of the bowl the slope is negative (nudge right, the output goes down), and at
# `x = 2/3` it is zero: a nudge does not move the output at all, to first order.

# %%
for x in (-3.0, 2 / 3):
    print(f"x = {x:+.4f}: slope ≈ {(f(x + h) - f(x)) / h:+.4f}")
assert abs((f(-3.0 + h) - f(-3.0)) / h - (-22.0)) < 1e-3

# %% [markdown]
# ## The slope as a line
#
# The derivative is the slope of the line that touches the curve at one point. Here it is at
# `x = 3` (slope 14) and at `x = -3` (slope -22).

# %%
plt.figure(figsize=(5, 3.2))
plt.plot(xs, f(xs), label="f(x)")
for x0 in (3.0, -3.0):
    s = (f(x0 + h) - f(x0)) / h
    near = np.linspace(x0 - 1.5, x0 + 1.5, 10)
    plt.plot(near, f(x0) + s * (near - x0), "--", label=f"slope {s:.1f} at x = {x0:g}")
    plt.plot([x0], [f(x0)], "o", color="black")
plt.legend()
plt.xlabel("x")
plt.show()

# %% [markdown]
# ## Exercise: the derivative on paper
#
# Write `df(x)`, the derivative of *f*, as a formula (no nudging). Hint: the derivative of
# *xⁿ* is *n·xⁿ⁻¹*, and the derivative of a sum is the sum of the derivatives.

# %% tags=["exercise"]
def df(x):
    # BEGIN SOLUTION
    return 6 * x - 4
    # END SOLUTION


# %% [markdown]
# Run the check: it compares your formula with the nudge at a few points and says where it
# disagrees.

# %%
def check_df():
    try:
        answers = {x: df(x) for x in (-3.0, 0.0, 2 / 3, 3.0, 10.0)}
    except NotImplementedError:
        print("Not written yet: replace the `raise NotImplementedError` in df with a formula.")
        return False
    wrong = []
    for x, answer in answers.items():
        nudge = (f(x + 1e-6) - f(x - 1e-6)) / 2e-6  # a nudge both ways: more accurate
        if not abs(answer - nudge) < 1e-4:
            wrong.append(f"at x = {x:g} your df gives {answer:g}, the slope is {nudge:.4f}")
    if wrong:
        print("Not yet:\n  " + "\n  ".join(wrong))
        return False
    print("Right: df matches the slope of f everywhere we looked.")
    return True


assert check_df()

# %% [markdown]
# ## The same number from a `Value`
#
# A `Value` wraps a number and remembers how it was computed. Call `backward()` on the result, and
# every input's `.grad` holds d(result)/d(input): the slope, computed exactly rather than by
# nudging.

# %%
x = Value(3.0, label="x")
y = 3 * x**2 - 4 * x + 5
y.backward()
print(y)
print(x)
assert y.data == 20.0
assert x.grad == 14.0  # exactly 6*3 - 4, no rounding from a nudge

# %% [markdown]
# ## More than one input
#
# With several inputs, each has its own slope: how much the output moves when *that* input is
# nudged and the others stay put. The walkthrough's example: *d = a·b + c* at *a = 2*, *b = −3*,
# *c = 10*.

# %%
def d_of(a, b, c):
    return a * b + c


a, b, c = 2.0, -3.0, 10.0
d1 = d_of(a, b, c)
for name, nudged in (("a", (a + h, b, c)), ("b", (a, b + h, c)), ("c", (a, b, c + h))):
    print(f"nudge {name}: d goes from {d1} to {d_of(*nudged):.4f}, slope ≈ {(d_of(*nudged) - d1) / h:.4f}")

# %%
A, B, C = Value(a, label="a"), Value(b, label="b"), Value(c, label="c")
D = d_of(A, B, C)
D.backward()
print(f"dd/da = {A.grad}, dd/db = {B.grad}, dd/dc = {C.grad}")
assert (A.grad, B.grad, C.grad) == (-3.0, 2.0, 1.0)  # b, a and 1

# %% [markdown]
# The slope with respect to `a` is `b`, with respect to `b` it is `a`, and `c` passes straight
# through. The next chapter draws how a `Value` remembers its history; chapter 3 shows how
# `backward()` turns that history into these numbers.
