"""The plugin loader and the op registry as users and plugin authors meet them.

Installed plugins are real distributions: a module and a ``*.dist-info`` folder (METADATA and
``entry_points.txt``) in temporary folders put on ``sys.path`` in a known order, found through
the ``minigrad`` entry-point group. Also: the first use of a Value in a fresh interpreter (the
lazy operators load the plugins), what a registry records about each plugin, and the run-time
registration of ops (``@op``, ``register_op``) and plugins.
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest
import torch

import minigrad_ops
from minigrad_core import (
    OpDomainError,
    OpSpec,
    OpSpecError,
    PluginLoadError,
    PluginLoadWarning,
    RegistrationError,
    Registry,
    UnknownOpError,
    Value,
    activate,
    get_registry,
    hookimpl,
    make_plugin_manager,
    op,
    ops,
    register_op,
    register_plugin,
    unregister_op,
    unregister_plugin,
    using,
)
from minigrad_core import registry as registry_module
from minigrad_core.registry import Command

MODULE_PREFIX = "mgcontract_"

SINE_PLUGIN = """
import math
from minigrad_core import OpSpec, hookimpl

@hookimpl
def minigrad_register_ops(register):
    register(OpSpec(name="{op}", arity=1, forward=math.sin, derivative=lambda x, out: (math.cos(x),)))
"""
IMPORT_FAILS = "import mgcontract_missing_dependency\n"
UNMARKED_HOOK = "def minigrad_register_ops(register):\n    pass\n"


class Site:
    """Folders on sys.path, in order, into which plugin distributions are installed as pip would."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, count: int = 3) -> None:
        self.folders = [root / f"site{i}" for i in range(count)]
        for folder in self.folders:
            folder.mkdir()
        for folder in reversed(self.folders):  # prepending in reverse leaves them in order
            monkeypatch.syspath_prepend(str(folder))

    def install(
        self,
        plugin: str,
        source: str | None = None,
        *,
        folder: int = 0,
        distribution: str | None = None,
        version: str | None = "1.0",
        module: str | None = None,
        stem: str | None = None,
    ) -> str:
        """Install the plugin ``plugin`` (an entry point naming ``module``) as a distribution:
        ``distribution=""`` leaves its Name out of METADATA, ``version=None`` its Version."""
        where = self.folders[folder]
        module = module or MODULE_PREFIX + plugin
        if source is not None:
            (where / f"{module}.py").write_text(textwrap.dedent(source))
        distribution = f"mgcontract-{plugin}" if distribution is None else distribution
        info = where / f"{stem or module}-{version or '0'}.dist-info"
        info.mkdir()
        metadata = "Metadata-Version: 2.1\n"
        metadata += f"Name: {distribution}\n" if distribution else ""
        metadata += f"Version: {version}\n" if version else ""
        (info / "METADATA").write_text(metadata)
        (info / "entry_points.txt").write_text(f"[minigrad]\n{plugin} = {module}\n")
        return module


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Three empty plugin folders on sys.path; lenient mode, so a broken plugin only warns."""
    monkeypatch.delenv("MINIGRAD_STRICT_PLUGINS", raising=False)
    yield Site(tmp_path, monkeypatch)
    for module in [name for name in sys.modules if name.startswith(MODULE_PREFIX)]:
        del sys.modules[module]


def load(monkeypatch, plugins: str | None) -> Registry:
    """What a program started with MINIGRAD_PLUGINS=plugins (None: unset) loads."""
    if plugins is None:
        monkeypatch.delenv("MINIGRAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("MINIGRAD_PLUGINS", plugins)
    return Registry(make_plugin_manager())


def load_with_warnings(monkeypatch, plugins: str | None) -> tuple[Registry, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = load(monkeypatch, plugins)
    return registry, [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]


def kernel_version() -> str:
    return importlib.metadata.version("minigrad-edu")


# -- what a registry records about each installed plugin ----------------------------------------


def test_an_installed_plugin_is_recorded_with_its_module_distribution_and_version(site, monkeypatch):
    """`minigrad plugins` shows who provides what: the entry point's module, the distribution
    and its version, and for the built-in ones the kernel's own distribution."""
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"))
    registry = load(monkeypatch, "ops,alpha")
    alpha, builtin = registry.plugins["alpha"], registry.plugins["ops"]
    assert (alpha.module, alpha.distribution, alpha.version) == ("mgcontract_alpha", "mgcontract-alpha", "1.0")
    assert alpha.provides == {"ops": ["alpha_sin"]} and registry.ops["alpha_sin"].plugin == "alpha"
    assert (builtin.module, builtin.distribution, builtin.version) == ("minigrad_ops", "minigrad-edu", kernel_version())
    assert kernel_version() != ""
    assert registry.provider("alpha_sin") == alpha and registry.provider("tanh") == builtin
    with pytest.raises(UnknownOpError, match="unknown op 'no_such_op'"):
        registry.provider("no_such_op")


