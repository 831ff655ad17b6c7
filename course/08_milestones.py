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
# # Chapter 8: Milestones, with your own engine
#
# Three moments in the history of neural networks, replayed with the engine you now understand:
# a perceptron that learns to separate two classes with a line (1958), the XOR problem that no
# single neuron can solve while one hidden layer can (1969 to 1986), and handwritten digits
# (1989).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minigrad_nn import MLP, SGD, Adam, Neuron, hinge, make_xor, predict_numpy, seed, softmax_cross_entropy
from minigrad_nn.datasets import load_digits


def plot_boundary(ax, model, X, y, title):
    """Colour the plane by the sign of the model's score, and draw the points on top."""
    gx, gy = np.meshgrid(np.linspace(-1.2, 1.2, 150), np.linspace(-1.2, 1.2, 150))
    score = predict_numpy(model, np.c_[gx.ravel(), gy.ravel()])[:, 0].reshape(gx.shape)
    ax.contourf(gx, gy, score > 0, cmap="coolwarm", alpha=0.35)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=18)
    ax.set_title(title)
    ax.set_aspect("equal")


def accuracy(model, X, y):
    return float(np.mean((predict_numpy(model, X)[:, 0] > 0) == (y == 1)))


# %% [markdown]
# ## 1958: the perceptron
#
# Rosenblatt's perceptron is one neuron without a squashing function: it says class 1 when
# *w·x + b > 0*. Its learning rule: for each example it gets wrong, add the example to the
# weights (or subtract it, for the other class). We write the perceptron's *loss* instead,
# *max(0, −y·(w·x + b))* with labels *y = ±1*, and let `backward()` find the update: the
# gradient is *−y·x* for a mistake and 0 otherwise. That is the perceptron rule.
#
# The data: 120 points on the two sides of a line, with a gap between the classes.

# %%
rng = np.random.default_rng(1958)
X_lin = rng.uniform(-1, 1, size=(200, 2))
side = X_lin[:, 0] + 0.5 * X_lin[:, 1] - 0.1
X_lin, side = X_lin[np.abs(side) > 0.15][:120], side[np.abs(side) > 0.15][:120]
y_lin = (side > 0).astype(int)
labels = [1.0 if t == 1 else -1.0 for t in y_lin]

seed(1958)
perceptron = Neuron(2, nonlin=None)
epochs_needed = None
for epoch in range(1, 51):
    mistakes = 0
    for x, label in zip(X_lin.tolist(), labels):  # one example at a time, as Rosenblatt did
        score = perceptron(x)
        loss = (-label * score).relu()
        if loss.data > 0 or score.data == 0:
            mistakes += 1
        for p in perceptron.parameters():
            p.grad = 0.0
        loss.backward()
        for p in perceptron.parameters():
            p.data -= 1.0 * p.grad
    if mistakes == 0:
        epochs_needed = epoch
        break

print(f"no mistakes left after {epochs_needed} passes over the data;",
      f"w = {[round(w.data, 3) for w in perceptron.w]}, b = {perceptron.b.data:.3f}")
assert epochs_needed is not None and accuracy(perceptron, X_lin, y_lin) == 1.0

fig, ax = plt.subplots(figsize=(4, 4))
plot_boundary(ax, perceptron, X_lin, y_lin, "a perceptron separates them")
plt.show()

# %% [markdown]
# The perceptron convergence theorem guarantees this: if a line separating the classes exists,
# the rule finds one in a finite number of mistakes.
#
# ## 1969: XOR, which no single neuron can learn
#
# In *Perceptrons* (1969) Minsky and Papert showed what one such neuron cannot do. XOR is the
# simplest case: class 1 where *x* and *y* have the same sign. No straight line puts the two
# "same sign" corners on one side and the other two on the other. Train one neuron anyway, as long
# as you like:

# %%
X_xor, y_xor = make_xor(100, seed=1969)
xor_labels = [2.0 * t - 1.0 for t in y_xor]
inputs = X_xor.tolist()


