"""A connection's way out, beyond the queue bounds: a socket that fails, closing (once, after
the queue is flushed), flush's timeout, the slow-consumer close's counters, the rate-limited
drop log, and the limits' own validation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from wskit.connection import STATS, Connection, OverflowPolicy, QueueLimits
from wskit.errors import CloseCode
from wskit.transports.base import HandshakeRequest


class Socket:
    """Records frames and closes; ``stall()`` makes the next frame wait for ``release()``;
    ``fail_after`` makes the socket raise ConnectionError once it has taken that many frames."""

    def __init__(self, *, fail_after: int | None = None) -> None:
        self.frames: list[bytes] = []
        self.closes: list[tuple[int, str]] = []
        self.fail_after = fail_after
        self._stall_next = False
        self._pending: asyncio.Future[None] | None = None

    def send_frame(self, data: bytes) -> asyncio.Future[None] | None:
        if self.fail_after is not None and len(self.frames) >= self.fail_after:
            raise ConnectionError("peer gone")
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
        self.closes.append((code, reason))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- a socket that fails -----------------------------------------------------------------------


async def test_a_failed_write_ends_sending_for_good() -> None:
    """The socket raises ConnectionError: that frame is refused, and so is every later one,
    without touching the socket again."""
    socket = Socket(fail_after=1)
    conn = Connection("c", socket)
    assert conn.send_nowait(b"A")
    assert not conn.send_nowait(b"B")
    socket.fail_after = None  # a later write would succeed: it must not be tried
    assert not conn.send_nowait(b"C")
    assert socket.frames == [b"A"]


async def test_a_write_failing_while_draining_ends_sending_for_good() -> None:
    """The socket fails while the backlog drains: later frames are refused, not queued."""
    socket = Socket()
    socket.stall()
    conn = Connection("c", socket)
    assert conn.send_nowait(b"A")
    assert conn.send_nowait(b"B")
    socket.fail_after = 1
    socket.release()
    await conn.flush(timeout=5)
    socket.fail_after = None  # a later write would succeed: it must not be tried
    assert not conn.send_nowait(b"C")
    assert socket.frames == [b"A"]


async def test_close_after_a_failed_write_still_closes_the_socket() -> None:
    """A write failed (the peer went away): close() still closes the socket, with its code."""
    socket = Socket(fail_after=0)
    conn = Connection("c", socket)
    assert not conn.send_nowait(b"A")
    await conn.close(CloseCode.GOING_AWAY, "gone")
    assert socket.closes == [(CloseCode.GOING_AWAY, "gone")]
    assert conn.close_code == CloseCode.GOING_AWAY


# -- closing -----------------------------------------------------------------------------------


async def test_close_flushes_the_queue_then_closes_once_with_the_first_code() -> None:
    """close(4001) on a stalled socket waits for the queued frames, then closes with 4001; a second
    close(4002) changes nothing; nothing is sent after."""
    socket = Socket()
    socket.stall()
    conn = Connection("c", socket)
    assert conn.send_nowait(b"A")
    assert conn.send_nowait(b"B")
    closing = asyncio.ensure_future(conn.close(4001, "bye"))
    await _settle()
    assert socket.closes == []  # still waiting for B to go out
    socket.release()
    await asyncio.wait_for(closing, 5)
    await conn.close(4002, "again")
    assert socket.frames == [b"A", b"B"]
    assert socket.closes == [(4001, "bye")]
    assert (conn.close_code, conn.close_reason) == (4001, "bye")
    assert not conn.send_nowait(b"C")


async def test_close_defaults_to_a_normal_close() -> None:
    """close() without a code closes with 1000 and no reason."""
    socket = Socket()
    conn = Connection("c", socket)
    await conn.close()
    assert socket.closes == [(CloseCode.NORMAL, "")]
    assert conn.close_code == CloseCode.NORMAL


async def test_close_after_close_soon_keeps_the_first_code_and_closes_once() -> None:
    """close_soon(1013) from a timer, then close(1000): the socket sees one close, with 1013."""
    socket = Socket()
    conn = Connection("c", socket)
    conn.close_soon(CloseCode.TRY_AGAIN_LATER, "slow")
    assert not conn.send_nowait(b"x")
    await conn.close()
    await _settle()
    assert socket.closes == [(CloseCode.TRY_AGAIN_LATER, "slow")]
    assert conn.close_code == CloseCode.TRY_AGAIN_LATER


async def test_flush_gives_up_after_its_timeout() -> None:
    """A socket that never drains: flush(timeout) returns (the backlog still there)."""
    socket = Socket()
    socket.stall()
    conn = Connection("c", socket)
    assert conn.send_nowait(b"A")
    assert conn.send_nowait(b"B")
    await asyncio.wait_for(conn.flush(timeout=0.01), 5)
    assert conn.backlog == 1
    socket.release()
    await conn.flush()


async def test_a_slow_consumer_close_is_counted() -> None:
    """Closing a slow consumer (policy close) counts one dropped frame on the connection and one
    ``closed_slow`` process-wide."""
    before = STATS["closed_slow"]
    socket = Socket()
    socket.stall()
    conn = Connection("c", socket, limits=QueueLimits(max_messages=1))
    assert conn.send_nowait(b"A")
    assert conn.send_nowait(b"B")
    assert not conn.send_nowait(b"C")
    assert conn.dropped == 1
    assert STATS["closed_slow"] - before == 1
    socket.release()
    await conn.flush()


async def test_drops_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A hundred drops in a row: one warning line (a flood of drops is not a flood of logs)."""
    socket = Socket()
    socket.stall()
    conn = Connection("c", socket, limits=QueueLimits(max_messages=1, policy="drop-new"))
    assert conn.send_nowait(b"A")
    assert conn.send_nowait(b"B")
    with caplog.at_level(logging.WARNING, logger="wskit.connection"):
        for _ in range(100):
            conn.send_nowait(b"x")
    assert conn.dropped == 100
    assert len([r for r in caplog.records if "dropping" in r.getMessage()]) == 1
    socket.release()
    await conn.flush()