def test_a_plugin_can_be_chosen_by_its_distribution_name(site, monkeypatch):
    """MINIGRAD_PLUGINS takes what `pip list` shows as well as the plugin's own name."""
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"))
    site.install("beta", SINE_PLUGIN.format(op="beta_sin"), folder=1)
    registry = load(monkeypatch, "ops,mgcontract-alpha")
    assert set(registry.plugins) == {"ops", "alpha"} and "alpha_sin" in registry.ops
    assert "beta_sin" not in registry.ops


def test_with_minigrad_plugins_unset_every_installed_plugin_loads(site, monkeypatch):
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"))
    registry, _ = load_with_warnings(monkeypatch, None)  # whatever else is installed may warn
    assert {"ops", "nn", "alpha"} <= set(registry.plugins) and registry.ops["alpha_sin"].plugin == "alpha"


def test_minigrad_plugins_naming_what_is_not_installed_is_an_error_listing_what_is(site, monkeypatch):
    """A misspelt MINIGRAD_PLUGINS entry must not silently load nothing: the error names the
    unknown entries and lists, sorted, every plugin and distribution name that would work."""
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"))
    site.install("anon", SINE_PLUGIN.format(op="anon_sin"), folder=1, distribution="")  # METADATA without a Name
    with pytest.raises(PluginLoadError) as info:
        load(monkeypatch, "ops,alhpa,nosuch")
    message = str(info.value)
    head, listed = message.split("; MiniGrad plugins here: ")
    assert head == "MINIGRAD_PLUGINS names ['alhpa', 'nosuch'], which no installed distribution provides"
    names = listed.split(", ")
    assert names == sorted(names) and "" not in names
    assert {"ops", "nn", "alpha", "mgcontract-alpha", "anon"} <= set(names)


def test_minigrad_plugins_naming_only_nn_loads_nn_without_the_ops(site, monkeypatch):
    registry = load(monkeypatch, "nn")
    assert set(registry.plugins) == {"nn"} and "weighted_sum" in registry.ops and "add" not in registry.ops


# -- an empty registry says why it is empty -------------------------------------------------------


def test_an_empty_minigrad_plugins_loads_no_op_and_the_error_says_how_to_get_them_back(site, monkeypatch):
    registry = load(monkeypatch, "")
    assert registry.ops == {}
    with pytest.raises(UnknownOpError) as info:
        registry.get("tanh")
    assert str(info.value) == (
        "unknown op 'tanh'; known ops: none. No op is registered (MINIGRAD_PLUGINS='' chose none): "
        "the environment variable MINIGRAD_PLUGINS lists the plugins to load; include 'ops' in it, or unset it"
    )


def test_a_registry_without_op_plugins_says_none_is_loaded(monkeypatch):
    monkeypatch.delenv("MINIGRAD_PLUGINS", raising=False)
    with pytest.raises(UnknownOpError) as info:
        Registry.from_plugins().get("tanh")
    assert str(info.value) == (
        "unknown op 'tanh'; known ops: none. No op is registered (no op plugin is loaded): register an op plugin"
    )


# -- the same plugin twice, two plugins with one name, plugins left out ---------------------------


def test_the_same_distribution_seen_twice_loads_once_without_a_warning_and_later_plugins_still_load(site, monkeypatch):
    """An editable install plus a copy of the same distribution is one plugin, not a clash."""
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"), folder=0)
    site.install("alpha", folder=1, stem="mgcontract_alpha_copy")  # same Name, same entry point
    site.install("beta", SINE_PLUGIN.format(op="beta_sin"), folder=2)
    registry, messages = load_with_warnings(monkeypatch, "ops,alpha,beta")
    assert messages == [] and not registry.failed
    assert {"alpha_sin", "beta_sin"} <= set(registry.ops)


