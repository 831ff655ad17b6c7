"""The ``minigrad`` command: ``minigrad ops``, ``minigrad plugins``, ``minigrad explain``, and
commands from plugins."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import MiniGradError
from .registry import Registry, get_registry


def ops_table(registry: Registry) -> list[dict]:
    rows = []
    for spec in sorted(registry.ops.values(), key=lambda s: s.name):
        info = registry.plugins.get(spec.plugin)
        rows.append({
            "name": spec.name,
            "arity": "any" if spec.arity is None else spec.arity,
            "formula": spec.describe(),
            "params": dict(spec.params),
            "methods": list(spec.method_names),
            "operators": list(spec.operators),
            "plugin": spec.plugin,
            "distribution": info.distribution if info else "",
            "version": info.version if info else "",
        })
    return rows


def plugins_table(registry: Registry) -> list[dict]:
    return [info.as_dict() for info in registry.plugins.values()]


def _print_table(rows: list[dict], columns: list[str]) -> None:
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _run_ops(args) -> int:
    rows = ops_table(get_registry())
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no ops registered (is MINIGRAD_PLUGINS excluding them?)")
    else:
        for row in rows:
            row["provider"] = f"{row['plugin']} ({row['distribution']} {row['version']})".replace(" ( )", "")
        _print_table(rows, ["name", "arity", "formula", "provider"])
    return 0


def _run_plugins(args) -> int:
    rows = plugins_table(get_registry())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items()) or "nothing"
        row["provides"] = provides
        row["distribution"] = f"{row['distribution']} {row['version']}".strip() or row["module"]
    _print_table(rows, ["name", "distribution", "provides"])
    return 0


def _configure_explain(parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "example:\n  minigrad explain \"tanh(x1*w1 + x2*w2 + b)\" x1=2 x2=0 w1=-3 w2=1 b=6.8813735870195432\n\n"
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


def _run_explain(args) -> int:
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


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minigrad", description="MiniGrad: a scalar autograd engine to learn from.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help, run in (("ops", "list the registered ops", _run_ops),
                            ("plugins", "list the loaded plugins and what each provides", _run_plugins)):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.set_defaults(run=run)
    sub = commands.add_parser("explain", help="narrate the backward pass of an expression, step by step",
                              description="narrate the backward pass of an expression, step by step")
    _configure_explain(sub)
    sub.set_defaults(run=_run_explain)
    for command in registry.commands.values():
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        registry = get_registry()
        parser = build_parser(registry)
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        status = args.run(args)
        return 0 if status is None else int(status)
    except MiniGradError as error:
        print(f"minigrad: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
