"""The outbound queue at its bounds: which bound applies, and exactly which frames survive.

Each test stalls a fake socket on its first frame so that the frames after it go to the
connection's backlog, fills the backlog, then lets the socket drain and reads what reached
it, in order. Asserting the surviving frames (not only that "something was dropped") is
what tells ``drop-new`` from ``drop-oldest``.
"""

from __future__ import annotations

import asyncio

import pytest

from wskit.connection import STATS, Connection, OverflowPolicy, QueueLimits
from wskit.errors import CloseCode


class StallingSocket:
    """Takes every frame; the first one (and any after :meth:`stall`) makes the sender wait
    until :meth:`release`, as a transport with a full write buffer does."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self._stall_next = True
        self._pending: asyncio.Future[None] | None = None

    def send_frame(self, data: bytes) -> asyncio.Future[None] | None:
        if self.closed is not None:
            raise ConnectionError("closed")
        self.frames.append(data)
        if self._stall_next:
            self._stall_next = False
            self._pending = asyncio.get_running_loop().create_future()
            return self._pending
        return None

    def stall(self) -> None:
        self._stall_next = True

    def release(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(None)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.release()


async def _stalled(limits: QueueLimits) -> tuple[Connection, StallingSocket]:
    """A connection whose socket took frame ``A`` and now pushes back."""
    socket = StallingSocket()
    conn = Connection("c1", socket, limits=limits)
    assert conn.send_nowait(b"A")
    return conn, socket


async def _drained(conn: Connection, socket: StallingSocket) -> list[bytes]:
    socket.release()
    await conn.flush(timeout=5.0)
    assert conn.backlog == 0
    return socket.frames


# -- the byte bound ----------------------------------------------------------------------------


async def test_byte_bound_refuses_a_frame_before_the_message_bound() -> None:
    """max_bytes=10, max_messages=100: two 5-byte frames fill the backlog exactly; a third is
    refused (drop-new) although only 2 of 100 messages are queued."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-new"))
    assert conn.send_nowait(b"11111")
    assert conn.send_nowait(b"22222")
    assert not conn.send_nowait(b"33333")
    assert conn.backlog == 2 and conn.dropped == 1
    assert await _drained(conn, socket) == [b"A", b"11111", b"22222"]


async def test_byte_bound_is_inclusive() -> None:
    """A backlog may hold exactly ``max_bytes``: 4 + 6 bytes with max_bytes=10 are both queued."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-new"))
    assert conn.send_nowait(b"1111")
    assert conn.send_nowait(b"222222")
    assert conn.dropped == 0
    assert await _drained(conn, socket) == [b"A", b"1111", b"222222"]


async def test_byte_bound_closes_a_slow_consumer_with_the_close_policy() -> None:
    """Policy close: the frame that would exceed max_bytes closes the connection with 1013 and a
    reason saying why (the peer sees it in the close frame)."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10))
    assert conn.send_nowait(b"1234567890")
    assert not conn.send_nowait(b"x")
    assert conn.close_code == CloseCode.TRY_AGAIN_LATER
    await asyncio.wait_for(conn.flush(), 5.0)
    for _ in range(10):  # the close task runs on the next loop turns
        if socket.closed is not None:
            break
        await asyncio.sleep(0)
    assert socket.closed is not None and socket.closed[0] == CloseCode.TRY_AGAIN_LATER
    reason = socket.closed[1]
    assert isinstance(reason, str) and "slow consumer" in reason.lower()
    assert conn.close_reason == reason


