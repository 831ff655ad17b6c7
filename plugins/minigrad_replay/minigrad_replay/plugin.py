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

from minigrad_core import hookimpl

from .replay import BatchedRecorder, LiftedRecorder, Recorder


def batched_engine(loss_fn) -> BatchedRecorder:
    """The ``batched`` engine for ``loss_fn``."""
    return BatchedRecorder(loss_fn)


def lifted_engine(loss_fn) -> LiftedRecorder:
    """The ``lifted`` engine for ``loss_fn``."""
    return LiftedRecorder(loss_fn)


@hookimpl
def minigrad_register_engines(register):
    register("replay", Recorder)
    register("batched", batched_engine)
    register("lifted", lifted_engine)
