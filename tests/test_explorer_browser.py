"""The HTML explorer in a real headless browser (Debian's chromium, driven by Selenium).

The test loads the page from a file, steps through the whole backward pass with the
buttons and the keyboard, checks the gradients the page shows against the engine's,
hovers a value and an op for their tooltips, and takes a screenshot.
"""

from __future__ import annotations

import os
import shutil
import struct

import pytest

import minigrad_ops
from minigrad_core import Registry, using
from minigrad_explain import explain, node_names, reading_order
from minigrad_explain.expr import build
from minigrad_graphviz import plugin as graphviz_plugin
from minigrad_graphviz import render

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SEED = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)

pytestmark = [
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver; .ci/run installs them)",
    ),
    pytest.mark.skipif(
        shutil.which("dot") is None, reason="needs Graphviz's dot to draw the page's SVG (apt-get install graphviz)"
    ),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

# What the page shows: per value id, its grad text and its highlight classes.
READ_STATE = """
const state = {};
document.querySelectorAll('#graph g.node').forEach(g => {
  if (!/^v\\d+$/.test(g.id)) return;
  const texts = Array.from(g.querySelectorAll('text')).map(t => t.textContent.trim());
  state[g.id] = {grad: texts.find(t => t.startsWith('grad')), classes: Array.from(g.classList)};
});
const active = Array.from(document.querySelectorAll('#graph g.edge.active')).map(e => e.id);
return {state: state, active: active, counter: document.getElementById('counter').textContent,
        step: document.body.getAttribute('data-step')};
"""


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def registry():
    with using(Registry.from_plugins(minigrad_ops, graphviz_plugin)) as active:
        yield active


def open_explorer(browser, root, path):
    render(root, path)
    browser.get(path.as_uri())
    return browser.execute_script(READ_STATE)


def shown_grad(text: str):
    value = text.split()[1]
    return None if value == "?" else float(value)


def errors_in_console(browser):
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_stepping_through_the_seed_neuron(browser, tmp_path):
    o = build("tanh(x1*w1 + x2*w2 + b)", **SEED)
    explanation = explain(o)
    o.backward()
    order = reading_order(o)
    steps = explanation.steps

    page = open_explorer(browser, o, tmp_path / "neuron.html")
    assert page["counter"] == "before step 0" and page["step"] == "0"
    assert all(node["grad"] == "grad ?" for node in page["state"].values())
    assert len(page["state"]) == len(order)
    assert not browser.find_element(By.ID, "prev").is_enabled()

    next_button = browser.find_element(By.ID, "next")
    expected = [None] * len(order)
    for step in steps:
        next_button.click()
        expected[step.target] = step.grad_after
        page = browser.execute_script(READ_STATE)
        assert page["counter"] == f"step {step.index} of {len(steps) - 1}"
        for i in range(len(order)):
            grad = shown_grad(page["state"][f"v{i}"]["grad"])
            if expected[i] is None:
                assert grad is None, (step.index, i)
            else:
                assert grad == pytest.approx(expected[i], abs=5e-5), (step.index, i)
        assert "current" in page["state"][f"v{step.node}"]["classes"]
        if step.kind == "contribution":
            assert "receiving" in page["state"][f"v{step.target}"]["classes"]
            assert page["active"] == [f"e{step.node}_{step.input_index}"]
        text = browser.find_element(By.ID, "step-text").text
        assert text.splitlines()[0] == step.lines[0]

    # at the end the page shows exactly the engine's gradients
    for i, node in enumerate(order):
        assert shown_grad(page["state"][f"v{i}"]["grad"]) == pytest.approx(node.grad, abs=5e-5)
    assert not next_button.is_enabled()

    # hovering a leaf and an op shows what they are
    names = node_names(order)
    x1 = names.index("x1")
    ActionChains(browser).move_to_element(browser.find_element(By.ID, f"v{x1}")).perform()
    tooltip = browser.find_element(By.ID, "tooltip")
    assert tooltip.is_displayed()
    assert tooltip.text.splitlines() == ["value x1", "leaf an input or parameter", "data 2.0000", "grad -1.5000"]
    tanh = len(order) - 1
    ActionChains(browser).move_to_element(browser.find_element(By.ID, f"v{tanh}_op")).perform()
    lines = tooltip.text.splitlines()
    # formulas in the graph's own names, never the op's generic ones (x, a, b ...)
    assert lines[:3] == ["op tanh", "computes n5 = tanh(n4)", "d n5 / d n4 = 1 - tanh(n4)**2"]
    ActionChains(browser).move_to_element(browser.find_element(By.ID, f"v{names.index('n1')}_op")).perform()
    assert tooltip.text.splitlines()[:4] == [
        "op * (mul)",
        "computes n1 = x1 * w1",
        "d n1 / d x1 = w1",
        "d n1 / d w1 = x1",
    ]

    screenshot = tmp_path / "explorer.png"
    browser.save_screenshot(str(screenshot))
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 600
    assert errors_in_console(browser) == []


def test_keys_and_back_undo_steps(browser, tmp_path):
    out = build("x*x + x", x=3)
    steps = explain(out).steps
    order = reading_order(out)
    x = node_names(order).index("x")
    open_explorer(browser, out, tmp_path / "square.html")
    body = browser.find_element(By.TAG_NAME, "body")

    body.send_keys(Keys.END)
    page = browser.execute_script(READ_STATE)
    assert page["step"] == str(len(steps)) and shown_grad(page["state"][f"v{x}"]["grad"]) == 7.0

    # going back removes x's contributions one by one: 7 -> 4 -> 1 -> unknown
    seen = []
    for _ in range(len(steps)):
        seen.append(shown_grad(browser.execute_script(READ_STATE)["state"][f"v{x}"]["grad"]))
        body.send_keys(Keys.ARROW_LEFT)
    assert [g for i, g in enumerate(seen) if i == 0 or g != seen[i - 1]] == [7.0, 4.0, 1.0, None]
    assert browser.execute_script(READ_STATE)["step"] == "0"

    body.send_keys(Keys.ARROW_RIGHT)
    body.send_keys(Keys.ARROW_RIGHT)
    assert browser.execute_script(READ_STATE)["step"] == "2"
    browser.find_element(By.ID, "prev").click()
    assert browser.execute_script(READ_STATE)["step"] == "1"
    browser.find_element(By.ID, "last").click()
    assert browser.execute_script(READ_STATE)["step"] == str(len(steps))
    browser.find_element(By.ID, "first").click()
    assert browser.execute_script(READ_STATE)["counter"] == "before step 0"
    assert errors_in_console(browser) == []
