"""The hooks a MiniGrad plugin can implement.

A plugin is any module or object with functions marked ``@hookimpl`` whose names
match these specs. Each hook is called ONCE, when the registry is built (at first
use, or when a plugin is registered at run time); what it registers goes into
plain dicts, so no hook is ever called while you compute with Values.

Every hook receives a ``register`` callable bound to the plugin, so the registry
knows who provided what (``minigrad plugins`` shows it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

# What each hook's ``register`` takes is written in the hook's docstring; the registry checks it.
Register = Callable[..., Any]

hookspec = pluggy.HookspecMarker("minigrad")


@hookspec
def minigrad_register_ops(register: Register) -> None:
    """Register operations: call ``register(spec)`` once per ``OpSpec``.

    ``register(spec, replace=True)`` deliberately overrides an op of the same name
    provided by another plugin; without it a name clash is an error naming both.
    """


@hookspec
def minigrad_register_exporters(register: Register) -> None:
    """Register graph exporters: ``register(name, exporter)``.

    An exporter is an object; if it has ``mimebundle(value)``, Jupyter uses it to
    display a ``Value`` as its graph.
    """


@hookspec
def minigrad_register_commands(register: Register) -> None:
    """Add sub-commands to the ``minigrad`` CLI: ``register(name, help, configure, run)``.

    ``configure(parser)`` adds arguments to an ``argparse`` parser;
    ``run(args) -> int | None`` executes the command and returns its exit status.
    """


@hookspec
def minigrad_register_engines(register: Register) -> None:
    """Register training engines: ``register(name, engine)``.

    ``engine(loss_fn)`` returns an object whose ``backward(*args)`` computes ``loss_fn(*args)``
    and adds the loss's gradient to the ``.grad`` of the Values it reads (the parameters),
    as ``loss_fn(*args).backward()`` would, and returns ``loss_fn``'s outputs as numbers.
    ``minigrad demo --engine NAME`` offers every registered engine.

    An engine may also offer ``engine.per_example(example_loss, *example_args)``: record one
    example's loss and return an object whose ``backward(*batch_args)`` (each argument with a
    leading batch axis) returns the mean loss over the batch and adds its gradient to the
    parameters' ``.grad``. The demo uses it where it exists: one example's graph is far
    smaller to record than the whole batch's.
    """
