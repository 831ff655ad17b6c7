"""The graphviz plugin's hooks: an exporter (Jupyter shows a Value as its graph) and
the ``minigrad graph`` command. Entry point ``graphviz`` in the group ``minigrad``."""

from __future__ import annotations

from typing import Any

from minigrad_core import hookimpl, topological_order

from . import command
from .drawing import by_label_prefix, draw_dot, groups_of
from .rendering import GraphvizNotFound, RenderError, render, to_svg

JUPYTER_MAX_NODES = 600  # values, or boxes after collapsing: 600 take dot about 2 s
JUPYTER_MAX_LINES = 2000  # nodes + edges dot lays out; many more stall a notebook cell
JUPYTER_DOT_TIMEOUT = 10.0  # seconds; past this the cell shows text instead


class GraphvizExporter:
    """Draws Values: ``export(value, path)`` writes a file, ``mimebundle(value)`` feeds Jupyter."""

    name = "graphviz"

    def export(self, value, path, **options):
        return render(value, path, **options)

    def mimebundle(self, value) -> dict:
        text = repr(value)
        order = topological_order(value)
        options: dict[str, Any] = {}
        too_large = {
            "text/plain": f"{text}\n(a graph of {len(order)} values: too large to draw here; "
            f"use minigrad_graphviz.render(value, 'graph.svg', collapse=...) )"
        }
        if len(order) > JUPYTER_MAX_NODES:
            # too many to draw one by one: try one box per labelled neuron ("L0.N3...")
            options["collapse"] = by_label_prefix(2)
            groups = groups_of(order, options["collapse"])
            drawn = len(set(groups) - {None}) + groups.count(None)
            if drawn > JUPYTER_MAX_NODES or len(draw_dot(value, **options).body) > JUPYTER_MAX_LINES:
                return too_large
        try:
            svg = to_svg(value, timeout=JUPYTER_DOT_TIMEOUT, **options)
        except (GraphvizNotFound, RenderError) as error:
            return {"text/plain": f"{text}\n({error})"}
        return {"image/svg+xml": svg, "text/plain": text}


@hookimpl
def minigrad_register_exporters(register):
    register("graphviz", GraphvizExporter())


@hookimpl
def minigrad_register_commands(register):
    register("graph", command.HELP, command.configure, command.run)
