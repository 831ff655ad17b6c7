"""Hypothesis settings for this package's tests when they run on their own.

Inside MiniGrad's own suite its conftest.py has registered and loaded the ``ci`` profile
already; a stand-alone run (``pytest tests`` in this folder) gets the same one here.
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

try:
    settings.get_profile("ci")
except InvalidArgument:
    # as the root profile: no check may fail for timing (a first draw may import torch)
    settings.register_profile(
        "ci", derandomize=True, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
