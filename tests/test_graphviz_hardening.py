"""The graphviz plugin against hostile labels and huge graphs (issue 13), and the picture as a
newcomer sees it (issue 15: a key to the colours, a readable shape, collapse by depth)."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

import minigrad_ops
from minigrad_core import MiniGradError, Registry, Value, using
from minigrad_core.cli import main
from minigrad_explain.expr import build
from minigrad_graphviz import RenderError, draw_dot, drawing, explorer, explorer_html, render, rendering, to_svg
from minigrad_graphviz import plugin as graphviz_plugin

SEED = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)
NEURON = "tanh(x1*w1 + x2*w2 + b)"

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot is not installed (apt-get install graphviz; .ci/run installs it)",
)


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, graphviz_plugin)) as active:
        yield active


@pytest.fixture
def dot_never_runs(monkeypatch):
    """Fails the test if anything starts a program (dot) from the rendering module."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"dot was called: {args[0]!r}")

    monkeypatch.setattr(rendering.subprocess, "run", refuse)
    monkeypatch.setattr(rendering, "dot_available", lambda: True)


def chain(n: int) -> Value:
    out = Value(1.0, label="x")
    for _ in range(n):
        out = out + 1.0
    return out


# -- issue 13: refuse early, say the limit --------------------------------------------------


def test_the_explorer_refuses_a_huge_graph_before_explaining_it(monkeypatch):
    def explained(*args, **kwargs):
        raise AssertionError("explained before refusing")

    monkeypatch.setattr(explorer, "explain", explained)
    big = chain(50_000)  # 100,001 values
    with pytest.raises(MiniGradError, match=r"at most 3,000 values and this graph has 100,001"):
        explorer_html(big)
    with pytest.raises(MiniGradError, match=r"at most 10 values and this graph has 21"):
        explorer_html(chain(10), max_nodes=10)


def test_a_graph_too_big_for_dot_is_refused_before_dot_and_the_dot_file_written(tmp_path, dot_never_runs):
    big = chain(50_000)
    big.backward()
    too_many = r"150,00\d nodes to lay out and Graphviz's dot handles at most 20,000"
    with pytest.raises(RenderError, match=too_many) as caught:
        render(big, tmp_path / "big.svg")
    assert "collapse=" in str(caught.value) and str(tmp_path / "big.dot") in str(caught.value)
    assert (tmp_path / "big.dot").read_text(encoding="utf-8").count("shape=record") == 100_001
    with pytest.raises(RenderError, match="at most 20,000"):
        to_svg(big)


def test_a_label_longer_than_graphviz_reads_is_refused_before_dot(tmp_path, dot_never_runs):
    x = Value(1.0, label="x" * 20_000)
    y = x * 2
    with pytest.raises(RenderError, match=r"one label is 20,0\d\d bytes long .* at most 16,381 bytes") as caught:
        render(y, tmp_path / "long.png")
    assert "shorter label" in str(caught.value)
    assert "x" * 20_000 in (tmp_path / "long.dot").read_text(encoding="utf-8")
    # counted in bytes, as Graphviz counts: 6,000 three-byte characters are 18,000 bytes
    with pytest.raises(RenderError, match="at most 16,381 bytes"):
        render(Value(1.0, label="∂" * 6_000) * 2, tmp_path / "wide.svg")


@needs_dot
def test_the_longest_label_graphviz_reads_still_renders(tmp_path):
    fits = draw_dot(Value(1.0, label="x" * 16_300), note=False, legend=False)
    assert rendering.too_much_for_dot(fits) is None
    assert render(fits, tmp_path / "fits.svg").stat().st_size > 0


