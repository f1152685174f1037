"""The Redis broker when Redis dies, restarts, hangs or drops the subscriber link."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.brokers.redis_helpers import HISTORY, Pair, admin, ns, pub, start_broker, wait_state
from tests.conftest import TIME_SCALE
from tests.support.waiting import consistently, eventually

from wskit.errors import ErrorCode, WsKitError
from wskit.pubsub.broker import BrokerState, Member, RecoveryError
from wskit.pubsub.redis import RedisBroker
from wskit.testing.brokers import RecordingListener

__all__: list[str] = []


async def test_redis_restart_goes_down_fails_fast_and_recovers(
    redis_server: Callable[..., Any], namespace: str
) -> None:
    """Redis killed: DOWN, publish raises UNAVAILABLE at once (local subscribers still served); restarted: READY."""
    server = redis_server()
    a, listener_a = await start_broker(server.url, namespace)
    b, listener_b = await start_broker(server.url, namespace)
    try:
        await a.subscribe("room")
        await b.subscribe("room")
        await a.presence_add("room", Member("ca", "ua"))
        server.kill()
        await wait_state(a, BrokerState.DOWN)
        started = time.monotonic()
        with pytest.raises(WsKitError) as caught:
            await a.publish(pub("room", 1))
        assert time.monotonic() - started < a.publish_timeout_s + 2 * TIME_SCALE  # bounded, not hung
        assert caught.value.code is ErrorCode.UNAVAILABLE
        assert ns(listener_a.on("room")) == [1]  # delivered locally before the error, which says so
        assert caught.value.details == {"delivered": "local"}
        with pytest.raises(WsKitError) as refused:
            await a.publish(pub("h:x", 1), HISTORY)  # no offset without Redis: refused whole
        assert refused.value.details == {}
        assert listener_a.on("h:x") == []
        with pytest.raises(WsKitError) as to_user:
            await a.send_to_user("ua", b'{"type":"NOTE"}')
        assert to_user.value.details == {"delivered": "local"}
        assert listener_a.to_user == [("ua", b'{"type":"NOTE"}')]
        with pytest.raises(WsKitError):
            await a.presence("room")

        server.start()  # same port, empty (no persistence)
        await wait_state(a, BrokerState.READY)
        await wait_state(b, BrokerState.READY)
        assert a.reconnects == 1
        await a.publish(pub("room", 2))
        await listener_b.wait_for("room", 1)
        await listener_a.wait_for("room", 2)
        await consistently(lambda: len(listener_a.on("room")) == 2 and len(listener_b.on("room")) == 1)
        assert ns(listener_b.on("room")) == [2]
        assert ns(listener_a.on("room")) == [1, 2]
        # the presence entry lost with Redis's memory was written again on reconnect
        assert [m.client_id for m in await b.presence("room")] == ["ca"]
    finally:
        await a.close()
        await b.close()


async def test_history_continues_after_restart_with_persistence(
    redis_server: Callable[..., Any], namespace: str
) -> None:
    """With an append-only file, offsets and epoch survive a Redis crash; delivery resumes without gap."""
    server = redis_server(persistent=True)
    a, listener_a = await start_broker(server.url, namespace)
    b, _ = await start_broker(server.url, namespace)
    try:
        await a.subscribe("h:room", HISTORY)
        for n in range(1, 4):
            await b.publish(pub("h:room", n), HISTORY)
        await listener_a.wait_for("h:room", 3)
        server.kill()
        await wait_state(b, BrokerState.DOWN)
        server.start()
        await wait_state(a, BrokerState.READY)
        await wait_state(b, BrokerState.READY)
        for n in range(4, 6):
            await b.publish(pub("h:room", n), HISTORY)
        await listener_a.wait_for("h:room", 5)
        await consistently(lambda: len(listener_a.on("h:room")) == 5, what="no duplicate after the restart")
        got = listener_a.on("h:room")
        assert [p.offset for p in got] == [1, 2, 3, 4, 5]
        assert len({p.epoch for p in got}) == 1
        assert ns(got) == [1, 2, 3, 4, 5]
    finally:
        await a.close()
        await b.close()


async def _restore_older_snapshot(server: Any, a: RedisBroker, listener: RecordingListener, b: RedisBroker) -> str:
    """b publishes 1-3 (snapshot taken) and 4-6, all seen by a; Redis restarts from the snapshot.

    Returns the epoch of 1-6: after the restart Redis has it again, with its counter back at 3.
    """
    await a.subscribe("h:room", HISTORY)
    for n in range(1, 4):
        await b.publish(pub("h:room", n), HISTORY)
    await listener.wait_for("h:room", 3)
    assert server.command("SAVE") == "OK"
    for n in range(4, 7):
        await b.publish(pub("h:room", n), HISTORY)
    await listener.wait_for("h:room", 6)
    old_epoch = listener.on("h:room")[-1].epoch
    assert old_epoch is not None
    server.kill()
    await wait_state(a, BrokerState.DOWN)
    server.start()  # loads dump.rdb
    await wait_state(a, BrokerState.READY)
    await wait_state(b, BrokerState.READY)
    return old_epoch


async def test_history_restored_from_an_older_snapshot_starts_a_new_epoch(
    redis_server: Callable[..., Any], namespace: str
) -> None:
    """Redis restarts from an RDB snapshot older than what was delivered: offsets would repeat in
    the same epoch, so the broker moves the topic to a new epoch and nothing new is skipped."""
    server = redis_server()
    a, listener_a = await start_broker(server.url, namespace)
    b, _ = await start_broker(server.url, namespace)
    try:
        old_epoch = await _restore_older_snapshot(server, a, listener_a, b)
        for n in range(7, 11):
            await b.publish(pub("h:room", n), HISTORY)
        got = await listener_a.wait_for("h:room", 10)
        fresh = got[6:]
        assert ns(fresh) == [7, 8, 9, 10], "messages after the restore must not be taken for duplicates"
        assert {p.epoch for p in fresh} != {old_epoch}
        with pytest.raises(RecoveryError):
            await a.recover("h:room", 6, old_epoch, HISTORY)
    finally:
        await a.close()
        await b.close()


async def test_publication_of_the_old_epoch_during_reconnect_is_dropped(
    redis_server: Callable[..., Any], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis restored from an older snapshot; another instance publishes in the old epoch while this
    one reconnects, just before its catch-up moves the topic to a new epoch. That publication must not
    take the topic back to the old epoch: every delivery after the restore is in the new one."""
    server = redis_server()
    a, listener = await start_broker(server.url, namespace)
    b, _ = await start_broker(server.url, namespace)
    original = RedisBroker._reepoch

    async def reepoch_after_a_publish(self: RedisBroker, topic: str, tracked: tuple[str, int], last: int) -> str:
        # runs in a's link task after it subscribed again, before the new epoch is written
        if self is a:
            await wait_state(b, BrokerState.READY)
            await b.publish(pub(topic, 100), HISTORY)
        return await original(self, topic, tracked, last)

    monkeypatch.setattr(RedisBroker, "_reepoch", reepoch_after_a_publish)
    try:
        old_epoch = await _restore_older_snapshot(server, a, listener, b)
        for n in range(7, 9):
            await b.publish(pub("h:room", n), HISTORY)
        await listener.wait_for("h:room", 8)
        await consistently(lambda: len(listener.on("h:room")) == 8, what="nothing delivered twice")
        after = listener.on("h:room")[6:]
        assert ns(after) == [7, 8]
        assert old_epoch not in {p.epoch for p in after}
        assert len({p.epoch for p in after}) == 1
    finally:
        await a.close()
        await b.close()


