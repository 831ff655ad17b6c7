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
# # Chapter 5: The accumulation bug
#
# A value used twice gets gradient from both uses. Forget that, and backpropagation silently
# gives wrong numbers. The walkthrough hits this bug on purpose; here it is, side by side with the
# rule MiniGrad follows.

# %%
import torch

from minigrad_core import Value
from minigrad_graphviz import draw_dot


# %% [markdown]
# ## An add written the walkthrough's way, with `=`
#
# In the walkthrough each operation makes its output node and gives it a `_backward` closure that
# pushes the gradient into its inputs. MiniGrad still accepts a node made this way. Here is `+`
# with the bug: the closure *sets* each input's gradient with `=`.

# %%
def add_with_equals(left, right):
    out = Value(left.data + right.data, (left, right), "+")

    def _backward():
        left.grad = 1.0 * out.grad  # the bug: `=` overwrites what another use already put there
        right.grad = 1.0 * out.grad

    out._backward = _backward
    return out


a = Value(3.0, label="a")
b = add_with_equals(a, a)
b.label = "b"
b.backward()
print("b = a + a with `=`:", a)
draw_dot(b)

# %% [markdown]
# *b = a + a = 2a*, so *db/da* is 2, but `a.grad` says 1. Both "uses" of `a` wrote 1 into the
# same place; the second erased the first.
#
# ## MiniGrad's rule: `+=`
#
# The chain rule says gradients along different paths **add up**. MiniGrad's one chain-rule step
# is `child.grad += local_derivative * node.grad`, for every op.

# %%
a = Value(3.0, label="a")
b = a + a
b.label = "b"
b.backward()
print("b = a + a, MiniGrad:", a)
assert a.grad == 2.0

t = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
(t + t).backward()
assert a.grad == t.grad.item() == 2.0
draw_dot(b)

# %% [markdown]
# ## Less obvious: a value used by two different operations
#
# The walkthrough's second example: *d = a·b*, *e = a + b*, *f = d·e*. Both `a` and `b` reach `f`
# along two paths. With `=` in the closures the gradient from one path is lost.

# %%
def mul_with_equals(left, right):
    out = Value(left.data * right.data, (left, right), "*")

    def _backward():
        left.grad = right.data * out.grad
        right.grad = left.data * out.grad

    out._backward = _backward
    return out


def example(add, mul):
    a, b = Value(-2.0, label="a"), Value(3.0, label="b")
    d = mul(a, b)
    d.label = "d"
    e = add(a, b)
    e.label = "e"
    f = mul(d, e)
    f.label = "f"
    f.backward()
    return a, b, f


a_bug, b_bug, f_bug = example(add_with_equals, mul_with_equals)
a_ok, b_ok, f_ok = example(lambda x, y: x + y, lambda x, y: x * y)

ta = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
tb = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
((ta * tb) * (ta + tb)).backward()

print(f"with `=`:   a.grad = {a_bug.grad:6}, b.grad = {b_bug.grad:6}")
print(f"MiniGrad:   a.grad = {a_ok.grad:6}, b.grad = {b_ok.grad:6}")
print(f"PyTorch:    a.grad = {ta.grad.item():6}, b.grad = {tb.grad.item():6}")
assert (a_ok.grad, b_ok.grad) == (ta.grad.item(), tb.grad.item()) == (-3.0, -8.0)
assert (a_bug.grad, b_bug.grad) != (a_ok.grad, b_ok.grad)
draw_dot(f_ok)

# %% [markdown]
# ## Exercise: fix the closure
#
# Rewrite the add's `_backward` so that a value used twice gets both contributions.

# %% tags=["exercise"]
def add_fixed(left, right):
    out = Value(left.data + right.data, (left, right), "+")

    def _backward():
        # BEGIN SOLUTION
        left.grad += 1.0 * out.grad
        right.grad += 1.0 * out.grad
        # END SOLUTION

    out._backward = _backward
    return out


# %%
def check_add_fixed():
    cases = {  # the expression, with add_fixed, and the same on PyTorch tensors
        "a + a": (lambda a, b: add_fixed(a, a), lambda a, b: a + a),
        "a + b": (lambda a, b: add_fixed(a, b), lambda a, b: a + b),
        "(a + b) + a": (lambda a, b: add_fixed(add_fixed(a, b), a), lambda a, b: (a + b) + a),
    }
    wrong = []
    for text, (build, build_torch) in cases.items():
        a, b = Value(3.0), Value(-1.0)
        try:
            build(a, b).backward()
        except NotImplementedError:
            print("Not written yet: replace the `raise NotImplementedError` in add_fixed's _backward.")
            return False
        ta = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
        tb = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
        build_torch(ta, tb).backward()
        for name, mine, theirs in (("a", a.grad, ta.grad), ("b", b.grad, tb.grad)):
            theirs = 0.0 if theirs is None else theirs.item()
            if mine != theirs:
                wrong.append(f"for {text}: {name}.grad is {mine}, PyTorch says {theirs}")
    if wrong:
        print("Not yet:\n  " + "\n  ".join(wrong))
        return False
    print("Right: every use of a value adds its share.")
    return True


assert check_add_fixed()

# %% [markdown]
# ## The same rule across calls: why training zeroes gradients
#
# Because leaf gradients add up, calling `backward()` twice *adds* the second pass on top of the
# first. PyTorch does the same. That is why every training step starts by setting each
# parameter's gradient back to 0 (the walkthrough's "Vital! Otherwise grads accumulate").

# %%
x = Value(3.0, label="x")
y = x**3
y.backward()
print("after one backward():  x.grad =", x.grad)
y.backward()
print("after two backward():  x.grad =", x.grad, " (27 + 27)")
assert x.grad == 54.0

tx = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
ty = tx**3
ty.backward(retain_graph=True)
ty.backward()
assert tx.grad.item() == x.grad

x.grad = 0.0
y.backward()
assert x.grad == 27.0  # zeroed first: the derivative once, 3 * 3**2
