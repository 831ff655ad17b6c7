"""The op registry and the plugin manager.

Start-up happens once, at the first use of an op: the built-in plugins are imported by
module name (so a bare source checkout computes), third-party plugins are found through
the ``minigrad`` entry-point group, each plugin's hooks are called, and what they register
is collected into plain dicts. Then each op's methods and operators are installed on
``Value``. After that, computing with Values never touches pluggy.

A third-party plugin that fails to import or to register is skipped with one warning
naming it, its distribution, the error and how to leave it out; everything else works.
``MINIGRAD_STRICT_PLUGINS=1`` turns that warning into an error (for CI).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.metadata
import os
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs, methods, value
from .errors import (
    MiniGradError,
    OpSpecError,
    PluginLoadError,
    PluginLoadWarning,
    RegistrationError,
    UnknownOpError,
    clip,
    shorten,
)
from .opspec import OpSpec
from .value import Value

ENTRY_POINT_GROUP = "minigrad"
PLUGINS_ENV = "MINIGRAD_PLUGINS"
STRICT_ENV = "MINIGRAD_STRICT_PLUGINS"
# MiniGrad's own plugins, imported by module name as pytest imports its default plugins.
BUILTIN_PLUGINS = {"ops": "minigrad_ops", "nn": "minigrad_nn.plugin"}
BUILTIN_COMMANDS = ("ops", "plugins")  # the kernel's own sub-commands of `minigrad`

hookimpl = pluggy.HookimplMarker(ENTRY_POINT_GROUP)


@dataclass
class PluginInfo:
    """Who a plugin is, what it provided, and why it failed if it did."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    provides: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    error: str = ""  # why the plugin was skipped ("" when it loaded)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[Any], None]  # configure(argparse parser)
    run: Callable[[Any], Any]  # run(parsed arguments) -> exit status
    plugin: str = ""


