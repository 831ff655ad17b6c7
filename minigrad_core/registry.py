"""The op registry and the plugin manager.

Start-up happens once: plugins are found through the ``minigrad`` entry-point
group, their hooks are called, and what they register is collected into plain
dicts. Then each op's methods and operators are installed on ``Value``. After
that, computing with Values never touches pluggy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import MiniGradError, OpSpecError, PluginLoadError, RegistrationError, UnknownOpError
from .opspec import OpSpec

ENTRY_POINT_GROUP = "minigrad"
BUILTIN_COMMANDS = ("ops", "plugins", "explain")  # the core's own sub-commands of `minigrad`
PLUGINS_ENV = "MINIGRAD_PLUGINS"

hookimpl = pluggy.HookimplMarker("minigrad")


@dataclass
class PluginInfo:
    """Who a plugin is and what it provided."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    provides: dict[str, list[str]] = field(default_factory=dict)  # kind -> names

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[Any], None]
    run: Callable[[Any], Any]
    plugin: str = ""


# -- plugin discovery -------------------------------------------------------------------

def selected_plugins(environ=os.environ) -> set[str] | None:
    """The plugin names chosen by MINIGRAD_PLUGINS: None when unset (= all installed)."""
    raw = environ.get(PLUGINS_ENV)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def make_plugin_manager(*plugins: Any, entry_points: bool = True, selection: set[str] | None | str = "env"):
    """A fresh plugin manager. ``entry_points`` loads the installed plugins (those chosen
    by MINIGRAD_PLUGINS unless ``selection`` is given); ``plugins`` are registered as well.

    Tests make one per test, so what they see never depends on what else is installed.
    """
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    manager.minigrad_info = {}  # plugin name -> PluginInfo
    if entry_points:
        chosen = selected_plugins() if selection == "env" else selection
        _load_entry_points(manager, chosen)
    for plugin in plugins:
        register_into(manager, plugin)
    return manager


def register_into(manager, plugin: Any, name: str | None = None) -> str:
    name = name or getattr(plugin, "__name__", None) or getattr(plugin, "name", None) or type(plugin).__name__
    _check_hooks_are_marked(plugin, name)
    if manager.has_plugin(name):
        raise RegistrationError(
            f"a plugin named {name!r} is already registered: unregister_plugin({name!r}) first, "
            f"or register this one under another name (name=...)"
        )
    try:
        manager.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as error:
        raise RegistrationError(f"plugin {name!r} could not be registered: {error}") from None
    _check_hooks_are_known(manager, plugin, name)
    module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
    manager.minigrad_info[name] = PluginInfo(name=name, module=module)
    return name


def _hook_names() -> list[str]:
    return sorted(name for name in vars(hookspecs) if name.startswith("minigrad_"))


def _check_hooks_are_marked(plugin: Any, name: str) -> None:
    """A hook function without ``@hookimpl`` is silently ignored by pluggy: say so instead."""
    for hook in _hook_names():
        function = getattr(plugin, hook, None)
        if callable(function) and not hasattr(function, f"{ENTRY_POINT_GROUP}_impl"):
            raise RegistrationError(
                f"plugin {name!r} defines {hook} but does not mark it with @hookimpl, so MiniGrad would "
                f"never call it; add `from minigrad_core import hookimpl` and put @hookimpl above it"
            )


def _check_hooks_are_known(manager, plugin: Any, name: str) -> None:
    """A misspelt hook name would never be called: refuse the plugin, naming it."""
    for caller in manager.get_hookcallers(plugin) or ():
        if not caller.has_spec():
            manager.unregister(plugin)
            raise RegistrationError(
                f"plugin {name!r} implements {caller.name!r}, which is not a MiniGrad hook; "
                f"the hooks are: {', '.join(_hook_names())}"
            )


