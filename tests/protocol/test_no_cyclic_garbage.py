"""A closed connection is freed by reference counting, not left to the cycle collector.

Each connection left as cyclic garbage is ~80 objects (exception tracebacks holding frames
that hold the socket); a server that has seen thousands of them stalls for hundreds of
milliseconds when the collector finally runs a full pass. So: with the collector off,
connections closed in every way leave none of our objects behind for it.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from tests.protocol.test_write_batching import _open
from websockets.asyncio.client import connect

from wskit import Context, Router, Server, message, rpc
from wskit.connection import Connection
from wskit.context import Context as ContextType
from wskit.transports.aiohttp_server import Session

WATCHED = (Connection, Session, web.WebSocketResponse, ContextType)


class Text(BaseModel):
    text: str


Say = message("SAY", Text)
Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Slow = rpc("SLOW", Text, "SLOW_OK", Text)


def build() -> Router[Any]:
    router: Router[Any] = Router()

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        await ctx.subscribe("room")
        await ctx.publish("room", Say, ctx.payload)

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(Slow)
    async def slow(ctx: Context[Text]) -> None:
        await asyncio.sleep(0.01)  # hands reading on to a new task
        await ctx.reply(ctx.payload)

    return router


@contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cyclic_garbage() -> Counter[str]:
    """Our objects that only the cycle collector would free."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return Counter(type(o).__name__ for o in gc.garbage if isinstance(o, WATCHED))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_closed_connections_leave_no_cyclic_garbage() -> None:
    """Clients that close cleanly, vanish (TCP abort) or are closed by the server: nothing left for gc."""
    router = build()
    with collector_off():
        async with Server(router, port=0, env={}, ping_interval=0, gc_freeze_interval_s=0) as server:
            for _ in range(5):
                async with connect(server.url) as ws:  # closes with a close frame
                    await ws.send(json.dumps({"type": "SAY", "payload": {"text": "hi"}}))
                    await ws.recv()
                    for kind in ("SLOW", "ECHO"):
                        request = {"type": kind, "meta": {"correlationId": "c"}, "payload": {"text": "x"}}
                        await ws.send(json.dumps(request))
                        await ws.recv()
                _reader, writer = await _open(server.port)  # vanishes without a close frame
                await asyncio.sleep(0.02)
                writer.transport.abort()
            async with connect(server.url) as ws:
                await asyncio.sleep(0.05)
                (conn,) = router.hub.connections.values()
                await conn.close(4000, "bye")  # closed by the server
                async with asyncio.timeout(3):
                    await ws.wait_closed()
            async with asyncio.timeout(3):
                while server.connection_count:  # noqa: ASYNC110 - bounded, nothing to wait on
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            left = cyclic_garbage()
    assert not left, f"closed connections left cyclic garbage: {dict(left)}"
