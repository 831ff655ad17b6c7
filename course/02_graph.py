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
# # Chapter 2: The graph
#
# A `Value` does not only hold a number: it remembers which values it was made from and by which
# operation. Those memories link up into a graph, and that graph is all `backward()` needs. Here
# is the walkthrough's expression
#
# > **L = (a·b + c)·f**  with  a = 2, b = −3, c = 10, f = −2
#
# built one operation at a time, with a label on every value so the pictures can name them.

# %%
from minigrad_core import Value
from minigrad_graphviz import draw_dot

a = Value(2.0, label="a")
b = Value(-3.0, label="b")
c = Value(10.0, label="c")
e = a * b
e.label = "e"
d = e + c
d.label = "d"
f = Value(-2.0, label="f")
L = d * f
L.label = "L"
L

# %% [markdown]
# In Jupyter a `Value` shows itself as its graph. Each box is a value: its label, its `data`,
# and its `grad` (still 0: nothing has asked for a derivative yet, and the picture says so).
# The small round nodes are the operations. Leaves (numbers you typed in) are yellow, the output
# green.
#
# The same information is in plain attributes, with the names the walkthrough uses:

# %%
print("L.data  =", L.data)
print("L._op   =", repr(L._op))
print("L._prev =", L._prev)
print("e._prev =", e._prev)
assert L.data == -8.0 and L._op == "*" and set(L._prev) == {d, f}
assert a._prev == () and a._op == ""  # a leaf: made by no operation

# %% [markdown]
# ## Walking the graph
#
# `trace` lists every value `L` depends on and every edge (input → the value it feeds), each after
# what it depends on. This order, inputs before users, is a *topological order*.

# %%
from minigrad_graphviz import trace

nodes, edges = trace(L)
print("values:", [n.label for n in nodes])
print("edges: ", [f"{x.label} -> {y.label}" for x, y in edges])
assert len(nodes) == 7 and len(edges) == 6
position = {id(n): k for k, n in enumerate(nodes)}
assert all(position[id(x)] < position[id(y)] for x, y in edges)  # every input before its user

# %% [markdown]
# ## The picture with gradients
#
# After `L.backward()` each box's `grad` holds dL/d(that value). How those numbers come about is
# the next chapter; here is what they look like.

# %%
L.backward()
draw_dot(L)

# %%
print({n.label: n.grad for n in nodes})
assert {n.label: n.grad for n in nodes} == {"a": 6.0, "b": -4.0, "c": -2.0, "e": -2.0, "d": -2.0, "f": 4.0, "L": 1.0}

# %% [markdown]
# Read one off the picture: `f.grad = 4` says that nudging `f` up by a little `h` moves `L` by
# about `4h`. Check it by nudging, as in chapter 1:

# %%
h = 1e-6
L_nudged = (a.data * b.data + c.data) * (f.data + h)
print(f"(L(f + h) - L(f)) / h = {(L_nudged - L.data) / h:.4f}")
assert abs((L_nudged - L.data) / h - f.grad) < 1e-6

# %% [markdown]
# ## Top to bottom, and bigger graphs
#
# `draw_dot` takes `rankdir="TB"` to draw top to bottom. A network has thousands of values; its
# labels (`L0.N3.w1`: layer 0, neuron 3, weight 1) let `collapse=` fold each neuron into one box.

# %%
draw_dot(L, rankdir="TB")

# %%
from minigrad_nn import MLP, seed

seed(0)
net = MLP(2, [3, 1])
out = net([1.0, -2.0])
out.label = "out"
out.backward()
draw_dot(out, collapse=2)