# -- limits and initial state --------------------------------------------------------------------


def test_queue_limits_accept_one_and_refuse_zero() -> None:
    """Bounds of 1 are valid; 0 messages or 0 bytes raise ValueError."""
    assert QueueLimits(max_messages=1, max_bytes=1).max_bytes == 1
    with pytest.raises(ValueError):
        QueueLimits(max_bytes=0)
    with pytest.raises(ValueError):
        QueueLimits(max_messages=0)


def test_queue_limits_policy_text_becomes_the_enum_member() -> None:
    """``policy="drop-oldest"`` is stored as the member itself (the send path compares by
    identity); an unknown policy raises ValueError."""
    assert QueueLimits(policy="drop-oldest").policy is OverflowPolicy.DROP_OLDEST  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QueueLimits(policy="drop-sideways")  # type: ignore[arg-type]


def test_a_new_connection_state() -> None:
    """A new connection keeps its client's address (not the whole request: its memory) and its
    data (a copy), and starts open, empty and idle."""
    request = HandshakeRequest(path="/ws", headers={"Cookie": "a=b"}, client_ip="10.1.2.3")
    data = {"user_id": "u1"}
    conn = Connection("c", Socket(), data=data, request=request)
    data["user_id"] = "changed"
    assert conn.client_ip == "10.1.2.3"
    assert not hasattr(conn, "request")
    assert conn.user_id == "u1"
    assert (conn.closed, conn.close_code, conn.close_reason) == (False, None, "")
    assert (conn.backlog, conn.dropped, conn.positions, conn.rpcs) == (0, 0, {}, {})
    assert (conn.reader_waiting, conn.spawn_reader, conn.watchdog) == (False, None, None)
    assert conn.limits == QueueLimits()