def test_two_distributions_with_one_plugin_name_skip_the_second_recording_who_it_is(site, monkeypatch):
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"), folder=0)
    site.install("alpha", "", folder=1, distribution="mgcontract-twin", version="2.0", module="mgcontract_twin")
    site.install("beta", SINE_PLUGIN.format(op="beta_sin"), folder=2)
    registry, messages = load_with_warnings(monkeypatch, "alpha,beta")
    assert len(messages) == 1
    assert messages[0].startswith(
        "MiniGrad plugin 'alpha' (module mgcontract_twin, distribution mgcontract-twin 2.0) two installed "
        "distributions provide a MiniGrad plugin named 'alpha': mgcontract-alpha (mgcontract_alpha) and "
        "mgcontract-twin (mgcontract_twin); uninstall one of them"
    )
    twin = registry.failed["alpha"]
    assert (twin.name, twin.module, twin.distribution, twin.version) == (
        "alpha",
        "mgcontract_twin",
        "mgcontract-twin",
        "2.0",
    )
    assert twin.error.startswith("two installed distributions provide a MiniGrad plugin named 'alpha'")
    assert registry.plugins["alpha"].distribution == "mgcontract-alpha" and "beta_sin" in registry.ops


def test_a_plugin_left_out_by_minigrad_plugins_is_not_even_imported_and_later_ones_load(site, monkeypatch):
    site.install("broken", IMPORT_FAILS, folder=0)
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"), folder=1)
    registry, messages = load_with_warnings(monkeypatch, "ops,alpha")
    assert messages == [] and not registry.failed and "alpha_sin" in registry.ops
    assert "mgcontract_broken" not in sys.modules


# -- a broken plugin: skipped with one warning (or an error in strict mode) -----------------------


def test_a_plugin_that_fails_to_import_is_skipped_with_a_warning_naming_it_and_how_to_leave_it_out(site, monkeypatch):
    """The hint names every other plugin asked for, also those that load after the broken one."""
    site.install("broken", IMPORT_FAILS, folder=0)
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"), folder=1)
    registry, messages = load_with_warnings(monkeypatch, "ops,broken,alpha")
    problem = "failed to import: ModuleNotFoundError: No module named 'mgcontract_missing_dependency'"
    assert messages == [
        f"MiniGrad plugin 'broken' (module mgcontract_broken, distribution mgcontract-broken 1.0) {problem}. "
        "It was skipped; everything else works. To leave it out: MINIGRAD_PLUGINS=alpha,ops "
        "(or uninstall mgcontract-broken). MINIGRAD_STRICT_PLUGINS=1 makes this an error."
    ]
    failed = registry.failed["broken"]
    assert (failed.module, failed.distribution, failed.version, failed.error) == (
        "mgcontract_broken",
        "mgcontract-broken",
        "1.0",
        problem,
    )
    assert "broken" not in registry.plugins and "alpha_sin" in registry.ops


@pytest.mark.parametrize("setting", ["1", "yes", "TRUE", " on "])
def test_strict_mode_makes_a_broken_plugin_an_error_caused_by_the_import_error(site, monkeypatch, setting):
    site.install("broken", IMPORT_FAILS)
    monkeypatch.setenv("MINIGRAD_STRICT_PLUGINS", setting)
    with pytest.raises(PluginLoadError) as info:
        load(monkeypatch, "ops,broken")
    assert str(info.value).startswith("MiniGrad plugin 'broken' (module mgcontract_broken, distribution")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize("setting", ["", "  ", "0", "false", "False", "no", "NO"])
def test_strict_mode_switched_off_in_words_still_only_warns(site, monkeypatch, setting):
    site.install("broken", IMPORT_FAILS)
    monkeypatch.setenv("MINIGRAD_STRICT_PLUGINS", setting)
    registry, messages = load_with_warnings(monkeypatch, "ops,broken")
    assert len(messages) == 1 and "broken" in registry.failed and "tanh" in registry.ops


