"""A server on Redis stopped right after it started stops: the link task's cancellation can be
swallowed inside the Redis client on its way (Python 3.11's wait_for), which left
``Link.stop_tasks`` awaiting a task that went on reading the link, for ever."""

from __future__ import annotations

import asyncio

from wskit import Router, Server


async def test_a_server_on_redis_stopped_at_once_stops_every_time(redis_url: str) -> None:
    for _ in range(5):
        async with asyncio.timeout(10):
            async with Server(Router(), port=0, env={}, redis_url=redis_url) as server:
                assert server.runtime is not None
        assert server.runtime is not None and not server.runtime.serving
