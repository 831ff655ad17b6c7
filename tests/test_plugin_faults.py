"""A broken plugin is named in the error it causes, and MINIGRAD_PLUGINS can leave it out.

Each broken plugin here is a real installed distribution: a module and a ``*.dist-info``
folder with an ``entry_points.txt``, in a temporary folder put on ``sys.path`` (or on
``PYTHONPATH`` of a ``minigrad`` command), found through the ``minigrad`` entry-point group.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minigrad_core import (
    OpSpecError,
    PluginLoadError,
    PluginLoadWarning,
    Registry,
    Value,
    make_plugin_manager,
    using,
)
from minigrad_testing import GradientCheckError, check_op

GOOD = """
import math
from minigrad_core import OpSpec, hookimpl, ops

@hookimpl
def minigrad_register_ops(register):
    register(OpSpec(name="good_sin", arity=1, forward=math.sin, derivative=lambda x, out: (ops.good_cos(x),)))
    register(OpSpec(name="good_cos", arity=1, forward=math.cos, derivative=lambda x, out: (-ops.good_sin(x),)))
"""

FAULTS = {
    "raises_on_import": """
import missing_dependency_of_this_plugin
""",
    "duplicate_name": """
import math
from minigrad_core import OpSpec, hookimpl

@hookimpl
def minigrad_register_ops(register):
    register(OpSpec(name="tanh", arity=1, forward=math.tanh, derivative=lambda x, out: (1 - out * out,)))
""",
    "wrong_arity": """
from minigrad_core import OpSpec, hookimpl

AVERAGE = OpSpec(name="average", arity=2, forward=lambda a: a, derivative=lambda a, b, out: (0.5, 0.5))

@hookimpl
def minigrad_register_ops(register):
    register(AVERAGE)
""",
    "wrong_arity_in_hook": """
from minigrad_core import OpSpec, hookimpl

@hookimpl
def minigrad_register_ops(register):
    register(OpSpec(name="twice", arity=1, forward=lambda x: 2 * x, derivative=lambda x, out: (2.0,),
                    operators=("__matmul__",)))
""",
    "wrong_partials": """
from minigrad_core import OpSpec, hookimpl

@hookimpl
def minigrad_register_ops(register):
    register(OpSpec(name="halve", arity=1, forward=lambda x: x / 2, derivative=lambda x, out: (0.5, 0.0)))
""",
    "hook_raises": """
from minigrad_core import hookimpl

@hookimpl
def minigrad_register_ops(register):
    raise RuntimeError("the op table is not ready")
""",
    "bad_hook_arguments": """
from minigrad_core import hookimpl

@hookimpl
def minigrad_register_ops(register, verbose):
    pass
""",
}


def install(site: Path, name: str, source: str) -> str:
    """Install plugin ``name`` (module minigrad_fault_NAME, distribution minigrad-NAME) into ``site``."""
    module = f"minigrad_fault_{name}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"minigrad_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: minigrad-{name.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[minigrad]\n{name} = {module}\n")
    return module


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder of installed plugins on sys.path: the good one and every broken one."""
    site = tmp_path / "site"
    site.mkdir()
    modules = [install(site, "good", GOOD)] + [install(site, name, source) for name, source in FAULTS.items()]
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture(autouse=True)
def strict(monkeypatch):
    """These tests read the errors: MINIGRAD_STRICT_PLUGINS=1 turns each skip into one."""
    monkeypatch.setenv("MINIGRAD_STRICT_PLUGINS", "1")


def load(*plugins: str) -> Registry:
    """A registry of exactly these installed plugins, found through their entry points."""
    return Registry(make_plugin_manager(selection=set(plugins)))


def assert_others_keep_working(monkeypatch, *, skipping: str) -> None:
    """With MINIGRAD_PLUGINS leaving the broken plugin out, built-ins and the good plugin work."""
    monkeypatch.setenv("MINIGRAD_PLUGINS", "ops,good")
    registry = Registry(make_plugin_manager())
    assert skipping not in registry.plugins and {"ops", "good"} <= set(registry.plugins)
    with using(registry):
        x = Value(0.5)
        y = x.good_sin() * x.tanh() + 1
        y.backward()
        assert x.grad != 0.0
        check_op("good_sin", order=2, max_examples=10)


def test_a_plugin_that_raises_on_import_is_named_with_its_distribution_and_how_to_skip_it(site, monkeypatch):
    with pytest.raises(PluginLoadError) as info:
        load("ops", "good", "raises_on_import")
    message = str(info.value)
    assert "MiniGrad plugin 'raises_on_import'" in message
    assert "distribution minigrad-raises-on-import 1.0" in message
    assert "failed to import: ModuleNotFoundError: No module named 'missing_dependency_of_this_plugin'" in message
    assert "MINIGRAD_PLUGINS=good,ops" in message  # the plugins that were asked for, without the broken one
    assert_others_keep_working(monkeypatch, skipping="raises_on_import")


def test_a_duplicate_op_name_names_both_plugins(site, monkeypatch):
    with pytest.raises(PluginLoadError) as info:
        load("ops", "good", "duplicate_name")
    message = str(info.value)
    assert "op 'tanh' is provided by both plugin" in message  # in whichever order they loaded
    assert "plugin 'ops'" in message and "plugin 'duplicate_name'" in message
    assert "replace=True" in message and "MINIGRAD_PLUGINS" in message
    assert_others_keep_working(monkeypatch, skipping="duplicate_name")


def test_a_wrong_arity_names_the_plugin(site, monkeypatch):
    with pytest.raises(PluginLoadError) as info:
        load("ops", "wrong_arity")
    message = str(info.value)
    assert "MiniGrad plugin 'wrong_arity'" in message and "failed to import: OpSpecError" in message
    assert "op 'average': forward" in message and "(arity is 2)" in message
    assert_others_keep_working(monkeypatch, skipping="wrong_arity")