@pytest.mark.parametrize("suffix", [".dot", ".svg", ".html"])
def test_a_lone_surrogate_in_a_label_renders(suffix, tmp_path):
    if suffix != ".dot" and shutil.which("dot") is None:
        pytest.skip("needs Graphviz's dot")
    x = Value(1.0, label="bad\udcffname")
    y = (x * 2).tanh()
    y.backward()
    path = render(y, tmp_path / f"surrogate{suffix}")
    text = path.read_text(encoding="utf-8")  # valid UTF-8
    assert "bad\\udcffname" in text or "bad\\\\udcffname" in text  # shown as its escape
    draw_dot(y).source.encode("utf-8")  # the DOT source itself is encodable


def test_explorer_html_text_is_encodable():
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz's dot")
    y = Value(1.0, label="\udcff") * 2
    explorer_html(y).encode("utf-8")


def test_collapse_zero_is_a_clear_usage_error_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["graph", "x*2", "x=1", "--collapse", "0"])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert "--collapse: expected a whole number of label parts, 1 or more, got '0'" in error
    assert "Traceback" not in error
    with pytest.raises(ValueError, match="depth must be a positive int, got 0"):
        draw_dot(Value(1.0), collapse=0)


# -- issue 15: a key to the colours, a readable shape ---------------------------------------


def test_the_picture_has_a_key_to_its_colours():
    o = build(NEURON, **SEED)
    o.backward()
    source = draw_dot(o).source
    legend = next(line for line in source.splitlines() if line.startswith("\tlegend "))
    for color, words in [
        (drawing.LEAF_COLOR, "input or parameter"),
        (drawing.COMPUTED_COLOR, "computed by an op"),
        (drawing.ROOT_COLOR, "output (grad = d output / d value)"),
    ]:
        assert f'BGCOLOR="{color}"' in legend and words in legend
    assert "name | data | grad" in legend and "oval: op" in legend
    assert "collapsed group" not in legend
    assert "collapsed group" in draw_dot(o, collapse=lambda node: "G" if node.label in ("x1", "w1") else None).source
    assert "legend" not in draw_dot(o, legend=False).source


def test_records_stack_their_fields_whichever_way_the_graph_runs():
    o = build("x*2", x=1)
    assert 'label="x | data 1.0000 | grad 0.0000"' in draw_dot(o).source  # stacked, left to right
    assert 'label="{ x | data 1.0000 | grad 0.0000 }"' in draw_dot(o, rankdir="TB").source


@needs_dot
def test_the_neuron_picture_is_no_longer_long_and_thin(tmp_path):
    o = build(NEURON, **SEED)
    o.backward()
    data = render(o, tmp_path / "neuron.png").read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    # it was 2004 x 280 (7 : 1) with records side by side
    assert width / height < 3 and height >= 400


def test_collapse_is_documented_as_a_depth(capsys):
    for doc in (draw_dot.__doc__, drawing.grouping_function.__doc__):
        text = " ".join(doc.split())
        assert "one box per neuron" in text and "one box per layer" in text
    with pytest.raises(SystemExit):
        main(["graph", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "DEPTH" in help_text and "one box per neuron (L0.N3), 1 one per layer (L0)" in help_text


def test_collapse_by_depth_on_an_mlp():
    import minigrad_nn.plugin
    from minigrad_nn import MLP, seed

    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin, graphviz_plugin)):
        seed(1)
        out = MLP(2, [3, 1])([1.0, 2.0])
        by_neuron = draw_dot(out, collapse=2).source
        by_layer = draw_dot(out, collapse=1).source
    assert by_neuron.count("shape=Mrecord") == 4  # L0.N0, L0.N1, L0.N2, L1.N0
    assert by_layer.count("shape=Mrecord") == 2  # L0, L1
    assert 'label="L0 |' in by_layer and 'label="L0.N1 |' in by_neuron


def test_run_dot_is_not_reached_for_a_too_long_label(dot_never_runs):
    with pytest.raises(RenderError, match="16,381"):
        rendering.run_dot(draw_dot(Value(1.0, label="y" * 17_000)), "svg")
    assert subprocess.run is not None
