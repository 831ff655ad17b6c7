"""MiniGrad's pytest plugin: one gradient-check test per registered op.

Installed with MiniGrad (entry point ``pytest11``), it adds nothing to a run unless asked:

    pytest --minigrad-check-ops                          # every registered op
    pytest --minigrad-check-ops --minigrad-plugin=extras # the ops one plugin provides
    pytest --minigrad-check-ops --minigrad-ops=sin,cos   # chosen ops

or, in ``pyproject.toml``, ``[tool.pytest.ini_options] minigrad_check_ops = true``.

Each op gets ``check_op[NAME]`` (its derivative rule against finite differences and PyTorch,
see ``minigrad_testing.check_op``) and ``check_op[NAME-order2]`` (the derivative of its
derivative rule), which is skipped for ops whose rule works on numbers only.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("minigrad", "MiniGrad gradient checks")
    group.addoption(
        "--minigrad-check-ops",
        action="store_true",
        default=False,
        help="add one gradient-check test per registered MiniGrad op (order 1 and 2)",
    )
    group.addoption(
        "--minigrad-ops",
        metavar="NAMES",
        default=None,
        help="comma-separated op names to check (implies --minigrad-check-ops)",
    )
    group.addoption(
        "--minigrad-plugin",
        metavar="NAMES",
        default=None,
        help="check only the ops these comma-separated plugins provide (implies --minigrad-check-ops)",
    )
    group.addoption(
        "--minigrad-max-order",
        type=int,
        choices=(1, 2),
        default=None,
        help="highest derivative order to check (default 2)",
    )
    parser.addini(
        "minigrad_check_ops", type="bool", default=False, help="add one gradient-check test per registered MiniGrad op"
    )
    parser.addini("minigrad_ops", default="", help="comma-separated op names to check")
    parser.addini("minigrad_plugin", default="", help="check only the ops of these comma-separated plugins")


def _names(config, option: str, ini: str) -> list[str] | None:
    raw = config.getoption(option) or config.getini(ini)
    return [name.strip() for name in raw.split(",") if name.strip()] if raw else None


def _requested(config) -> bool:
    return bool(
        config.getoption("--minigrad-check-ops")
        or config.getini("minigrad_check_ops")
        or _names(config, "--minigrad-ops", "minigrad_ops")
        or _names(config, "--minigrad-plugin", "minigrad_plugin")
    )


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect items, so they can select op checks too
def pytest_collection_modifyitems(session, config, items):
    if _requested(config):
        # genitems reports the collection like pytest's own, so counts and --collect-only include it
        items.extend(session.genitems(OpChecks.from_parent(session, name="minigrad", nodeid="minigrad")))


class OpChecks(pytest.Collector):
    """The gradient checks of the chosen ops of the active registry."""

    def collect(self):
        from minigrad_core import MiniGradError, get_registry

        config = self.config
        try:
            registry = get_registry()
        except MiniGradError as error:  # a broken plugin: one failing test says which and why
            return [ConfigurationProblem.from_parent(self, name="load-plugins", problem=str(error))]
        specs = sorted(registry.ops.values(), key=lambda spec: spec.name)
        problems = []
        plugins = _names(config, "--minigrad-plugin", "minigrad_plugin")
        if plugins is not None:
            unknown = sorted(set(plugins) - set(registry.plugins))
            if unknown:
                problems.append(
                    f"--minigrad-plugin names {unknown}, which are not loaded; "
                    f"loaded plugins: {', '.join(sorted(registry.plugins)) or 'none'}"
                )
            specs = [spec for spec in specs if spec.plugin in plugins]
        names = _names(config, "--minigrad-ops", "minigrad_ops")
        if names is not None:
            unknown = sorted(set(names) - set(registry.ops))
            if unknown:
                problems.append(
                    f"--minigrad-ops names {unknown}, which no loaded plugin provides; "
                    f"known ops: {', '.join(sorted(registry.ops)) or 'none'}"
                )
            specs = [spec for spec in specs if spec.name in names]
        if not specs and not problems:
            problems.append("no registered op matches the chosen ops and plugins")
        max_order = config.getoption("--minigrad-max-order") or 2
        items: list[pytest.Item] = [
            ConfigurationProblem.from_parent(self, name=f"choose-ops-{i}", problem=p) for i, p in enumerate(problems)
        ]
        for spec in specs:
            for order in range(1, max_order + 1):
                suffix = "" if order == 1 else f"-order{order}"
                items.append(
                    OpCheck.from_parent(
                        self,
                        name=f"check_op[{spec.name}{suffix}]",
                        op=spec.name,
                        plugin=spec.plugin,
                        order=order,
                        source=_source_file(spec),
                    )
                )
        return items


def _source_file(spec) -> Path | None:
    try:
        source = inspect.getsourcefile(spec.forward)
    except (TypeError, OSError):  # a built-in or C function: no source file
        return None
    return Path(source) if source is not None else None


class OpCheck(pytest.Item):
    """``check_op(op, order)`` as a test."""

    def __init__(self, *, op: str, plugin: str, order: int, source: Path | None, **kwargs):
        super().__init__(**kwargs)
        self.op, self.plugin, self.order, self.source = op, plugin, order, source
        self.add_marker(pytest.mark.minigrad_op_check)

    def runtest(self):
        from minigrad_core import HigherOrderError
        from minigrad_testing import check_op

        try:
            check_op(self.op, order=self.order)
        except HigherOrderError as error:
            if self.order < 2:
                raise
            pytest.skip(f"second order not supported: {error}")

    def repr_failure(self, excinfo, style=None):
        from minigrad_core import MiniGradError

        if isinstance(excinfo.value, (AssertionError, MiniGradError)):  # the kit's report says it all
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.source or self.path, None, f"{self.name} (op {self.op!r} from plugin {self.plugin!r})"


class ConfigurationProblem(pytest.Item):
    """A failing test that explains why the op checks could not be set up."""

    def __init__(self, *, problem: str, **kwargs):
        super().__init__(**kwargs)
        self.problem = problem

    def runtest(self):
        pytest.fail(self.problem, pytrace=False)

    def reportinfo(self):
        return self.path, None, self.name


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "minigrad_op_check: a gradient check of one MiniGrad op (added by --minigrad-check-ops)"
    )