def test_an_operator_claimed_with_the_wrong_arity_names_the_plugin(site, monkeypatch):
    with pytest.raises(PluginLoadError) as info:
        load("ops", "wrong_arity_in_hook")
    message = str(info.value)
    assert "op 'twice' (plugin 'wrong_arity_in_hook') claims operator __matmul__ but has arity 1" in message
    assert_others_keep_working(monkeypatch, skipping="wrong_arity_in_hook")


def test_a_wrong_number_of_partials_names_the_plugin_when_used_and_when_checked(site, monkeypatch):
    registry = load("ops", "good", "wrong_partials")
    with using(registry):
        assert (Value(3.0).halve() + Value(1.0).good_sin()).data > 0  # forward is fine, and so are the others
        y = Value(3.0).halve()
        with pytest.raises(OpSpecError) as info:
            y.backward()
        assert "op 'halve' (plugin 'wrong_partials')" in str(info.value)
        assert "one partial per input, 1 for this node, but returned 2" in str(info.value)
        with pytest.raises(GradientCheckError, match=r"op 'halve' \(plugin 'wrong_partials'\).*returned 2 partial"):
            check_op("halve")
        z = Value(0.3).good_sin() * Value(2.0).tanh()  # the other plugins keep working
        z.backward()
    assert_others_keep_working(monkeypatch, skipping="wrong_partials")


def test_a_hook_that_raises_names_the_plugin_and_how_to_skip_it(site, monkeypatch):
    with pytest.raises(PluginLoadError) as info:
        load("ops", "good", "hook_raises")
    message = str(info.value)
    assert "MiniGrad plugin 'hook_raises'" in message and "distribution minigrad-hook-raises 1.0" in message
    assert "failed in its minigrad_register_ops hook: RuntimeError: the op table is not ready" in message
    assert "MINIGRAD_PLUGINS=good,ops" in message
    assert_others_keep_working(monkeypatch, skipping="hook_raises")


def test_a_hook_with_arguments_minigrad_does_not_pass_names_the_plugin(site, monkeypatch):
    with pytest.raises(PluginLoadError) as info:
        load("ops", "bad_hook_arguments")
    message = str(info.value)
    assert "MiniGrad plugin 'bad_hook_arguments'" in message and "verbose" in message
    assert_others_keep_working(monkeypatch, skipping="bad_hook_arguments")


def test_every_fault_is_reported_by_the_command_line_and_skipped_with_the_env_var(site, monkeypatch):
    minigrad = Path(sys.executable).with_name("minigrad")
    for name in FAULTS:
        if name == "wrong_partials":
            continue  # it loads fine; it fails only when differentiated
        env = {**os.environ, "PYTHONPATH": str(site), "MINIGRAD_PLUGINS": f"ops,good,{name}"}
        broken = subprocess.run([str(minigrad), "ops"], capture_output=True, text=True, env=env, timeout=60)
        assert broken.returncode == 1, name
        assert broken.stderr.startswith("minigrad: error:") and f"plugin '{name}'" in broken.stderr, broken.stderr
        env.pop("MINIGRAD_STRICT_PLUGINS")  # without strict mode: one warning, and everything else works
        lenient = subprocess.run([str(minigrad), "plugins"], capture_output=True, text=True, env=env, timeout=60)
        assert lenient.returncode == 0, lenient.stderr
        assert "PluginLoadWarning" in lenient.stderr and f"plugin '{name}'" in lenient.stderr
        assert "FAILED" in lenient.stdout and "good" in lenient.stdout
        env["MINIGRAD_STRICT_PLUGINS"] = "1"
        env["MINIGRAD_PLUGINS"] = "ops,good"
        fine = subprocess.run([str(minigrad), "ops"], capture_output=True, text=True, env=env, timeout=60)
        assert fine.returncode == 0 and "good_sin" in fine.stdout and "tanh" in fine.stdout, fine.stderr
        assert "good (minigrad-good 1.0)" in fine.stdout


def test_two_distributions_with_one_plugin_name_are_an_error_naming_both(site, monkeypatch):
    twin = site / "minigrad_twin-1.0.dist-info"  # a second distribution whose entry point is also "good"
    twin.mkdir()
    (twin / "METADATA").write_text("Metadata-Version: 2.1\nName: minigrad-twin\nVersion: 1.0\n")
    (twin / "entry_points.txt").write_text("[minigrad]\ngood = minigrad_fault_twin\n")
    (site / "minigrad_fault_twin.py").write_text("")
    with pytest.raises(PluginLoadError) as info:
        load("good")
    message = str(info.value)
    assert "named 'good'" in message and "minigrad-good" in message and "minigrad-twin" in message


def test_without_strict_mode_a_broken_plugin_is_skipped_with_one_warning_and_arithmetic_works(site, monkeypatch):
    monkeypatch.delenv("MINIGRAD_STRICT_PLUGINS")
    for name in ("raises_on_import", "duplicate_name", "hook_raises", "wrong_arity_in_hook"):
        with pytest.warns(PluginLoadWarning) as caught:
            registry = load("ops", "good", name)
        messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
        assert len(messages) == 1 and f"MiniGrad plugin '{name}'" in messages[0], messages
        assert "MINIGRAD_PLUGINS=good,ops" in messages[0] and "MINIGRAD_STRICT_PLUGINS=1" in messages[0]
        assert name in registry.failed and name not in registry.plugins
        with using(registry):
            y = Value(0.5).good_sin() * Value(2.0) + 1
            y.backward()
            assert y.data == pytest.approx(math.sin(0.5) * 2 + 1)
