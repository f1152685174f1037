"""The private aiohttp and asyncio attributes wskit relies on still exist and mean the same.

``wskit.transports.aiohttp_internals`` is the only module that touches them; each test here
checks one of them against the installed aiohttp and Python, so an upgrade that renames or
changes one fails here, by name, instead of degrading the server quietly.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import ssl
import struct
import subprocess
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.web_protocol import RequestHandler

from wskit.transports.aiohttp_internals import (
    MaskCheck,
    check_client_masks,
    drain_waiter,
    inbound_frames,
    pending_tail,
    tail_is_masked,
)
from wskit.transports.asyncio_internals import break_transport_cycle, socket_transport

Check = Callable[[web.Request], Awaitable[dict[str, Any]]]


@asynccontextmanager
async def _server(check: Check) -> AsyncIterator[tuple[int, asyncio.Future[dict[str, Any]]]]:
    """An aiohttp server whose one handler runs ``check(request)`` and reports what it saw."""
    seen: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            seen.set_result(await check(request))
        except Exception as exc:
            seen.set_exception(exc)
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        await runner.cleanup()


def _upgrade(port: int, extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode() + extra


def _frame(opcode: int, payload: bytes, *, masked: bool = True) -> bytes:
    if not masked:
        return bytes((0x80 | opcode, len(payload))) + payload
    mask = os.urandom(4)
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_drain_helper_is_the_protocols_wait_for_writing() -> None:
    """BaseProtocol._drain_helper() returns an awaitable that completes when the transport
    resumes writing after pausing it."""
    protocol = BaseProtocol(asyncio.get_running_loop())
    protocol.transport = asyncio.Transport()  # connected (never written to here)
    protocol.pause_writing()
    waiter = asyncio.ensure_future(drain_waiter(protocol))
    await asyncio.sleep(0)
    assert not waiter.done()
    protocol.resume_writing()
    async with asyncio.timeout(1):
        await waiter


async def test_response_reader_buffer_is_the_queue_of_parsed_frames() -> None:
    """WebSocketResponse._reader._buffer is a deque holding the frames parsed and not yet read;
    RequestHandler._message_tail holds bytes sent before the 101, RequestHandler._payload_parser
    is what data_received feeds, and the queue has set_exception."""

    async def check(request: web.Request) -> dict[str, Any]:
        protocol = request.protocol
        tail = pending_tail(protocol)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        assert ws._reader is not None
        frames = inbound_frames(ws)
        found = {"tail": tail, "frames": type(frames), "queued": len(frames)}
        found["parser"] = protocol._payload_parser
        found["set_exception"] = callable(getattr(ws._reader, "set_exception", None))
        check = check_client_masks(ws, protocol)
        found["installed"] = protocol._payload_parser is check
        await ws.close()
        return found

    ping = _frame(0x9, b"hi")
    async with _server(check) as (port, seen):
        reply = await _exchange(port, _upgrade(port, ping))
        found = await asyncio.wait_for(seen, 5)
    assert reply.startswith(b"HTTP/1.1 101")
    assert found["tail"] == ping  # sent with the request: aiohttp keeps it for the frame parser
    assert found["frames"] is deque
    assert found["queued"] == 1  # the ping from the tail, parsed at prepare()
    assert callable(getattr(found["parser"], "feed_data", None))
    assert callable(getattr(found["parser"], "feed_eof", None))
    assert found["set_exception"]
    assert found["installed"]
    assert "_message_tail" in RequestHandler.__slots__
    assert "_payload_parser" in RequestHandler.__slots__


def test_selector_transport_refers_to_itself_until_the_cycle_is_broken() -> None:
    """asyncio's _SelectorSocketTransport._read_ready_cb is a bound method of the transport;
    once the transport is closing, dropping it lets reference counting free the transport."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert type(loop).__module__.startswith("asyncio")
        left, right = socket.socketpair()
        transport, _protocol = await loop.connect_accepted_socket(asyncio.Protocol, left)
        callback = transport._read_ready_cb  # type: ignore[attr-defined]
        assert callback.__self__ is transport, "the self-reference wskit breaks is gone or moved"
        del callback
        assert socket_transport(transport) is transport  # no TLS: the transport owns the socket
        transport.close()
        await asyncio.sleep(0.01)  # connection_lost runs
        break_transport_cycle(transport)
        assert transport._read_ready_cb is None  # type: ignore[attr-defined]
        ref = weakref.ref(transport)
        del transport, _protocol
        assert ref() is None, "the transport still needs the cycle collector"
        right.close()

    import gc

    gc.disable()
    try:
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(main())
    finally:
        gc.enable()


class _Inner:
    """Stands in for aiohttp's frame parser: records what it is fed."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed.append(data)
        return False, b""

    def feed_eof(self) -> None:
        pass


class _Queue:
    """Stands in for aiohttp's frame queue: records the error it is given."""

    exc: BaseException | None = None

    def set_exception(self, exc: BaseException) -> None:
        self.exc = exc


def test_tls_transport_reaches_the_selector_transport_under_it(tmp_path: Path) -> None:
    """Under TLS (stock loop) a connection's transport is asyncio's _SSLProtocolTransport;
    its _ssl_protocol._transport is the selector transport that owns the socket (and the
    self-reference); once that one closes, the cycle is broken and refcounting frees it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.set_result(transport)

        server = await loop.create_server(Accept, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        client_tls = ssl.create_default_context(cafile=str(cert))
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
        transport = await asyncio.wait_for(accepted, 5)
        raw = socket_transport(transport)
        assert raw is not None and raw is not transport
        assert raw._read_ready_cb.__self__ is raw  # type: ignore[attr-defined]
        ref = weakref.ref(raw)
        writer.transport.abort()
        transport.close()
        break_transport_cycle(raw)  # not closed yet, or closed: broken now or at a later look
        del raw, transport
        accepted = loop.create_future()
        async with asyncio.timeout(5):
            while ref() is not None:  # noqa: ASYNC110 - bounded; nothing to wait on
                await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()

    import gc

    gc.disable()
    try:
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(main())
    finally:
        gc.enable()


def test_mask_check_finds_unmasked_headers_across_reads() -> None:
    """The header scan skips payloads by length, keeps state across reads, and points at the
    first unmasked frame."""
    masked = [_frame(0x1, b"x" * n) for n in (0, 5, 125)] + [
        bytes((0x81, 0xFE)) + struct.pack("!H", 300) + b"mask" + b"y" * 300,
        bytes((0x82, 0xFF)) + struct.pack("!Q", 70000) + b"mask" + b"z" * 70000,
    ]
    stream = b"".join(masked)
    assert tail_is_masked(stream)
    for step in (1, 2, 3, 7, 1000):
        inner, queue = _Inner(), _Queue()
        check = MaskCheck(inner, queue)
        bad = stream + _frame(0x1, b"unmasked", masked=False) + _frame(0x1, b"after")
        for start in range(0, len(bad), step):
            check.feed_data(bad[start : start + step])
        assert queue.exc is not None and getattr(queue.exc, "code", None) == 1002
        joined = b"".join(inner.fed)
        # every byte before the bad frame; of it, at most a first header byte (the mask bit is
        # in the second), which stays in the parser's buffer unparsed
        assert joined[: len(stream)] == stream
        assert len(joined) - len(stream) < 2