class PluginManager(pluggy.PluginManager):
    """pluggy's plugin manager, plus what MiniGrad learns while loading plugins."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.minigrad_info: dict[str, PluginInfo] = {}  # plugin name -> who it is
        self.minigrad_failed: dict[str, PluginInfo] = {}  # plugin name -> a plugin that was skipped
        self.minigrad_candidates: set[str] = set()  # every plugin asked for: named in the hint to leave one out


def strict(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def selected_plugins(environ: Mapping[str, str] = os.environ) -> set[str] | None:
    """The plugin names chosen by MINIGRAD_PLUGINS: None when unset (= all installed)."""
    raw = environ.get(PLUGINS_ENV)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


# -- plugin discovery -------------------------------------------------------------------


def make_plugin_manager(
    *plugins: Any, entry_points: bool = True, selection: set[str] | str | None = "env"
) -> PluginManager:
    """A fresh plugin manager: the built-in plugins and the installed ones (those chosen by
    MINIGRAD_PLUGINS unless ``selection`` is given) when ``entry_points``; ``plugins`` are
    registered as well. Tests make one per test, so what they see never depends on what
    else is installed.
    """
    manager = PluginManager()
    manager.add_hookspecs(hookspecs)
    if entry_points:
        chosen = selected_plugins() if isinstance(selection, str) else selection
        manager.minigrad_candidates = {name for name in BUILTIN_PLUGINS if chosen is None or name in chosen} | {
            ep.name
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
            if chosen is None or ep.name in chosen or _distribution(ep)[0] in chosen
        }
        _load_builtins(manager, chosen)
        _load_entry_points(manager, chosen)
    for plugin in plugins:
        register_into(manager, plugin)
    return manager


def register_into(manager: PluginManager, plugin: Any, name: str | None = None) -> str:
    name = name or getattr(plugin, "__name__", None) or getattr(plugin, "name", None) or type(plugin).__name__
    if not isinstance(name, str):
        raise RegistrationError(f"a plugin's name must be text, got {shorten(name)}")
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


def _check_hooks_are_known(manager: PluginManager, plugin: Any, name: str) -> None:
    """A misspelt hook name would never be called: refuse the plugin, naming it."""
    for caller in manager.get_hookcallers(plugin) or ():
        if not caller.has_spec():
            manager.unregister(plugin)
            raise RegistrationError(
                f"plugin {name!r} implements {caller.name!r}, which is not a MiniGrad hook; "
                f"the hooks are: {', '.join(_hook_names())}"
            )


def _load_builtins(manager: PluginManager, chosen: set[str] | None) -> None:
    for name, module in BUILTIN_PLUGINS.items():
        if chosen is not None and name not in chosen:
            manager.set_blocked(name)  # pluggy's own way to keep a plugin out
            continue
        _load_one(
            manager, name, module, functools.partial(importlib.import_module, module), "minigrad-edu", _own_version()
        )


def _load_entry_points(manager: PluginManager, chosen: set[str] | None) -> None:
    found = [
        ep
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.name not in BUILTIN_PLUGINS or ep.value != BUILTIN_PLUGINS[ep.name]
    ]
    if chosen is not None:
        known = {ep.name for ep in found} | {_distribution(ep)[0] for ep in found} | set(BUILTIN_PLUGINS)
        unknown = chosen - known
        if unknown:
            raise PluginLoadError(
                f"{PLUGINS_ENV} names {sorted(unknown)}, which no installed distribution provides; "
                f"MiniGrad plugins here: {', '.join(sorted(known - {''}))}"
            )
    providers: dict[str, tuple[str, str]] = {}
    for entry_point in found:
        distribution, version = _distribution(entry_point)
        if chosen is not None and entry_point.name not in chosen and distribution not in chosen:
            manager.set_blocked(entry_point.name)
            continue
        first = providers.get(entry_point.name)
        if first is not None:
            if first == (distribution, entry_point.value):
                continue  # the same entry point seen twice (e.g. an editable install plus a copy)
            _skip(
                manager,
                PluginInfo(entry_point.name, distribution, version, entry_point.value),
                f"two installed distributions provide a MiniGrad plugin named {entry_point.name!r}: "
                f"{first[0]} ({first[1]}) and {distribution} ({entry_point.value}); uninstall one of them "
                f"(which one loads first depends on the file system)",
            )
            continue
        providers[entry_point.name] = (distribution, entry_point.value)
        if entry_point.name in BUILTIN_PLUGINS:
            _skip(
                manager,
                PluginInfo(entry_point.name, distribution, version, entry_point.value),
                f"has the name of a built-in plugin ({BUILTIN_PLUGINS[entry_point.name]}), which loads instead",
                how=f"uninstall {distribution}, or give its entry point another name",
            )
            continue
        _load_one(manager, entry_point.name, entry_point.value, entry_point.load, distribution, version)


def _load_one(
    manager: PluginManager, name: str, module: str, load: Callable[[], Any], distribution: str, version: str
) -> None:
    info = PluginInfo(name=name, distribution=distribution, version=version, module=module)
    try:
        plugin = load()
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: a plugin must not end the program
        _skip(manager, info, f"failed to import: {type(error).__name__}: {clip(str(error))}", error)
        return
    try:
        register_into(manager, plugin, name)
    except RegistrationError as error:
        _skip(manager, info, str(error), error)
        return
    manager.minigrad_info[name] = info


def _skip(
    manager: PluginManager, info: PluginInfo, problem: str, error: BaseException | None = None, how: str = ""
) -> None:
    """Leave a broken plugin out: one warning (or, in strict mode, an error) that says why
    and how to leave it out (``how``, when naming the other plugins would not do)."""
    who = f"MiniGrad plugin {info.name!r} (module {info.module}" + (
        f", distribution {info.distribution} {info.version})".replace(" )", ")") if info.distribution else ")"
    )
    others = sorted((manager.minigrad_candidates | set(manager.minigrad_info)) - {info.name})
    if not how:
        how = f"{PLUGINS_ENV}={','.join(others)}" + (
            f" (or uninstall {info.distribution})" if info.distribution and info.distribution != "minigrad-edu" else ""
        )
    message = (
        f"{who} {problem}. It was skipped; everything else works. To leave it out: {how}. "
        f"{STRICT_ENV}=1 makes this an error."
    )
    info.error = problem
    manager.minigrad_failed[info.name] = info
    if strict():
        raise PluginLoadError(message) from error
    warnings.warn(message, PluginLoadWarning, stacklevel=2)


def _own_version() -> str:
    try:
        return importlib.metadata.version("minigrad-edu")
    except importlib.metadata.PackageNotFoundError:  # a source checkout, not installed
        return ""


def _distribution(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    assert dist is not None  # entry_points() gives each entry point its distribution
    return dist.metadata["Name"] or "", dist.version or ""


# -- the registry -----------------------------------------------------------------------

_REFLECTED = {
    "__radd__",
    "__rsub__",
    "__rmul__",
    "__rtruediv__",
    "__rfloordiv__",
    "__rmod__",
    "__rpow__",
    "__rmatmul__",
}
# Operators that get a stub before any plugin loads: using one triggers the loading.
_COMMON_OPERATORS = (
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__pow__",
    "__rpow__",
    "__neg__",
    "__abs__",
)
_HOOKS = (  # hook -> kind of thing it registers
    ("minigrad_register_ops", "ops"),
    ("minigrad_register_exporters", "exporters"),
    ("minigrad_register_commands", "commands"),
    ("minigrad_register_engines", "engines"),
)


class Registry:
    """Everything the plugins registered, collected once into plain dicts."""

    def __init__(self, manager: PluginManager | None = None) -> None:
        self.plugin_manager = manager if manager is not None else make_plugin_manager()
        self.ops: dict[str, OpSpec] = {}
        self.exporters: dict[str, Any] = {}
        self.commands: dict[str, Command] = {}
        self.engines: dict[str, Callable[..., Any]] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.failed: dict[str, PluginInfo] = dict(self.plugin_manager.minigrad_failed)
        self._replaced: set[str] = set()  # ops registered with replace=True
        # operator -> (the op taking a Value operand, the op taking a number operand)
        self.operators: dict[str, tuple[OpSpec | None, OpSpec | None]] = {}
        self._collect()

    @classmethod
    def from_plugins(cls, *plugins: Any, entry_points: bool = False) -> Registry:
        """A registry of exactly these plugins (and the built-in and installed ones if
        ``entry_points``)."""
        return cls(make_plugin_manager(*plugins, entry_points=entry_points))

    # collecting ----------------------------------------------------------------------
    def _collect(self) -> None:
        """Call every plugin's hooks, one plugin at a time: a plugin whose hooks fail or
        clash with what came before is left out whole (if it was installed) or refused
        (if it was registered explicitly)."""
        manager = self.plugin_manager
        for name, plugin in manager.list_name_plugin():
            if plugin is None:  # blocked
                continue
            info = manager.minigrad_info.get(name) or PluginInfo(name=name)  # also pluggy's own register()
            self.plugins[name] = dataclasses.replace(info, provides={})
            try:
                self._collect_plugin(name, plugin)
            except MiniGradError as error:
                del self.plugins[name]
                if not info.distribution:  # registered by hand: the caller hears of it
                    raise
                problem = str(error)
                for prefix in (f"plugin {name!r}: ", f"plugin {name!r} "):
                    problem = problem[len(prefix) :] if problem.startswith(prefix) else problem
                _skip(manager, info, problem, error)
                self.failed[name] = manager.minigrad_failed[name]

    def _collect_plugin(self, name: str, plugin: Any) -> None:
        manager = self.plugin_manager
        staged = Registry.__new__(Registry)  # what this plugin adds, checked before it counts
        staged.ops, staged.exporters = dict(self.ops), dict(self.exporters)
        staged.commands, staged.engines = dict(self.commands), dict(self.engines)
        staged._replaced, staged.plugins = set(self._replaced), self.plugins
        provides: dict[str, list[str]] = {}
        for hook_name, kind in _HOOKS:
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                add = getattr(staged, f"_add_{kind[:-1]}")

                def register(*args: Any, _add: Callable[..., str] = add, _kind: str = kind, **kwargs: Any) -> None:
                    provides.setdefault(_kind, []).append(_add(name, *args, **kwargs))

                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                except MiniGradError as error:
                    raise _plugin_error(name, error) from error
                except Exception as error:
                    raise RegistrationError(
                        f"plugin {name!r} failed in its {hook_name} hook: {type(error).__name__}: {clip(str(error))}"
                    ) from error
        try:
            staged.operators = staged._operator_table()
            staged._check_methods()
        except MiniGradError as error:
            raise _plugin_error(name, error) from error
        self.ops, self.exporters, self.commands, self.engines = (
            staged.ops,
            staged.exporters,
            staged.commands,
            staged.engines,
        )
        self._replaced, self.operators = staged._replaced, staged.operators
        self.plugins[name].provides = provides

    def _add_op(self, plugin: str, spec: OpSpec, replace: bool = False) -> str:
        if not isinstance(spec, OpSpec):
            raise OpSpecError(f"plugin {plugin!r} registered {shorten(spec)}, which is not an OpSpec")
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

    def _add_command(
        self, plugin: str, name: str, help: str, configure: Callable[[Any], None], run: Callable[[Any], Any]
    ) -> str:
        if name in BUILTIN_COMMANDS:
            raise RegistrationError(f"plugin {plugin!r}: {name!r} is a built-in minigrad command; choose another name")
        if name in self.commands:
            other = self.commands[name].plugin
            raise RegistrationError(f"command {name!r} is provided by both plugin {other!r} and plugin {plugin!r}")
        self.commands[name] = Command(name, help, configure, run, plugin)
        return name

    def _add_engine(self, plugin: str, name: str, engine: Callable[..., Any]) -> str:
        if not callable(engine):
            raise RegistrationError(f"plugin {plugin!r}: engine {name!r} must be callable as engine(loss_fn)")
        if name in self.engines:
            raise RegistrationError(f"engine {name!r} is provided by two plugins, the second is {plugin!r}")
        self.engines[name] = engine
        return name

    def _check_methods(self) -> None:
        """Two ops may not claim one method, nor an attribute Value has of its own."""
        owners: dict[str, OpSpec] = {}
        for spec in self.ops.values():
            for method in spec.method_names:
                if method in owners:
                    raise RegistrationError(
                        f"Value.{method} is claimed by op {owners[method].name!r} (plugin "
                        f"{owners[method].plugin!r}) and op {spec.name!r} (plugin {spec.plugin!r})"
                    )
                if method in _VALUE_OWN:
                    raise RegistrationError(
                        f"op {spec.name!r} (plugin {spec.plugin!r}) would replace Value's own "
                        f"attribute {method!r}; choose another method name"
                    )
                owners[method] = spec

    def _operator_table(self) -> dict[str, tuple[OpSpec | None, OpSpec | None]]:
        """An operator may be claimed by one op of Values and one op taking the other
        operand as its parameter (``x ** y`` and ``x ** 2``)."""
        table: dict[str, list[OpSpec | None]] = {}
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
                other = slot[index]
                if other is not None:
                    raise RegistrationError(
                        f"operator {dunder} is claimed by op {other.name!r} (plugin {other.plugin!r}) "
                        f"and op {spec.name!r} (plugin {spec.plugin!r})"
                    )
                slot[index] = spec
        return {dunder: (slot[0], slot[1]) for dunder, slot in table.items()}

    # looking up ------------------------------------------------------------------------
    def get(self, name: str) -> OpSpec:
        """The op called ``name``; an unknown name raises ``UnknownOpError`` listing the known ones."""
        try:
            return self.ops[name]
        except (KeyError, TypeError):
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
        """The plugin that registered the op ``op_name``."""
        return self.plugins[self.get(op_name).plugin]


def _plugin_error(plugin: str, error: MiniGradError) -> MiniGradError:
    """The same kind of error, its message naming the plugin that caused it."""
    message = str(error)
    if f"plugin {plugin!r}" in message:
        return error
    try:
        return type(error)(f"plugin {plugin!r}: {message}")
    except TypeError:  # an error class whose constructor takes other arguments
        return RegistrationError(f"plugin {plugin!r}: {message}")


def _is_binary_operator(dunder: str) -> bool:
    return dunder not in ("__neg__", "__pos__", "__abs__")


def unknown_op_message(name: str, registry: Registry) -> str:
    known = ", ".join(sorted(registry.ops)) or "none"
    message = f"unknown op {shorten(name)}; known ops: {known}"
    if not registry.ops:
        selection = os.environ.get(PLUGINS_ENV)
        if selection is not None:
            message += (
                f". No op is registered ({PLUGINS_ENV}={selection!r} chose none): the environment variable "
                f"{PLUGINS_ENV} lists the plugins to load; include 'ops' in it, or unset it"
            )
        else:
            message += ". No op is registered (no op plugin is loaded): register an op plugin"
    return message


# -- the active registry: what Value's methods dispatch to --------------------------------

_VALUE_OWN = frozenset(vars(Value)) | {"data", "grad", "label"}
_active: Registry | None = None
_installed: dict[str, Any] = {}
_lock = threading.RLock()  # the registry is built and installed once, however many threads ask
_check: Callable[[Value], None] | None = None  # a node inspector (anomaly detection), built into the methods
on_activate: list[Callable[[], None]] = []  # called whenever another registry becomes the active one


def get_registry() -> Registry:
    """The active registry, loading the plugins on first use (once, even across threads)."""
    registry = _active
    if registry is None:
        with _lock:
            registry = _active if _active is not None else activate(Registry())
    return registry


def activate(registry: Registry) -> Registry:
    """Make ``registry`` the one Values use: install its ops as methods and operators."""
    global _active
    with _lock:
        installed = _methods_of(registry, _check)
        for name in list(_installed):  # remove what the new registry does not provide
            if name not in installed:
                delattr(Value, name)
                del _installed[name]
        for name, method in installed.items():
            setattr(Value, name, method)
            _installed[name] = method
        _active = registry
        for callback in on_activate:
            callback()
    return registry


def _methods_of(registry: Registry, check: Callable[[Value], None] | None) -> dict[str, Any]:
    installed: dict[str, Any] = {}
    for spec in registry.ops.values():
        for method in spec.method_names:
            installed[method] = methods.make_method(spec, check)
    for dunder, (value_spec, number_spec) in registry.operators.items():
        installed[dunder] = methods.make_operator(dunder, value_spec, number_spec, dunder in _REFLECTED, check)
    for dunder in _COMMON_OPERATORS:
        installed.setdefault(dunder, _missing_operator(dunder))
    installed["__getattr__"] = _value_getattr
    installed["_repr_mimebundle_"] = _value_mimebundle
    return installed


def set_node_check(check: Callable[[Value], None] | None) -> None:
    """Re-install the methods so that each checks the nodes it makes (None: plain again)."""
    global _check
    with _lock:
        _check = check
        if _active is not None:
            activate(_active)


def _missing_operator(dunder: str) -> Callable[..., Any]:
    def operator(self: Value, *args: Any) -> Any:
        raise UnknownOpError(
            f"no loaded op provides the operator {dunder}: " + unknown_op_message(dunder, get_registry())
        )

    operator.__name__ = dunder
    return operator


def _lazy_operator(dunder: str) -> Callable[..., Any]:
    """Before the first use, an operator loads the plugins, then runs the real one."""

    def operator(self: Value, *args: Any) -> Any:
        get_registry()
        return getattr(type(self), dunder)(self, *args)

    operator.__name__ = dunder
    return operator


def _value_getattr(self: Value, name: str) -> Any:
    # Only reached when normal lookup fails: the first use of an op loads the plugins.
    if name.startswith("_"):
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")
    registry = get_registry()
    if name in vars(Value):
        return getattr(self, name)
    if name in registry.ops:
        raise UnknownOpError(f"op {name!r} is not a Value method; call it as minigrad_core.ops.{name}(...)")
    raise UnknownOpError(f"Value has no attribute or method {name!r}: " + unknown_op_message(name, registry))


def _value_mimebundle(self: Value, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """In Jupyter a Value displays as its graph when an exporter plugin provides one."""
    for exporter in get_registry().exporters.values():
        if hasattr(exporter, "mimebundle"):
            bundle: dict[str, Any] = exporter.mimebundle(self)
            return bundle
    return {"text/plain": repr(self)}


def install_lazy_operators() -> None:
    """Before the first use, each common operator loads the plugins and then runs."""
    with _lock:
        for dunder in _COMMON_OPERATORS:
            method = _lazy_operator(dunder)
            setattr(Value, dunder, method)
            _installed[dunder] = method
        for name, method in (("__getattr__", _value_getattr), ("_repr_mimebundle_", _value_mimebundle)):
            setattr(Value, name, method)
            _installed[name] = method


def _find_op(name: str, arity: int) -> OpSpec | None:
    return get_registry().find(name, arity)


value.find_op = _find_op


def reload() -> Registry:
    """Rebuild the active registry from its plugin manager (after registering a plugin)."""
    return activate(Registry(get_registry().plugin_manager))


@contextlib.contextmanager
def using(registry: Registry) -> Iterator[Registry]:
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
    global _active
    with _lock:
        for name in _installed:
            delattr(Value, name)
        _installed.clear()
        _active = None
        for callback in on_activate:
            callback()
        install_lazy_operators()


# -- run-time plugins (notebooks) ----------------------------------------------------------


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Add a plugin object or module now; returns its name."""
    with _lock:
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
    """Remove a plugin added with ``register_plugin`` (by the object or its name)."""
    name: str | None
    with _lock:
        manager = get_registry().plugin_manager
        if isinstance(plugin_or_name, str):
            if not manager.has_plugin(plugin_or_name):
                raise KeyError(f"no plugin named {plugin_or_name!r}; loaded: {sorted(manager.minigrad_info)}")
            name = plugin_or_name
        else:
            name = manager.get_name(plugin_or_name)
            if name is None:
                raise KeyError(f"{shorten(plugin_or_name)} is not a registered plugin")
        manager.unregister(name=name)
        manager.minigrad_info.pop(name, None)
        reload()


