"""The replay plugin's hook: three training engines. Entry point ``replay`` in the group ``minigrad``.

An engine is ``engine(loss_fn)``: an object whose ``backward(*args)`` computes
``loss_fn(*args)``, adds the loss's gradient to the parameters' ``.grad`` as
``loss_fn(*args).backward()`` would, returns ``loss_fn``'s outputs as numbers, and counts
its recordings in ``recordings`` (see ``minigrad_core.hookspecs``).

- ``replay``: ``Recorder``, the recorded graph as generated straight-line Python on
  floats; eager's numbers bit for bit.
- ``batched``: ``BatchedRecorder``, the recorded graph with numpy, every node of one op at
  one depth of the graph in one array operation; eager's numbers up to rounding.
- ``lifted``: ``LiftedRecorder``, the recorded graph's weighted sums (fused neurons, or
  chains of ``*`` and ``+``) that share their weights as matrix products, and each op's
  nodes at one depth as one array operation; eager's numbers up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minigrad_core import hookimpl

from .replay import BatchedRecorder, BatchedTape, LiftedRecorder, Recorder, record_batch


class ArrayEngine:
    """An engine run with numpy: ``engine(loss_fn)`` records the whole batch's loss;
    ``engine.per_example(example_loss, *example_args)`` records one example's loss and runs
    it for a whole batch (``.backward(X, T)`` returns the mean loss), far less to record."""

    def __init__(self, recorder: type[BatchedRecorder], lift: bool):
        self.recorder, self.lift = recorder, lift

    def __call__(self, loss_fn: Callable[..., Any]) -> BatchedRecorder:
        return self.recorder(loss_fn)

    def per_example(self, example_loss: Callable[..., Any], *example_args: Any) -> BatchedTape:
        return record_batch(example_loss, *example_args, lift=self.lift)


batched_engine = ArrayEngine(BatchedRecorder, lift=False)  # the ``batched`` engine
lifted_engine = ArrayEngine(LiftedRecorder, lift=True)  # the ``lifted`` engine


@hookimpl
def minigrad_register_engines(register: Callable[..., Any]) -> None:
    register("replay", Recorder)
    register("batched", batched_engine)
    register("lifted", lifted_engine)
