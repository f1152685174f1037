"""Redis for the broker tests: our own ``redis-server`` on a free port, never the machine's.

Without ``redis-server`` on PATH the tests use ``REDIS_URL`` (never flushed: every test
works in its own namespace) and the fault tests cannot run; either way a test without
the Redis it needs is skipped, or fails under ``CI=true`` (see :mod:`tests.support.redis_server`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from tests.brokers.redis_helpers import NoJitter, Pair, start_broker
from tests.support.redis_server import REDIS_SERVER, RedisServer, no_redis, redis_url_for_tests

__all__: list[str] = []


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL shared by the tests of this session (each test uses its own namespace)."""
    yield from redis_url_for_tests()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Starts private redis-server processes (for fault tests); kills them after the test."""
    if REDIS_SERVER is None:
        no_redis("fault tests need redis-server on PATH (REDIS_URL cannot be killed)")
    servers: list[RedisServer] = []

    def start(*, persistent: bool = False) -> RedisServer:
        server = RedisServer(tmp_path, persistent=persistent)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
async def pair(
    redis_server: Callable[..., RedisServer], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pair]:
    """Two brokers on a private Redis; ``a`` reconnects exactly 0.5 s after its link is cut."""
    import wskit.pubsub.redis as module

    monkeypatch.setattr(module, "random", NoJitter)  # the longest backoff: a known outage
    server = redis_server()
    a, listener = await start_broker(server.url, namespace, backoff_min_s=0.5, backoff_max_s=0.5)
    b, _ = await start_broker(server.url, namespace)
    try:
        yield Pair(server.url, a, listener, b)
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def namespace() -> str:
    """A namespace of its own for each test."""
    return f"wskit-test-{uuid.uuid4().hex[:10]}"
