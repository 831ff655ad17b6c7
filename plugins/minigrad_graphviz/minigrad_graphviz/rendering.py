"""Writing a graph to a file: .dot, .svg, .png or .html, chosen by the file's suffix.

SVG and PNG (and the explorer's inline SVG) need Graphviz's ``dot`` program. When it is
missing, the DOT source is written next to the requested file and ``GraphvizNotFound``
says how to install Graphviz; no traceback from the graphviz package reaches the user.
A graph that ``dot`` cannot take (a label longer than it reads, more nodes than it lays
out) is refused before ``dot`` runs, with a ``RenderError`` that says which limit; the DOT
source is still written.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import graphviz

from minigrad_core import MiniGradError, Value

from .drawing import draw_dot

FORMATS = (".dot", ".svg", ".png", ".html")

# Graphviz's scanner reads a quoted string into a 16,384-byte buffer ("longer than 16384?"):
# 16,381 bytes fit between the quotes (measured with dot 2.43).
MAX_DOT_STRING = 16_381
# Nodes (values, ops and boxes) that dot is asked to lay out: a chain of 2,000 values (6,000
# nodes) takes it about 20 s, its time grows faster than the size, and it crashed on 100,000.
MAX_DOT_NODES = 20_000

INSTALL_HINT = (
    "Install Graphviz: on Debian/Ubuntu `sudo apt-get install graphviz`, on macOS "
    "`brew install graphviz`, with conda `conda install graphviz`."
)


class GraphvizNotFound(MiniGradError, RuntimeError):
    """Graphviz's ``dot`` program is not installed; the DOT source was written instead."""

    def __init__(self, wanted: Path | None, dot_path: Path | None):
        self.wanted, self.dot_path = wanted, dot_path
        if wanted is None:
            message = (
                "Graphviz's `dot` program is not installed (not found on PATH), so the graph "
                f"cannot be drawn. {INSTALL_HINT}"
            )
        else:
            if wanted.suffix.lower() in (".svg", ".png"):
                then = f"run `dot -T{wanted.suffix.lower()[1:]} {dot_path} -o {wanted}`, or run this command again."
            else:
                then = "run this command again."
            message = (
                f"cannot draw {wanted}: Graphviz's `dot` program is not installed (not found on PATH). "
                f"The graph's DOT source was written to {dot_path} instead. {INSTALL_HINT} Once it is installed, {then}"
            )
        super().__init__(message)