def test_an_installed_plugin_with_a_hook_not_marked_with_hookimpl_is_skipped_saying_so(site, monkeypatch):
    site.install("unmarked", UNMARKED_HOOK)
    registry, messages = load_with_warnings(monkeypatch, "ops,unmarked")
    problem = (
        "plugin 'unmarked' defines minigrad_register_ops but does not mark it with @hookimpl, so MiniGrad would "
        "never call it; add `from minigrad_core import hookimpl` and put @hookimpl above it"
    )
    assert len(messages) == 1 and messages[0].startswith(
        f"MiniGrad plugin 'unmarked' (module mgcontract_unmarked, distribution mgcontract-unmarked 1.0) {problem}. "
    )
    assert registry.failed["unmarked"].error == problem
    monkeypatch.setenv("MINIGRAD_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError) as info:
        load(monkeypatch, "ops,unmarked")
    assert isinstance(info.value.__cause__, RegistrationError)


def test_a_distribution_without_a_version_or_a_name_is_named_by_what_it_has(site, monkeypatch):
    site.install("noversion", IMPORT_FAILS, version=None)
    site.install("anon", IMPORT_FAILS, folder=1, distribution="")
    registry, messages = load_with_warnings(monkeypatch, "ops,noversion,anon")
    by_plugin = {message.split("'")[1]: message for message in messages}
    assert by_plugin["noversion"].startswith(
        "MiniGrad plugin 'noversion' (module mgcontract_noversion, distribution mgcontract-noversion) failed to import"
    )
    assert "(or uninstall mgcontract-noversion)" in by_plugin["noversion"]
    assert by_plugin["anon"].startswith("MiniGrad plugin 'anon' (module mgcontract_anon) failed to import")
    assert "uninstall" not in by_plugin["anon"]
    assert (registry.failed["noversion"].version, registry.failed["anon"].distribution) == ("", "")


def test_a_built_in_plugin_that_fails_to_import_does_not_suggest_uninstalling_minigrad(monkeypatch):
    """Uninstalling minigrad-edu would remove the kernel too: the hint names MINIGRAD_PLUGINS only."""
    monkeypatch.delenv("MINIGRAD_STRICT_PLUGINS", raising=False)
    monkeypatch.setitem(sys.modules, "minigrad_nn.plugin", None)  # as if a dependency of nn were missing
    registry, messages = load_with_warnings(monkeypatch, "ops,nn")
    assert messages == [
        f"MiniGrad plugin 'nn' (module minigrad_nn.plugin, distribution minigrad-edu {kernel_version()}) "
        "failed to import: ModuleNotFoundError: import of minigrad_nn.plugin halted; None in sys.modules. "
        "It was skipped; everything else works. To leave it out: MINIGRAD_PLUGINS=ops. "
        "MINIGRAD_STRICT_PLUGINS=1 makes this an error."
    ]
    assert registry.failed["nn"].distribution == "minigrad-edu" and "tanh" in registry.ops


def test_in_a_source_checkout_the_built_in_plugins_have_no_version(monkeypatch):
    """A bare checkout on PYTHONPATH has no installed metadata: no version, and none invented."""

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.delenv("MINIGRAD_STRICT_PLUGINS", raising=False)
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setitem(sys.modules, "minigrad_nn.plugin", None)
    registry, messages = load_with_warnings(monkeypatch, "ops,nn")
    assert registry.plugins["ops"].version == ""
    assert messages[0].startswith("MiniGrad plugin 'nn' (module minigrad_nn.plugin, distribution minigrad-edu) failed")


# -- what plugins register: engines, exporters, commands, and errors in their hooks ---------------


def plugin_module(name: str, **hooks) -> types.ModuleType:
    """A plugin as a module object, each hook marked with @hookimpl."""
    module = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, hookimpl(function))
    return module


def engines(name, engine):
    return plugin_module(name, minigrad_register_engines=lambda register: register("fast", engine))


def exporters(name, exporter):
    return plugin_module(name, minigrad_register_exporters=lambda register: register("dot", exporter))


def test_a_registered_engine_is_kept_as_given_and_a_second_one_of_that_name_is_refused():
    def engine(loss_fn):
        return loss_fn

    registry = Registry.from_plugins(engines("first", engine))
    assert registry.engines == {"fast": engine} and registry.plugins["first"].provides == {"engines": ["fast"]}
    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins(engines("first", engine), engines("second", engine))
    assert str(info.value) == "plugin 'second': engine 'fast' is provided by two plugins, the second is 'second'"


def test_an_engine_that_cannot_be_called_is_refused_naming_the_plugin_and_the_engine():
    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins(engines("slow", 42))
    assert str(info.value) == "plugin 'slow': engine 'fast' must be callable as engine(loss_fn)"


def test_a_registered_exporter_is_kept_as_given_and_a_second_one_of_that_name_is_refused():
    exporter = types.SimpleNamespace()
    registry = Registry.from_plugins(exporters("first", exporter))
    assert registry.exporters == {"dot": exporter}
    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins(exporters("first", exporter), exporters("second", exporter))
    assert str(info.value) == "plugin 'second': exporter 'dot' is provided by two plugins, the second is 'second'"


