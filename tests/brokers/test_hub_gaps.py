"""The hub never lets a connection skip offsets of a history topic without telling it."""

from __future__ import annotations

import json

from tests.brokers.sockets import RecordingSocket

from wskit.connection import Connection
from wskit.hub import Hub
from wskit.protocol import Position
from wskit.pubsub.broker import HistoryPolicy, Publication

__all__: list[str] = []

HISTORY = HistoryPolicy("h:*", max_len=10, ttl_s=60)
RECOVERY = {"reason": "recovery", "topic": "h:room"}


def _at(offset: int, epoch: str = "e1") -> Publication:
    return Publication("h:room", b'{"type":"MSG"', b',"payload":{"n":%d}}' % offset).with_position(offset, epoch)


async def _member(hub: Hub) -> tuple[Connection, RecordingSocket]:
    socket = RecordingSocket()
    conn = Connection("c1", socket)
    hub.add(conn)
    await hub.subscribe(conn, "h:room", HISTORY)
    conn.positions["h:room"] = Position(1, "e1")  # as ctx.subscribe leaves it after offset 1
    return conn, socket


def _summary(socket: RecordingSocket) -> list[object]:
    out: list[object] = []
    for msg in socket.messages():
        if msg["type"] == "ERROR":
            out.append((msg["payload"]["code"], msg["payload"]["details"]))
        else:
            out.append(msg["meta"]["offset"])
    return out


async def test_a_skipped_offset_is_announced_before_the_later_one() -> None:
    """Offsets 2 and 3 never reach the hub: the member gets FAILED_PRECONDITION {reason: recovery}
    before offset 4, then the stream goes on from 4."""
    hub = Hub()
    conn, socket = await _member(hub)
    for offset in (4, 5):
        hub.deliver(_at(offset))
    assert _summary(socket) == [("FAILED_PRECONDITION", RECOVERY), 4, 5]
    assert conn.positions["h:room"] == Position(5, "e1")


async def test_consecutive_offsets_and_duplicates_send_no_error() -> None:
    """In order: delivered; a repeated offset: dropped; no error either way."""
    hub = Hub()
    _, socket = await _member(hub)
    for offset in (2, 2, 3):
        hub.deliver(_at(offset))
    assert _summary(socket) == [2, 3]


async def test_a_new_epoch_is_not_a_gap() -> None:
    """Another epoch starts a new position (the epoch itself tells the client the history was reset)."""
    hub = Hub()
    _, socket = await _member(hub)
    hub.deliver(_at(7, "e2"))
    assert _summary(socket) == [7]


async def test_lost_tells_every_member_once_and_drops_positions() -> None:
    """Hub.lost(topic): each member with a position gets one recovery error and loses its position;
    what comes next is delivered from a new position without a second error."""
    hub = Hub()
    conn, socket = await _member(hub)
    hub.lost("h:room")
    hub.lost("h:room")
    assert "h:room" not in conn.positions
    hub.deliver(_at(9))
    assert _summary(socket) == [("FAILED_PRECONDITION", RECOVERY), 9]
    error = json.loads(socket.frames[0])
    assert error["meta"] == {}
    assert error["payload"]["retryable"] is False


async def test_lost_during_a_recovery_discards_what_it_buffered() -> None:
    """A member still recovering (its live publications buffered) is told at once, and the buffered
    ones, which come after the gap, are not spliced onto the recovered ones."""
    hub = Hub()
    conn, socket = await _member(hub)
    buffer = [_at(8)]
    conn.positions["h:room"] = buffer
    hub.deliver(_at(9))
    hub.lost("h:room")
    assert buffer == []
    assert _summary(socket) == [("FAILED_PRECONDITION", RECOVERY)]
