"""Hypothesis profiles for the whole suite (tests/ and the plugins' own tests).

``ci`` (the default) is derandomized, so every run draws the same examples, and has no
deadline, so a slow machine never fails a test for timing. HYPOTHESIS_PROFILE=dev
explores new random examples on each run.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=60, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
