"""The graphviz plugin's hooks: an exporter (Jupyter shows a Value as its graph) and
the ``minigrad graph`` command. Entry point ``graphviz`` in the group ``minigrad``."""

from __future__ import annotations

from minigrad_core import hookimpl, topological_order

from . import command
from .drawing import groups_of, by_label_prefix
from .rendering import GraphvizNotFound, render, to_svg

JUPYTER_MAX_NODES = 1500  # beyond this dot takes too long for a notebook cell


class GraphvizExporter:
    """Draws Values: ``export(value, path)`` writes a file, ``mimebundle(value)`` feeds Jupyter."""

    name = "graphviz"

    def export(self, value, path, **options):
        return render(value, path, **options)

    def mimebundle(self, value) -> dict:
        text = repr(value)
        order = topological_order(value)
        options = {}
        if len(order) > JUPYTER_MAX_NODES:
            # too many to draw one by one: try one box per labelled neuron ("L0.N3...")
            options["collapse"] = by_label_prefix(2)
            groups = groups_of(order, options["collapse"])
            drawn = len(set(groups) - {None}) + groups.count(None)
            if drawn > JUPYTER_MAX_NODES:
                return {"text/plain": f"{text}\n(a graph of {len(order)} values: too large to draw here; "
                                      f"use minigrad_graphviz.render(value, 'graph.svg', collapse=...) )"}
        try:
            svg = to_svg(value, **options)
        except GraphvizNotFound as error:
            return {"text/plain": f"{text}\n({error})"}
        return {"image/svg+xml": svg, "text/plain": text}


@hookimpl
def minigrad_register_exporters(register):
    register("graphviz", GraphvizExporter())


@hookimpl
def minigrad_register_commands(register):
    register("graph", command.HELP, command.configure, command.run)
