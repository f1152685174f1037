"""Publication's text form (what the Redis broker carries) keeps every per-publish option."""

from __future__ import annotations

import json

from tests.brokers.sockets import RecordingSocket
from tests.support.waiting import eventually

from wskit.connection import Connection, OverflowPolicy, QueueLimits
from wskit.hub import Hub
from wskit.pubsub.broker import Publication
from wskit.pubsub.redis import RedisBroker

__all__: list[str] = []


def _pub(topic: str, n: int) -> Publication:
    return Publication(topic, b'{"type":"MSG"', b',"payload":{"n":%d}}' % n, b'{"k":1}', "c9")


def test_round_trip_keeps_overflow() -> None:
    """to_dict -> JSON -> from_dict keeps the overflow policy (as its string value) and everything else."""
    pub = _pub("t", 1).with_position(3, "ep")
    pub.overflow = OverflowPolicy.DROP_OLDEST
    back = Publication.from_dict(json.loads(json.dumps(pub.to_dict())))
    assert back.overflow == "drop-oldest"
    assert OverflowPolicy(back.overflow) is OverflowPolicy.DROP_OLDEST
    assert (back.topic, back.exclude, back.offset, back.epoch) == ("t", "c9", 3, "ep")
    assert back.frame() == pub.frame()


def test_round_trip_without_overflow_leaves_it_unset() -> None:
    """A publication without its own policy has no ``v`` key and comes back with None."""
    d = _pub("t", 1).to_dict()
    assert "v" not in d
    assert Publication.from_dict(d).overflow is None


async def test_overflow_survives_the_redis_echo_to_local_subscribers(redis_url: str, namespace: str) -> None:
    """A publish with overflow="drop-oldest" through Redis reaches even this process's slow subscriber
    with that policy: it drops old frames instead of being closed by the connection's default (close)."""
    hub = Hub(RedisBroker(redis_url, namespace=namespace))
    await hub.start()
    try:
        socket = RecordingSocket()
        conn = Connection("c1", socket, limits=QueueLimits(max_messages=2))
        hub.add(conn)
        await hub.subscribe(conn, "ticker")
        socket.stall()
        for n in range(5):
            pub = _pub("ticker", n)
            pub.overflow = OverflowPolicy.DROP_OLDEST
            await hub.publish(pub)
        # frame 0 went to the stalled socket, 1 and 2 to the backlog; 3 and 4 push out 1 and 2
        await eventually(lambda: conn.dropped >= 2 or conn.close_code is not None)
        assert conn.close_code is None
        assert conn.dropped == 2
    finally:
        await hub.close()
