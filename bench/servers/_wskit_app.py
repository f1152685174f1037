"""The bench messages as a wskit router, for pydantic or msgspec payload classes.

Besides the messages, the server answers ``GET /bench/stats`` with how many ``PUB`` it
handled and how many times a ``TICK`` frame was serialised, so the suite can check
"one serialisation per publish" from outside (the runtime's codec counts what it encodes).
"""

from __future__ import annotations

from typing import Any

import orjson
from _common import HOST, parse_port, raise_fd_limit
from aiohttp import web

from wskit import Context, Router, message, rpc, serve

__all__ = ["run"]


def build(text: type, topic: type, tick: type) -> tuple[Router[Any], dict[str, int]]:
    """The router and its counters (``publishes``, ``tick_encodes``)."""
    echo = rpc("ECHO", text, "ECHO_OK", text)
    ping = message("PING", text)
    pong = message("PONG", text)
    sub = rpc("SUB", topic, "SUBBED", topic)
    pub = message("PUB", tick)
    tick_msg = message("TICK", tick)
    counts = {"publishes": 0, "tick_encodes": 0}
    router: Router[Any] = Router()

    @router.rpc(echo)
    async def on_echo(ctx: Context[Any]) -> None:
        await ctx.reply(ctx.payload)

    @router.on(ping)
    async def on_ping(ctx: Context[Any]) -> None:
        await ctx.send(pong, ctx.payload)

    @router.rpc(sub)
    async def on_sub(ctx: Context[Any]) -> None:
        await ctx.subscribe(ctx.payload.topic)
        await ctx.reply(ctx.payload)

    @router.on(pub)
    async def on_pub(ctx: Context[Any]) -> None:
        counts["publishes"] += 1
        await ctx.publish(ctx.payload.topic, tick_msg, ctx.payload)

    return router, counts


def run(text: type, topic: type, tick: type) -> None:
    """Serve the bench router on ``--port`` with the production guards out of the way."""
    raise_fd_limit()
    router, counts = build(text, topic, tick)

    async def stats(_request: web.Request) -> web.Response:
        counts["tick_encodes"] = router.runtime.codec.encodes["TICK"]
        return web.Response(body=orjson.dumps(counts), content_type="application/json")

    serve(
        router,
        host=HOST,
        port=parse_port(),
        ping_interval=0,
        max_connections=0,
        handshake_timeout_ms=0,
        log_level="WARNING",
        http_routes={"/bench/stats": stats},
    )
