"""The graphviz plugin's DOT source: records, edges, the no-backward note, collapsing.

None of these tests needs Graphviz's `dot` program (see test_graphviz_render.py for that).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import random
import re

import graphviz
import pytest

import minigrad_ops
from minigrad_core import Registry, Value, using
from minigrad_core.cli import main
from minigrad_explain import node_names, reading_order
from minigrad_graphviz import NO_BACKWARD_NOTE, by_label_prefix, draw_dot, groups_of, trace
from minigrad_graphviz import plugin as graphviz_plugin

SEED = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, graphviz_plugin)) as active:
        yield active


def seed_neuron():
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o


# a record's fields are stacked: left to right unbraced "name | data X | grad Y"; top to
# bottom braced "{ name | data X | grad Y }"
RECORD = re.compile(
    r"^\t(v\d+) \[id=\1 shape=record .*"
    r'label="(?:\{ )?(.*) \| data (\S+) \| grad (\S+?)(?: \})?"\]$',
    re.M,
)
OP = re.compile(r'^\t(v\d+)_op \[id=\1_op .*label="(.*)"\]$', re.M)
EDGE = re.compile(r"^\t(\w+) -> (\w+) \[id=(\w+)\]$", re.M)


def records(source: str) -> dict[str, tuple[str, float, float]]:
    return {m.group(1): (m.group(2), float(m.group(3)), float(m.group(4))) for m in RECORD.finditer(source)}


# -- trace ------------------------------------------------------------------------------------


def test_trace_lists_nodes_and_edges_in_data_flow_order():
    o = seed_neuron()
    nodes, edges = trace(o)
    assert nodes[-1] is o and len(nodes) == 10
    position = {id(n): i for i, n in enumerate(nodes)}
    assert all(position[id(a)] < position[id(b)] for a, b in edges)
    assert len(edges) == sum(len(n._prev) for n in nodes)


def test_trace_keeps_both_edges_of_an_input_used_twice():
    x = Value(3.0, label="x")
    nodes, edges = trace(x * x)
    assert len(nodes) == 2 and [(a.label, b.data) for a, b in edges] == [("x", 9.0), ("x", 9.0)]


def test_trace_is_iterative():
    x = Value(0.5)
    for _ in range(5000):
        x = x.tanh()
    nodes, edges = trace(x)
    assert len(nodes) == 5001 and len(edges) == 5000


# -- records, ops, edges ----------------------------------------------------------------------


def test_seed_neuron_records_show_label_data_and_grad():
    o = seed_neuron()
    o.backward()
    dot = draw_dot(o)
    assert isinstance(dot, graphviz.Digraph) and dot.format == "svg"
    source = dot.source
    order = reading_order(o)
    names = node_names(order)
    shown = records(source)
    assert len(shown) == len(order)
    for i, node in enumerate(order):
        name, data, grad = shown[f"v{i}"]
        assert name == names[i]
        assert data == pytest.approx(node.data, abs=5e-5)
        assert grad == pytest.approx(node.grad, abs=5e-5)
    assert shown[f"v{len(order) - 1}"][0] == "o"
    assert "rankdir=LR" in source


def test_one_op_node_per_operation_with_its_symbol():
    o = seed_neuron()
    source = draw_dot(o).source
    order = reading_order(o)
    ops = {m.group(1): m.group(2) for m in OP.finditer(source)}
    assert ops == {f"v{i}": n._op for i, n in enumerate(order) if n._spec is not None}
    assert sorted(ops.values()) == ["*", "*", "+", "+", "tanh"]


def test_edges_follow_the_data_flow():
    o = seed_neuron()
    source = draw_dot(o).source
    order = reading_order(o)
    position = {id(n): i for i, n in enumerate(order)}
    expected = []
    for i, node in enumerate(order):
        for k, child in enumerate(node._prev):
            expected.append((f"v{position[id(child)]}", f"v{i}_op", f"e{i}_{k}"))
        if node._spec is not None:
            expected.append((f"v{i}_op", f"v{i}", f"e{i}"))
    assert [m.groups() for m in EDGE.finditer(source)] == expected


def test_a_note_until_backward_has_run():
    o = seed_neuron()
    before = draw_dot(o).source
    assert NO_BACKWARD_NOTE in before and "labelloc=t" in before
    o.backward()
    assert NO_BACKWARD_NOTE not in draw_dot(o).source
    assert NO_BACKWARD_NOTE not in draw_dot(Value(1.0), note=False).source


def test_rankdir_and_its_check():
    assert "rankdir=TB" in draw_dot(seed_neuron(), rankdir="TB").source
    with pytest.raises(ValueError, match="rankdir must be one of"):
        draw_dot(seed_neuron(), rankdir="sideways")
    with pytest.raises(TypeError, match="takes a Value"):
        draw_dot(3.0)


def test_labels_with_dot_syntax_are_escaped():
    x = Value(1.0, label='{a|b} <c> "d" \\e')
    source = draw_dot(x * 2).source
    assert r'label="\{a\|b\} \<c\> \"d\" \\e | data 1.0000 | grad 0.0000"' in source
    assert r'label="{ \{a\|b\} \<c\> \"d\" \\e | data 1.0000 | grad 0.0000 }"' in draw_dot(x * 2, rankdir="TB").source


def test_numbers_are_drawn_with_four_decimals_or_four_digits():
    from minigrad_graphviz.drawing import format_value

    assert [format_value(x) for x in (0.0, -0.0, 0.70710678, -3, 123456.0, 1e-7, float("inf"))] == [
        "0.0000",
        "0.0000",
        "0.7071",
        "-3.0000",
        "1.235e+05",
        "1e-07",
        "inf",
    ]
    assert format_value(Value(2.5)) == "2.5000"


def test_a_100000_node_graph_exports_to_dot():
    x = Value(1.0, label="x")
    out = x
    for _ in range(50_000):
        out = out + 1.0  # each step adds a constant leaf and a sum: 2 values
    order = reading_order(out)
    assert len(order) == 100_001
    out.backward()
    source = draw_dot(out).source
    assert source.count("shape=record") == 100_001
    assert source.count(" -> ") == 150_000  # two inputs per sum, one op -> value edge
    assert "v0 [id=v0 shape=record" in source and "grad 1.0000" in source


# -- collapsing labelled subgraphs ------------------------------------------------------------


def labelled_mlp(sizes=(2, 3, 3, 1), samples=2, seed=0):
    """A hand-built MLP whose parameters are labelled like minigrad_nn's: "L0.N1.w0", "L0.N1.b"."""
    rng = random.Random(seed)
    layers = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(
            [
                (
                    [Value(rng.uniform(-1, 1), label=f"L{index}.N{j}.w{i}") for i in range(n_in)],
                    Value(0.1, label=f"L{index}.N{j}.b"),
                )
                for j in range(n_out)
            ]
        )
    loss = Value(0.0)
    for s in range(samples):
        activations = [Value(rng.uniform(-1, 1), label=f"x{s}_{i}") for i in range(sizes[0])]
        for layer in layers:
            activations = [sum((w * a for w, a in zip(weights, activations)), bias).tanh() for weights, bias in layer]
        loss = loss + (activations[0] - Value(1.0, label=f"y{s}")) ** 2
    return loss, layers