def _load_entry_points(manager, chosen: set[str] | None) -> None:
    found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    installed = {ep.name for ep in found}
    if chosen is not None:
        unknown = chosen - installed - {_distribution(ep)[0] for ep in found}
        if unknown:
            raise PluginLoadError(
                f"{PLUGINS_ENV} names {sorted(unknown)}, which no installed distribution provides; "
                f"installed MiniGrad plugins: {sorted(installed) or 'none'}"
            )
    for entry_point in found:
        distribution, version = _distribution(entry_point)
        if chosen is not None and entry_point.name not in chosen and distribution not in chosen:
            continue
        if manager.has_plugin(entry_point.name):
            first = manager.minigrad_info[entry_point.name]
            if (first.distribution, first.module) == (distribution, entry_point.value):
                continue  # the same entry point seen twice (e.g. an editable install plus a copy)
            raise PluginLoadError(
                f"two installed distributions provide a MiniGrad plugin named {entry_point.name!r}: "
                f"{first.distribution} ({first.module}) and {distribution} ({entry_point.value}); "
                f"uninstall one of them (which one loads first depends on the file system)"
            )
        who = f"MiniGrad plugin {entry_point.name!r} (entry point {entry_point.value!r} of distribution " \
              f"{distribution or '?'} {version})".replace(" )", ")")
        loaded = installed if chosen is None else installed & chosen
        try:
            plugin = entry_point.load()
        except Exception as error:
            raise PluginLoadError(
                f"{who} failed to import: {type(error).__name__}: {error}. "
                + without_plugin_hint(entry_point.name, loaded)
            ) from error
        try:
            register_into(manager, plugin, entry_point.name)
        except RegistrationError as error:
            raise PluginLoadError(f"{who}: {error}. " + without_plugin_hint(entry_point.name, loaded)) from None
        manager.minigrad_info[entry_point.name] = PluginInfo(
            name=entry_point.name, distribution=distribution, version=version, module=entry_point.value
        )


def without_plugin_hint(plugin: str, loaded: Iterable[str]) -> str:
    """How to run without one installed plugin: name the others in MINIGRAD_PLUGINS."""
    others = ",".join(sorted(set(loaded) - {plugin}))
    return f"To run without it, choose the plugins to load: {PLUGINS_ENV}={others}" + ("" if others else " (none)")


def _distribution(entry_point) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"] or "", dist.version or ""


# -- the registry -----------------------------------------------------------------------

_REFLECTED = {
    "__radd__", "__rsub__", "__rmul__", "__rtruediv__", "__rfloordiv__",
    "__rmod__", "__rpow__", "__rmatmul__",
}
# Operators that get a stub before any plugin loads: using one triggers the loading.
_COMMON_OPERATORS = (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
    "__truediv__", "__rtruediv__", "__pow__", "__rpow__", "__neg__",
)


