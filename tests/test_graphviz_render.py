"""Rendering through Graphviz's `dot`: SVG, PNG, the HTML explorer file, Jupyter, the CLI,
and what happens when `dot` is missing."""

from __future__ import annotations

import json
import re
import shutil
import struct
import xml.etree.ElementTree as ElementTree

import pytest

import minigrad_ops
from minigrad_core import Registry, Value, using
from minigrad_core.cli import main
from minigrad_explain import node_names, reading_order
from minigrad_explain.expr import build
from minigrad_graphviz import GraphvizNotFound, RenderError, draw_dot, render, to_svg
from minigrad_graphviz import plugin as graphviz_plugin

SEED = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)
NEURON = "tanh(x1*w1 + x2*w2 + b)"
SEED_ARGS = [NEURON] + [f"{k}={v!r}" for k, v in SEED.items()]
SVG_NS = "{http://www.w3.org/2000/svg}"

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot is not installed (apt-get install graphviz; .ci/run installs it)",
)


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, graphviz_plugin)) as active:
        yield active


@pytest.fixture
def without_dot(monkeypatch, tmp_path):
    """A PATH on which no `dot` can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


def seed_output():
    o = build(NEURON, **SEED)
    o.backward()
    return o


def svg_records(svg_text: str) -> dict[str, list[str]]:
    """id -> the texts drawn in that node, from real SVG."""
    root = ElementTree.fromstring(svg_text)
    found = {}
    for group in root.iter(f"{SVG_NS}g"):
        if group.get("class") == "node":
            found[group.get("id")] = [t.text for t in group.iter(f"{SVG_NS}text")]
    return found


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# -- with dot ----------------------------------------------------------------------------------


@needs_dot
def test_svg_shows_every_value_with_its_data_and_grad(tmp_path):
    o = seed_output()
    path = render(o, tmp_path / "neuron.svg")
    shown = svg_records(path.read_text())
    order = reading_order(o)
    names = node_names(order)
    for i, node in enumerate(order):
        name, data, grad = shown[f"v{i}"]
        assert name == names[i]
        assert float(data.split()[1]) == pytest.approx(node.data, abs=5e-5)
        assert float(grad.split()[1]) == pytest.approx(node.grad, abs=5e-5)
        if node._spec is not None:
            assert shown[f"v{i}_op"] == [node._op]


@needs_dot
def test_png_is_a_real_picture(tmp_path):
    path = render(seed_output(), tmp_path / "neuron.png")
    width, height = png_size(path.read_bytes())
    assert width > 600 and height > 100  # left to right: wider than tall
    assert width > 2 * height


@needs_dot
def test_the_note_appears_on_the_picture_before_backward():
    svg = to_svg(build(NEURON, **SEED))
    assert "No backward pass has run yet" in svg
    assert "No backward pass has run yet" not in to_svg(seed_output())


@needs_dot
def test_awkward_labels_render(tmp_path):
    x = Value(1.0, label='{a|b} <c> "d" \\e')
    y = Value(2.0, label="naïve ∂y")
    path = render((x * y).tanh(), tmp_path / "labels.svg")
    texts = [t for texts in svg_records(path.read_text()).values() for t in texts]
    assert '{a|b} <c> "d" \\e' in texts and "naïve ∂y" in texts


@needs_dot
def test_a_drawn_graph_renders_too(tmp_path):
    dot = draw_dot(seed_output(), rankdir="TB")
    path = render(dot, tmp_path / "tb.png")
    assert png_size(path.read_bytes())[0] > 100
    svg = ElementTree.fromstring(render(dot, tmp_path / "tb.svg").read_text())
    tops = {
        g.get("id"): min(float(t.get("y")) for t in g.iter(f"{SVG_NS}text"))
        for g in svg.iter(f"{SVG_NS}g")
        if g.get("class") == "node"
    }
    assert tops["v0"] < tops["v2"] < tops["v9"]  # top to bottom: x1, then x1*w1, then the output
    with pytest.raises(TypeError, match="need a Value"):
        render(dot, tmp_path / "x.svg", rankdir="LR")


@needs_dot
def test_collapsed_graphs_render(tmp_path):
    w, x, b = Value(2.0, label="N.w"), Value(3.0, label="x"), Value(1.0, label="N.b")
    out = (w * x + b).tanh()
    out.backward()
    shown = svg_records(render(out, tmp_path / "collapsed.svg", collapse=1).read_text())
    shown.pop("legend")
    assert shown["g0"][0] == "N" and len(shown) == 2  # one box, one record (x)


@needs_dot
@pytest.mark.parametrize("suffix", [".dot", ".svg", ".png", ".html"])
def test_the_seed_neuron_renders_from_the_cli(suffix, tmp_path, capsys):
    path = tmp_path / f"neuron{suffix}"
    assert main(["graph", *SEED_ARGS, "-o", str(path)]) == 0
    assert f"wrote {path} (10 values, 5 ops; output 0.707107)" in capsys.readouterr().out
    content = path.read_bytes()
    if suffix == ".dot":
        assert content.startswith(b"digraph minigrad {") and b"grad -1.5000" in content
    elif suffix == ".svg":
        grads = {
            texts[0]: float(texts[2].split()[1]) for texts in svg_records(content.decode()).values() if len(texts) == 3
        }
        assert (grads["x1"], grads["w1"], grads["x2"], grads["w2"], grads["b"]) == (-1.5, 1.0, 0.5, 0.0, 0.5)
    elif suffix == ".png":
        assert png_size(content)[0] > 600
    else:
        assert content.startswith(b"<!DOCTYPE html>") and b"<svg" in content


@needs_dot
def test_the_explorer_file_is_self_contained(tmp_path):
    path = render(seed_output(), tmp_path / "explorer.html")
    page = path.read_text()
    assert "http" not in page  # no URL at all: nothing to fetch, no CDN
    assert not re.search(r"""\b(src|href)\s*=""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<svg") == 1 and "<?xml" not in page and "<!DOCTYPE svg" not in page
    data = json.loads(
        re.search(r'<script type="application/json" id="minigrad-data">(.*?)</script>', page, re.S).group(1)
    )
    assert len(data["steps"]) == 10 and data["nodes"][data["root"]]["name"] == "n5"
    for i in range(len(data["nodes"])):
        assert f'id="v{i}"' in page  # every value can be found by the script


