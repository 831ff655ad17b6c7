"""Hypothesis profiles for the whole suite (tests/ and the plugins' own tests), and the skip policy.

``ci`` (the default) is derandomized, so every run draws the same examples, and has no
deadline, so a slow machine never fails a test for timing. HYPOTHESIS_PROFILE=dev
explores new random examples on each run.
"""

import os
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- skips: CI fails on a skip it does not expect -------------------------------------------------
#
# A skipped test proves nothing, and a machine that lacks something (Graphviz's `dot`, chromium,
# a plugin that fails to import) turns tests into skips while the run stays green. With
# MINIGRAD_STRICT_SKIPS=1 (`bash scripts/dev test` sets it) every skip whose reason matches none of
# the patterns below fails instead, naming the test and the reason. Add a pattern only with why
# the skip is right on the CI machine (a fresh Debian set up by scripts/dev).

STRICT_SKIPS = "MINIGRAD_STRICT_SKIPS"


@dataclass(frozen=True)
class AllowedSkip:
    pattern: str  # a regular expression, searched in the skip's reason
    why: str


ALLOWED_SKIPS = (
    AllowedSkip(
        r"^no torch equivalent to compare with$",
        "tests/test_higher_order.py: an installed op that names no PyTorch equivalent has nothing to be "
        "compared with at second order; tests/test_ops_oracle.py still checks it against its own rules",
    ),
    AllowedSkip(
        r"^a chapter failed to run \(reported by its own test\)$",
        "tests/test_course.py: the HTML build needs every chapter; a chapter that fails already fails its "
        "own test, so the build test steps aside rather than report the same failure twice",
    ),
)


def strict_skips(environ=os.environ) -> bool:
    return environ.get(STRICT_SKIPS, "") not in ("", "0")


def skip_reason(report) -> str:
    """The reason a skipped report gives (pytest keeps it as (path, line, "Skipped: reason"))."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason[len("Skipped: ") :] if reason.startswith("Skipped: ") else reason


def allowed_skip(reason: str) -> AllowedSkip | None:
    return next((allowed for allowed in ALLOWED_SKIPS if re.search(allowed.pattern, reason)), None)


def _fail_unexpected_skip(report) -> None:
    if not (report.skipped and strict_skips()) or hasattr(report, "wasxfail"):
        return  # an expected failure (xfail) is not a skip
    reason = skip_reason(report)
    if allowed_skip(reason) is None:
        report.outcome = "failed"
        report.longrepr = (
            f"unexpected skip ({STRICT_SKIPS}=1): {report.nodeid} skipped with the reason {reason!r}. "
            f"Install what it needs (bash scripts/dev test sets up the machine), or, if the skip is right on "
            f"the CI machine, add its reason to ALLOWED_SKIPS in conftest.py with why."
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())  # a whole module skipped (importorskip at its top)
