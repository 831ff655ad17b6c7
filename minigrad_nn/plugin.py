"""Entry point of MiniGrad's nn plugin (``minigrad`` entry-point group, name ``nn``).

It provides the fused op ``weighted_sum`` that every neuron uses, and the ``minigrad demo``
command. Importing it is cheap: the demo's heavier modules load only when the command runs.
"""

from minigrad_core import hookimpl

from .fused import WEIGHTED_SUM


@hookimpl
def minigrad_register_ops(register):
    register(WEIGHTED_SUM)


@hookimpl
def minigrad_register_commands(register):
    from . import cli

    register("demo", cli.HELP, cli.configure, cli.run)