def test_a_registered_command_remembers_its_plugin_and_a_second_one_of_that_name_is_refused():
    def configure(parser):
        pass

    def run(args):
        return 0

    def commands(name):
        return plugin_module(
            name, minigrad_register_commands=lambda register: register("hello", "say hello", configure, run)
        )

    registry = Registry.from_plugins(commands("first"))
    assert registry.commands == {"hello": Command("hello", "say hello", configure, run, "first")}
    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins(commands("first"), commands("second"))
    assert str(info.value) == "command 'hello' is provided by both plugin 'first' and plugin 'second'"


def test_an_op_error_raised_in_a_hook_keeps_its_type_and_is_prefixed_with_the_plugin_once():
    def bad_arity(register):
        register(OpSpec(name="average", arity=2, forward=lambda a: a, derivative=lambda a, b, out: (0.5, 0.5)))

    with pytest.raises(OpSpecError) as info:
        Registry.from_plugins(plugin_module("averages", minigrad_register_ops=bad_arity))
    assert str(info.value).startswith("plugin 'averages': op 'average': forward")

    with pytest.raises(OpSpecError) as info:  # the message already names the plugin: no second prefix
        Registry.from_plugins(plugin_module("numbers", minigrad_register_ops=lambda register: register(42)))
    assert str(info.value) == "plugin 'numbers' registered 42, which is not an OpSpec"


def test_an_error_whose_class_takes_other_arguments_becomes_a_registration_error_naming_the_plugin():
    def computes_a_constant(register):
        raise OpDomainError("log", [-1.0], "x > 0")

    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins(plugin_module("constants", minigrad_register_ops=computes_a_constant))
    assert str(info.value) == "plugin 'constants': log(-1.0) is undefined: log expects x > 0"


# -- Jupyter display ------------------------------------------------------------------------------


def test_in_jupyter_a_value_is_shown_by_the_first_exporter_that_offers_a_mimebundle():
    shown = []

    class Html:
        def mimebundle(self, value):
            shown.append(value)
            return {"text/html": f"<b>{value.data}</b>"}

    plain = plugin_module("plain", minigrad_register_exporters=lambda register: register("json", object()))
    html = plugin_module("html", minigrad_register_exporters=lambda register: register("html", Html()))
    with using(Registry.from_plugins(minigrad_ops, plain, html)):
        x = Value(3.0)
        assert x._repr_mimebundle_(include=None, exclude=None) == {"text/html": "<b>3.0</b>"}
        assert shown == [x]
    with using(Registry.from_plugins(minigrad_ops, plain)):
        assert x._repr_mimebundle_() == {"text/plain": repr(x)}


# -- the first use in a fresh interpreter ---------------------------------------------------------


@pytest.fixture
def fresh(monkeypatch):
    """No registry yet, as right after `import minigrad_core`: Value has only its lazy operators.
    MINIGRAD_PLUGINS=ops keeps the loading to the built-in ops; the previous registry comes back."""
    monkeypatch.setenv("MINIGRAD_PLUGINS", "ops")
    previous = registry_module._active
    registry_module._reset()
    assert registry_module._active is None
    yield
    if previous is None:
        registry_module._reset()
    else:
        activate(previous)


FIRST_USES = {
    "x + 2": (lambda x: x + 2, lambda x: x + 2),
    "2 + x": (lambda x: 2 + x, lambda x: 2 + x),
    "x - 2": (lambda x: x - 2, lambda x: x - 2),
    "2 - x": (lambda x: 2 - x, lambda x: 2 - x),
    "x * x": (lambda x: x * x, lambda x: x * x),
    "3 * x": (lambda x: 3 * x, lambda x: 3 * x),
    "x / 4": (lambda x: x / 4, lambda x: x / 4),
    "4 / x": (lambda x: 4 / x, lambda x: 4 / x),
    "x ** 3": (lambda x: x**3, lambda x: x**3),
    "2 ** x": (lambda x: 2**x, lambda x: 2**x),
    "-x": (lambda x: -x, lambda x: -x),
    "abs(x)": (lambda x: abs(x), lambda x: abs(x)),
    "x.tanh()": (lambda x: x.tanh(), lambda x: x.tanh()),
}


