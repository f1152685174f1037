"""The picows host keeps no task for an idle connection.

The first reader ends once the connection is open and nothing waits; the next frame starts
one, dispatched at once (answers keep their order with a close in the same read); the idle
sweep ends a reader that got no frame for a whole period; a connection closed while it has
no reader still ends (``on_close`` runs, its place under the per-IP cap comes back).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel
from tests.support.waiting import PATIENCE_S, eventually
from websockets.asyncio.client import connect

from wskit import Context, Router, Server, message, rpc
from wskit.transports.picows_host import READERS
from wskit.transports.picows_upgrade import PicowsHost


class N(BaseModel):
    n: int


Ping = message("PING", N)
Pong = message("PONG", N)
Slow = rpc("SLOW", N, "SLOW_OK", N)


def build(closed: list[int]) -> Router[Any]:
    router: Router[Any] = Router()

    @router.on_open
    async def join(ctx: Context[Any]) -> None:
        await ctx.subscribe("lobby")

    @router.on(Ping)
    async def ping(ctx: Context[N]) -> None:
        await ctx.send(Pong, {"n": ctx.payload.n})

    @router.rpc(Slow)
    async def slow(ctx: Context[N]) -> None:
        await asyncio.sleep(0.05)
        await ctx.reply({"n": ctx.payload.n})

    @router.on_close
    async def gone(ctx: Context[Any]) -> None:
        closed.append(1)

    return router


def _host(server: Server) -> PicowsHost:
    host = server.transport
    assert isinstance(host, PicowsHost)
    return host


def _readers(host: PicowsHost) -> int:
    return sum(1 for peer in host.sweep.peers if peer.reader is not None)


async def test_idle_connections_have_no_reader_and_wake_one_per_frame() -> None:
    closed: list[int] = []
    async with Server(build(closed), port=0, env={}, transport="picows", max_connections_per_ip=20) as server:
        host = _host(server)
        clients = [await connect(server.url) for _ in range(10)]
        try:
            await eventually(lambda: server.connection_count == 10)
            # opened and idle: no reader task per connection
            await eventually(lambda: not host.tasks and not READERS)
            assert _readers(host) == 0
            # a frame to an idle connection is answered (a reader started for it) ...
            for i, ws in enumerate(clients):
                await ws.send(json.dumps({"type": "PING", "payload": {"n": i}}))
            for i, ws in enumerate(clients):
                async with asyncio.timeout(PATIENCE_S):
                    assert json.loads(await ws.recv())["payload"] == {"n": i}
            assert _readers(host) == 10
            # ... an RPC that waits, too (hand-off from a reader started by a frame)
            await clients[0].send(json.dumps({"type": "SLOW", "meta": {"correlationId": "s"}, "payload": {"n": 7}}))
            async with asyncio.timeout(PATIENCE_S):
                assert json.loads(await clients[0].recv())["type"] == "SLOW_OK"
            # the sweep: the first look marks them, the second ends the readers of the silent ones
            await clients[1].send(json.dumps({"type": "PING", "payload": {"n": 1}}))
            await clients[1].recv()
            host.sweep.sweep()
            await clients[2].send(json.dumps({"type": "PING", "payload": {"n": 2}}))  # active since the first look
            await clients[2].recv()
            host.sweep.sweep()
            await eventually(lambda: _readers(host) == 1)
            assert [peer.reader is not None for peer in host.sweep.peers] == [True]
            # a connection whose reader ended still answers
            await clients[3].send(json.dumps({"type": "PING", "payload": {"n": 3}}))
            async with asyncio.timeout(PATIENCE_S):
                assert json.loads(await clients[3].recv())["payload"] == {"n": 3}
        finally:
            for ws in clients:
                await ws.close()
        # closed while idle, without a reader: each still ends (on_close, the hub, the per-IP count)
        await eventually(lambda: server.connection_count == 0)
        await eventually(lambda: len(closed) == 10)
        assert server.admission.per_ip == {}
        again = [await connect(server.url) for _ in range(20)]  # the cap of 20 is whole again
        for ws in again:
            await ws.close()


async def test_a_server_stop_ends_idle_connections() -> None:
    closed: list[int] = []
    server = Server(build(closed), port=0, env={}, transport="picows")
    await server.start()
    clients = [await connect(server.url) for _ in range(5)]
    await eventually(lambda: server.connection_count == 5)
    await server.stop()
    assert len(closed) == 5
    for ws in clients:
        async with asyncio.timeout(PATIENCE_S):
            await ws.wait_closed()
        assert ws.close_code == 1001
