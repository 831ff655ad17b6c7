"""A Value's computation graph as Graphviz DOT: a record per value, an op node per operation.

    >>> dot = draw_dot(o)          # a graphviz.Digraph; dot.source is the DOT text
    >>> dot = draw_dot(loss, collapse=2)   # one box per neuron: labels "L0.N3.w1" -> "L0.N3"
    >>> dot = draw_dot(loss, collapse=1)   # one box per layer:  labels "L0.N3.w1" -> "L0"

The DOT text is written here line by line rather than through ``Digraph.node`` calls:
that is ~20x faster, so a 100,000-node graph exports in a second or two.

Every element gets an ``id`` that survives into SVG, so the HTML explorer can find it:
``v{i}`` is the record of the i-th value in reading order (``minigrad_explain.reading_order``,
the order ``explain`` lists them in), ``v{i}_op`` the op that
made it, ``e{i}_{k}`` the edge from its k-th input into that op, ``e{i}`` the edge from
the op to the value, ``g{k}`` a collapsed group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Union

import graphviz

from minigrad_core import Value
from minigrad_explain import node_names, reading_order

Grouping = Union[None, int, Callable[[Value], "str | None"], Mapping]  # noqa: UP007 (a runtime alias)

NO_BACKWARD_NOTE = (
    "No backward pass has run yet: every grad is 0. Call backward() on the output to fill in the gradients."
)

LEAF_COLOR = "#fff6d5"  # inputs and parameters: the values you can change
ROOT_COLOR = "#e3f4e1"  # the output the gradients are taken of
GROUP_COLOR = "#e8eefc"
OP_COLOR = "#eeeeee"
COMPUTED_COLOR = "white"

FONT = {"fontname": "Helvetica", "fontsize": "14"}


def trace(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """Every value ``root`` depends on, and the edges (input, user) between them.

    Both lists are in reading order (each value after its inputs, the inputs in argument
    order), each edge after the edges into its input. An input used twice by one op
    (``x * x``) gives two edges. Iterative: a graph of any depth is traced without recursion.
    """
    nodes = reading_order(root)
    edges = [(child, node) for node in nodes for child in node._prev]
    return nodes, edges


def by_label_prefix(depth: int = 2, separator: str = ".") -> Callable[[Value], str | None]:
    """Group values by the first ``depth`` parts of their label: with depth 2, the
    parameters "L0.N3.w1" and "L0.N3.b" belong to the group "L0.N3" (one neuron);
    with depth 1 to "L0" (one layer). Labels without the separator are not grouped."""
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"by_label_prefix: depth must be a positive int, got {depth!r}")

    def group(node: Value):
        parts = node.label.split(separator) if node.label else []
        if len(parts) < 2 or len(parts) < depth:
            return None
        return separator.join(parts[:depth])

    group.__name__ = f"by_label_prefix({depth}, {separator!r})"
    return group


def grouping_function(collapse: Grouping) -> Callable[[Value], str | None] | None:
    """``collapse`` as a function node -> group name or None.

    It may be None (no grouping), an int depth (``by_label_prefix(depth)``: with the nn
    plugin's labels "L0.N3.w1", 2 gives one box per neuron "L0.N3" and 1 one box per layer
    "L0"), a mapping from Values or labels to group names, or any function of a Value.
    """
    if collapse is None or collapse is False:
        return None
    if isinstance(collapse, bool):
        return by_label_prefix(2)
    if isinstance(collapse, int):
        return by_label_prefix(collapse)
    if isinstance(collapse, Mapping):
        mapping = collapse

        def from_mapping(node: Value):
            if node in mapping:
                return mapping[node]
            return mapping.get(node.label) if node.label else None

        return from_mapping
    if callable(collapse):
        return collapse
    raise TypeError(
        f"collapse must be None, a label-prefix depth (int), a mapping or a function of a Value, got {collapse!r}"
    )


def groups_of(order: list[Value], collapse: Grouping) -> list[str | None]:
    """The group of each node of ``order`` (None: drawn on its own).

    A node the grouping names belongs to that group. An unnamed node that an op made
    joins a group too, so that a neuron's products and sums fold into the neuron:
    - the group of its named inputs, when they all agree (``w1 * x1`` joins w1's neuron);
    - otherwise the group all its inputs share, unless one of them is an ungrouped leaf
      (so ``prediction - target`` stays outside the last neuron).
    """
    function = grouping_function(collapse)
    if function is None:
        return [None] * len(order)
    position = {id(node): i for i, node in enumerate(order)}
    named = [_group_name(function, node) for node in order]
    groups = list(named)
    for i, node in enumerate(order):
        if groups[i] is not None or node.is_leaf:
            continue
        inputs = [position[id(child)] for child in node._prev]
        from_names = {named[j] for j in inputs if named[j] is not None}
        if len(from_names) == 1:
            groups[i] = from_names.pop()
        elif not from_names:
            shared = {groups[j] for j in inputs}
            loose_leaf = any(groups[j] is None and order[j].is_leaf for j in inputs)
            if len(shared) == 1 and None not in shared and not loose_leaf:
                groups[i] = shared.pop()
    return groups


def _group_name(function, node: Value):
    group = function(node)
    if group is None or group == "":
        return None
    return str(group)


def draw_dot(
    root: Value,
    format: str = "svg",
    rankdir: str = "LR",
    collapse: Grouping = None,
    note: bool = True,
    legend: bool = True,
) -> graphviz.Digraph:
    """The graph of ``root`` as a ``graphviz.Digraph`` (render it, or read ``.source``).

    Each value is a record ``label | data | grad``; each op a small node between its
    inputs and its result. When no backward pass has run, a note on the picture says so;
    ``legend`` adds a key to the colours.

    ``collapse`` folds labelled subgraphs into one box each (see ``groups_of``). It takes
    a DEPTH, the number of dot-separated parts of a label that name a box: the nn plugin
    labels parameters "L0.N3.w1" (layer 0, neuron 3, weight 1), so ``collapse=2`` draws one
    box per neuron ("L0.N3") and ``collapse=1`` one box per layer ("L0"). It may also be a
    mapping from Values or labels to group names, or any function of a Value.
    """
    if not isinstance(root, Value):
        raise TypeError(f"draw_dot() takes a Value, got {root!r} of type {type(root).__name__}")
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"draw_dot(): rankdir must be one of LR, RL, TB, BT, got {rankdir!r}")
    order = reading_order(root)
    names = node_names(order)
    groups = groups_of(order, collapse)
    graph_attr = {"rankdir": rankdir, "nodesep": "0.2", "ranksep": "0.3", **FONT}
    if note and not backward_has_run(order, root):
        graph_attr.update(label=NO_BACKWARD_NOTE, labelloc="t", labeljust="l", fontcolor="#a33a2a")
    # A record's name, data and grad are stacked, whichever way the graph runs: side by side
    # they made a left-to-right picture long and thin (2004 x 280 for a neuron).
    sideways = rankdir in ("LR", "RL")
    body = _body(order, names, groups, sideways)
    if legend:
        body.append(_legend(order, groups))
    return graphviz.Digraph(
        name="minigrad",
        format=format,
        graph_attr=graph_attr,
        body=body,
        node_attr=dict(FONT),
        edge_attr={"arrowsize": "0.7", "color": "#555555", "fontname": "Helvetica"},
    )


def _legend(order: list[Value], groups: list) -> str:
    """A key to the colours of the boxes drawn (a value folded into a group is not drawn)."""
    drawn = [(i, node) for i, node in enumerate(order) if groups[i] is None]
    root_index = len(order) - 1
    rows = []
    if any(node.is_leaf and i != root_index for i, node in drawn):
        rows.append((LEAF_COLOR, "input or parameter"))
    if any(not node.is_leaf and i != root_index for i, node in drawn):
        rows.append((COMPUTED_COLOR, "computed by an op"))
    if groups[root_index] is None:
        rows.append((ROOT_COLOR, "output (grad = d output / d value)"))
    if len(drawn) < len(order):
        rows.append((GROUP_COLOR, "a collapsed group"))
    ops = "; oval: op" if any(not node.is_leaf for _, node in drawn) else ""
    cells = "".join(
        f'<TR><TD BGCOLOR="{color}" WIDTH="18"> </TD><TD ALIGN="LEFT">{text}</TD></TR>' for color, text in rows
    )
    table = (
        f'<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3" COLOR="#999999">'
        f'<TR><TD COLSPAN="2" ALIGN="LEFT" BORDER="0"><B>key</B>: name | data | grad{ops}</TD></TR>'
        f"{cells}</TABLE>"
    )
    return f"\tlegend [id=legend shape=plaintext fontsize=11 label=<{table}>]\n"


def backward_has_run(order: list[Value], root: Value) -> bool:
    """False when every gradient is still 0 (the root's included): nothing to show yet."""
    return any(_number(node.grad) != 0 for node in order)


def format_value(x) -> str:
    """A number as drawn in a record: 4 decimals, or 4 significant digits when large."""
    x = _number(x)
    if x == 0:
        return "0.0000"
    if abs(x) >= 1e5 or abs(x) < 1e-4:
        return f"{x:.4g}"
    return f"{x:.4f}"


def _number(x) -> float:
    if isinstance(x, Value):
        return x.data
    return 0.0 if x is None else x


def _body(order: list[Value], names: list[str], groups: list, sideways: bool = True) -> list[str]:
    position = {id(node): i for i, node in enumerate(order)}
    root_index = len(order) - 1
    lines: list[str] = []
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        if group is not None:
            members.setdefault(group, []).append(i)
    group_ids = {group: f"g{k}" for k, group in enumerate(members)}

    for group, indices in members.items():
        lines.append(_group_line(group_ids[group], group, indices, order, groups, position, root_index, sideways))
    for i, node in enumerate(order):
        if groups[i] is not None:
            continue
        fill = ROOT_COLOR if i == root_index else LEAF_COLOR if node.is_leaf else COMPUTED_COLOR
        label = f"{_field(names[i])} | data {format_value(node.data)} | grad {format_value(node.grad)}"
        if not sideways:
            label = "{ " + label + " }"  # top to bottom, fields run across unless braced
        lines.append(f'\tv{i} [id=v{i} shape=record style=filled fillcolor="{fill}" label="{label}"]\n')
        if not node.is_leaf:
            lines.append(
                f'\tv{i}_op [id=v{i}_op shape=ellipse style=filled fillcolor="{OP_COLOR}" '
                f'margin="0.05,0.02" label={_quote(node._op)}]\n'
            )

    drawn_between_groups: dict[tuple[str, str], int] = {}
    for i, node in enumerate(order):
        if node.is_leaf:
            continue
        target = group_ids[groups[i]] if groups[i] is not None else f"v{i}_op"
        for k, child in enumerate(node._prev):
            j = position[id(child)]
            if groups[j] is not None and groups[j] == groups[i]:
                continue  # inside one box
            source = group_ids[groups[j]] if groups[j] is not None else f"v{j}"
            if groups[i] is None and groups[j] is None:
                lines.append(f"\t{source} -> {target} [id=e{i}_{k}]\n")
            else:
                drawn_between_groups[(source, target)] = drawn_between_groups.get((source, target), 0) + 1
        if groups[i] is None:
            lines.append(f"\tv{i}_op -> v{i} [id=e{i}]\n")
    for (source, target), count in drawn_between_groups.items():
        label = f' label="×{count}"' if count > 1 else ""
        lines.append(f"\t{source} -> {target} [id=e_{source}_{target}{label}]\n")
    return lines


def _group_line(group_id, group, indices, order, groups, position, root_index, sideways=True) -> str:
    """One box for a whole group: its name, its size, and the value(s) it hands on."""
    inside = set(indices)
    used_outside = set()
    for i, node in enumerate(order):
        if i in inside:
            continue
        for child in node._prev:
            j = position[id(child)]
            if j in inside:
                used_outside.add(j)
    if root_index in inside:
        used_outside.add(root_index)
    n_ops = sum(1 for i in indices if not order[i].is_leaf)
    n_leaves = len(indices) - n_ops
    fields = [_field(group), f"{n_leaves} leaves, {n_ops} ops"]
    if len(used_outside) == 1:
        out = order[used_outside.pop()]
        fields.append(f"out: data {format_value(out.data)} grad {format_value(out.grad)}")
    elif used_outside:
        fields.append(f"{len(used_outside)} outputs")
    label = " | ".join(fields) if sideways else "{ " + " | ".join(fields) + " }"  # stacked, as a record
    return f'\t{group_id} [id={group_id} shape=Mrecord style=filled fillcolor="{GROUP_COLOR}" label="{label}"]\n'


_RECORD_SPECIAL = re.compile(r'([\\{}|<>"])')


def _field(text: str) -> str:
    """Text for one field of a record label, inside a quoted DOT string."""
    text = " ".join(_encodable(text).split())  # no newlines or runs of spaces inside a record
    return _RECORD_SPECIAL.sub(r"\\\1", text) or " "


def _quote(text: str) -> str:
    """A quoted DOT string showing ``text`` literally (a backslash would start an escape)."""
    text = " ".join(_encodable(text).split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encodable(text) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate ("\\udcff", say, from a file name
    decoded with surrogateescape) is shown as its escape instead of failing to encode."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")
