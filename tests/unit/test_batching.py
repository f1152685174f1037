"""Batched frame writes (transports/batching.py), as the picows socket uses them.

The socket is given a stand-in for picows's ``WSTransport`` that records what reaches the
wire: whole frames through ``underlying_transport.write``, a lone frame through ``send``,
and the close. The same batching runs under the aiohttp host (tests/protocol/
test_write_batching.py counts its writes over real sockets).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from picows import WSMsgType

from wskit.transports.batching import FLUSH_BYTES, Flusher, FrameBatch, framed, text_frame_header
from wskit.transports.picows_socket import PicowsSocket


class Underlying:
    def __init__(self, wire: list[tuple[str, Any]]) -> None:
        self.wire = wire

    def write(self, data: bytes) -> None:
        self.wire.append(("write", bytes(data)))


class FakeWs:
    """What PicowsSocket reads and calls on picows's WSTransport."""

    def __init__(self) -> None:
        self.wire: list[tuple[str, Any]] = []
        self.underlying_transport = Underlying(self.wire)
        self.is_close_frame_sent = False
        self.is_disconnected = False

    def send(self, kind: WSMsgType, data: bytes) -> None:
        self.wire.append(("send", bytes(data)))

    def send_close(self, code: Any, reason: bytes) -> None:
        self.is_close_frame_sent = True
        self.wire.append(("close", int(code)))

    async def wait_disconnected(self) -> None:
        self.is_disconnected = True


def _socket() -> tuple[PicowsSocket, FakeWs]:
    sock = PicowsSocket(Flusher())
    ws = FakeWs()
    sock.ws = ws  # type: ignore[assignment]
    return sock, ws


def test_headers_follow_rfc6455_length_forms() -> None:
    assert text_frame_header(5) == b"\x81\x05"
    assert text_frame_header(125) == b"\x81\x7d"
    assert text_frame_header(126) == b"\x81\x7e\x00\x7e"
    assert text_frame_header(65535) == b"\x81\x7e\xff\xff"
    assert text_frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")
    assert framed([b"a", b"bc"]) == b"\x81\x01a\x81\x02bc"


async def test_frames_sent_while_reading_leave_in_one_write_when_the_reader_settles() -> None:
    sock, ws = _socket()
    for n in range(3):
        sock.batch.reading = True
        sock.send_frame(b"%d" % n)
        sock.settle(n == 2)  # only the last frame of the read is "now"
        if n < 2:
            assert ws.wire == [], "written before the read's last frame"
    assert ws.wire == [("write", framed([b"0", b"1", b"2"]))]


async def test_a_lone_answer_goes_out_through_picows_send_at_once() -> None:
    sock, ws = _socket()
    sock.batch.reading = True
    sock.send_frame(b"only")
    sock.settle(True)
    assert ws.wire == [("send", b"only")]


async def test_frames_sent_outside_a_read_leave_at_the_end_of_the_tick() -> None:
    sock, ws = _socket()
    sock.send_frame(b"x")
    sock.send_frame(b"y")
    assert ws.wire == []
    await asyncio.sleep(0)
    assert ws.wire == [("write", framed([b"x", b"y"]))]


async def test_a_frame_left_by_an_unsettled_read_is_flushed_at_the_end_of_the_tick() -> None:
    sock, ws = _socket()
    sock.batch.reading = True
    sock.send_frame(b"a")
    sock.settle(False)  # more frames were buffered, but none came: the tick's flush writes it
    await asyncio.sleep(0)
    assert ws.wire == [("send", b"a")]


async def test_a_large_batch_is_written_before_the_tick_ends() -> None:
    sock, ws = _socket()
    big = b"z" * (FLUSH_BYTES // 2 + 1)
    sock.send_frame(big)
    assert ws.wire == []
    sock.send_frame(big)
    assert ws.wire == [("write", framed([big, big]))]


async def test_close_writes_what_was_sent_before_it() -> None:
    sock, ws = _socket()
    sock.send_frame(b"last words")
    await sock.close(1000, "bye")
    assert ws.wire == [("send", b"last words"), ("close", 1000)]
    with pytest.raises(ConnectionResetError):
        sock.send_frame(b"after")


async def test_a_batch_keeps_no_reference_to_its_socket() -> None:
    """socket -> batch -> socket would be a cycle per connection (garbage for the collector)."""
    sock, _ = _socket()
    sock.batch.reading = True
    sock.send_frame(b"x")
    sock.settle(False)
    held = [getattr(sock.batch, name, None) for name in FrameBatch.__slots__]
    assert all(value is not sock for value in held)
    assert all(sock not in value for value in held if isinstance(value, list))
    await asyncio.sleep(0)  # the flusher lets go of it once the tick's flush ran
    assert sock.batch._flusher._dirty == []