class Registry:
    """Everything the plugins registered, collected once into plain dicts."""

    def __init__(self, manager=None):
        self.plugin_manager = manager if manager is not None else make_plugin_manager()
        self.ops: dict[str, OpSpec] = {}
        self.exporters: dict[str, Any] = {}
        self.commands: dict[str, Command] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self._replaced: set[str] = set()  # ops registered with replace=True
        # operator -> (the op taking a Value operand, the op taking a number operand)
        self.operators: dict[str, tuple[OpSpec | None, OpSpec | None]] = {}
        self._collect()

    @classmethod
    def from_plugins(cls, *plugins: Any, entry_points: bool = False) -> "Registry":
        """A registry of exactly these plugins (and the installed ones if ``entry_points``)."""
        return cls(make_plugin_manager(*plugins, entry_points=entry_points))

    # collecting ----------------------------------------------------------------------
    def _collect(self) -> None:
        manager = self.plugin_manager
        for name, plugin in manager.list_name_plugin():
            info = manager.minigrad_info.get(name) or PluginInfo(name=name)
            self.plugins[name] = dataclasses.replace(info, provides={})
        hooks = (
            ("minigrad_register_ops", "ops", self._add_op),
            ("minigrad_register_exporters", "exporters", self._add_exporter),
            ("minigrad_register_commands", "commands", self._add_command),
        )
        for hook_name, kind, add in hooks:
            for impl in getattr(manager.hook, hook_name).get_hookimpls():  # registration order
                plugin_name = manager.get_name(impl.plugin)

                def register(*args, _plugin=plugin_name, _add=add, _kind=kind, **kwargs):
                    name = _add(_plugin, *args, **kwargs)
                    self.plugins[_plugin].provides.setdefault(_kind, []).append(name)

                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                except MiniGradError as error:
                    raise self._plugin_error(plugin_name, error) from error
                except Exception as error:
                    raise PluginLoadError(self._blame(
                        plugin_name,
                        f"plugin {plugin_name!r} failed in its {hook_name} hook: {type(error).__name__}: {error}",
                    )) from error
        try:
            self._check_installable()
        except MiniGradError as error:  # a clash between two ops: the message names both plugins
            if PLUGINS_ENV not in str(error):
                error.args = (f"{error}. To load fewer plugins, list the ones to load in {PLUGINS_ENV}.",)
            raise

    def _blame(self, plugin: str, message: str) -> str:
        """``message``, naming the plugin (and its distribution) and how to run without it."""
        if f"plugin {plugin!r}" not in message:
            message = f"plugin {plugin!r}: {message}"
        info = self.plugins.get(plugin)
        if info is not None and info.distribution:  # an installed plugin: MINIGRAD_PLUGINS can leave it out
            who = f"plugin {plugin!r} (distribution {info.distribution} {info.version})".replace(" )", ")")
            message = message.replace(f"plugin {plugin!r}", who, 1)
            if PLUGINS_ENV not in message:
                installed = [name for name, other in self.plugins.items() if other.distribution]
                message = f"{message.rstrip('. ')}. {without_plugin_hint(plugin, installed)}"
        return message

    def _plugin_error(self, plugin: str, error: MiniGradError) -> MiniGradError:
        """The same kind of error, its message naming the plugin that caused it."""
        message = self._blame(plugin, str(error))
        try:
            return type(error)(message)
        except TypeError:  # an error class whose constructor takes other arguments
            return RegistrationError(message)

    def _add_op(self, plugin: str, spec: OpSpec, replace: bool = False) -> str:
        if not isinstance(spec, OpSpec):
            raise OpSpecError(f"plugin {plugin!r} registered {spec!r}, which is not an OpSpec")
        existing = self.ops.get(spec.name)
        if existing is not None and spec.name in self._replaced and not replace:
            return spec.name  # an explicit replace registered earlier wins, whatever the load order
        if existing is not None and not replace:
            raise RegistrationError(
                f"op {spec.name!r} is provided by both plugin {existing.plugin!r} and plugin {plugin!r}. "
                f"Register it with replace=True to override deliberately, or leave one plugin out "
                f"with {PLUGINS_ENV}."
            )
        self.ops[spec.name] = dataclasses.replace(spec, plugin=plugin)
        if replace:
            self._replaced.add(spec.name)
        return spec.name

    def _add_exporter(self, plugin: str, name: str, exporter: Any) -> str:
        if name in self.exporters:
            raise RegistrationError(f"exporter {name!r} is provided by two plugins, the second is {plugin!r}")
        self.exporters[name] = exporter
        return name

    def _add_command(self, plugin: str, name: str, help: str, configure, run) -> str:
        if name in BUILTIN_COMMANDS:
            raise RegistrationError(f"plugin {plugin!r}: {name!r} is a built-in minigrad command; choose another name")
        if name in self.commands:
            other = self.commands[name].plugin
            raise RegistrationError(f"command {name!r} is provided by both plugin {other!r} and plugin {plugin!r}")
        self.commands[name] = Command(name, help, configure, run, plugin)
        return name

    def _check_installable(self) -> None:
        """Two ops may not claim one method; an operator may be claimed by one op of Values
        and one op taking the other operand as its parameter (``x ** y`` and ``x ** 2``)."""
        owners: dict[str, OpSpec] = {}
        for spec in self.ops.values():
            for method in spec.method_names:
                if method in owners:
                    raise RegistrationError(
                        f"Value.{method} is claimed by op {owners[method].name!r} (plugin "
                        f"{owners[method].plugin!r}) and op {spec.name!r} (plugin {spec.plugin!r})"
                    )
                owners[method] = spec
        self.operators = self._operator_table()  # raises on a clash

    def _operator_table(self) -> dict[str, tuple[OpSpec | None, OpSpec | None]]:
        table: dict[str, list] = {}
        for spec in self.ops.values():
            for dunder in spec.operators:
                slot = table.setdefault(dunder, [None, None])
                binary = _is_binary_operator(dunder)
                takes_number = binary and spec.arity == 1 and len(spec.params) == 1
                if spec.arity != (2 if binary and not takes_number else 1):
                    raise OpSpecError(
                        f"op {spec.name!r} (plugin {spec.plugin!r}) claims operator {dunder} but has arity "
                        f"{spec.arity}: a binary operator needs arity 2 (or arity 1 and one parameter "
                        f"that takes the number operand), a unary one arity 1"
                    )
                index = 1 if takes_number else 0
                if slot[index] is not None:
                    raise RegistrationError(
                        f"operator {dunder} is claimed by op {slot[index].name!r} (plugin {slot[index].plugin!r}) "
                        f"and op {spec.name!r} (plugin {spec.plugin!r})"
                    )
                slot[index] = spec
        return {dunder: tuple(slot) for dunder, slot in table.items()}

    # looking up ------------------------------------------------------------------------
    def get(self, name: str) -> OpSpec:
        try:
            return self.ops[name]
        except KeyError:
            raise UnknownOpError(unknown_op_message(name, self)) from None

    def find(self, name_or_symbol: str, arity: int | None = None) -> OpSpec | None:
        """An op by name, or else by its symbol ('+'), whose arity fits when one is given."""

        def fits(spec: OpSpec) -> bool:
            return arity is None or spec.arity in (None, arity)

        spec = self.ops.get(name_or_symbol)
        if spec is not None and fits(spec):
            return spec
        return next((s for s in self.ops.values() if s.symbol == name_or_symbol and fits(s)), None)

    def provider(self, op_name: str) -> PluginInfo:
        return self.plugins[self.get(op_name).plugin]


