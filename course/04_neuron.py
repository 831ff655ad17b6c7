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
# # Chapter 4: A neuron
#
# A neuron multiplies each input by a weight, adds a bias, and squashes the sum through a
# nonlinearity: **o = tanh(x1·w1 + x2·w2 + b)**. With the walkthrough's numbers, the bias is
# chosen so that the output comes out as a round √2/2 ≈ 0.7071.

# %%
import html
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML

from minigrad_core import Value
from minigrad_graphviz import draw_dot, explorer_html

# %%
xs = np.linspace(-5, 5, 200)
plt.figure(figsize=(5, 2.6))
plt.plot(xs, np.tanh(xs))
plt.axhline(0, color="grey", lw=0.5)
plt.title("tanh squashes any sum into (-1, 1)")
plt.grid(alpha=0.3)
plt.show()


# %%
def neuron_graph():
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")  # inputs
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")  # weights
    b = Value(6.8813735870195432, label="b")  # bias
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, n=n, o=o)


v = neuron_graph()
v["o"].backward()
draw_dot(v["o"])

# %%
grads = {name: v[name].grad for name in ("x1", "w1", "x2", "w2", "b")}
print(f"o = {v['o'].data:.6f}  ", "  ".join(f"{k}.grad = {g:.4f}" for k, g in grads.items()))
assert abs(v["o"].data - math.sqrt(2) / 2) < 1e-12
assert all(abs(grads[k] - g) < 1e-12 for k, g in dict(x1=-1.5, w1=1.0, x2=0.5, w2=0.0, b=0.5).items())

# %% [markdown]
# `w2.grad` is 0: `x2` is 0, so wiggling `w2` changes nothing. `w1.grad` is 1: the neuron's
# output climbs at the same rate as `w1`. And the local derivative of tanh, 1 − o² = 0.5,
# is what every gradient below `o` is scaled by.
#
# ## The same gradients from PyTorch
#
# PyTorch's autograd does the same thing on tensors. In float64 it agrees to the last digit.

# %%
def torch_neuron():
    t = {k: torch.tensor(x, dtype=torch.float64, requires_grad=True)
         for k, x in dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432).items()}
    o = torch.tanh(t["x1"] * t["w1"] + t["x2"] * t["w2"] + t["b"])
    o.backward()
    return o.item(), {k: tensor.grad.item() for k, tensor in t.items()}


torch_o, torch_grads = torch_neuron()
print(f"PyTorch: o = {torch_o:.6f}  ", "  ".join(f"{k}.grad = {torch_grads[k]:.4f}" for k in grads))
assert abs(torch_o - v["o"].data) < 1e-15
assert all(abs(torch_grads[k] - grads[k]) < 1e-15 for k in grads)


# %% [markdown]
# ## Exercise: tanh from `exp`
#
# **tanh(n) = (e²ⁿ − 1) / (e²ⁿ + 1)**. Write it with `Value` operations only (`exp`, `+`,
# `-`, `/`, `*`). Nothing else is needed: `backward()` knows the derivative of each piece, so it
# knows the derivative of the whole.

# %% tags=["exercise"]
def tanh_from_exp(n):
    # BEGIN SOLUTION
    e = (2 * n).exp()
    return (e - 1) / (e + 1)
    # END SOLUTION


# %%
def check_tanh_from_exp():
    """Your tanh against PyTorch's, its value and its gradient, at a few points."""
    wrong = []
    try:
        for x in (-2.0, -0.3, 0.0, 0.8813735870195432, 3.0):
            n = Value(x)
            out = tanh_from_exp(n)
            if not isinstance(out, Value):
                print(f"Not yet: tanh_from_exp must return a Value (built from n), got {out!r}")
                return False
            out.backward()
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            torch.tanh(t).backward()
            if abs(out.data - math.tanh(x)) > 1e-12:
                wrong.append(f"at n = {x:g} it gives {out.data:.6f}; tanh is {math.tanh(x):.6f}")
            elif abs(n.grad - t.grad.item()) > 1e-12:
                wrong.append(f"at n = {x:g} the gradient is {n.grad:.6f}; PyTorch says {t.grad.item():.6f}")
    except NotImplementedError:
        print("Not written yet: replace the `raise NotImplementedError` in tanh_from_exp.")
        return False
    if wrong:
        print("Not yet:\n  " + "\n  ".join(wrong))
        return False
    print("Right: same values and gradients as PyTorch's tanh.")
    return True


