"""Redis for the recovery tests: the shared session server of the broker tests (our own
``redis-server`` on a free port, see :mod:`tests.support.redis_server`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.support.redis_server import redis_url_for_tests

__all__: list[str] = []


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from redis_url_for_tests()


@pytest.fixture
def namespace() -> str:
    return f"wskit-test-{uuid.uuid4().hex[:10]}"