async def test_drop_oldest_by_bytes_drops_just_enough_of_the_oldest() -> None:
    """max_bytes=10 holding 4+4 bytes; a 4-byte frame needs room for 2 more: only the oldest
    frame goes, the newer one stays."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-oldest"))
    for frame in (b"1111", b"2222", b"3333"):
        assert conn.send_nowait(frame)
    assert conn.dropped == 1
    assert await _drained(conn, socket) == [b"A", b"2222", b"3333"]


async def test_drained_frames_free_their_bytes() -> None:
    """While the backlog drains into a socket that stalls again, what already left no longer
    counts against max_bytes: 7 + 3 bytes queued, the 7 leave, a new 7-byte frame fits next to
    the 3 still queued."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-new"))
    assert conn.send_nowait(b"2222222")
    assert conn.send_nowait(b"111")
    socket.stall()  # the socket takes 2222222, then pushes back again
    socket.release()
    for _ in range(50):
        if socket.frames[-1] == b"2222222":
            break
        await asyncio.sleep(0)
    assert socket.frames[-1] == b"2222222" and conn.backlog == 1
    assert conn.send_nowait(b"4444444")  # 3 + 7 = 10 bytes: fits
    assert conn.dropped == 0
    assert await _drained(conn, socket) == [b"A", b"2222222", b"111", b"4444444"]


async def test_drop_oldest_keeps_the_byte_count_right_after_making_room() -> None:
    """max_bytes=10, drop-oldest: 4+4 queued; a third 4 drops the first (8 bytes queued again);
    then a 3-byte frame must drop one more (8 + 3 > 10): the socket gets A, the third, the fourth."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-oldest"))
    for frame in (b"1111", b"2222", b"3333", b"444"):
        assert conn.send_nowait(frame)
    assert conn.dropped == 2
    assert await _drained(conn, socket) == [b"A", b"3333", b"444"]


async def test_drop_oldest_refuses_a_frame_larger_than_max_bytes() -> None:
    """A frame that could never fit (11 bytes, max_bytes=10) under drop-oldest: refused (False),
    counted as dropped, never sent."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-oldest"))
    assert not conn.send_nowait(b"x" * 11)
    assert conn.dropped == 1
    assert await _drained(conn, socket) == [b"A"]


async def test_an_oversize_frame_under_drop_oldest_drops_only_itself() -> None:
    """Two frames queued, then one larger than max_bytes: it is dropped (it can never fit), and the
    two queued frames, which dropping could not make room for it, are still delivered."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-oldest"))
    assert conn.send_nowait(b"1111")
    assert conn.send_nowait(b"2222")
    assert not conn.send_nowait(b"x" * 11)
    assert conn.dropped == 1
    assert await _drained(conn, socket) == [b"A", b"1111", b"2222"]


# -- which frames survive ------------------------------------------------------------------------


async def test_drop_new_keeps_the_queued_frames_and_refuses_the_new_one() -> None:
    """max_messages=3, drop-new: B C D queued, E refused; the socket gets A B C D."""
    conn, socket = await _stalled(QueueLimits(max_messages=3, policy=OverflowPolicy.DROP_NEW))
    for frame in (b"B", b"C", b"D"):
        assert conn.send_nowait(frame)
    assert not conn.send_nowait(b"E")
    assert conn.dropped == 1
    assert await _drained(conn, socket) == [b"A", b"B", b"C", b"D"]


async def test_drop_oldest_drops_the_oldest_queued_frame_and_keeps_the_new_one() -> None:
    """max_messages=3, drop-oldest: B C D queued, E accepted in place of B; the socket gets A C D E."""
    conn, socket = await _stalled(QueueLimits(max_messages=3, policy=OverflowPolicy.DROP_OLDEST))
    for frame in (b"B", b"C", b"D"):
        assert conn.send_nowait(frame)
    assert conn.send_nowait(b"E")
    assert conn.dropped == 1
    assert await _drained(conn, socket) == [b"A", b"C", b"D", b"E"]


async def test_a_frame_policy_overrides_the_connection_policy() -> None:
    """A connection whose policy is close, given a frame with drop-new at the bound: that frame
    is dropped, the connection stays open, and the queued frames are kept."""
    conn, socket = await _stalled(QueueLimits(max_messages=2))
    assert conn.send_nowait(b"B")
    assert conn.send_nowait(b"C")
    assert not conn.send_nowait(b"D", OverflowPolicy.DROP_NEW)
    assert conn.close_code is None
    assert await _drained(conn, socket) == [b"A", b"B", b"C"]


async def test_drops_are_counted_per_connection_and_process_wide() -> None:
    """Three frames dropped with drop-new: ``dropped`` and ``STATS["dropped"]`` both grow by three."""
    before = STATS["dropped"]
    conn, socket = await _stalled(QueueLimits(max_messages=1, policy="drop-new"))
    assert conn.send_nowait(b"B")
    for frame in (b"C", b"D", b"E"):
        assert not conn.send_nowait(frame)
    assert conn.dropped == 3
    assert STATS["dropped"] - before == 3
    assert await _drained(conn, socket) == [b"A", b"B"]


@pytest.mark.parametrize("policy", ["drop-new", "drop-oldest"])
async def test_the_message_bound_is_inclusive(policy: str) -> None:
    """max_messages=2: two frames queue without any drop, whatever the drop policy."""
    conn, socket = await _stalled(QueueLimits(max_messages=2, policy=policy))
    assert conn.send_nowait(b"B")
    assert conn.send_nowait(b"C")
    assert conn.dropped == 0
    assert await _drained(conn, socket) == [b"A", b"B", b"C"]


async def test_drop_oldest_accepts_a_frame_of_exactly_max_bytes() -> None:
    """A frame of exactly max_bytes fits an empty queue: drop-oldest drops what is queued and
    keeps it."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-oldest"))
    assert conn.send_nowait(b"1111")
    assert conn.send_nowait(b"x" * 10)
    assert await _drained(conn, socket) == [b"A", b"x" * 10]


