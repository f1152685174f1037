"""The server side of ``bench/under_abuse.py``: one wskit process that abusive clients hit.

    python bench/abuse_app.py --port P [--backpressure close|drop-oldest|drop-new]
                              [--max-connections-per-ip N] [--max-payload-bytes N]

Run as its own process so that its RSS is the server's alone. Messages (msgspec payloads):

* ``ECHO`` (RPC) ``{text}`` → ``ECHO_OK`` ``{text}``: the well-behaved client's probe;
* ``SAY`` (event) ``{text}``: subscribe to ``all``, then publish ``HEARD`` ``{text}`` there;
* ``FLOOD`` (RPC) ``{count, size}`` → ``FLOODED`` ``{sent, ms, peak_backlog_bytes}``: publish
  ``count`` ``HEARD`` of ``size`` bytes to ``all``, pausing 1 ms every 100 (a steady
  publisher that leaves room for the other clients), never waiting on a socket;
* ``STATS`` (RPC) ``{}`` → ``STATS_ARE`` ``{dropped, closed_slow, connections}``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import msgspec

from wskit import Context, Router, message, rpc, serve
from wskit.connection import STATS


class Text(msgspec.Struct):
    text: str


class FloodReq(msgspec.Struct):
    count: int
    size: int


class FloodDone(msgspec.Struct):
    sent: int
    ms: float
    peak_backlog_bytes: int


class Nothing(msgspec.Struct):
    pass


class Stats(msgspec.Struct):
    dropped: int
    closed_slow: int
    connections: int


Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Say = message("SAY", Text)
Heard = message("HEARD", Text)
Flood = rpc("FLOOD", FloodReq, "FLOODED", FloodDone)
GetStats = rpc("STATS", Nothing, "STATS_ARE", Stats)


def create_router() -> Router[dict[str, object]]:
    router: Router[dict[str, object]] = Router()

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        await ctx.subscribe("all")
        await ctx.publish("all", Heard, ctx.payload)

    @router.rpc(Flood)
    async def flood(ctx: Context[FloodReq]) -> None:
        payload = Text("x" * ctx.payload.size)
        conns = ctx.router.hub.connections
        started = time.perf_counter()
        peak = 0
        for i in range(ctx.payload.count):
            await ctx.router.publish("all", Heard, payload)
            if i % 100 == 99:
                peak = max(peak, *(c._backlog_bytes for c in conns.values()))
                await asyncio.sleep(0.001)
        ms = (time.perf_counter() - started) * 1000
        await ctx.reply(FloodDone(sent=ctx.payload.count, ms=ms, peak_backlog_bytes=peak))

    @router.rpc(GetStats)
    async def stats(ctx: Context[Nothing]) -> None:
        connections = len(ctx.router.hub.connections)
        await ctx.reply(Stats(dropped=STATS["dropped"], closed_slow=STATS["closed_slow"], connections=connections))

    return router


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backpressure", default="close", choices=["close", "drop-oldest", "drop-new"])
    parser.add_argument("--max-connections-per-ip", type=int, default=0)
    parser.add_argument("--max-payload-bytes", type=int, default=64 * 1024)
    args = parser.parse_args()
    serve(
        create_router(),
        host="127.0.0.1",
        port=args.port,
        backpressure=args.backpressure,
        max_connections_per_ip=args.max_connections_per_ip,
        max_payload_bytes=args.max_payload_bytes,
        shutdown_grace_ms=500,
        log_level="WARNING",
    )


if __name__ == "__main__":
    main()