@needs_dot
def test_explorer_escapes_labels_inside_its_script(tmp_path):
    x = Value(1.0, label="</script><script>alert(1)</script>")
    out = x * 2
    out.backward()
    page = render(out, tmp_path / "tricky.html").read_text()
    assert page.count("</script>") == 2  # the data block's and the code's, nothing more


@needs_dot
def test_jupyter_shows_a_value_as_its_graph():
    o = seed_output()
    bundle = o._repr_mimebundle_()
    assert bundle["text/plain"] == repr(o)
    texts = [t for texts in svg_records(bundle["image/svg+xml"]).values() for t in texts]
    assert "grad -1.5000" in texts and "x1" in texts


def test_jupyter_falls_back_to_text_on_huge_graphs():
    x = Value(0.1)
    out = x
    for _ in range(2000):
        out = out * 1.0
    bundle = out._repr_mimebundle_()
    assert set(bundle) == {"text/plain"} and "too large to draw" in bundle["text/plain"]


# -- without dot --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".svg", ".png", ".html"])
def test_without_dot_the_source_is_written_and_the_message_says_how_to_install(suffix, tmp_path, without_dot):
    wanted = tmp_path / f"neuron{suffix}"
    with pytest.raises(GraphvizNotFound) as caught:
        render(seed_output(), wanted)
    message = str(caught.value)
    assert "apt-get install graphviz" in message and str(tmp_path / "neuron.dot") in message
    assert not wanted.exists()
    assert (tmp_path / "neuron.dot").read_text().startswith("digraph minigrad {")


def test_without_dot_the_cli_prints_the_message_not_a_traceback(tmp_path, capsys, without_dot):
    path = tmp_path / "neuron.png"
    assert main(["graph", *SEED_ARGS, "-o", str(path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("minigrad: error: cannot draw") and "Traceback" not in error
    assert "apt-get install graphviz" in error
    assert (tmp_path / "neuron.dot").exists()
    assert main(["graph", *SEED_ARGS, "-o", str(tmp_path / "plain.dot")]) == 0  # .dot needs no dot


def test_without_dot_jupyter_shows_text(without_dot):
    bundle = seed_output()._repr_mimebundle_()
    assert set(bundle) == {"text/plain"} and "apt-get install graphviz" in bundle["text/plain"]


def test_unknown_formats_are_refused(tmp_path):
    with pytest.raises(RenderError, match=r"unknown format '\.jpg'.*\.dot, \.svg, \.png, \.html"):
        render(seed_output(), tmp_path / "x.jpg")
    with pytest.raises(RenderError, match="needs the Value itself"):
        render(draw_dot(seed_output()), tmp_path / "x.html")
