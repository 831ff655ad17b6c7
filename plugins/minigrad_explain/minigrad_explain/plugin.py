"""Entry point of the explain plugin: the ``minigrad explain`` command."""

from __future__ import annotations

import argparse
import json

from minigrad_core import hookimpl

HELP = "narrate the backward pass of an expression, step by step"


def configure(parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        'example:\n  minigrad explain "tanh(x1*w1 + x2*w2 + b)" x1=2 x2=0 w1=-3 w2=1 b=6.8813735870195432\n\n'
        "The expression may use numbers, the bound names, + - * / ** and unary -, and any registered\n"
        "op as a function (see `minigrad ops`); it is parsed, never evaluated as Python."
    )
    parser.add_argument("expression", help='the expression, e.g. "tanh(x*w + b)"')
    parser.add_argument("bindings", nargs="*", metavar="NAME=VALUE", help="a number for each name")
    parser.add_argument("--digits", type=_digits, default=4, help="significant digits shown, 1 to 17 (default 4)")
    parser.add_argument("--json", action="store_true", help="print the steps as JSON instead of text")


def _digits(text: str) -> int:
    if not (text.isdigit() and 1 <= int(text) <= 17):
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 17, got {text!r}")
    return int(text)


def run(args) -> int:
    from .explain import explain
    from .expr import parse, parse_bindings

    expression = parse(args.expression)
    root = expression.evaluate(parse_bindings(args.bindings))
    explanation = explain(root, digits=args.digits)
    if args.json:
        print(json.dumps(explanation.as_dict(), indent=2))
    else:
        print(explanation.text)
    return 0


@hookimpl
def minigrad_register_commands(register):
    register("explain", HELP, configure, run)
