"""The CI rule: what a test needs from outside the suite is skipped locally, required under CI.

A developer without ``redis-server``, Chromium or an optional package gets a skip that names
what is missing. Under ``CI=true`` (any case, as GitHub Actions and most CI services set it)
the same test fails instead: ``make test`` installs every service and package the suite
uses, so a green CI run must have run every test, never skipped one silently.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["in_ci", "require_module", "unavailable"]


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``, ``CI=True``, ``CI=TRUE``, surrounding spaces ignored)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the running test because ``reason`` (something it needs is missing); under CI, fail it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: make test installs it, so a CI run must not skip this test)")
    pytest.skip(reason)


def require_module(name: str, *, reason: str) -> ModuleType:
    """Import ``name`` for the running test; without it, :func:`unavailable` (``reason`` says why it is needed)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"{name} is not installed: {reason}")