assert check_tanh_from_exp()

# %% [markdown]
# Built from `exp`, the graph has more nodes but the gradients at the leaves are the same: how
# finely an operation is split is up to us, as long as each piece knows its local derivative.

# %%
v2 = neuron_graph()
o2 = tanh_from_exp(v2["n"])
o2.label = "o"
o2.backward()
assert all(abs(v2[k].grad - grads[k]) < 1e-12 for k in grads)
draw_dot(o2)


# %% [markdown]
# ## Exercise: a neuron for any number of inputs
#
# Write `neuron(xs, ws, b)`: `tanh` of the sum of `w * x` over the inputs, plus `b`.

# %% tags=["exercise"]
def neuron(xs, ws, b):
    # BEGIN SOLUTION
    return (sum(w * x for w, x in zip(ws, xs)) + b).tanh()
    # END SOLUTION


# %%
def check_neuron():
    """Your neuron against PyTorch on three inputs: its output, and the gradient of every weight."""
    x_numbers, w_numbers, b_number = [0.5, -1.0, 2.0], [0.3, 0.8, -0.4], 0.1
    ws, b = [Value(w) for w in w_numbers], Value(b_number)
    try:
        out = neuron([Value(x) for x in x_numbers], ws, b)
    except NotImplementedError:
        print("Not written yet: replace the `raise NotImplementedError` in neuron.")
        return False
    out.backward()
    tw = torch.tensor(w_numbers, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b_number, dtype=torch.float64, requires_grad=True)
    t_out = torch.tanh((tw * torch.tensor(x_numbers, dtype=torch.float64)).sum() + tb)
    t_out.backward()
    wrong = []
    if abs(out.data - t_out.item()) > 1e-12:
        wrong.append(f"the output is {out.data:.6f}; it should be {t_out.item():.6f}")
    for i, (w, tg) in enumerate(zip(ws, tw.grad.tolist())):
        if abs(w.grad - tg) > 1e-12:
            wrong.append(f"w{i + 1}.grad is {w.grad:.6f}; PyTorch says {tg:.6f}")
    if abs(b.grad - tb.grad.item()) > 1e-12:
        wrong.append(f"b.grad is {b.grad:.6f}; PyTorch says {tb.grad.item():.6f}")
    if wrong:
        print("Not yet:\n  " + "\n  ".join(wrong))
        return False
    print("Right: output and gradients match PyTorch.")
    return True


assert check_neuron()

# %% [markdown]
# `minigrad_nn.Neuron` is this function with its own weights: `Neuron(2)` draws `w` at random and
# starts `b` at 0.

# %%
from minigrad_nn import Neuron, seed

seed(1)
cell = Neuron(2)
out = cell([2.0, 0.0])
out.backward()
print(cell, [f"{p.label} = {p.data:.3f} (grad {p.grad:.3f})" for p in cell.parameters()])

# %% [markdown]
# ## Step through the backward pass
#
# The explorer below is one self-contained page: press **next** (or the → key) to watch the
# backward pass fill in one gradient at a time, and hover any box for its formula and numbers.

# %%
v3 = neuron_graph()
v3["o"].backward()
page = explorer_html(v3["o"], title="A neuron: tanh(x1*w1 + x2*w2 + b)")
HTML(f'<div><iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%; height:700px; border:1px solid #ccc"></iframe></div>')
