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
# # Chapter 6: Training
#
# Training is one loop: run the network forward, measure how wrong it is with a single number
# (the loss), run `backward()` to get every parameter's gradient, and move each parameter a small
# step against its gradient. Repeat.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from minigrad_nn import MLP, SGD, LinearSchedule, doctor, hinge, l2, make_moons, predict_numpy, seed, to_torch

doctor.enable()  # teaching checks: warnings for the classic training mistakes (see the last section)

# %% [markdown]
# ## The walkthrough's loop
#
# Four examples of three numbers each, and the answer we want for each: +1 or -1. The network is
# `MLP(3, [4, 4, 1])`: three inputs, two hidden layers of four tanh neurons, one output.

# %%
seed(42)  # the same starting weights every time the notebook runs
n = MLP(3, [4, 4, 1])
xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
ys = [1.0, -1.0, -1.0, 1.0]
print(n, "with", len(n.parameters()), "parameters")

# %% [markdown]
# Before training, check the first loss and its gradients against PyTorch: `to_torch(n)` is the
# same network as a float64 PyTorch module.

# %%
ypred = [n(x) for x in xs]
loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
loss.backward()

torch_net = to_torch(n)
t_out = torch_net(torch.tensor(xs, dtype=torch.float64)).squeeze(-1)
t_loss = ((t_out - torch.tensor(ys, dtype=torch.float64)) ** 2).sum()
t_loss.backward()
t_grads = [g for layer in torch_net.linears
           for row, b in zip(layer.weight.grad.tolist(), layer.bias.grad.tolist()) for g in [*row, b]]
print(f"loss: MiniGrad {loss.data:.12f}, PyTorch {t_loss.item():.12f}")
assert abs(loss.data - t_loss.item()) < 1e-12
assert max(abs(p.grad - g) for p, g in zip(n.parameters(), t_grads)) < 1e-12

# %% [markdown]
# Now the loop itself, as the walkthrough writes it. Note the line that sets every gradient back
# to 0 before `backward()`: gradients add up across passes (chapter 5).

# %%
history = []
for k in range(20):
    # forward pass
    ypred = [n(x) for x in xs]
    loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
    # backward pass
    for p in n.parameters():
        p.grad = 0.0
    loss.backward()
    # update
    for p in n.parameters():
        p.data += -0.1 * p.grad
    history.append(loss.data)

print("loss:", " ".join(f"{x:.3f}" for x in history[::4]), "...", f"{history[-1]:.4f}")
print("predictions:", [round(y.data, 3) for y in ypred])
assert history[-1] < history[0] / 10
assert all((y.data > 0) == (t > 0) for y, t in zip(ypred, ys))

# %% [markdown]
# ## The moons: a network learns a curved boundary
#
# `minigrad demo` trains on 100 points of two interleaving half moons. Here is the same run
# written out: `MLP(2, [16, 16, 1])` with relu hidden neurons and a linear output score, the hinge
# loss plus a little L2 penalty on the weights, and SGD with the learning rate going from 1.0 to
# 0.1. `tqdm` draws a progress bar that works both in a notebook and in a terminal.

# %%
X, y = make_moons(100, noise=0.1, seed=1337)
labels = [2.0 * t - 1.0 for t in y]  # the hinge loss wants -1 and +1
plt.figure(figsize=(4, 3.2))
plt.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=25)
plt.title("100 points, two classes")
plt.show()

# %%
seed(1337)
model = MLP(2, [16, 16, 1], nonlin="relu", out_nonlin=None)
steps = 100
optimizer = SGD(model.parameters(), lr=1.0)
schedule = LinearSchedule(optimizer, start=1.0, end=0.1, steps=steps)
inputs = X.tolist()
losses, accuracies = [], []

bar = tqdm(range(steps), desc="training")
for step in bar:
    scores = [model(x) for x in inputs]
    loss = hinge(scores, labels) + l2(model.parameters(), 1e-4)
    accuracy = np.mean([(s.data > 0) == (t > 0) for s, t in zip(scores, labels)])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    losses.append(loss.data)
    accuracies.append(accuracy)
    bar.set_postfix(loss=f"{loss.data:.4f}", accuracy=f"{accuracy:.0%}")

print(f"final loss {losses[-1]:.4f}, training accuracy {accuracies[-1]:.0%}")
assert accuracies[-1] == 1.0
assert abs(losses[-1] - 0.018328435059176792) < 1e-9  # exactly the run `minigrad demo` makes

# %% [markdown]
# ## What the network learned
#
# Colour every point of the plane by the sign of the network's score: that is the decision
# boundary. `predict_numpy` evaluates the trained network on a whole grid at once.

# %%
grid_x, grid_y = np.meshgrid(np.linspace(-1.6, 2.6, 200), np.linspace(-1.1, 1.6, 200))
scores_on_grid = predict_numpy(model, np.c_[grid_x.ravel(), grid_y.ravel()])[:, 0].reshape(grid_x.shape)

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
left.contourf(grid_x, grid_y, scores_on_grid > 0, cmap="coolwarm", alpha=0.35)
left.contour(grid_x, grid_y, scores_on_grid, levels=[0], colors="k", linewidths=1)
left.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=25)
left.set_title(f"decision boundary after {steps} steps")
right.plot(losses, label="loss")
right.set_xlabel("step")
right.set_ylabel("loss")
right.set_yscale("log")
twin = right.twinx()
twin.plot(accuracies, color="tab:green", label="accuracy")
twin.set_ylabel("training accuracy", color="tab:green")
right.set_title("loss and accuracy while training")
fig.tight_layout()
plt.show()

# %%
predicted = (scores_on_grid > 0)
assert predicted.any() and (~predicted).any()  # both classes get a region
assert np.all((predict_numpy(model, X)[:, 0] > 0) == (y == 1))  # and every training point is on its side

# %% [markdown]
# ## When training goes wrong
#
# The commonest mistakes raise no error: gradients never zeroed, a parameter that is not connected
# to the loss, relu neurons that never fire, tanh neurons stuck at ±1, a learning rate so large
# that the loss climbs. The network just learns badly, or not at all. MiniGrad's teaching checks
# watch for them while you train and warn, with the numbers they saw and what to try. The first
# cell of this chapter switched them on with `doctor.enable()` (the environment variable
# `MINIGRAD_TEACHING_CHECKS=1` does the same). The healthy runs above gave them nothing to say:

# %%
print("findings so far:", doctor.findings())
assert doctor.findings() == []

# %% [markdown]
# Here is the walkthrough's loop with its "Vital!" line left out:

# %%
import warnings

seed(42)
forgetful = MLP(3, [4, 4, 1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for k in range(5):
        ypred = [forgetful(x) for x in xs]
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
        loss.backward()  # no `p.grad = 0.0` before it
        for p in forgetful.parameters():
            p.data += -0.1 * p.grad

teaching = [w for w in caught if issubclass(w.category, doctor.TeachingWarning)]
for w in teaching:
    print(f"{w.category.__name__}: {w.message}\n")
assert teaching, "the teaching checks should have noticed gradients that were never zeroed"

# %% [markdown]
# Try another yourself: set the learning rate of the moons run above to 10 (`lr=10.0` and
# `start=10.0`) and run it again; the checks will tell you what became of many relu neurons, and
# what to try. `doctor.disable()` switches them off.
