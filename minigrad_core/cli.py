"""The ``minigrad`` command: ``minigrad ops``, ``minigrad plugins``, and commands from plugins."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import sys
from typing import Any

from .errors import MiniGradError, shorten
from .registry import Registry, get_registry


def ops_table(registry: Registry) -> list[dict[str, Any]]:
    rows = []
    for spec in sorted(registry.ops.values(), key=lambda s: s.name):
        info = registry.plugins.get(spec.plugin)
        rows.append(
            {
                "name": spec.name,
                "arity": "any" if spec.arity is None else spec.arity,
                "formula": spec.describe(),
                "params": {k: v for k, v in spec.params.items()},
                "methods": list(spec.method_names),
                "operators": list(spec.operators),
                "plugin": spec.plugin,
                "distribution": info.distribution if info else "",
                "version": info.version if info else "",
            }
        )
    return rows


def plugins_table(registry: Registry) -> list[dict[str, Any]]:
    rows = [dict(info.as_dict(), status="loaded") for info in registry.plugins.values()]
    rows += [dict(info.as_dict(), status="failed") for info in registry.failed.values()]
    return rows


def versions() -> dict[str, str]:
    """The version of every installed MiniGrad distribution (the root one and each plugin's)."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().startswith("minigrad"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _run_ops(args: argparse.Namespace) -> int:
    rows = ops_table(get_registry())
    if args.json:
        print(json.dumps(rows, indent=2, default=repr))
    elif not rows:
        print("no ops registered (is MINIGRAD_PLUGINS excluding them?)")
    else:
        for row in rows:
            row["provider"] = f"{row['plugin']} ({row['distribution']} {row['version']})".replace(" ( )", "")
        _print_table(rows, ["name", "arity", "formula", "provider"])
    return 0


def _run_plugins(args: argparse.Namespace) -> int:
    rows = plugins_table(get_registry())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items()) or "nothing"
        row["provides"] = provides if row["status"] == "loaded" else f"FAILED: {shorten(row['error'], 120)}"
        row["distribution"] = f"{row['distribution']} {row['version']}".strip() or row["module"]
    _print_table(rows, ["name", "distribution", "provides"])
    return 0


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigrad",
        description="MiniGrad: a scalar autograd engine to learn from.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # keeps --version one per line
    version_text = "\n".join(f"{name} {version}" for name, version in versions().items()) or "minigrad (not installed)"
    parser.add_argument("--version", action="version", version=version_text)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help, run in (
        ("ops", "list the registered ops", _run_ops),
        ("plugins", "list the plugins, what each provides, and any that failed", _run_plugins),
    ):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.set_defaults(run=run)
    for command in registry.commands.values():
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        try:
            command.configure(sub)
        except Exception as error:  # one broken plugin command must not break the others, --help included
            print(
                f"minigrad: warning: command {command.name!r} (plugin {command.plugin!r}) could not set up "
                f"its options: {type(error).__name__}: {shorten(str(error))}; it is left out",
                file=sys.stderr,
            )
            commands._name_parser_map.pop(command.name, None)
            commands._choices_actions[:] = [a for a in commands._choices_actions if a.dest != command.name]
            continue
        sub.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        # Whatever a plugin prints while it loads goes to stderr: stdout is for results (JSON).
        with contextlib.redirect_stdout(sys.stderr):
            registry = get_registry()
            parser = build_parser(registry)
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        status = args.run(args)
        sys.stdout.flush()
        return 0 if status is None else int(status)
    except MiniGradError as error:
        print(f"minigrad: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (minigrad ops | head -1): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