class _RuntimeOp:
    """A one-op plugin made from an OpSpec, for ops defined in a notebook cell."""

    def __init__(self, spec: OpSpec, replace: bool):
        self.spec, self.replace = spec, replace

    @hookimpl
    def minigrad_register_ops(self, register: Callable[..., Any]) -> None:
        register(self.spec, replace=self.replace)


def register_op(spec: OpSpec, replace: bool = False) -> OpSpec:
    """Register one op now (a notebook's way to add an op); returns the registered spec.

    Running the same cell again replaces the op it registered before: a run-time op
    may always be redefined. Clashing with an op from another plugin needs ``replace=True``.
    """
    if not isinstance(spec, OpSpec):
        raise OpSpecError(f"register_op takes an OpSpec, got {shorten(spec)}")
    name = f"runtime:{spec.name}"
    with _lock:
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


def op(
    forward: Callable[..., Any] | None = None,
    *,
    derivative: Callable[..., Any],
    name: str | None = None,
    replace: bool = False,
    **metadata: Any,
) -> Any:
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

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        fields = dict(metadata)
        params = fields.pop("params", {})
        arity = fields.pop("arity", None)
        if arity is None:
            positional = [
                p
                for p in inspect.signature(function).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in params
            ]
            arity = len(positional)
        spec = register_op(
            OpSpec(
                name=name or function.__name__,
                arity=arity,
                forward=function,
                derivative=derivative,
                params=params,
                **fields,
            ),
            replace=replace,
        )

        @functools.wraps(function)
        def apply_op(*inputs: Any, **params: Any) -> Any:
            return getattr(ops, spec.name)(*inputs, **params)

        apply_op.spec = spec  # type: ignore[attr-defined]  # the registered OpSpec, for tools
        return apply_op

    return decorate(forward) if forward is not None else decorate