@pytest.mark.parametrize("expression", FIRST_USES)
def test_the_first_operation_on_a_value_loads_the_ops_and_computes_as_pytorch(fresh, expression):
    minigrad_f, torch_f = FIRST_USES[expression]
    x = Value(-1.5)
    y = minigrad_f(x)
    assert registry_module._active is not None and "tanh" in get_registry().ops
    y.backward()
    t = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
    expected = torch_f(t)
    expected.backward()
    assert y.data == pytest.approx(expected.item(), rel=1e-12)
    assert x.grad == pytest.approx(t.grad.item(), rel=1e-12)


def test_a_private_name_is_python_s_own_attribute_error_and_loads_nothing(fresh):
    """Jupyter and copy probe private names (`_ipython_display_`, `__deepcopy__`): plain misses."""
    assert not hasattr(Value(1.0), "_ipython_canary_method_should_not_exist_")
    with pytest.raises(AttributeError) as info:
        _ = Value(1.0)._not_there
    assert str(info.value) == "'Value' object has no attribute '_not_there'"
    assert not isinstance(info.value, UnknownOpError) and registry_module._active is None


def test_before_and_after_loading_a_value_shows_as_text_in_jupyter_without_an_exporter(fresh):
    x = Value(2.0)
    assert x._repr_mimebundle_() == {"text/plain": repr(x)}
    assert (x + 1)._repr_mimebundle_() == {"text/plain": repr(x + 1)}


# -- ops and plugins added at run time (a notebook) -----------------------------------------------


@pytest.fixture
def notebook():
    with using(Registry(make_plugin_manager(selection={"ops"}))) as registry:
        yield registry


def torch_grad(f, at: float) -> tuple[float, float]:
    t = torch.tensor(at, dtype=torch.float64, requires_grad=True)
    y = f(t)
    y.backward()
    return y.item(), t.grad.item()


def test_op_called_on_a_function_registers_it_at_once(notebook):
    cube = op(lambda x: x**3, derivative=lambda x, out: (3 * x * x,), name="cube")
    assert cube(2.0) == 8.0 and cube.spec is get_registry().ops["cube"]
    x = Value(1.5)
    y = cube(x)
    y.backward()
    assert (y.data, x.grad) == pytest.approx(torch_grad(lambda t: t**3, 1.5), rel=1e-12)


def test_op_refuses_to_shadow_an_installed_op_unless_told_to_replace_it(notebook):
    with pytest.raises(RegistrationError) as info:
        op(lambda x: 2 * math.tanh(x), derivative=lambda x, out: (2 * (1 - (out / 2) ** 2),), name="tanh")
    assert "plugin 'ops'" in str(info.value) and "plugin 'runtime:tanh'" in str(info.value)
    assert get_registry().ops["tanh"].plugin == "ops"

    op(lambda x: 2 * math.tanh(x), derivative=lambda x, out: (2 * (1 - (out / 2) ** 2),), name="tanh", replace=True)
    x = Value(0.5)
    y = x.tanh()
    y.backward()
    assert (y.data, x.grad) == pytest.approx(torch_grad(lambda t: 2 * torch.tanh(t), 0.5), rel=1e-12)
    unregister_op("tanh")
    assert Value(0.5).tanh().data == math.tanh(0.5)


def test_op_takes_an_explicit_arity_for_a_forward_of_any_number_of_inputs(notebook):
    @op(derivative=lambda a, b, out: (b, a), arity=2)
    def product(*factors):
        return math.prod(factors)

    assert product.spec.arity == 2
    a, b = Value(3.0), Value(-4.0)
    y = product(a, b)
    y.backward()
    ta = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    (ta * tb).backward()
    assert (y.data, a.grad, b.grad) == (-12.0, ta.grad.item(), tb.grad.item())
    assert ops.product(2.0, 5.0) == 10.0


def test_register_op_refuses_what_is_not_an_op_spec_naming_it(notebook):
    with pytest.raises(OpSpecError) as info:
        register_op("cube")
    assert str(info.value) == "register_op takes an OpSpec, got 'cube'"


def test_after_a_failed_redefinition_the_earlier_op_still_works_and_can_be_removed(notebook):
    def cube(**fields):
        return OpSpec(name="cube", arity=1, forward=lambda x: x**3, derivative=lambda x, out: (3 * x * x,), **fields)

    register_op(cube())
    with pytest.raises(RegistrationError):
        register_op(cube(operators=("__neg__",)))  # -x belongs to the built-in neg
    assert Value(2.0).cube().data == 8.0
    unregister_op("cube")
    assert "cube" not in get_registry().ops and "runtime:cube" not in get_registry().plugins


