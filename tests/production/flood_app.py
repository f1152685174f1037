"""The server process of the backpressure flood test: ``python -m tests.production.flood_app PORT MODE``.

Run as its own process so that its RSS is the server's alone. ``MODE`` says where the
backpressure policy comes from, to prove each source reaches the connections: ``keyword:P``
(``serve(backpressure=P)``), ``router:P`` (``Router(send_queue=...)``) or ``env:P``
(``BACKPRESSURE_POLICY=P`` set by the test, over a router default of ``drop-oldest``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from pydantic import BaseModel
from tests.production.conftest import Heard, build_router

from wskit import Context, OverflowPolicy, QueueLimits, rpc, serve
from wskit.connection import STATS


class FloodReq(BaseModel):
    count: int
    size: int


class FloodDone(BaseModel):
    sent: int
    ms: float
    peak_backlog_bytes: int


class Nothing(BaseModel):
    pass


class Stats(BaseModel):
    policies: list[str]
    dropped: int
    closed_slow: int
    connections: int


Flood = rpc("FLOOD", FloodReq, "FLOODED", FloodDone)
GetStats = rpc("STATS", Nothing, "STATS_ARE", Stats)


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    source, policy = mode.split(":")
    options: dict[str, Any] = {}
    if source == "router":
        router = build_router(send_queue=QueueLimits(policy=OverflowPolicy(policy)))
    elif source == "env":
        router = build_router(send_queue=QueueLimits(policy=OverflowPolicy.DROP_OLDEST))
    else:
        router = build_router()
        options["backpressure"] = policy

    @router.rpc(Flood)
    async def flood(ctx: Context[FloodReq]) -> None:
        """Publish ``count`` messages of ``size`` bytes to "all", in bursts, never waiting on a socket."""
        payload = {"text": "x" * ctx.payload.size}
        started = time.perf_counter()
        peak = 0
        conns = ctx.router.hub.connections
        for i in range(ctx.payload.count):
            await ctx.router.publish("all", Heard, payload)
            if i % 100 == 99:
                peak = max(peak, *(c._backlog_bytes for c in conns.values()))
                await asyncio.sleep(0.001)  # a steady publisher, and room for the other clients
        ms = (time.perf_counter() - started) * 1000
        await ctx.reply(FloodDone(sent=ctx.payload.count, ms=ms, peak_backlog_bytes=peak))

    @router.rpc(GetStats)
    async def stats(ctx: Context[Nothing]) -> None:
        conns = list(ctx.router.hub.connections.values())
        policies = sorted({str(c.limits.policy) for c in conns})
        await ctx.reply(
            Stats(
                policies=policies,
                dropped=STATS["dropped"],
                closed_slow=STATS["closed_slow"],
                connections=len(conns),
            )
        )

    serve(router, host="127.0.0.1", port=port, shutdown_grace_ms=500, **options)


if __name__ == "__main__":
    main()
