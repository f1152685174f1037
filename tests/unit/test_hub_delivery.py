"""Hub fan-out details the protocol tests do not see: a publication's own overflow policy
(also when it crossed a broker as text), the delivery count, ``exclude``, and ``lost``
reaching every member with a position."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from wskit.connection import Connection, OverflowPolicy, QueueLimits
from wskit.errors import CloseCode
from wskit.hub import Hub
from wskit.protocol import Position
from wskit.pubsub.broker import HistoryPolicy, Publication

HISTORY = HistoryPolicy("h:*", max_len=10, ttl_s=60)


class Socket:
    """Keeps frames; with ``stalled`` the first frame makes the sender wait (forever)."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self._stalled = stalled
        self._pending: asyncio.Future[None] | None = None

    def send_frame(self, data: bytes) -> asyncio.Future[None] | None:
        self.frames.append(data)
        if self._stalled and self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
            return self._pending
        return None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(None)


def _pub(n: int, topic: str = "room", **kw: Any) -> Publication:
    return Publication(topic, b'{"type":"MSG"', b',"payload":{"n":%d}}' % n, **kw)


async def _members(hub: Hub, count: int, topic: str = "room", **conn_kw: Any) -> list[Connection]:
    conns = []
    for i in range(count):
        conn = Connection(f"c{i}", Socket(), **conn_kw)
        hub.add(conn)
        await hub.subscribe(conn, topic, HISTORY if topic.startswith("h:") else None)
        conns.append(conn)
    return conns


async def _full_member(
    hub: Hub, policy: OverflowPolicy = OverflowPolicy.CLOSE, *, topic: str = "room"
) -> tuple[Connection, Socket]:
    """A member of ``topic`` (policy close unless told) whose one-frame backlog is full."""
    socket = Socket(stalled=True)
    conn = Connection("slow", socket, limits=QueueLimits(max_messages=1, policy=policy))
    hub.add(conn)
    await hub.subscribe(conn, topic, HISTORY if topic.startswith("h:") else None)
    assert conn.send_nowait(b"first")  # taken by the socket, which now pushes back
    assert conn.send_nowait(b"queued")  # fills the backlog
    return conn, socket


@pytest.mark.parametrize("topic", ["room", "h:room"], ids=["plain", "history"])
@pytest.mark.parametrize("overflow", [OverflowPolicy.DROP_NEW, "drop-new"], ids=["enum", "text-from-a-broker"])
async def test_a_publication_overflow_policy_applies_to_a_full_member(overflow: Any, topic: str) -> None:
    """A publication marked drop-new, to a member whose queue is full and whose own policy is
    close: the frame is dropped and the member stays connected (also when the policy arrived
    as text, as it does through Redis; also on a history topic)."""
    hub = Hub()
    conn, _ = await _full_member(hub, topic=topic)
    pub = _pub(1, topic)
    if topic.startswith("h:"):
        pub = pub.with_position(1, "e1")
    pub.overflow = overflow
    hub.deliver(pub)
    assert conn.close_code is None
    assert conn.dropped == 1
    assert hub.delivered == 0


async def test_without_a_publication_policy_the_member_policy_applies() -> None:
    """No overflow on the publication: the full member's own policy (close, 1013) applies."""
    hub = Hub()
    conn, _ = await _full_member(hub)
    hub.deliver(_pub(1))
    assert conn.close_code == CloseCode.TRY_AGAIN_LATER


async def test_an_unknown_publication_policy_leaves_the_member_policy() -> None:
    """A policy this version does not know (a newer peer's): the member's own policy applies."""
    hub = Hub()
    conn, _ = await _full_member(hub)
    pub = _pub(1)
    pub.overflow = "drop-sideways"
    hub.deliver(pub)
    assert conn.close_code == CloseCode.TRY_AGAIN_LATER


@pytest.mark.parametrize("topic", ["room", "h:room"], ids=["plain", "history"])
async def test_delivered_counts_frames_written_not_members(topic: str) -> None:
    """Three members, the publisher excluded: each publication counts 2; the count adds up."""
    hub = Hub()
    conns = await _members(hub, 3, topic)
    for n in (1, 2):
        pub = _pub(n, topic, exclude="c0")
        hub.deliver(pub.with_position(n, "e1") if topic.startswith("h:") else pub)
    assert hub.delivered == 4
    received = [len(c.socket.frames) for c in conns]  # type: ignore[attr-defined]
    assert received == [0, 2, 2]


async def test_a_dropped_frame_is_not_counted_as_delivered() -> None:
    """One healthy member and one full drop-new member: a publication counts 1."""
    hub = Hub()
    await _members(hub, 1)
    await _full_member(hub, OverflowPolicy.DROP_NEW)
    hub.deliver(_pub(1))
    assert hub.delivered == 1


async def test_lost_tells_every_member_with_a_position() -> None:
    """Ten members of a history topic, five with a position: each of those five gets exactly one
    recovery error and loses its position, whatever the order the hub walks its members in; the
    five without one get nothing."""
    hub = Hub()
    conns = await _members(hub, 10, "h:room")
    for conn in conns[::2]:
        conn.positions["h:room"] = Position(3, "e1")
    hub.lost("h:room")
    for i, conn in enumerate(conns):
        frames = [json.loads(f) for f in conn.socket.frames]  # type: ignore[attr-defined]
        if i % 2 == 0:
            assert [f["payload"]["details"]["reason"] for f in frames] == ["recovery"]
            assert "h:room" not in conn.positions
        else:
            assert frames == []