def test_collapse_by_neuron_gives_one_box_per_neuron():
    loss, layers = labelled_mlp()
    loss.backward()
    order = reading_order(loss)
    groups = groups_of(order, 2)
    assert set(groups) - {None} == {f"L{k}.N{j}" for k, layer in enumerate(layers) for j in range(len(layer))}
    for node, group in zip(order, groups):
        if node.label.startswith("L"):
            assert group == ".".join(node.label.split(".")[:2])
        if node.label.startswith(("x", "y")) or node is loss:
            assert group is None  # inputs, targets and the loss stay outside
    # a neuron's products, sums and tanh fold into its box
    tanh_nodes = [(n, g) for n, g in zip(order, groups) if n._op == "tanh"]
    assert all(g is not None for _, g in tanh_nodes)

    source = draw_dot(loss, collapse=2).source
    boxes = re.findall(r'^\t(g\d+) \[id=\1 shape=Mrecord .*label="(\S+) \|', source, re.M)
    assert sorted(name for _, name in boxes) == sorted(set(groups) - {None})
    assert source.count("shape=record") == groups.count(None)
    assert "×2" in source  # two samples pass through each neuron: one edge, counted


def test_collapse_by_layer_and_by_mapping_and_function():
    loss, layers = labelled_mlp()
    order = reading_order(loss)
    by_layer = groups_of(order, 1)
    assert set(by_layer) - {None} == {"L0", "L1", "L2"}
    mapping = {f"L0.N{j}.{p}": "first layer" for j in range(3) for p in ("w0", "w1", "b")}
    assert set(groups_of(order, mapping)) - {None} == {"first layer"}
    bias = layers[1][0][1]
    one_bias = groups_of(order, {bias: "one bias"})
    # the bias, and in each of the 2 samples the sum it enters (a named input pulls it in)
    assert [n._op for n, g in zip(order, one_bias) if g] == ["", "+", "+"]
    assert groups_of(order, lambda node: "L2" if node.label.startswith("L2") else None).count("L2") > 3
    assert groups_of(order, None) == [None] * len(order)
    with pytest.raises(TypeError, match="collapse must be"):
        groups_of(order, 2.5)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        by_label_prefix(0)


