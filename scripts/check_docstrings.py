"""Fail when a name of MiniGrad's public API has no docstring.

    .venv/bin/python scripts/check_docstrings.py          # run by `bash scripts/dev docs`

mkdocstrings renders an undocumented function as a bare signature and says nothing, so the
strict docs build alone would let one through. The public API is what each package's
``__init__`` exports in its ``__all__``. A package without one (an op plugin: ``minigrad_ops``,
``minigrad_extras``) exports no names; its API is its ops, reached through the registry and listed
by ``minigrad ops``, and only its module docstring is checked. Each must have a docstring: the
modules, the functions, the classes, and the public methods a class defines itself (inherited
ones are documented where they are defined). Constants are exempt. The code is read with griffe,
as mkdocstrings reads it: nothing is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parents[1]
SEARCH_PATHS = [ROOT, *sorted(path.parent for path in ROOT.glob("plugins/*/pyproject.toml"))]
PACKAGES = [
    "minigrad_core",
    "minigrad_ops",
    "minigrad_nn",
    "minigrad_explain",
    "minigrad_replay",
    "minigrad_testing",
    "minigrad_graphviz",
    "minigrad_extras",
]


def public_names(module: griffe.Module) -> list[str]:
    exported = module.exports or []  # the names in __all__, when it is written as a literal list
    return [name if isinstance(name, str) else name.name for name in exported]


def missing_docstrings(obj: griffe.Object, shown_as: str) -> list[str]:
    """The documentable parts of ``obj`` (itself, and a class's own public members) without a docstring."""
    if obj.is_attribute:
        return []  # constants: their name and value say what they are
    missing = [] if obj.docstring and obj.docstring.value.strip() else [f"{shown_as} ({obj.kind.value})"]
    if obj.is_class:
        for name, member in obj.members.items():
            if name.startswith("_") or member.is_alias or member.is_attribute:
                continue
            missing += missing_docstrings(member, f"{shown_as}.{name}")
    return missing


def check(package: str) -> list[str]:
    loader = griffe.GriffeLoader(search_paths=[str(path) for path in SEARCH_PATHS])
    module = loader.load(package)
    loader.resolve_aliases(implicit=False, external=False)
    missing = missing_docstrings(module, package)
    for name in public_names(module):
        if name.startswith("__"):
            continue  # __version__
        try:
            target = module[name]
            target = target.final_target if target.is_alias else target
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            missing.append(f"{package}.{name} (exported in __all__, not found)")
            continue
        missing += missing_docstrings(target, f"{package}.{name}")
    return missing


def main() -> int:
    missing = [problem for package in PACKAGES for problem in check(package)]
    for problem in missing:
        print(f"no docstring: {problem}", file=sys.stderr)
    if missing:
        print(f"check_docstrings: {len(missing)} public names without a docstring", file=sys.stderr)
        return 1
    print(f"check_docstrings: every public name of {len(PACKAGES)} packages has a docstring")
    return 0


if __name__ == "__main__":
    sys.exit(main())
