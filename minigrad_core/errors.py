"""The errors MiniGrad raises. Each one says what went wrong, where, and what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_QUOTED = 200  # characters an error message quotes of one input before cutting it


def shorten(value: object, limit: int = MAX_QUOTED) -> str:
    """``repr(value)``, cut to about ``limit`` characters, saying how much was cut.

    Error messages quote what they were given; a 100,000-digit number must not make a
    100 KB message.
    """
    try:
        text = repr(value)
    except Exception as error:  # a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__} whose repr raised {type(error).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def clip(text: str, limit: int = MAX_QUOTED * 2) -> str:
    """Text (an error's own message, say) cut to about ``limit`` characters, saying how much was cut."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters)"


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

    def __init__(self, op: str, inputs: Iterable[object], expected: str, reason: str = "") -> None:
        self.op, self.inputs, self.expected, self.reason = op, tuple(inputs), expected, reason
        shown = ", ".join(x if isinstance(x, str) and "=" in x else shorten(x) for x in self.inputs)
        message = f"{op}({shown}) is undefined: {op} expects {expected}"
        if reason:
            message += f" ({reason})"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.op, self.inputs, self.expected, self.reason)


class OpZeroDivisionError(OpDomainError, ZeroDivisionError):
    """A division by zero inside an op; still a ZeroDivisionError for ``except`` clauses."""


class OpSpecError(MiniGradError, TypeError):
    """An OpSpec (or the function behind it) does not fit the kernel's contract."""


class OpRuleError(MiniGradError, RuntimeError):
    """An op's forward or derivative rule raised something other than a domain error."""


class RegistrationError(MiniGradError):
    """A plugin could not register what it provides, e.g. two plugins claim one op name."""


class PluginLoadError(MiniGradError, ImportError):
    """An installed plugin failed to import or to run its hooks (raised in strict mode)."""


class PluginLoadWarning(UserWarning):
    """An installed plugin failed to load and was skipped; everything else still works."""


class HigherOrderError(MiniGradError, TypeError):
    """A derivative rule works on numbers only, so it cannot be differentiated again."""


class MissingRuleError(MiniGradError, TypeError):
    """backward() reached a node that has neither a registered op rule nor a ``_backward`` closure."""


class AnomalyError(MiniGradError, FloatingPointError):
    """Inside ``detect_anomaly()``: a step turned finite numbers into nan or inf."""
