"""MiniGrad's kernel: Values, the graph, backward, and the op registry. No math lives here.

    from minigrad_core import Value, OpSpec, hookimpl   # all a plugin author needs
"""

from .errors import (
    HigherOrderError,
    MiniGradError,
    OpDomainError,
    OpSpecError,
    OpZeroDivisionError,
    PluginLoadError,
    RegistrationError,
    UnknownOpError,
)
from .functional import grad, ops
from .opspec import REQUIRED, Domain, OpSpec
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
from .value import Value, backward, topological_order

install_lazy_operators()

__all__ = [
    "Value", "OpSpec", "Domain", "REQUIRED", "hookimpl", "grad", "ops", "backward", "topological_order",
    "Registry", "get_registry", "activate", "using", "make_plugin_manager",
    "register_plugin", "unregister_plugin", "register_op", "unregister_op", "op",
    "MiniGradError", "UnknownOpError", "OpDomainError", "OpZeroDivisionError", "OpSpecError",
    "RegistrationError", "PluginLoadError", "HigherOrderError",
]
