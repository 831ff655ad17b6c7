"""MiniGrad's nn plugin: neural networks made of Values, and the training demo.

    from minigrad_nn import MLP
    n = MLP(3, [4, 4, 1])          # tanh neurons; MLP(2, [16, 16, 1], "relu", None) for a linear score
    loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, [n(x) for x in xs]))
    loss.backward()

The most used names are here too (``SGD``, ``hinge``, ``make_moons`` ...). Submodules:
``losses`` (mse, hinge, bce_with_logits, softmax_cross_entropy, l2), ``optim`` (SGD, Adam,
AdamW, LinearSchedule), ``datasets`` (make_moons, make_circles, make_xor,
make_spirals, make_blobs, load_digits), ``doctor`` (teaching checks: warnings for the classic
training mistakes) and ``demo`` (what ``minigrad demo`` runs).
"""

from . import datasets, doctor, losses, optim
from .datasets import load_digits, make_blobs, make_circles, make_moons, make_spirals, make_xor
from .losses import bce_with_logits, hinge, l2, mse, softmax_cross_entropy
from .nn import MLP, Layer, Module, Neuron, predict_numpy, seed
from .optim import SGD, Adam, AdamW, LinearSchedule
from .serialize import FORMAT, VERSION, ModelFileError, load, load_into, save


def _torch_bridge():
    try:
        from . import torch_bridge
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise ImportError("to_torch and from_torch need PyTorch: pip install torch") from None
    return torch_bridge


def to_torch(model):
    """An equivalent float64 ``torch.nn.Module`` (same outputs), for when scalars get too slow."""
    return _torch_bridge().to_torch(model)


def from_torch(torch_module, model):
    """Copy the weights of ``torch_module`` (e.g. made by ``to_torch`` and trained) into ``model``."""
    return _torch_bridge().from_torch(torch_module, model)


__all__ = [
    "Module",
    "Neuron",
    "Layer",
    "MLP",
    "seed",
    "predict_numpy",
    "save",
    "load",
    "load_into",
    "ModelFileError",
    "FORMAT",
    "VERSION",
    "to_torch",
    "from_torch",
    "losses",
    "optim",
    "datasets",
    "mse",
    "hinge",
    "bce_with_logits",
    "softmax_cross_entropy",
    "l2",
    "SGD",
    "Adam",
    "AdamW",
    "LinearSchedule",
    "make_moons",
    "make_circles",
    "make_xor",
    "make_spirals",
    "make_blobs",
    "load_digits",
    "doctor",
]

doctor._from_environment()  # MINIGRAD_TEACHING_CHECKS=1 switches the teaching checks on