class RenderError(MiniGradError, RuntimeError):
    """``dot`` ran but failed, or the file could not be written."""


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def render(graph, path, **draw_options) -> Path:
    """Write ``graph`` (a Value, or a Digraph from ``draw_dot``) to ``path``; returns the path.

    The suffix picks the format: ``.dot`` (no Graphviz needed), ``.svg``, ``.png``, or
    ``.html`` (the step-by-step explorer; needs a Value). ``draw_options`` go to
    ``draw_dot`` (``rankdir``, ``collapse`` ...).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(
            f"cannot write {path}: unknown format {path.suffix or '(no suffix)'!r}; "
            f"the file name must end in one of {', '.join(FORMATS)}"
        )
    if suffix == ".html":
        if not isinstance(graph, Value):
            raise RenderError(f"cannot write {path}: the HTML explorer needs the Value itself, not a drawn graph")
        from .explorer import explorer_html

        try:
            page = explorer_html(graph, **draw_options)
        except GraphvizNotFound:
            _write(path.with_suffix(".dot"), draw_dot(graph, **_drawing(draw_options)).source)
            raise GraphvizNotFound(path, path.with_suffix(".dot")) from None
        _write(path, page)
        return path
    digraph = _as_digraph(graph, draw_options)
    if suffix == ".dot":
        _write(path, digraph.source)
        return path
    problem = too_much_for_dot(digraph)
    if problem or not dot_available():
        dot_path = path.with_suffix(".dot")
        _write(dot_path, digraph.source)
        if problem:
            raise RenderError(f"cannot draw {path}: {problem}. The graph's DOT source was written to {dot_path}.")
        raise GraphvizNotFound(path, dot_path)
    _write(path, run_dot(digraph, suffix.lstrip(".")))
    return path


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def too_much_for_dot(digraph: graphviz.Digraph) -> str | None:
    """Why Graphviz's ``dot`` cannot draw this graph, or None when it can: checked before
    running it, since dot fails on these with an obscure message or a crash."""
    nodes = sum(1 for line in digraph.body if " -> " not in line)
    if nodes > MAX_DOT_NODES:
        return (
            f"the graph has {nodes:,} nodes to lay out and Graphviz's dot handles at most {MAX_DOT_NODES:,} "
            f"(it takes minutes well before that); draw less of it, e.g. collapse=2 (one box per neuron) "
            f"or collapse=1 (one box per layer)"
        )
    longest = 0
    for match in _QUOTED.finditer(digraph.source):
        if match.end() - match.start() > MAX_DOT_STRING // 4:  # may be long in UTF-8 bytes
            longest = max(longest, len(match.group().encode("utf-8", "backslashreplace")) - 2)
    if longest > MAX_DOT_STRING:
        return (
            f"one label is {longest:,} bytes long in the DOT source and Graphviz reads at most "
            f"{MAX_DOT_STRING:,} bytes in one quoted string; give that value a shorter label"
        )
    return None


def to_svg(graph, timeout: float | None = None, **draw_options) -> str:
    """The graph as SVG text (raises GraphvizNotFound when ``dot`` is missing, RenderError
    when it fails or takes longer than ``timeout`` seconds)."""
    if not dot_available():
        raise GraphvizNotFound(None, None)
    return run_dot(_as_digraph(graph, draw_options), "svg", timeout).decode("utf-8")


def run_dot(digraph: graphviz.Digraph, fmt: str, timeout: float | None = None) -> bytes:
    """Lay the graph out with Graphviz's ``dot`` and return the file's bytes."""
    problem = too_much_for_dot(digraph)
    if problem:
        raise RenderError(f"cannot draw this graph: {problem}")
    try:
        done = subprocess.run(
            ["dot", f"-T{fmt}"],
            input=digraph.source.encode("utf-8", "backslashreplace"),
            capture_output=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise GraphvizNotFound(None, None) from None
    except subprocess.TimeoutExpired:
        raise RenderError(
            f"Graphviz's dot took longer than {timeout:g} s to lay out this graph; draw less of it (collapse=...)"
        ) from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()
        raise RenderError(f"Graphviz's dot failed to draw the graph as {fmt}: {detail or done.returncode}")
    return done.stdout


def strip_svg_preamble(svg: str) -> str:
    """The bare ``<svg>`` element, fit to inline in HTML: no XML declaration, DOCTYPE,
    comments or namespace declarations (the HTML parser supplies the namespace)."""
    svg = re.sub(r"<\?xml.*?\?>", "", svg, flags=re.S)
    svg = re.sub(r"<!DOCTYPE.*?>", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    return svg.strip()


def _as_digraph(graph, draw_options) -> graphviz.Digraph:
    if isinstance(graph, graphviz.Digraph):
        if draw_options:
            raise TypeError(f"drawing options {sorted(draw_options)} need a Value, not an already drawn graph")
        return graph
    if isinstance(graph, Value):
        return draw_dot(graph, **_drawing(draw_options))
    raise TypeError(f"render() takes a Value or a graphviz.Digraph, got {graph!r} of type {type(graph).__name__}")


def _drawing(options: dict) -> dict:
    return {k: v for k, v in options.items() if k in ("rankdir", "collapse", "note")}


def _write(path: Path, content) -> None:
    try:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:  # a lone surrogate in a label is written as its escape, not a UnicodeEncodeError
            path.write_text(content, encoding="utf-8", errors="backslashreplace")
    except OSError as error:
        raise RenderError(f"cannot write {path}: {error.strerror or error}") from None
