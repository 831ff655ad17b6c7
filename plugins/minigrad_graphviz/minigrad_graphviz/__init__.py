"""MiniGrad's graphviz plugin: see every value and every gradient.

    from minigrad_graphviz import draw_dot, render
    draw_dot(o)                     # a graphviz.Digraph; in Jupyter it displays itself
    render(o, "neuron.svg")         # .dot .svg .png, or .html: the step-by-step explorer
    render(loss, "mlp.svg", collapse=2)   # one box per neuron labelled "L0.N3..."

On the command line: ``minigrad graph "tanh(x*w + b)" x=2 w=-3 b=6.88 -o out.html``.
"""

from .drawing import NO_BACKWARD_NOTE, by_label_prefix, draw_dot, groups_of, trace
from .explorer import explorer_html
from .rendering import FORMATS, GraphvizNotFound, RenderError, dot_available, render, to_svg

__all__ = [
    "trace",
    "draw_dot",
    "by_label_prefix",
    "groups_of",
    "render",
    "to_svg",
    "explorer_html",
    "dot_available",
    "GraphvizNotFound",
    "RenderError",
    "FORMATS",
    "NO_BACKWARD_NOTE",
]
