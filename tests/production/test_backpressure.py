"""A client that stops reading cannot make the server's memory grow or slow the others."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from typing import Any

import pytest
from tests.production.conftest import Heard, request, ws_client

from wskit import Server

PAYLOAD = {"text": "x" * 1000}
FLOOD = 20_000  # ~20 MB: far more than the socket buffers between us and the stalled reader


async def _stalled_client(port: int) -> socket.socket:
    """A raw client that completes the upgrade, subscribes, and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert b" 101 " in head
    body = b'{"type":"SAY","payload":{"text":"join"}}'
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    await loop.sock_sendall(sock, bytes([0x81, 0x80 | len(body)]) + mask + masked)
    return sock


async def _flood(server: Server) -> float:
    """Publish FLOOD messages to "all"; the publisher never waits on a socket."""
    started = time.perf_counter()
    for i in range(FLOOD):
        await server.router.publish("all", Heard, PAYLOAD)
        if i % 50 == 0:
            await asyncio.sleep(0)  # the reading client lives in this loop too: let it read
    return time.perf_counter() - started


@pytest.mark.timeout(90)
async def test_slow_consumer_is_closed_1013_and_memory_stays_bounded(make_server: Any) -> None:
    """Policy close: the stalled reader's queue never passes its bound; it is closed with 1013,
    while a reading client gets every message and keeps answering quickly."""
    closed: list[int | None] = []
    server: Server = await make_server(send_queue_messages=200, send_queue_bytes=256 * 1024)

    @server.router.on_close
    async def record(ctx: Any) -> None:
        closed.append(ctx.close_code)

    stalled = await _stalled_client(server.port)
    async with ws_client(server.url, max_size=2**20) as fast:
        await fast.send('{"type":"SAY","payload":{"text":"join"}}')
        await asyncio.sleep(0.2)
        assert server.transport is not None
        conns = list(server.transport.connections.values())
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, *(c._backlog_bytes for c in conns))
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(watch())
        received = 0

        async def read_all() -> None:
            nonlocal received
            while received < FLOOD + 1:  # + its own "join" message
                await fast.recv()
                received += 1

        reader = asyncio.ensure_future(read_all())
        await _flood(server)
        async with asyncio.timeout(30):
            await reader
        watcher.cancel()
        assert peak <= 256 * 1024 + 2048, f"a send queue grew past its bound: {peak}"
        started = time.perf_counter()
        assert (await request(fast, "ECHO", {"text": "ping"}))["type"] == "ECHO_OK"
        assert time.perf_counter() - started < 1.0
    async with asyncio.timeout(5):
        while 1013 not in closed:  # noqa: ASYNC110 - the hook appends from another task
            await asyncio.sleep(0.05)
    stalled.close()


@pytest.mark.timeout(90)
async def test_drop_oldest_keeps_the_slow_client_and_counts_drops(make_server: Any) -> None:
    """Policy drop-oldest: the stalled client stays connected, its queue stays bounded and
    every dropped frame is counted."""
    server: Server = await make_server(send_queue_messages=100, send_queue_bytes=10**7, backpressure="drop-oldest")
    stalled = await _stalled_client(server.port)
    await asyncio.sleep(0.2)
    assert server.transport is not None
    (conn,) = list(server.transport.connections.values())
    await _flood(server)
    assert conn.close_code is None
    assert conn.backlog <= 100
    assert conn.dropped > 0
    stalled.close()


async def test_per_publish_policy_overrides_the_connection_default(make_server: Any) -> None:
    """router.publish(..., overflow="drop-new") keeps a slow client connected under policy close."""
    server: Server = await make_server(send_queue_messages=50, send_queue_bytes=10**7)
    stalled = await _stalled_client(server.port)
    await asyncio.sleep(0.2)
    assert server.transport is not None
    (conn,) = list(server.transport.connections.values())
    for i in range(FLOOD):
        await server.router.publish("all", Heard, PAYLOAD, overflow="drop-new")
        if i % 50 == 0:
            await asyncio.sleep(0)
    assert conn.close_code is None
    assert conn.dropped > 0
    stalled.close()
