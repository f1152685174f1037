"""The bench messages as a wskit router, for pydantic or msgspec payload classes, written
two ways:

- ``default``: as a user writes it (the docs' style): handlers that ``reply``/``send``
  dicts, every connection subscribed to a topic on open, ``serve()`` with its default
  settings (heartbeat on, handshake timeout at its default) but for ``MAX_CONNECTIONS``
  raised from 10,000 to 100,000 for the 50,000-connection scenarios;
- ``tuned``: the bench's own fast path: handlers that pass the payload instance back, no
  topic on open, heartbeat, connection cap and handshake guard off.

Besides the messages, the server answers a ``BENCH_STATS`` RPC with how many ``PUB`` it
handled and how many times a ``TICK`` frame was serialised, so the suite can check
"one serialisation per publish" from outside (the runtime's codec counts what it encodes),
on every host (an HTTP route would make serve() choose aiohttp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _common import HOST, parse_port, raise_fd_limit

from wskit import Context, Router, message, rpc, serve

__all__ = ["STATS", "run"]


# dataclasses: both backends take them, so the routers of either backend can declare them
@dataclass
class _Empty:
    pass


@dataclass
class _Counts:
    publishes: int
    tick_encodes: int


#: the suite's question to a wskit peer: its counters
STATS = rpc("BENCH_STATS", _Empty, "BENCH_STATS_OK", _Counts)


def build(text: type, topic: type, tick: type, *, style: str = "tuned") -> tuple[Router[Any], dict[str, int]]:
    """The router and its counters (``publishes``, ``tick_encodes``)."""
    echo = rpc("ECHO", text, "ECHO_OK", text)
    ping = message("PING", text)
    pong = message("PONG", text)
    sub = rpc("SUB", topic, "SUBBED", topic)
    pub = message("PUB", tick)
    tick_msg = message("TICK", tick)
    counts = {"publishes": 0, "tick_encodes": 0}
    router: Router[Any] = Router()

    @router.rpc(STATS)
    async def on_stats(ctx: Context[Any]) -> None:
        counts["tick_encodes"] = router.runtime.codec.encodes["TICK"]
        await ctx.reply(dict(counts))

    if style == "default":

        @router.on_open
        async def join_lobby(ctx: Context[Any]) -> None:
            await ctx.subscribe("lobby")

        @router.rpc(echo)
        async def on_echo_dict(ctx: Context[Any]) -> None:
            await ctx.reply({"text": ctx.payload.text})

        @router.on(ping)
        async def on_ping_dict(ctx: Context[Any]) -> None:
            await ctx.send(pong, {"text": ctx.payload.text})

        @router.rpc(sub)
        async def on_sub_dict(ctx: Context[Any]) -> None:
            await ctx.subscribe(ctx.payload.topic)
            await ctx.reply({"topic": ctx.payload.topic})

        @router.on(pub)
        async def on_pub_dict(ctx: Context[Any]) -> None:
            counts["publishes"] += 1
            p = ctx.payload
            await ctx.publish(p.topic, tick_msg, {"topic": p.topic, "seq": p.seq, "t": p.t})

        return router, counts

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


def run(text: type, topic: type, tick: type, *, style: str = "tuned", transport: str = "auto") -> None:
    """Serve the bench router on ``--port``: with ``serve()``'s defaults (``default``), or
    with the production guards out of the way (``tuned``); on the host serve() picks
    (``auto``: picows, installed with the bench) or the one named."""
    raise_fd_limit()
    router, _counts = build(text, topic, tick, style=style)

    # the one setting the default path changes: the default cap (10,000 connections) would
    # refuse the suite's 50,000-connection scenarios
    guards_off: dict[str, Any] = {"max_connections": 100_000}
    if style == "tuned":
        guards_off = {"ping_interval": 0, "max_connections": 0, "handshake_timeout_ms": 0}
    serve(
        router,
        host=HOST,
        port=parse_port(),
        log_level="WARNING",
        transport=transport,
        **guards_off,
    )
