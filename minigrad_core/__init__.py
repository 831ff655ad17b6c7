"""MiniGrad's kernel: Values, the graph, backward, and the op registry. No math lives here.

    from minigrad_core import Value, OpSpec, hookimpl   # all a plugin author needs

The chain rule lives in ``minigrad_core.value``: ``local_derivatives`` calls an op's
derivative rule and checks it, ``pass_gradient`` applies ``child.grad += partial * node.grad``,
and ``backward_steps`` walks a backward pass one node at a time for tools to observe.
"""

import importlib.metadata

from .anomaly import detect_anomaly
from .errors import (
    AnomalyError,
    HigherOrderError,
    MiniGradError,
    MissingRuleError,
    OpDomainError,
    OpRuleError,
    OpSpecError,
    OpZeroDivisionError,
    PluginLoadError,
    PluginLoadWarning,
    RegistrationError,
    UnknownOpError,
    shorten,
)
from .functional import grad, jvp, ops
from .opspec import OPERATORS, REQUIRED, Domain, OpSpec
from .registry import (
    Registry,
    activate,
    get_registry,
    hookimpl,
    install_lazy_operators,
    make_plugin_manager,
    op,
    register_op,
    register_plugin,
    unregister_op,
    unregister_plugin,
    using,
)
from .value import (
    COMPARE,
    Value,
    apply,
    backward,
    backward_steps,
    bind_params,
    chain_rule_step,
    comparison_observers,
    evaluate,
    local_derivatives,
    pass_gradient,
    topological_order,
)


def __getattr__(name: str) -> str:
    # The version is written once, in pyproject.toml, and read back from the installed metadata
    # (only when asked: the metadata lookup costs milliseconds that `import minigrad_core` need not pay).
    if name == "__version__":
        try:
            return importlib.metadata.version("minigrad-edu")
        except importlib.metadata.PackageNotFoundError:  # a bare source checkout, never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


install_lazy_operators()

# fmt: off
# grouped by theme for the reader (the formatter would put one name per line)
__all__ = [
    "Value", "OpSpec", "Domain", "REQUIRED", "OPERATORS", "hookimpl",
    "grad", "jvp", "ops", "backward", "backward_steps", "topological_order",
    "local_derivatives", "pass_gradient", "chain_rule_step", "apply", "evaluate", "bind_params",
    "comparison_observers", "COMPARE", "detect_anomaly",
    "Registry", "get_registry", "activate", "using", "make_plugin_manager",
    "register_plugin", "unregister_plugin", "register_op", "unregister_op", "op",
    "MiniGradError", "UnknownOpError", "OpDomainError", "OpZeroDivisionError", "OpSpecError", "OpRuleError",
    "RegistrationError", "PluginLoadError", "PluginLoadWarning", "HigherOrderError", "MissingRuleError",
    "AnomalyError", "shorten", "__version__",
]
# fmt: on
