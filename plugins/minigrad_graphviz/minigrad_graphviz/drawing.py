"""A Value's computation graph as Graphviz DOT: a record per value, an op node per operation.

    >>> dot = draw_dot(o)          # a graphviz.Digraph; dot.source is the DOT text
    >>> dot = draw_dot(loss, collapse=2)   # one box per "L0.N3" neuron of an MLP

The DOT text is written here line by line rather than through ``Digraph.node`` calls:
that is ~20x faster, so a 100,000-node graph exports in a second or two.

Every element gets an ``id`` that survives into SVG, so the HTML explorer can find it:
``v{i}`` is the record of the i-th value in topological order, ``v{i}_op`` the op that
made it, ``e{i}_{k}`` the edge from its k-th input into that op, ``e{i}`` the edge from
the op to the value, ``g{k}`` a collapsed group.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Union

import graphviz
from minigrad_core import Value, topological_order
from minigrad_explain import node_names

Grouping = Union[None, int, Callable[[Value], "str | None"], Mapping]

NO_BACKWARD_NOTE = ("No backward pass has run yet: every grad is 0. "
                    "Call backward() on the output to fill in the gradients.")

LEAF_COLOR = "#fff6d5"  # inputs and parameters: the values you can change
ROOT_COLOR = "#e3f4e1"  # the output the gradients are taken of
GROUP_COLOR = "#e8eefc"


def trace(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """Every value ``root`` depends on, and the edges (input, user) between them.

    Both lists are in data-flow order: each value after its inputs, each edge after the
    edges into its input. An input used twice by one op (``x * x``) gives two edges.
    Iterative: a graph of any depth is traced without recursion.
    """
    nodes = topological_order(root)
    edges = [(child, node) for node in nodes for child in node._prev]
    return nodes, edges


def by_label_prefix(depth: int = 2, separator: str = ".") -> Callable[[Value], "str | None"]:
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


def grouping_function(collapse: Grouping) -> Callable[[Value], "str | None"] | None:
    """``collapse`` as a function node -> group name or None.

    It may be None (no grouping), an int (``by_label_prefix(depth)``), a mapping from
    Values or labels to group names, or any function of a Value.
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
    raise TypeError(f"collapse must be None, a label-prefix depth (int), a mapping or a function of a Value, "
                    f"got {collapse!r}")


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


def draw_dot(root: Value, format: str = "svg", rankdir: str = "LR", collapse: Grouping = None,
             note: bool = True) -> graphviz.Digraph:
    """The graph of ``root`` as a ``graphviz.Digraph`` (render it, or read ``.source``).

    Each value is a record ``label | data | grad``; each op a small node between its
    inputs and its result. ``collapse`` folds labelled subgraphs into one box each (see
    ``groups_of``). When no backward pass has run, a note on the picture says so.
    """
    if not isinstance(root, Value):
        raise TypeError(f"draw_dot() takes a Value, got {root!r} of type {type(root).__name__}")
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"draw_dot(): rankdir must be one of LR, RL, TB, BT, got {rankdir!r}")
    order = topological_order(root)
    names = node_names(order)
    groups = groups_of(order, collapse)
    graph_attr = {"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "11"}
    if note and not backward_has_run(order, root):
        graph_attr.update(label=NO_BACKWARD_NOTE, labelloc="t", labeljust="l", fontcolor="#a33a2a")
    body = _body(order, names, groups)
    return graphviz.Digraph(
        name="minigrad", format=format, graph_attr=graph_attr, body=body,
        node_attr={"fontname": "Helvetica", "fontsize": "11"},
        edge_attr={"arrowsize": "0.7", "color": "#555555"},
    )


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


def _body(order: list[Value], names: list[str], groups: list) -> list[str]:
    position = {id(node): i for i, node in enumerate(order)}
    root_index = len(order) - 1
    lines: list[str] = []
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        if group is not None:
            members.setdefault(group, []).append(i)
    group_ids = {group: f"g{k}" for k, group in enumerate(members)}

    for group, indices in members.items():
        lines.append(_group_line(group_ids[group], group, indices, order, groups, position, root_index))
    for i, node in enumerate(order):
        if groups[i] is not None:
            continue
        fill = ROOT_COLOR if i == root_index else LEAF_COLOR if node.is_leaf else "white"
        label = "{ %s | data %s | grad %s }" % (_field(names[i]), format_value(node.data), format_value(node.grad))
        lines.append(f'\tv{i} [id=v{i} shape=record style=filled fillcolor="{fill}" label="{label}"]\n')
        if not node.is_leaf:
            lines.append(f'\tv{i}_op [id=v{i}_op shape=ellipse style=filled fillcolor="#eeeeee" '
                         f'margin="0.05,0.02" label={_quote(node._op)}]\n')

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


def _group_line(group_id, group, indices, order, groups, position, root_index) -> str:
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
    label = "{ " + " | ".join(fields) + " }"
    return f'\t{group_id} [id={group_id} shape=Mrecord style=filled fillcolor="{GROUP_COLOR}" label="{label}"]\n'


_RECORD_SPECIAL = re.compile(r'([\\{}|<>"])')


def _field(text: str) -> str:
    """Text for one field of a record label, inside a quoted DOT string."""
    text = " ".join(str(text).split())  # no newlines or runs of spaces inside a record
    return _RECORD_SPECIAL.sub(r"\\\1", text) or " "


def _quote(text: str) -> str:
    """A quoted DOT string showing ``text`` literally (a backslash would start an escape)."""
    text = " ".join(str(text).split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
