"""Concurrent first subscriptions to one topic: a timed-out one never silences the topic for the others."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

from tests.brokers.redis_helpers import pub
from tests.brokers.sockets import RecordingSocket
from tests.conftest import TIME_SCALE
from tests.support.waiting import eventually

from wskit.connection import Connection
from wskit.hub import Hub
from wskit.pubsub.redis import RedisBroker
from wskit.testing.brokers import RecordingListener

__all__: list[str] = []


async def test_a_timed_out_subscribe_does_not_silence_a_member_that_joined_meanwhile(
    redis_server: Callable[..., Any], namespace: str
) -> None:
    """Two connections subscribe to a new topic while Redis hangs; the first gives up
    (publish_timeout_s), Redis answers before the second's deadline. Whoever ends up a member
    receives what is published afterwards (before the fix: the second became a member of a topic
    the broker had dropped, and received nothing)."""
    server = redis_server()
    timeout = 1.0 * TIME_SCALE
    hub = Hub(RedisBroker(server.url, namespace=namespace, publish_timeout_s=timeout))
    await hub.start()
    assert server.process is not None
    pid = server.process.pid
    sockets = [RecordingSocket(), RecordingSocket()]
    conns = [Connection(f"c{i}", s) for i, s in enumerate(sockets)]
    for conn in conns:
        hub.add(conn)
    try:
        os.kill(pid, signal.SIGSTOP)
        try:
            first = asyncio.ensure_future(hub.subscribe(conns[0], "room"))
            await asyncio.sleep(timeout / 2)  # staggered: the second's deadline comes half a timeout later
            second = asyncio.ensure_future(hub.subscribe(conns[1], "room"))
            await eventually(first.done, timeout=10 * timeout)  # its deadline passed (not, likely, the second's)
        finally:
            os.kill(pid, signal.SIGCONT)
        results = await asyncio.gather(first, second, return_exceptions=True)
        joined = [conn for conn, result in zip(conns, results, strict=True) if result is True]
        assert set(hub.members.get("room", ())) == set(joined)
        # whatever happened, a third subscription now works, and every member is served
        third = Connection("c2", RecordingSocket())
        hub.add(third)
        assert await hub.subscribe(third, "room")
        await hub.publish(pub("room", 1))
        members = [*joined, third]
        await eventually(lambda: all(len(c.socket.frames) == 1 for c in members))  # type: ignore[attr-defined]
    finally:
        await hub.close()


async def test_concurrent_subscribes_share_one_outcome(redis_server: Callable[..., Any], namespace: str) -> None:
    """subscribe() called twice at once for a new topic while Redis hangs past the timeout: both
    calls fail together, and the topic is not half-subscribed afterwards."""
    server = redis_server()
    broker = RedisBroker(server.url, namespace=namespace, publish_timeout_s=0.5)
    listener = RecordingListener()
    await broker.start(listener)
    assert server.process is not None
    pid = server.process.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        try:
            first = asyncio.ensure_future(broker.subscribe("room"))
            await asyncio.sleep(0)  # the first is sent to (hung) Redis
            assert not first.done()
            second = asyncio.ensure_future(broker.subscribe("room"))  # while the first is in flight
            results = await asyncio.gather(first, second, return_exceptions=True)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert all(isinstance(r, Exception) for r in results), results
        await broker.subscribe("room")
        await broker.publish(pub("room", 1))
        await listener.wait_for("room", 1)
    finally:
        await broker.close()


async def test_a_history_subscribe_whose_position_cannot_be_read_leaves_no_subscription(
    redis_server: Callable[..., Any], namespace: str, monkeypatch: Any
) -> None:
    """Redis confirms the SUBSCRIBE but reading the topic's position fails: subscribe raises
    UNAVAILABLE and the topic is not left subscribed on the link (the hub records no member, so
    nothing would ever unsubscribe it)."""
    import pytest

    from wskit.errors import ErrorCode, WsKitError
    from wskit.pubsub.broker import HistoryPolicy

    server = redis_server()
    broker = RedisBroker(server.url, namespace=namespace)
    await broker.start(RecordingListener())
    try:

        async def fails(topic: str, history: HistoryPolicy) -> Any:
            raise WsKitError(ErrorCode.UNAVAILABLE, "position unreadable")

        monkeypatch.setattr(broker._history, "position", fails)  # fault injection
        with pytest.raises(WsKitError):
            await broker.subscribe("h:room", HistoryPolicy("h:*"))
        assert "h:room" not in broker._link.topics
    finally:
        await broker.close()