def train(model, steps, lr):
    optimizer = SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = hinge([model(x) for x in inputs], xor_labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.data


seed(1969)
single = Neuron(2, nonlin=None)
single_loss = train(single, steps=60, lr=0.1)
print(f"one neuron: loss {single_loss:.3f}, accuracy {accuracy(single, X_xor, y_xor):.0%}")
assert accuracy(single, X_xor, y_xor) <= 0.8  # a line gets three quadrants right at best

# %% [markdown]
# ## 1986: a hidden layer learns it
#
# Add a hidden layer of neurons between input and output, and train every weight by
# backpropagation, as Rumelhart, Hinton and Williams showed in 1986. The hidden neurons learn
# features (here, roughly "which side of each axis") that the output neuron *can* separate with a
# line.

# %%
seed(1986)
hidden = MLP(2, [8, 1], nonlin="tanh", out_nonlin=None)
hidden_loss = train(hidden, steps=80, lr=0.2)
print(f"one hidden layer: loss {hidden_loss:.3f}, accuracy {accuracy(hidden, X_xor, y_xor):.0%}")
assert accuracy(hidden, X_xor, y_xor) >= 0.97

fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
plot_boundary(left, single, X_xor, y_xor, f"one neuron: {accuracy(single, X_xor, y_xor):.0%}")
plot_boundary(right, hidden, X_xor, y_xor, f"a hidden layer of 8: {accuracy(hidden, X_xor, y_xor):.0%}")
plt.show()

# %% [markdown]
# ## 1989: handwritten digits
#
# In 1989 LeCun and colleagues trained a network by backpropagation to read handwritten zip-code
# digits. Ours is smaller: 1,797 digits of 8×8 pixels, a network with one hidden layer of 16
# neurons and ten outputs (one score per digit), the softmax cross-entropy loss, and Adam on small
# random batches. We train on 1,500 digits and test on the 297 the network never saw.

# %%
X_digits, y_digits = load_digits()
print(X_digits.shape, X_digits.dtype, y_digits.shape, y_digits.dtype)
fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for digit, ax in enumerate(axes):
    ax.imshow(X_digits[np.flatnonzero(y_digits == digit)[0]].reshape(8, 8), cmap="gray_r")
    ax.set_title(str(digit))
    ax.axis("off")
plt.show()

# %%
X_scaled = X_digits / X_digits.max()  # pixels from 0 to 1
order = np.random.default_rng(1989).permutation(len(y_digits))
train_rows, test_rows = order[:1500], order[1500:]
batches = np.random.default_rng(0)

seed(1989)
reader = MLP(64, [16, 10], nonlin="tanh", out_nonlin=None)
optimizer = Adam(reader.parameters(), lr=0.03)
for step in range(40):
    batch = batches.choice(train_rows, 32, replace=False)
    logits = [reader.forward(X_scaled[i].tolist()) for i in batch]
    loss = softmax_cross_entropy(logits, y_digits[batch].tolist())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

predicted = predict_numpy(reader, X_scaled[test_rows]).argmax(axis=1)
test_accuracy = float(np.mean(predicted == y_digits[test_rows]))
print(f"after 40 steps of 32 digits: test accuracy {test_accuracy:.1%} (a guess would get 10%)")
assert test_accuracy > 0.75

fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for ax, row, guess in zip(axes.ravel(), test_rows, predicted):
    ax.imshow(X_digits[row].reshape(8, 8), cmap="gray_r")
    ax.set_title(f"{guess}" + ("" if guess == y_digits[row] else f" (is {y_digits[row]})"),
                 color="black" if guess == y_digits[row] else "red", fontsize=10)
    ax.axis("off")
fig.suptitle("the network's reading of digits it never saw (mistakes in red)")
plt.show()

# %% [markdown]
# Forty small steps take a few seconds on scalars, and get most test digits right. Chapter 9
# shows how MiniGrad runs the same graph much faster, which is what a longer training needs.