async def test_drop_oldest_at_the_message_bound_drops_no_more_than_one() -> None:
    """max_messages=2, max_bytes=10, 5 + 4 bytes queued; a 6-byte frame: dropping the oldest (5)
    leaves 4 + 6 = 10 bytes, which fits exactly, so the 4-byte frame stays."""
    conn, socket = await _stalled(QueueLimits(max_messages=2, max_bytes=10, policy="drop-oldest"))
    assert conn.send_nowait(b"11111")
    assert conn.send_nowait(b"2222")
    assert conn.send_nowait(b"333333")
    assert conn.dropped == 1
    assert await _drained(conn, socket) == [b"A", b"2222", b"333333"]


async def test_drop_oldest_counts_every_frame_it_drops_at_once() -> None:
    """3 + 3 + 3 bytes queued (max_bytes=10); a 7-byte frame needs two of them gone: dropped is 2."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-oldest"))
    for frame in (b"111", b"222", b"333"):
        assert conn.send_nowait(frame)
    assert conn.send_nowait(b"4444444")
    assert conn.dropped == 2
    assert await _drained(conn, socket) == [b"A", b"333", b"4444444"]


async def test_the_slow_consumer_close_adds_to_earlier_drops() -> None:
    """One frame dropped by its own drop-new policy, then the close policy closes: dropped is 2."""
    conn, socket = await _stalled(QueueLimits(max_messages=1))
    assert conn.send_nowait(b"B")
    assert not conn.send_nowait(b"C", OverflowPolicy.DROP_NEW)
    assert not conn.send_nowait(b"D")
    assert conn.dropped == 2
    assert conn.close_code == CloseCode.TRY_AGAIN_LATER
    socket.release()


async def test_after_the_queue_drains_the_next_stall_starts_afresh() -> None:
    """Once the backlog has drained, frames go straight to the socket again (flush returns at once),
    and when the socket pushes back a second time the bounds apply from zero: exactly max_bytes
    can be queued again."""
    conn, socket = await _stalled(QueueLimits(max_messages=100, max_bytes=10, policy="drop-new"))
    assert conn.send_nowait(b"12345")
    await _drained(conn, socket)
    await asyncio.wait_for(conn.flush(), 5)
    socket.stall()
    assert conn.send_nowait(b"B")  # taken by the socket, which pushes back again
    assert conn.backlog == 0
    assert conn.send_nowait(b"x" * 10)
    assert not conn.send_nowait(b"y")
    assert await _drained(conn, socket) == [b"A", b"12345", b"B", b"x" * 10]