def test_a_plugin_that_failed_to_register_or_was_removed_is_no_longer_listed_as_loaded(notebook):
    clashing = plugin_module(
        "clashing",
        minigrad_register_ops=lambda register: register(
            OpSpec(name="tanh", arity=1, forward=math.tanh, derivative=lambda x, out: (1 - out * out,))
        ),
    )
    with pytest.raises(RegistrationError):
        register_plugin(clashing)
    mine = plugin_module("mine", minigrad_register_exporters=lambda register: register("mine", object()))
    register_plugin(mine)
    unregister_plugin("mine")
    with pytest.raises(KeyError) as info:
        unregister_plugin("mine")
    message = info.value.args[0]
    assert message.startswith("no plugin named 'mine'; loaded: [")
    assert "'ops'" in message and "mine" not in message.split("loaded:")[1] and "clashing" not in message


def test_unregistering_an_object_that_is_no_plugin_names_it():
    class Stranger:
        def __repr__(self):
            return "<a stranger>"

    with pytest.raises(KeyError) as info:
        unregister_plugin(Stranger())
    assert info.value.args[0] == "<a stranger> is not a registered plugin"


# -- what ops claim: unary operators, method names ------------------------------------------------


def test_an_op_may_claim_unary_plus_as_its_operator():
    """`+x` is unary: an op of arity 1 may claim it, as `neg` claims `-x`."""

    def identity(register):
        register(
            OpSpec(name="same", arity=1, forward=lambda x: x, derivative=lambda x, out: (1.0,), operators=("__pos__",))
        )

    with using(Registry.from_plugins(minigrad_ops, plugin_module("unary", minigrad_register_ops=identity))):
        x = Value(-2.5)
        y = +x * x
        y.backward()
        assert (y.data, x.grad) == pytest.approx(torch_grad(lambda t: +t * t, -2.5), rel=1e-12)


def test_two_ops_claiming_one_method_name_are_refused_naming_both_ops_and_plugins():
    def doubling(op_name):
        spec = OpSpec(
            name=op_name, arity=1, forward=lambda x: 2 * x, derivative=lambda x, out: (2.0,), methods=("double",)
        )
        return lambda register: register(spec)

    first = plugin_module("first", minigrad_register_ops=doubling("twice"))
    second = plugin_module("second", minigrad_register_ops=doubling("dbl"))
    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins(first, second)
    assert str(info.value) == "Value.double is claimed by op 'twice' (plugin 'first') and op 'dbl' (plugin 'second')"


# -- how a plugin registered by hand is named -----------------------------------------------------


class NamedExporter:
    """A plugin object that says its own name."""

    name = "named"

    @hookimpl
    def minigrad_register_exporters(self, register):
        register("named", object())


class UnnamedExporter:
    @hookimpl
    def minigrad_register_exporters(self, register):
        register("unnamed", object())


def test_a_plugin_is_named_by_its_name_attribute_else_its_class_and_recorded_with_its_module(notebook):
    module = plugin_module("module_plugin", minigrad_register_exporters=lambda register: register("m", object()))
    assert register_plugin(NamedExporter()) == "named"
    assert register_plugin(UnnamedExporter()) == "UnnamedExporter"
    assert register_plugin(module) == "module_plugin"
    plugins = get_registry().plugins
    assert (plugins["named"].name, plugins["named"].module) == ("named", __name__)
    assert plugins["UnnamedExporter"].module == __name__ and plugins["module_plugin"].module == "module_plugin"
    assert {"named", "unnamed", "m"} <= set(get_registry().exporters)


def test_a_plugin_name_that_is_not_text_is_refused_naming_it(notebook):
    class Numbered(UnnamedExporter):
        name = 7

    with pytest.raises(RegistrationError) as info:
        register_plugin(Numbered())
    assert str(info.value) == "a plugin's name must be text, got 7"


def test_plugins_chosen_by_distribution_name_are_all_named_in_the_hint_to_leave_a_broken_one_out(site, monkeypatch):
    site.install("broken", IMPORT_FAILS, folder=0)
    site.install("alpha", SINE_PLUGIN.format(op="alpha_sin"), folder=1)
    registry, messages = load_with_warnings(monkeypatch, "ops,mgcontract-broken,mgcontract-alpha")
    assert len(messages) == 1 and "To leave it out: MINIGRAD_PLUGINS=alpha,ops (or uninstall" in messages[0]
    assert "alpha_sin" in registry.ops


