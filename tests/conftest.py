"""Shared pytest configuration: the hypothesis profile and the ``shared_data`` fixture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import quanta
from hypothesis import HealthCheck, settings

# Deadlines are meaningless for calls into a multi-threaded Rust core on a loaded CI box.
settings.register_profile(
    "quanta",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    # CI (CI=true) replays the same examples on every machine: a fresh clone must pass or fail
    # the same way; local runs keep exploring new examples
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile(os.environ.get("QUANTA_HYPOTHESIS_PROFILE", "quanta"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data directory (``../shared/data`` or ``$QUANTA_DATA``).

    Skips when it is missing, except on CI (``CI=true``), which always has it: there a missing
    directory is a broken checkout and must fail loudly rather than skip silently.
    """
    try:
        return quanta.datasets.data_dir()
    except quanta.datasets.DatasetNotFoundError as e:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI=true but the shared data is missing: {e}")
        pytest.skip(f"shared data not available: {e}")
