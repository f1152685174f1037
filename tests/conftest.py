"""Shared fixtures: a scaled time unit instead of literal sleeps."""

from __future__ import annotations

import os

import pytest

#: Multiply every wait in the tests by this (raise it on a slow machine: WSKIT_TIME_SCALE=3).
TIME_SCALE = float(os.environ.get("WSKIT_TIME_SCALE", "1"))


@pytest.fixture
def tick() -> float:
    """One scaled unit of waiting (50 ms by default)."""
    return 0.05 * TIME_SCALE
