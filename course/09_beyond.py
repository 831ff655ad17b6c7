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
# # Chapter 9: Beyond
#
# Three ideas that grow out of the same engine: derivatives of derivatives, forward mode against
# reverse mode, and replay, which runs a recorded graph many times faster than building it again.

# %%
import statistics
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from minigrad_core import Value, grad, jvp
from minigrad_nn import MLP, Adam, hinge, l2, make_moons, predict_numpy, seed
from minigrad_nn.datasets import load_digits
from minigrad_nn.losses import logsumexp
from minigrad_replay import record

# %% [markdown]
# ## Derivatives of derivatives
#
# Every derivative rule in MiniGrad is written with ops that work on Values too. So the backward
# pass can itself be recorded as a graph (`backward(create_graph=True)`) and differentiated again.
# `grad(f)` packages this as a function, and it composes:

# %%
def tanh(x):
    return x.tanh()


d1, d2, d3 = grad(tanh), grad(grad(tanh)), grad(grad(grad(tanh)))
print(f"tanh'(0.5) = {d1(0.5):.6f}   tanh''(0.5) = {d2(0.5):.6f}   tanh'''(0.5) = {d3(0.5):.6f}")

# %% [markdown]
# PyTorch does the same with `create_graph=True`; in float64 the numbers agree.

# %%
t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
torch_derivatives = []
y = torch.tanh(t)
for _ in range(3):
    (y,) = torch.autograd.grad(y, t, create_graph=True)
    torch_derivatives.append(y.item())
print("PyTorch:", [f"{x:.6f}" for x in torch_derivatives])
assert all(abs(mine - theirs) < 1e-12 for mine, theirs in zip((d1(0.5), d2(0.5), d3(0.5)), torch_derivatives))

# %%
xs = np.linspace(-3, 3, 61)
plt.figure(figsize=(6, 3.2))
plt.plot(xs, np.tanh(xs), label="tanh", lw=2)
for name, f in (("tanh'", d1), ("tanh''", d2), ("tanh'''", d3)):
    plt.plot(xs, [f(float(x)) for x in xs], label=name)
plt.axhline(0, color="grey", lw=0.5)
plt.legend()
plt.title("tanh and three derivatives, each from grad(...)")
plt.show()

# %% [markdown]
# ## Forward mode against reverse mode
#
# `backward()` is *reverse mode*: one pass from the output back to the inputs gives the derivative
# of **one output** with respect to **every input**. *Forward mode* pushes a tangent (a direction
# in which the inputs move) forward along with the values: one pass gives the derivative of
# **every output** along **one input direction**. `jvp` does forward mode, with the same local
# derivatives that `backward()` uses.
#
# A function of five inputs and one output: reverse mode needs one pass for the whole gradient;
# forward mode needs five, one per input.

# %%
def f(x1, x2, x3, x4, x5):
    return (x1 * x2 + x3 * x4 - x5).tanh() * x1


point = [0.5, -1.0, 2.0, 0.3, 0.1]
inputs = [Value(x) for x in point]
f(*inputs).backward()
reverse = [x.grad for x in inputs]

forward = []
for i in range(len(point)):
    direction = [1.0 if j == i else 0.0 for j in range(len(point))]
    value, tangent = jvp(f, point, direction)
    forward.append(tangent)

print("reverse mode, 1 pass: ", [f"{g:+.6f}" for g in reverse])
print("forward mode, 5 passes:", [f"{g:+.6f}" for g in forward])
assert all(abs(a - b) < 1e-15 for a, b in zip(reverse, forward))

# %% [markdown]
# Training has many parameters and one loss, which is why it runs backward. Turn it around, one
# input and many outputs, and forward mode wins: one pass gives every output's derivative.

# %%
def curve(s):
    return s.tanh(), (2 * s).exp(), s * s * s


values, tangents = jvp(curve, [0.5], [1.0])
print("values:", [round(v, 6) for v in values], " derivatives, in one forward pass:", [round(t, 6) for t in tangents])
t = torch.tensor(0.5, dtype=torch.float64)
_, torch_tangents = torch.func.jvp(lambda s: (torch.tanh(s), torch.exp(2 * s), s**3), (t,), (torch.ones_like(t),))
assert all(abs(a - b.item()) < 1e-12 for a, b in zip(tangents, torch_tangents))

# %% [markdown]
# ## Replay: building the graph is the slow part
#
# Every training step in chapter 6 built the same graph again from new Values: the same
# operations, in the same order, on new numbers. `record` runs the loss once on Values and writes
# that graph out as straight-line Python on plain floats, forward and backward. Replaying it gives
# the same numbers without building a single Value. Here is the tape of one small neuron, as code:

# %%
def neuron_loss(x1, x2, w1, w2, b):
    return (x1 * w1 + x2 * w2 + b).tanh()


