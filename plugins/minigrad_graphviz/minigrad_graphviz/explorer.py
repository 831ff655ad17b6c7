"""The explorer: one offline HTML file to step through a backward pass.

The page holds everything inline: the graph as SVG (drawn by ``dot``, with an id on each
value, op and edge), the steps of the backward pass as JSON (from
``minigrad_explain``), and the script and style that animate them. Nothing is
fetched from anywhere, so the file works from a USB stick or an e-mail attachment.

Buttons or the arrow keys move one step forward or back; the node passing its gradient
on is highlighted, the input receiving it too, and each gradient appears when it is
computed. Hovering a value or an op shows what it is, its formula, its data and its
gradient at this step.
"""

from __future__ import annotations

import html
import json
from importlib import resources

from minigrad_core import MiniGradError, Value
from minigrad_explain import explain, format_number, reading_order

from .drawing import draw_dot
from .rendering import GraphvizNotFound, dot_available, run_dot, strip_svg_preamble

MAX_NODES = 3000  # dot needs minutes beyond this, and no learner can follow it


def explorer_html(
    root: Value, rankdir: str = "LR", digits: int = 4, title: str | None = None, max_nodes: int = MAX_NODES, **ignored
) -> str:
    """The explorer page for ``root``'s backward pass, as one self-contained HTML string."""
    if not isinstance(root, Value):
        raise TypeError(f"explorer_html() takes a Value, got {root!r} of type {type(root).__name__}")
    # Counted before anything else: explaining or drawing a graph too big to show is wasted time.
    n_values = len(reading_order(root))
    if n_values > max_nodes:
        raise MiniGradError(
            f"the explorer draws at most {max_nodes:,} values and this graph has {n_values:,}: "
            f"explore a smaller graph (one neuron, one sample), or export a collapsed picture with "
            f"draw_dot(root, collapse=2)"
        )
    if not dot_available():
        raise GraphvizNotFound(None, None)
    explanation = explain(root, digits=digits)
    # Drawn with the final gradients, so each record is wide enough for its number; the
    # page then hides every gradient until the step that computes it.
    svg = strip_svg_preamble(run_dot(draw_dot(root, rankdir=rankdir, note=False), "svg").decode("utf-8"))
    data = explanation.as_dict()
    data["text"] = explanation.text
    heading = f"{explanation.definitions[-1]} = {format_number(root.data, digits)}"
    page_title = title or f"MiniGrad explorer: {heading}"
    page = PAGE.format(
        title=html.escape(page_title),
        heading=html.escape(heading),
        css=_asset("explorer.css"),
        svg=svg,
        data=_script_json(data),
        js=_asset("explorer.js"),
    )
    # a lone surrogate in a label ("\udcff") shows as its escape: the page must encode as UTF-8
    return page.encode("utf-8", "backslashreplace").decode("utf-8")


def _asset(name: str) -> str:
    return resources.files("minigrad_graphviz").joinpath(name).read_text(encoding="utf-8")


def _script_json(data) -> str:
    # Inside <script>, "</script>" or "<!--" in a label must not end the element early.
    return json.dumps(data, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
  <h1>Backpropagation, step by step</h1>
  <p class="expression">{heading}</p>
</header>
<nav id="controls" aria-label="steps">
  <button id="first" type="button" title="back to the start (Home)">&#x25C0;&#x25C0; start</button>
  <button id="prev" type="button" title="one step back (&#x2190;)">&#x25C0; back</button>
  <span id="counter" aria-live="polite">before step 0</span>
  <button id="next" type="button" title="one step forward (&#x2192;)">next &#x25B6;</button>
  <button id="last" type="button" title="to the end (End)">end &#x25B6;&#x25B6;</button>
</nav>
<main id="layout">
  <section id="graph" aria-label="computation graph">
{svg}
  </section>
  <aside id="panel">
    <h2 id="step-title">Before the backward pass</h2>
    <pre id="step-text"></pre>
    <details id="why-box"><summary>Why this order?</summary><p id="why"></p></details>
    <details id="all-box"><summary>The whole explanation</summary><pre id="all-text"></pre></details>
    <p class="legend"><span class="swatch current"></span> passes its gradient on
      <span class="swatch receiving"></span> receives it
      <span class="swatch pending"></span> grad not computed yet</p>
  </aside>
</main>
<div id="tooltip" role="tooltip" hidden></div>
<script type="application/json" id="minigrad-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""