async def test_missed_history_is_delivered_after_the_link_comes_back(pair: Pair) -> None:
    """Publications made while the subscriber link was down arrive after it reconnects: in order, once."""
    a, listener_a, b = pair.a, pair.listener, pair.b
    await a.subscribe("h:room", HISTORY)
    await a.subscribe("plain")
    for n in range(1, 4):
        await b.publish(pub("h:room", n), HISTORY)
    await listener_a.wait_for("h:room", 3)
    await pair.cut_link()
    for n in range(4, 9):
        await b.publish(pub("h:room", n), HISTORY)
    assert a.state is BrokerState.DOWN  # all five were published during the outage
    await wait_state(a, BrokerState.READY)
    await wait_state(b, BrokerState.READY)
    await listener_a.wait_for("h:room", 8)  # caught up on reconnect, before any live message
    for n in range(9, 11):
        await b.publish(pub("h:room", n), HISTORY)
    await listener_a.wait_for("h:room", 10)
    await consistently(lambda: len(listener_a.on("h:room")) == 10, what="nothing delivered twice")
    got = listener_a.on("h:room")
    assert [p.offset for p in got] == list(range(1, 11))
    assert ns(got) == list(range(1, 11))
    assert listener_a.losses == []


async def test_publish_gives_up_when_redis_hangs(redis_server: Callable[..., Any], namespace: str) -> None:
    """A Redis that stops answering (SIGSTOP) makes publish raise UNAVAILABLE after publish_timeout_s, not hang."""
    server = redis_server()
    a, _ = await start_broker(server.url, namespace, publish_timeout_s=0.5)
    assert server.process is not None
    pid = server.process.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(WsKitError) as caught:
            await a.publish(pub("room", 1))
        assert caught.value.code is ErrorCode.UNAVAILABLE
        # bounded by publish_timeout_s, not hung: the margin is for a loaded machine, not a target
        assert time.monotonic() - started < 0.5 + 2 * TIME_SCALE
    finally:
        os.kill(pid, signal.SIGCONT)
        await a.close()


async def test_one_subscriber_connection_and_channels_follow_local_members(
    redis_server: Callable[..., Any], namespace: str
) -> None:
    """All topics share one pub/sub connection; a topic's channel is dropped when its last member leaves."""
    server = redis_server()
    a, _ = await start_broker(server.url, namespace)
    try:
        topics = [f"room:{i}" for i in range(20)]
        for topic in topics:
            await a.subscribe(topic)
        clients = await admin(server.url, "CLIENT", "LIST", "TYPE", "pubsub")
        assert clients.count(f"name=wskit:{a.instance_id}:sub") == 1
        assert len(clients.strip().splitlines()) == 1
        channels = await admin(server.url, "PUBSUB", "CHANNELS", f"{namespace}:t:*")
        assert sorted(channels) == sorted(f"{namespace}:t:{t}" for t in topics)
        for topic in topics[:15]:
            await a.unsubscribe(topic)

        async def five_left() -> list[str] | None:
            found: list[str] = await admin(server.url, "PUBSUB", "CHANNELS", f"{namespace}:t:*")
            return found if len(found) == 5 else None

        channels = await eventually(five_left)
        assert sorted(channels) == sorted(f"{namespace}:t:{t}" for t in topics[15:])
        numsub = await admin(server.url, "PUBSUB", "NUMSUB", f"{namespace}:t:room:19", f"{namespace}:ctl")
        assert numsub == [f"{namespace}:t:room:19", 1, f"{namespace}:ctl", 1]
    finally:
        await a.close()
