"""MiniGrad's graph replay: record a function's graph once, replay it on new numbers.

    from minigrad_replay import record
    tape = record(loss_fn, X, y)
    loss = tape.backward(X, y)     # eager's numbers and gradients, without building Values

See ``minigrad_replay.replay`` for how it works. Installed, the package registers two
training engines with MiniGrad (entry point ``replay`` in the group ``minigrad``):
``replay`` (``Recorder``), ``batched`` (``BatchedRecorder``) and ``lifted``
(``LiftedRecorder``: weighted sums found in the graph run as matrix products).
"""

import importlib.metadata

from .replay import (
    BatchedRecorder,
    BatchedTape,
    GraphChangedError,
    LiftedRecorder,
    Recorder,
    ReplayArgumentError,
    ReplayFallbackWarning,
    Tape,
    record,
    record_batch,
)

try:  # the version is written once, in pyproject.toml
    __version__ = importlib.metadata.version("minigrad-replay")
except importlib.metadata.PackageNotFoundError:  # a source checkout, never installed
    __version__ = "0+unknown"

__all__ = [
    "record",
    "record_batch",
    "Recorder",
    "BatchedRecorder",
    "LiftedRecorder",
    "Tape",
    "BatchedTape",
    "GraphChangedError",
    "ReplayArgumentError",
    "ReplayFallbackWarning",
    "__version__",
]