HOOK_FAILS = """
from minigrad_core import hookimpl

@hookimpl
def minigrad_register_ops(register):
    raise RuntimeError("the op table is not ready")
"""
WRONG_ARITY_IN_HOOK = """
from minigrad_core import OpSpec, hookimpl

@hookimpl
def minigrad_register_ops(register):
    register(OpSpec(name="average", arity=2, forward=lambda a: a, derivative=lambda a, b, out: (0.5, 0.5)))
"""


def test_an_installed_plugin_whose_hook_fails_is_skipped_with_the_problem_said_once(site, monkeypatch):
    """The warning names the plugin once, in front, and then says what went wrong in its hook."""
    site.install("hookfails", HOOK_FAILS, folder=0)
    site.install("arity", WRONG_ARITY_IN_HOOK, folder=1)
    registry, messages = load_with_warnings(monkeypatch, "ops,hookfails,arity")
    hook_problem = "failed in its minigrad_register_ops hook: RuntimeError: the op table is not ready"
    assert messages[0] == (
        f"MiniGrad plugin 'hookfails' (module mgcontract_hookfails, distribution mgcontract-hookfails 1.0) "
        f"{hook_problem}. It was skipped; everything else works. To leave it out: MINIGRAD_PLUGINS=arity,ops "
        "(or uninstall mgcontract-hookfails). MINIGRAD_STRICT_PLUGINS=1 makes this an error."
    )
    assert messages[1].startswith(
        "MiniGrad plugin 'arity' (module mgcontract_arity, distribution mgcontract-arity 1.0) op 'average': forward"
    )
    assert registry.failed["hookfails"].error == hook_problem
    assert registry.failed["arity"].error.startswith("op 'average': forward")
    assert len(messages) == 2 and "tanh" in registry.ops and not {"hookfails", "arity"} & set(registry.plugins)
    monkeypatch.setenv("MINIGRAD_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError) as info:
        load(monkeypatch, "ops,hookfails")
    assert isinstance(info.value.__cause__, RegistrationError)
    assert isinstance(info.value.__cause__.__cause__, RuntimeError)


@pytest.mark.parametrize("name", ["ops", "nn"])
def test_an_installed_plugin_with_a_built_in_plugin_s_name_is_skipped_saying_so(site, monkeypatch, name):
    """A distribution whose entry point is called ``ops`` or ``nn`` is not loaded in place of the
    built-in one, and not silently either: the warning names it and says how to get rid of it."""
    site.install(name, SINE_PLUGIN.format(op="shadow_sin"), distribution="mgcontract-shadow")
    registry, messages = load_with_warnings(monkeypatch, None)
    builtin = registry_module.BUILTIN_PLUGINS[name]
    assert messages == [
        f"MiniGrad plugin {name!r} (module {MODULE_PREFIX}{name}, distribution mgcontract-shadow 1.0) has the name "
        f"of a built-in plugin ({builtin}), which loads instead. It was skipped; everything else works. To leave "
        "it out: uninstall mgcontract-shadow, or give its entry point another name. MINIGRAD_STRICT_PLUGINS=1 "
        "makes this an error."
    ]
    assert "shadow_sin" not in registry.ops and registry.plugins[name].module == builtin
    assert registry.failed[name].distribution == "mgcontract-shadow"
    assert MODULE_PREFIX + name not in sys.modules  # never imported


def test_a_plugin_registered_with_pluggy_s_own_register_is_collected_as_one_registered_by_hand():
    """``make_plugin_manager()`` returns a pluggy PluginManager: a plugin added with its plain
    ``register()`` (not MiniGrad's ``register_plugin``) is still collected, with no distribution."""
    manager = make_plugin_manager(selection=set())
    manager.register(
        plugin_module(
            "direct",
            minigrad_register_ops=lambda register: register(
                OpSpec(name="direct_sin", arity=1, forward=math.sin, derivative=lambda x, out: (math.cos(x),))
            ),
        ),
        name="direct",
    )
    registry = Registry(manager)
    assert "direct_sin" in registry.ops and registry.plugins["direct"].distribution == ""
    assert registry.provider("direct_sin").name == "direct"
