"""Saving and loading a model's parameters as JSON (never pickle: loading runs no code).

    {"format": "minigrad-model", "version": 1,
     "architecture": {"type": "MLP", "nin": 2, "nouts": [16, 16, 1], "nonlin": "relu", "out_nonlin": null},
     "parameters": [0.123, -0.456, ...]}

``parameters`` lists the numbers in ``model.parameters()`` order (layer by layer, neuron by
neuron, each neuron's weights then its bias). JSON writes a float so that reading it back
gives the very same float, so a round trip is exact.

A file is written to a temporary file beside it and renamed over it at the end, so a crash
never leaves half a file. Loading checks everything before touching the model: a corrupt,
truncated or mismatched file raises ModelFileError and leaves the model as it was.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

from minigrad_core import MiniGradError

from .nn import MLP, Layer, Module, Neuron

FORMAT = "minigrad-model"
VERSION = 1


class ModelFileError(MiniGradError, ValueError):
    """A model file that cannot be loaded: it names the file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path, self.problem = os.fspath(path), problem
        super().__init__(f"model file {self.path!r}: {problem}")


def save(model: Module, path, metadata: dict | None = None) -> str:
    """Write ``model``'s architecture and parameters to ``path`` as JSON, atomically; returns the path."""
    path = os.fspath(path)
    values = [p.data for p in model.parameters()]
    for i, x in enumerate(values):
        if not math.isfinite(x):
            raise ValueError(
                f"cannot save {model!r} to {path!r}: parameter {i} is {x!r}; JSON holds only finite numbers "
                f"(the training probably diverged: try a smaller learning rate)"
            )
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": model.architecture(),
        "parameters": values,
    }
    if metadata:
        document["metadata"] = metadata
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    _write_atomically(path, text)
    return path


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: the folder {folder!r} does not exist")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.chmod(temporary, _file_mode(path))  # mkstemp makes it private; give it a normal file's mode
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _file_mode(path: str) -> int:
    """The mode the file has now, or what a newly created file gets (0o666 less the umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def read(path) -> tuple[dict, list[float]]:
    """The checked architecture and parameter values of a model file (the model is not touched)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise ModelFileError(path, "no such file") from None
    except OSError as error:  # a folder, no permission, ...
        raise ModelFileError(path, error.strerror or str(error)) from None
    except UnicodeDecodeError as error:
        raise ModelFileError(path, f"not a text file ({error.reason} at byte {error.start}); expected JSON") from None
    if not text.strip():
        raise ModelFileError(path, "the file is empty")
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        end = " (the file looks truncated)" if error.pos >= len(text.rstrip()) else ""
        where = f"line {error.lineno} column {error.colno}"
        raise ModelFileError(path, f"not valid JSON: {error.msg} at {where}{end}") from None
    except ValueError as error:
        raise ModelFileError(path, str(error)) from None
    if not isinstance(document, dict):
        raise ModelFileError(
            path, f"expected a JSON object with \"format\": {FORMAT!r}, got a {type(document).__name__}")
    if document.get("format") != FORMAT:
        raise ModelFileError(
            path, f"not a MiniGrad model: \"format\" is {document.get('format')!r}, expected {FORMAT!r}")
    version = document.get("version")
    if version != VERSION or isinstance(version, bool):
        raise ModelFileError(
            path, f"format version {version!r} is not supported; this MiniGrad reads version {VERSION}")
    architecture = document.get("architecture")
    if not isinstance(architecture, dict) or not isinstance(architecture.get("type"), str):
        raise ModelFileError(path, f"\"architecture\" must be an object with a \"type\", got {architecture!r}")
    values = document.get("parameters")
    if not isinstance(values, list):
        raise ModelFileError(path, f"\"parameters\" must be a list of numbers, got {type(values).__name__}")
    numbers = []
    for i, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ModelFileError(path, f"parameter {i} is {x!r}, not a number")
        try:
            number = float(x)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):  # e.g. 1e400, which JSON reads as inf
            raise ModelFileError(path, f"parameter {i} is {_short(x)}, not a finite float")
        numbers.append(number)
    expected = _parameter_count(path, architecture)
    if expected is not None and expected != len(values):
        raise ModelFileError(
            path, f"the architecture {architecture} has {expected} parameters but the file lists {len(values)}")
    return architecture, numbers


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number a model can hold (JSON allows only finite numbers)")


def _parameter_count(path, architecture: dict) -> int | None:
    """How many parameters the architecture has (None for a type this module cannot build)."""
    kind = architecture["type"]
    try:
        if kind == "Neuron":
            return _size(architecture, "nin") + 1
        if kind == "Layer":
            return (_size(architecture, "nin") + 1) * _size(architecture, "nout")
        if kind == "MLP":
            nouts = architecture.get("nouts")
            if not isinstance(nouts, list) or not nouts:
                raise ValueError(f"\"nouts\" must be a non-empty list of layer sizes, got {nouts!r}")
            sizes = [_size(architecture, "nin")] + [_size({"nouts": n}, "nouts") for n in nouts]
            return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(nouts)))
    except ValueError as error:
        raise ModelFileError(path, f"bad architecture {architecture}: {error}") from None
    return None


def _size(architecture: dict, key: str) -> int:
    n = architecture.get(key)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{key!r} must be a whole number >= 1, got {n!r}")
    return n


def build(architecture: dict, path="<architecture>") -> Module:
    """A new model with the given architecture (its parameters freshly initialized)."""
    kind = architecture.get("type")
    try:
        if kind == "Neuron":
            return Neuron(architecture["nin"], architecture.get("nonlin"))
        if kind == "Layer":
            return Layer(architecture["nin"], architecture["nout"], architecture.get("nonlin"))
        if kind == "MLP":
            nonlin = architecture.get("nonlin")
            return MLP(architecture["nin"], architecture["nouts"], nonlin, architecture.get("out_nonlin", nonlin))
    except (KeyError, TypeError, ValueError, LookupError) as error:
        raise ModelFileError(path, f"cannot build the architecture {architecture}: {error}") from None
    raise ModelFileError(path, f"cannot build a model of type {kind!r}; known types: Neuron, Layer, MLP "
                               f"(to fill a model of your own class, build it and use load_into)")


def load(path) -> Module:
    """A new model built from the architecture in ``path``, holding the saved parameters."""
    architecture, values = read(path)
    model = build(architecture, path)
    _assign(model, values)
    return model


def load_into(model: Module, path) -> Module:
    """Put the parameters saved in ``path`` into ``model``, whose architecture must match."""
    architecture, values = read(path)
    expected = model.architecture()
    if architecture != expected:
        raise ModelFileError(path, f"the file holds {_describe(architecture)} but the model is {_describe(expected)}")
    if len(values) != len(model.parameters()):
        raise ModelFileError(
            path, f"the file lists {len(values)} parameters but the model has {len(model.parameters())}")
    _assign(model, values)
    return model


def _assign(model: Module, values: list[float]) -> None:
    for p, x in zip(model.parameters(), values):
        p.data = x
        p.grad = 0.0


def _describe(architecture: dict) -> str:
    details = ", ".join(f"{k}={v!r}" for k, v in architecture.items() if k != "type")
    return f"{architecture.get('type')}({details})"
