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
# # Chapter 3: Backpropagation by hand
#
# We fill in every gradient of *L = (a·b + c)·f* three times: by hand with the chain rule, then
# node by node by calling each node's `_backward()`, then all at once with `backward()`. All three
# give the same numbers, because they are the same procedure.

# %%
import torch

from minigrad_core import Value, topological_order
from minigrad_explain import explain
from minigrad_graphviz import draw_dot


def build():
    """The chapter's expression, fresh (every grad 0)."""
    a, b, c, f = Value(2.0, label="a"), Value(-3.0, label="b"), Value(10.0, label="c"), Value(-2.0, label="f")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    L = d * f
    L.label = "L"
    return a, b, c, d, e, f, L


a, b, c, d, e, f, L = build()
L

# %% [markdown]
# ## 1. By hand
#
# Start at the output: ∂L/∂L = 1. Then walk backwards, one operation at a time.
#
# * *L = d·f*: a product's derivative with respect to one factor is the other factor. So
#   ∂L/∂d = f = −2 and ∂L/∂f = d = 4.
# * *d = e + c*: a sum passes its gradient on unchanged (local derivative 1). The **chain rule**
#   says to multiply the local derivative by the gradient arriving from above:
#   ∂L/∂e = 1 · ∂L/∂d.
# * *e = a·b*: again a product.
#
# ### Exercise
#
# Fill in the gradients that remain, using only the chain rule and the numbers already in the
# graph (`a.data`, `d.grad`, ...). Do not call `backward()`.

# %% tags=["exercise"]
def backprop_by_hand(a, b, c, d, e, f, L):
    L.grad = 1.0
    d.grad = f.data * L.grad
    f.grad = d.data * L.grad
    # BEGIN SOLUTION
    e.grad = 1.0 * d.grad
    c.grad = 1.0 * d.grad
    a.grad = b.data * e.grad
    b.grad = a.data * e.grad
    # END SOLUTION


# %% [markdown]
# The check fills in a fresh graph with your function and compares each gradient with PyTorch's
# (float64) for the same expression, saying which ones differ.

# %%
def torch_gradients():
    t = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
         for name, value in (("a", 2.0), ("b", -3.0), ("c", 10.0), ("f", -2.0))}
    t["e"] = t["a"] * t["b"]
    t["d"] = t["e"] + t["c"]
    t["L"] = t["d"] * t["f"]
    for name in ("e", "d", "L"):
        t[name].retain_grad()
    t["L"].backward()
    return {name: tensor.grad.item() for name, tensor in t.items()}


def check_by_hand(values):
    expected = torch_gradients()
    wrong = [f"{v.label}.grad is {v.grad}, PyTorch says {expected[v.label]}"
             for v in values if v.grad != expected[v.label]]
    if wrong:
        print("Not yet:\n  " + "\n  ".join(wrong))
        return False
    print("Right: every gradient matches PyTorch.")
    return True


def check_backprop_by_hand():
    a, b, c, d, e, f, L = build()
    try:
        backprop_by_hand(a, b, c, d, e, f, L)
    except NotImplementedError:
        print("Not written yet: replace the `raise NotImplementedError` in backprop_by_hand.")
        return False
    return check_by_hand([a, b, c, d, e, f, L])


assert check_backprop_by_hand()

# %%
backprop_by_hand(a, b, c, d, e, f, L)
draw_dot(L)

# %% [markdown]
# ## Checking one gradient by nudging
#
# The walkthrough checks a gradient with a nudge: rebuild the expression with one input moved by
# `h` and watch `L`. Nudging `a` moves `L` by about `a.grad * h`.

# %%
h = 1e-6
before = build()[-1].data
a2, b2, c2, d2, e2, f2, L2 = build()
a2.data += h  # the leaf moves; rebuild what depends on it
L_after = ((a2 * b2) + c2) * f2
print(f"(L(a + h) - L(a)) / h = {(L_after.data - before) / h:.5f}   a.grad = {a.grad}")
assert abs((L_after.data - before) / h - a.grad) < 1e-4


# %% [markdown]
# ## 2. Node by node with `_backward()`
#
# Each node knows how to do *its own* step of the chain rule: `node._backward()` adds
# (local derivative × `node.grad`) to the `grad` of each of its inputs. Call it on every node, from
# the output back to the leaves, after seeding `L.grad = 1`.

# %%
a, b, c, d, e, f, L = build()
L.grad = 1.0
L._backward()
print("after L._backward():", {v.label: v.grad for v in (d, f)})
d._backward()
print("after d._backward():", {v.label: v.grad for v in (e, c)})
e._backward()
print("after e._backward():", {v.label: v.grad for v in (a, b)})
assert check_by_hand([a, b, c, d, e, f, L])

# %% [markdown]
# The order matters: a node may pass its gradient on only once it has received everything from
# the nodes that use it. The reverse of a topological order guarantees that for every graph:

# %%
a, b, c, d, e, f, L = build()
L.grad = 1.0
order = topological_order(L)
print("backward order:", [n.label for n in reversed(order)])
for node in reversed(order):
    node._backward()
assert check_by_hand([a, b, c, d, e, f, L])

# %% [markdown]
# ## 3. All at once with `backward()`
#
# `backward()` does exactly the loop above (seed, reverse topological order, one chain-rule step
# per node).

# %%
a, b, c, d, e, f, L = build()
L.backward()
assert check_by_hand([a, b, c, d, e, f, L])
draw_dot(L)

# %% [markdown]
# ## The explanation
#
# `explain(L)` narrates the same pass, step by step, with each local derivative's formula and
# numbers. Here it is beside the same graph, drawn top to bottom.

# %%
import html

from IPython.display import HTML

explanation = explain(L)
intro = "".join(f"<p>{html.escape(line)}</p>" for line in explanation.header)
steps = explanation.text[len("\n".join(explanation.header)):].strip()
picture = draw_dot(L, rankdir="TB").pipe(format="svg").decode("utf-8")
HTML(f"""{intro}
<div style="display:flex; gap:2em; align-items:flex-start">
<div style="flex:0 0 auto">{picture}</div>
<pre style="flex:1 1 30em; min-width:30em; white-space:pre; overflow-x:auto; font-size:12px; line-height:1.35">{html.escape(steps)}</pre>
</div>""")

# %%
assert len(explanation.steps) == 7  # the seed, then one step per (node, input) pair
assert [explanation.grad_of(v) for v in (a, b, c, d, e, f, L)] == [6.0, -4.0, -2.0, -2.0, -2.0, 4.0, 1.0]
