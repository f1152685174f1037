"""The Redis broker under many concurrent commands: a healthy Redis never answers UNAVAILABLE."""

from __future__ import annotations

import asyncio

from tests.brokers.redis_helpers import pub as _pub

from wskit.pubsub.broker import HistoryPolicy, Member
from wskit.pubsub.redis import RedisBroker
from wskit.testing.brokers import RecordingListener

__all__: list[str] = []


async def test_500_concurrent_publishes_all_succeed(redis_url: str, namespace: str) -> None:
    """500 publishes at once (more than the pool holds) wait for a connection instead of failing,
    and every one of them is delivered, in offset order on the history topic."""
    broker = RedisBroker(redis_url, namespace=namespace)
    listener = RecordingListener()
    await broker.start(listener)
    try:
        history = HistoryPolicy("h:*", max_len=1000, ttl_s=60)
        await broker.subscribe("plain")
        await broker.subscribe("h:room", history)
        plain = [broker.publish(_pub("plain", n)) for n in range(250)]
        kept = [broker.publish(_pub("h:room", n), history) for n in range(250)]
        results = await asyncio.gather(*plain, *kept, return_exceptions=True)
        assert [r for r in results if r is not None] == []
        await listener.wait_for("plain", 250, timeout=10)
        got = await listener.wait_for("h:room", 250, timeout=10)
        assert [p.offset for p in got] == list(range(1, 251))
    finally:
        await broker.close()


async def test_400_concurrent_presence_adds_all_succeed(redis_url: str, namespace: str) -> None:
    """400 joins at once with the default pool: all recorded, none refused."""
    broker = RedisBroker(redis_url, namespace=namespace)
    await broker.start(RecordingListener())
    try:
        results = await asyncio.gather(
            *(broker.presence_add("room", Member(f"c{i}")) for i in range(400)), return_exceptions=True
        )
        assert [r for r in results if r is not None] == []
        assert len(await broker.presence("room")) == 400
    finally:
        await broker.close()


async def test_the_pool_never_opens_more_than_max_connections(redis_url: str, namespace: str) -> None:
    """With max_connections=3, 200 concurrent publishes all succeed over at most 3 command connections."""
    broker = RedisBroker(redis_url, namespace=namespace, max_connections=3)
    listener = RecordingListener()
    await broker.start(listener)
    try:
        await broker.subscribe("plain")
        results = await asyncio.gather(*(broker.publish(_pub("plain", n)) for n in range(200)), return_exceptions=True)
        assert [r for r in results if r is not None] == []
        await listener.wait_for("plain", 200, timeout=10)
        clients = await broker._call("client list", lambda r: r.client_list())
        names = [c["name"] for c in clients if c["name"].startswith(f"wskit:{broker.instance_id}")]
        assert names.count(f"wskit:{broker.instance_id}") <= 3
        assert names.count(f"wskit:{broker.instance_id}:sub") == 1
    finally:
        await broker.close()
