"""The errors MiniGrad raises. Each one says what went wrong, where, and what was expected."""


class MiniGradError(Exception):
    """Base class of every error MiniGrad raises on purpose."""


class UnknownOpError(MiniGradError, AttributeError, TypeError):
    """An op name (or operator) that no loaded plugin provides.

    It is an AttributeError so that ``hasattr(value, "sin")`` stays False, and a
    TypeError so that ``Value(1) + 2`` with no ops loaded fails like Python's own
    "unsupported operand" error would.
    """


class OpDomainError(MiniGradError, ValueError):
    """An op was given an input outside its domain, e.g. ``log(-1)``."""

    def __init__(self, op, inputs, expected, reason=""):
        self.op, self.inputs, self.expected, self.reason = op, tuple(inputs), expected, reason
        shown = ", ".join(repr(x) for x in self.inputs)
        message = f"{op}({shown}) is undefined: {op} expects {expected}"
        if reason:
            message += f" ({reason})"
        super().__init__(message)


class OpZeroDivisionError(OpDomainError, ZeroDivisionError):
    """A division by zero inside an op; still a ZeroDivisionError for ``except`` clauses."""


class OpSpecError(MiniGradError, TypeError):
    """An OpSpec (or the function behind it) does not fit the kernel's contract."""


class RegistrationError(MiniGradError):
    """A plugin could not register what it provides, e.g. two plugins claim one op name."""


class PluginLoadError(MiniGradError, ImportError):
    """An installed plugin failed to import or to run its hooks."""


class HigherOrderError(MiniGradError, TypeError):
    """A derivative rule works on numbers only, so it cannot be differentiated again."""
