"""``minigrad graph EXPR [NAME=VALUE ...] -o FILE``: an expression's graph, after backward."""

from __future__ import annotations

import sys
from pathlib import Path

from minigrad_core import topological_order
from minigrad_explain.expr import parse, parse_bindings

from .drawing import draw_dot
from .rendering import FORMATS, render

HELP = "draw an expression's graph with data and gradients (.dot .svg .png, or the .html explorer)"

EPILOG = """example:
  minigrad graph "tanh(x1*w1 + x2*w2 + b)" x1=2 x2=0 w1=-3 w2=1 b=6.8813735870195432 -o neuron.html

The expression may use numbers, the bound names, + - * / ** and unary -, and any
registered op as a function (see `minigrad ops`). It is parsed, never evaluated as
Python. An expression that starts with '-' goes after '--': minigrad graph -- "-x*y" x=1 y=2"""


def configure(parser) -> None:
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("expression", help='the expression, e.g. "tanh(x*w + b)"')
    parser.add_argument("bindings", nargs="*", metavar="NAME=VALUE", help="a number for each name")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help=f"where to write; the suffix picks the format: {' '.join(FORMATS)} (default: print the DOT source)",
    )
    parser.add_argument(
        "--rankdir",
        default="LR",
        choices=("LR", "TB", "RL", "BT"),
        help="layout direction (default LR: inputs on the left)",
    )
    parser.add_argument(
        "--collapse",
        type=_depth,
        metavar="DEPTH",
        help="fold values whose labels share their first DEPTH dot-separated parts into one "
        "box: with labels like L0.N3.w1, 2 draws one box per neuron (L0.N3), 1 one per "
        "layer (L0)",
    )
    parser.add_argument("--no-backward", action="store_true", help="draw the graph as built, before any backward pass")


def _depth(text: str) -> int:
    if not (text.strip().isdigit() and int(text) >= 1):
        import argparse

        raise argparse.ArgumentTypeError(f"expected a whole number of label parts, 1 or more, got {text!r}")
    return int(text)


def run(args) -> int:
    expression = parse(args.expression)
    values = parse_bindings(args.bindings)
    root = expression.evaluate(values)
    unused = sorted(set(values) - set(expression.names))
    if unused:
        print(f"minigrad graph: note: {', '.join(unused)} not used by the expression", file=sys.stderr)
    if not args.no_backward:
        root.backward()
    options = {"rankdir": args.rankdir, "collapse": args.collapse}
    if args.output is None:
        print(draw_dot(root, **options).source, end="")
        return 0
    path = Path(args.output)
    if path.suffix.lower() == ".html":
        options.pop("collapse")  # the explorer shows every step, so every node
    render(root, path, **options)
    order = topological_order(root)
    n_ops = sum(1 for node in order if not node.is_leaf)
    print(f"wrote {path} ({len(order)} values, {n_ops} ops; output {root.data:.6g})")
    return 0
