"""When serve()'s hosts write: frames that arrived together are answered in one write,
and a reply is on the wire before the reading task waits (not held until the handler ends).

The server side's writes are counted by wrapping what the connection's socket writes to
(aiohttp's asyncio transport; picows's WSTransport, whose ``send`` writes one frame, and the
TCP transport under it); the client is a raw TCP socket so that twenty frames really arrive
in one segment.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest
from pydantic import BaseModel
from tests.support.waiting import PATIENCE_S

from wskit import Context, Router, Server, message
from wskit.transports.picows_socket import PicowsSocket

WAIT = PATIENCE_S  # only stops a hung test


class N(BaseModel):
    n: int


Ping = message("PING", N)
Pong = message("PONG", N)
Twice = message("TWICE", N)


class CountingTransport:
    """Passes everything to the real transport, counting ``write`` calls."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.real.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class CountingWs:
    """picows's WSTransport, counting ``send`` and the writes to the transport under it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.counting = CountingTransport(real.underlying_transport)
        self.writes = self.counting.writes

    def send(self, kind: Any, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.real.send(kind, data)

    @property
    def underlying_transport(self) -> CountingTransport:
        return self.counting

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture(params=["aiohttp", "picows"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _frame(obj: Any) -> bytes:
    """A masked client text frame (mask key 0: payload bytes unchanged, as RFC 6455 allows)."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    assert len(data) < 126
    return bytes((0x81, 0x80 | len(data))) + b"\x00\x00\x00\x00" + data


def _texts(buffer: bytes) -> list[bytes]:
    """Payloads of the unmasked small text frames in ``buffer``."""
    out, i = [], 0
    while i + 2 <= len(buffer):
        size = buffer[i + 1] & 0x7F
        assert size < 126 and buffer[i] == 0x81
        if i + 2 + size > len(buffer):
            break
        out.append(buffer[i + 2 : i + 2 + size])
        i += 2 + size
    return out


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def _read_frames(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    buffer = b""
    async with asyncio.timeout(WAIT):
        while len(_texts(buffer)) < count:
            buffer += await reader.read(65536)
    return _texts(buffer)


def build(release: asyncio.Event | None = None) -> Router[Any]:
    """PING answers PONG; TWICE sends PONG 1, waits for ``release`` (set by the test), sends PONG 2."""
    router: Router[Any] = Router()

    @router.on(Ping)
    async def ping(ctx: Context[N]) -> None:
        await ctx.send(Pong, ctx.payload)

    @router.on(Twice)
    async def twice(ctx: Context[N]) -> None:
        await ctx.send(Pong, {"n": 1})
        assert release is not None
        await release.wait()
        await ctx.send(Pong, {"n": 2})

    return router


async def _counted(router: Router[Any], before: set[str]) -> CountingTransport | CountingWs:
    """Wrap the transport of the one connection that is not in ``before``."""
    opened = asyncio.Event()
    router.on_open(lambda ctx: opened.set())
    if not set(router.hub.connections) - before:
        async with asyncio.timeout(WAIT):
            await opened.wait()
    (client_id,) = set(router.hub.connections) - before
    sock: Any = router.hub.connections[client_id].socket
    if isinstance(sock, PicowsSocket):
        sock.ws = CountingWs(sock.ws)
        return sock.ws  # type: ignore[no-any-return]
    counting = CountingTransport(sock.transport)
    sock.transport = counting
    return counting


async def test_frames_that_arrive_together_are_answered_in_one_write(transport: str) -> None:
    """Twenty PINGs in one TCP segment: twenty PONGs, in order, in a single write."""
    router = build()
    async with Server(router, port=0, env={}, transport=transport) as server:
        reader, writer = await _open(server.port)
        counting = await _counted(router, set())
        writer.write(b"".join(_frame({"type": "PING", "payload": {"n": i}}) for i in range(20)))
        frames = await _read_frames(reader, 20)
        assert [json.loads(f)["payload"]["n"] for f in frames] == list(range(20))
        assert len(counting.writes) == 1
        writer.close()


async def test_a_reply_leaves_before_the_handler_waits(transport: str) -> None:
    """A handler that sends, then waits for the test: its first frame arrives while it waits
    (held until the handler ends, it would never come, and the bounded read would fail)."""
    release = asyncio.Event()
    router = build(release)
    async with Server(router, port=0, env={}, transport=transport) as server:
        reader, writer = await _open(server.port)
        await _counted(router, set())
        writer.write(_frame({"type": "TWICE", "payload": {"n": 0}}))
        (first,) = await _read_frames(reader, 1)
        assert json.loads(first)["payload"] == {"n": 1}
        assert not release.is_set()
        release.set()
        (second,) = await _read_frames(reader, 1)
        assert json.loads(second)["payload"] == {"n": 2}
        writer.close()


async def test_lone_requests_are_each_answered_by_their_own_write(transport: str) -> None:
    """Frames sent one at a time (waiting for each answer) are answered one write each."""
    router = build()
    async with Server(router, port=0, env={}, transport=transport) as server:
        reader, writer = await _open(server.port)
        counting = await _counted(router, set())
        for i in range(5):
            writer.write(_frame({"type": "PING", "payload": {"n": i}}))
            (frame,) = await _read_frames(reader, 1)
            assert json.loads(frame)["payload"] == {"n": i}
        assert len(counting.writes) == 5
        writer.close()


async def test_answers_to_frames_that_came_with_the_close_go_before_it(transport: str) -> None:
    """PING and a close frame in one segment: the PONG arrives, then the close."""
    router = build()
    async with Server(router, port=0, env={}, transport=transport) as server:
        reader, writer = await _open(server.port)
        await _counted(router, set())
        close = b"\x88\x82\x00\x00\x00\x00\x03\xe8"  # masked close 1000
        writer.write(_frame({"type": "PING", "payload": {"n": 7}}) + close)
        buffer = b""
        async with asyncio.timeout(WAIT):
            while b"\x88" not in buffer[-4:]:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buffer += chunk
        assert buffer[0] == 0x81, buffer[:40]  # the PONG first ...
        size = buffer[1]
        assert json.loads(buffer[2 : 2 + size])["payload"] == {"n": 7}
        assert buffer[2 + size] == 0x88  # ... then the close
        writer.close()