def _is_binary_operator(dunder: str) -> bool:
    return dunder not in ("__neg__", "__pos__", "__abs__", "__invert__")


def unknown_op_message(name: str, registry: Registry) -> str:
    known = ", ".join(sorted(registry.ops)) or "none"
    message = f"unknown op {name!r}; known ops: {known}"
    if not registry.ops:
        selection = os.environ.get(PLUGINS_ENV)
        why = f"{PLUGINS_ENV}={selection!r} chose none" if selection is not None else "no op plugin is installed"
        message += f". No op is registered ({why}): install minigrad_ops or register an op plugin."
    return message


# -- the active registry: what Value's methods dispatch to --------------------------------

_active: Registry | None = None
_installed: dict[str, Any] = {}


def get_registry() -> Registry:
    """The active registry, loading the installed plugins on first use."""
    if _active is None:
        activate(Registry())
    return _active


def activate(registry: Registry) -> Registry:
    """Make ``registry`` the one Values use: install its ops as methods and operators."""
    from . import functional, value

    global _active
    methods: dict[str, Any] = {}
    for spec in registry.ops.values():
        for method in spec.method_names:
            methods[method] = value.make_method(spec)
    for dunder, (value_spec, number_spec) in registry.operators.items():
        reflected = dunder in _REFLECTED
        methods[dunder] = value.make_operator(dunder, value_spec, number_spec, reflected)
    for dunder in _COMMON_OPERATORS:
        methods.setdefault(dunder, value.missing_operator(dunder))
    for name in methods:  # check everything before changing Value, so a refusal leaves it intact
        if name in value.Value.__dict__ and name not in _installed:
            owner = next((s for s in registry.ops.values() if name in s.method_names), None)
            who = f"op {owner.name!r} (plugin {owner.plugin!r})" if owner else "an op"
            raise RegistrationError(f"{who} would replace Value's own attribute {name!r}; choose another method name")
    for name in _installed:
        delattr(value.Value, name)
    _installed.clear()
    for name, method in methods.items():
        setattr(value.Value, name, method)
        _installed[name] = method
    _active = registry
    functional.ops._forget()
    return registry


def install_lazy_operators() -> None:
    """Before the first use, each common operator loads the plugins and then runs."""
    from . import value

    for dunder in _COMMON_OPERATORS:
        method = value.lazy_operator(dunder)
        setattr(value.Value, dunder, method)
        _installed[dunder] = method


def reload() -> Registry:
    """Rebuild the active registry from its plugin manager (after registering a plugin)."""
    return activate(Registry(get_registry().plugin_manager))