small = record(neuron_loss, 2.0, 0.0, -3.0, 1.0, 6.8813735870195432)
print(small.source)

# %% [markdown]
# And the moons network of chapter 6: record the full-batch loss once, then compare a replayed
# step with an eager one.

# %%
X, y = make_moons(100, noise=0.1, seed=1337)
batch, labels = X.tolist(), [2.0 * t - 1.0 for t in y]
seed(1337)
model = MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None)


def loss_fn(batch, labels):
    return hinge([model(x) for x in batch], labels) + l2(model.parameters(), 1e-4)


tape = record(loss_fn, batch, labels)
print(tape)


def eager_step():
    loss = loss_fn(batch, labels)
    loss.backward()
    return loss.data


def replay_step():
    return tape.backward(batch, labels)


def gradients_after(step):
    for p in model.parameters():
        p.grad = 0.0
    loss = step()
    return loss, [p.grad for p in model.parameters()]


eager_loss, eager_grads = gradients_after(eager_step)
replay_loss, replay_grads = gradients_after(replay_step)
assert replay_loss == eager_loss and replay_grads == eager_grads  # the same numbers, bit for bit
print(f"same loss ({eager_loss:.6f}) and the same {len(eager_grads)} gradients, to the last bit")

# %%
def median_seconds(step, repeats=3):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        gradients_after(step)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


eager_s, replay_s = median_seconds(eager_step), median_seconds(replay_step)
print(f"one step: eager {eager_s * 1000:.1f} ms, replay {replay_s * 1000:.1f} ms: replay is {eager_s / replay_s:.1f}x faster")

# %% [markdown]
# The speed-up comes from not building ~7,000 Python objects per step and from running plain float
# arithmetic with no lookups. `minigrad demo` trains this way by default. A recorded graph is only
# valid while the computation takes the same path: if a comparison in `loss_fn` would now go the
# other way (a relu switching sides is *not* such a comparison, it is an op), replay raises
# `GraphChangedError` instead of returning wrong numbers.

# %% [markdown]
# ## Lifted: one example's graph, the whole training set at once
#
# Replay still runs one example at a time. But the recorded graph of *one* example says exactly
# which numbers each neuron multiplies and adds, so the same graph can run on a whole batch with
# numpy, each layer's weighted sums becoming one matrix product: `record(...).batched(lift=True)`.
# The parameters stay Values, and `backward` fills their `.grad` as before.
#
# Here are chapter 8's digits, trained on all 1,500 training digits at every step. The targets are
# one-hot rows, so that the loss is the same arithmetic for every example (a label used as an
# index would pick one logit when recording and keep it for every example).

# %%
X_digits, y_digits = load_digits()
X_digits = X_digits / X_digits.max()
one_hot = np.eye(10)[y_digits]
order = np.random.default_rng(1989).permutation(len(y_digits))
train_rows, test_rows = order[:1500], order[1500:]

seed(1989)
reader = MLP(64, [32, 10], nonlin="tanh", out_nonlin=None)


def example_loss(x, target):
    """Cross-entropy of one example: log Σ exp(logits) - the logit of the right digit."""
    logits = reader.forward(x)
    return logsumexp(logits) - sum(t * z for t, z in zip(target, logits))


lifted = record(example_loss, X_digits[0].tolist(), one_hot[0].tolist()).batched(lift=True)

# the same gradient as Values give, on a small batch (up to rounding: sums run in another order)
few = train_rows[:20]
for p in reader.parameters():
    p.grad = 0.0
eager_loss = sum(example_loss(X_digits[i].tolist(), one_hot[i].tolist()) for i in few) * (1 / len(few))
eager_loss.backward()
eager_grads = [p.grad for p in reader.parameters()]
for p in reader.parameters():
    p.grad = 0.0
lifted_loss = lifted.backward(X_digits[few], one_hot[few], reduce="mean")
assert abs(lifted_loss - eager_loss.data) < 1e-12
assert max(abs(p.grad - g) for p, g in zip(reader.parameters(), eager_grads)) < 1e-12
print(f"lifted and eager agree on {len(eager_grads)} gradients")

# %%
optimizer = Adam(reader.parameters(), lr=0.02)
started = time.perf_counter()
for step in range(30):
    optimizer.zero_grad()
    loss = lifted.backward(X_digits[train_rows], one_hot[train_rows], reduce="mean")
    optimizer.step()
seconds = time.perf_counter() - started
test_accuracy = float(np.mean(predict_numpy(reader, X_digits[test_rows]).argmax(axis=1) == y_digits[test_rows]))
print(f"30 full-batch steps over 1,500 digits in {seconds:.1f} s: loss {loss:.3f}, test accuracy {test_accuracy:.1%}")
assert test_accuracy > 0.85

# %% [markdown]
# Past this point scalars stop being the right tool: `minigrad_nn.to_torch(model)` turns your
# network into a PyTorch module with the same weights, and everything in this course carries over.