def test_collapsed_box_shows_its_output():
    w, x, b = Value(2.0, label="N.w"), Value(3.0, label="x"), Value(1.0, label="N.b")
    out = (w * x + b).tanh()
    out.backward()
    source = draw_dot(out, collapse=1).source
    assert re.search(r'label="N \| 2 leaves, 3 ops \| out: data 1.0000 grad 1.0000"', source)
    assert source.count("shape=record") == 1  # only x stays a record
    assert "v1 -> g0" in source or re.search(r"\tv\d+ -> g0 ", source)


# -- the plugin ------------------------------------------------------------------------------


def test_the_plugin_registers_an_exporter_and_the_graph_command(registry):
    assert set(registry.exporters) == {"graphviz"}
    assert "graph" in registry.commands and registry.commands["graph"].plugin == "minigrad_graphviz.plugin"
    assert registry.plugins["minigrad_graphviz.plugin"].provides == {"exporters": ["graphviz"], "commands": ["graph"]}


def test_the_entry_point_is_installed():
    points = {ep.name: ep for ep in importlib.metadata.entry_points(group="minigrad")}
    assert points["graphviz"].value == "minigrad_graphviz.plugin"
    assert points["graphviz"].dist.metadata["Name"] == "minigrad-graphviz"


def test_plugins_command_lists_it(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"minigrad_graphviz\.plugin .* exporters: graphviz; commands: graph", out)


def test_graph_command_prints_dot_without_an_output_file(capsys):
    args = ["graph", "tanh(x1*w1 + x2*w2 + b)"] + [f"{k}={v!r}" for k, v in SEED.items()]
    assert main(args) == 0
    source = capsys.readouterr().out
    shown = records(source)
    assert len(shown) == 10 and NO_BACKWARD_NOTE not in source
    grads = {name: grad for name, _, grad in shown.values()}
    assert (grads["x1"], grads["w1"], grads["x2"], grads["w2"], grads["b"]) == (-1.5, 1.0, 0.5, 0.0, 0.5)
    assert main([*args, "--no-backward"]) == 0
    assert NO_BACKWARD_NOTE in capsys.readouterr().out


def test_graph_command_errors_are_one_clear_line(capsys, tmp_path):
    assert main(["graph", "x.y", "x=1"]) == 1
    assert "attribute access" in capsys.readouterr().err
    assert main(["graph", "x*2", "x=1", "-o", str(tmp_path / "out.jpg")]) == 1
    error = capsys.readouterr().err
    assert "unknown format '.jpg'" in error and "Traceback" not in error
    assert main(["graph", "x*2", "x=1", "-o", str(tmp_path / "missing" / "out.dot")]) == 1
    assert "cannot write" in capsys.readouterr().err