@contextlib.contextmanager
def using(registry: Registry):
    """Temporarily make ``registry`` the active one (tests use this)."""
    previous = _active
    activate(registry)
    try:
        yield registry
    finally:
        if previous is None:
            _reset()
        else:
            activate(previous)


def _reset() -> None:
    from . import functional, value

    global _active
    for name in _installed:
        delattr(value.Value, name)
    _installed.clear()
    _active = None
    functional.ops._forget()
    install_lazy_operators()


# -- run-time plugins (notebooks) ----------------------------------------------------------

def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Add a plugin object or module now, without installing anything; returns its name."""
    manager = get_registry().plugin_manager
    name = register_into(manager, plugin, name)
    try:
        reload()
    except Exception:
        manager.unregister(name=name)
        manager.minigrad_info.pop(name, None)
        reload()
        raise
    return name


def unregister_plugin(plugin_or_name: Any) -> None:
    manager = get_registry().plugin_manager
    if isinstance(plugin_or_name, str):
        if not manager.has_plugin(plugin_or_name):
            raise KeyError(f"no plugin named {plugin_or_name!r}; loaded: {sorted(manager.minigrad_info)}")
        name = plugin_or_name
    else:
        name = manager.get_name(plugin_or_name)
        if name is None:
            raise KeyError(f"{plugin_or_name!r} is not a registered plugin")
    manager.unregister(name=name)
    manager.minigrad_info.pop(name, None)
    reload()


class _RuntimeOp:
    """A one-op plugin made from an OpSpec, for ops defined in a notebook cell."""

    def __init__(self, spec: OpSpec, replace: bool):
        self.spec, self.replace = spec, replace

    @hookimpl
    def minigrad_register_ops(self, register):
        register(self.spec, replace=self.replace)


def register_op(spec: OpSpec, replace: bool = False) -> OpSpec:
    """Register one op now (a notebook's way to add an op); returns the registered spec.

    Running the same cell again replaces the op it registered before: a run-time op
    may always be redefined. Clashing with an op from another plugin needs ``replace=True``.
    """
    name = f"runtime:{spec.name}"
    manager = get_registry().plugin_manager
    previous = manager.get_plugin(name)
    if previous is not None:
        manager.unregister(name=name)
    try:
        register_plugin(_RuntimeOp(spec, replace), name=name)
    except Exception:
        if previous is not None:  # keep the earlier definition rather than none
            register_into(manager, previous, name)
            reload()
        raise
    return get_registry().ops[spec.name]


def unregister_op(name: str) -> None:
    """Remove an op registered with ``register_op`` or ``@op``."""
    registry = get_registry()
    plugin = f"runtime:{name}"
    if not registry.plugin_manager.has_plugin(plugin):
        owner = registry.get(name).plugin
        raise RegistrationError(
            f"op {name!r} was not registered at run time; it comes from plugin {owner!r}: "
            f"use unregister_plugin({owner!r}) or {PLUGINS_ENV}"
        )
    unregister_plugin(plugin)


def op(forward: Callable | None = None, *, derivative: Callable, name: str | None = None,
       replace: bool = False, **metadata) -> Callable:
    """Decorator: turn a forward function into a registered op.

        @op(derivative=lambda x, out: (3 * x**2,))
        def cube(x):
            return x**3

    After it, ``Value(2).cube()`` works, and ``cube`` itself applies the op: on a Value it
    records a node, on a number it computes. The arity is the forward's parameter count
    (those named in ``params`` excepted); other keywords are ``OpSpec`` fields.
    """
    import functools
    import inspect

    from .functional import ops

    def decorate(function: Callable) -> Callable:
        fields = dict(metadata)
        params = fields.pop("params", {})
        arity = fields.pop("arity", None)
        if arity is None:
            positional = [p for p in inspect.signature(function).parameters.values()
                          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in params]
            arity = len(positional)
        spec = register_op(OpSpec(name=name or function.__name__, arity=arity, forward=function,
                                  derivative=derivative, params=params, **fields), replace=replace)

        @functools.wraps(function)
        def apply_op(*inputs, **params):
            return getattr(ops, spec.name)(*inputs, **params)

        apply_op.spec = spec
        return apply_op

    return decorate(forward) if forward is not None else decorate
