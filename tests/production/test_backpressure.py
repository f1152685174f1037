"""A client that stops reading cannot make the server's queues grow or keep the others waiting.

Behaviour only: what is delivered, dropped or closed, and that the others are answered. How
fast and how much memory is measured by ``bench/under_abuse.py`` (the flood scenarios).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import pytest
from tests.production.conftest import Heard, request, ws_client
from tests.support.serving import Served, prefix_of
from tests.support.waiting import PATIENCE_S, eventually

from wskit import Server

PAYLOAD = {"text": "x" * 1000}
FLOOD = 20_000  # ~20 MB: far more than the socket buffers between us and the stalled reader


async def _stalled_client(server: Served | int) -> socket.socket:
    """A raw client of ``server`` (or of a port) that completes the upgrade, subscribes, and
    then never reads again."""
    port, prefix = (server, "") if isinstance(server, int) else (server.port, prefix_of(server))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET {prefix}/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
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


async def _flood(server: Served) -> None:
    """Publish FLOOD messages to "all"; the publisher never waits on a socket."""
    for i in range(FLOOD):
        await server.router.publish("all", Heard, PAYLOAD)
        if i % 50 == 0:
            await asyncio.sleep(0)  # the reading client lives in this loop too: let it read


async def _members(server: Server, count: int) -> None:
    """Wait until ``count`` clients have subscribed to "all" (their SAY was handled)."""
    await eventually(lambda: len(server.router.hub.members.get("all", ())) == count, what=f"{count} members")


@pytest.mark.timeout(90)
async def test_slow_consumer_is_closed_1013_and_its_queue_stays_bounded(make_server: Any) -> None:
    """Policy close: the stalled reader's queue never passes its bound; it is closed with 1013,
    while a reading client gets every message and its RPC is still answered."""
    closed: list[int | None] = []
    server: Server = await make_server(send_queue_messages=200, send_queue_bytes=256 * 1024)

    @server.router.on_close
    async def record(ctx: Any) -> None:
        closed.append(ctx.close_code)

    stalled = await _stalled_client(server)
    async with ws_client(server.url, max_size=2**20) as fast:
        await fast.send('{"type":"SAY","payload":{"text":"join"}}')
        await _members(server, 2)
        conns = list(server.runtime.connections)
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
        assert (await request(fast, "ECHO", {"text": "ping"}, timeout=PATIENCE_S))["type"] == "ECHO_OK"
    await eventually(lambda: 1013 in closed, what="the stalled reader closed 1013")
    stalled.close()


@pytest.mark.timeout(90)
async def test_drop_oldest_keeps_the_slow_client_and_counts_drops(make_server: Any) -> None:
    """Policy drop-oldest: the stalled client stays connected, its queue stays bounded and
    every dropped frame is counted."""
    server: Server = await make_server(send_queue_messages=100, send_queue_bytes=10**7, backpressure="drop-oldest")
    stalled = await _stalled_client(server)
    await _members(server, 1)
    (conn,) = list(server.runtime.connections)
    await _flood(server)
    assert conn.close_code is None
    assert conn.backlog <= 100
    assert conn.dropped > 0
    stalled.close()


async def test_per_publish_policy_overrides_the_connection_default(make_server: Any) -> None:
    """router.publish(..., overflow="drop-new") keeps a slow client connected under policy close."""
    server: Server = await make_server(send_queue_messages=50, send_queue_bytes=10**7)
    stalled = await _stalled_client(server)
    await _members(server, 1)
    (conn,) = list(server.runtime.connections)
    for i in range(FLOOD):
        await server.router.publish("all", Heard, PAYLOAD, overflow="drop-new")
        if i % 50 == 0:
            await asyncio.sleep(0)
    assert conn.close_code is None
    assert conn.dropped > 0
    stalled.close()


# -- the router's default, and a flood against a server in its own process ------------------


async def test_router_send_queue_is_the_default_and_settings_win(make_server: Any) -> None:
    """Router(send_queue=...) sets the connections' bound and policy; a setting given by keyword
    or environment wins field by field; Server(queue_limits=...) wins over both."""
    from tests.production.conftest import build_router

    from wskit import OverflowPolicy, QueueLimits

    limits = QueueLimits(max_messages=64, max_bytes=10**6, policy=OverflowPolicy.DROP_NEW)
    default: Server = await make_server(router=build_router(send_queue=limits))
    stalled = await _stalled_client(default)
    await _members(default, 1)
    (conn,) = list(default.runtime.connections)
    assert conn.limits == limits
    for i in range(FLOOD // 4):
        await default.router.publish("all", Heard, PAYLOAD)
        if i % 50 == 0:
            await asyncio.sleep(0)
    assert conn.close_code is None and conn.dropped > 0 and conn.backlog <= 64
    stalled.close()

    from wskit.runtime import build_runtime

    keyword = build_runtime(build_router(send_queue=limits), env={}, backpressure="close")
    assert keyword.queue_limits == QueueLimits(64, 10**6, OverflowPolicy.CLOSE)
    env = build_runtime(build_router(send_queue=limits), env={"SEND_QUEUE_MESSAGES": "8"})
    assert env.queue_limits == QueueLimits(8, 10**6, OverflowPolicy.DROP_NEW)
    plain = build_runtime(build_router(), env={})
    assert plain.queue_limits == QueueLimits()
    given = QueueLimits(3, 300, OverflowPolicy.DROP_OLDEST)
    assert build_runtime(build_router(send_queue=limits), env={}, queue_limits=given).queue_limits == given


def test_queue_limits_take_policy_strings_and_refuse_bad_bounds() -> None:
    """QueueLimits(policy="drop-oldest") is the enum member (the send path compares by identity)."""
    from wskit import OverflowPolicy, QueueLimits

    assert QueueLimits(policy="drop-oldest").policy is OverflowPolicy.DROP_OLDEST  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QueueLimits(max_messages=0)
    with pytest.raises(ValueError):
        QueueLimits(policy="drop-everything")  # type: ignore[arg-type]


#: the flood: 20,000 frames of ~1 KiB, ~20 MiB for each subscriber: far more than a send queue
#: (SEND_QUEUE_BYTES, 4 MiB) plus the socket buffers between the server and a stalled reader
BIG_FLOOD, BIG_SIZE = 20_000, 1000
MIB = 1024 * 1024


def _start_flood_server(mode: str, env: dict[str, str]) -> tuple[Any, int]:
    from tests.production.conftest import start_server_process
    from tests.support.redis_server import free_port

    port = free_port()
    return start_server_process(["-m", "tests.production.flood_app", str(port), mode], port, env), port


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("mode", "env"),
    [
        ("keyword:close", {}),
        ("router:drop-oldest", {}),
        ("env:drop-new", {"BACKPRESSURE_POLICY": "drop-new"}),
    ],
    ids=["close-by-keyword", "drop-oldest-by-router", "drop-new-by-env"],
)
async def test_flood_keeps_send_queues_bounded_and_others_served(mode: str, env: dict[str, str]) -> None:
    """Two clients stop reading while ~20 MiB per subscriber is published by a server in its own
    process: no send queue passes SEND_QUEUE_BYTES, a reading subscriber gets every frame, another
    client's ECHO calls made throughout the flood are all answered, and the stalled clients are
    closed or lose frames as the policy says. The policy reaches the connections from each source
    (keyword, router default, environment)."""
    policy = mode.split(":")[1]
    proc, port = _start_flood_server(mode, env)
    url = f"ws://127.0.0.1:{port}/"
    stalled: list[socket.socket] = []
    try:
        stalled = [await _stalled_client(port) for _ in range(2)]
        async with ws_client(url, max_size=2**20) as reader, ws_client(url) as echo, ws_client(url) as control:
            await reader.send('{"type":"SAY","payload":{"text":"join"}}')
            got = 0

            async def read_flood() -> None:
                nonlocal got
                while got < BIG_FLOOD:
                    if len(await reader.recv()) > BIG_SIZE:
                        got += 1

            reading = asyncio.ensure_future(read_flood())
            stats = await request(control, "STATS", {}, cid="s0")
            assert stats["payload"]["policies"] == [policy]
            flood = asyncio.ensure_future(
                request(control, "FLOOD", {"count": BIG_FLOOD, "size": BIG_SIZE}, cid="big", timeout=90)
            )
            answered = 0
            for i in range(5000):  # bounded; ends with the flood
                if flood.done():
                    break
                reply = await request(echo, "ECHO", {"text": "ping"}, cid=f"e{i}", timeout=PATIENCE_S)
                assert reply["type"] == "ECHO_OK"
                answered += 1
                await asyncio.sleep(0.01)
            done = await flood
            async with asyncio.timeout(30):
                await reading
            stats = await request(control, "STATS", {}, cid="s1")
        assert got == BIG_FLOOD, "the reading subscriber missed frames"
        assert answered >= 5, "the flood ended before the other client could call during it"
        # the bound of each stalled client's queue (SEND_QUEUE_BYTES); unbounded, each would
        # hold most of the flood
        assert done["payload"]["peak_backlog_bytes"] <= 4 * MIB
        if policy == "close":
            assert stats["payload"]["closed_slow"] >= 2
        else:
            assert stats["payload"]["dropped"] > 0
            assert stats["payload"]["connections"] == 5, "drop policies keep the stalled clients"
    finally:
        for sock in stalled:
            sock.close()
        from tests.production.conftest import reap

        proc.terminate()
        try:
            proc.wait(10)
        finally:
            reap(proc)
