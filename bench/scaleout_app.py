"""The server side of ``bench/redis_scaleout.py``: one wskit instance on a shared Redis.

    python bench/scaleout_app.py --port P --redis URL --namespace NS

Two messages, msgspec-validated (wskit's fast path):

* ``SUB`` (RPC) ``{topic}`` → ``SUBBED`` ``{topic}`` once the subscription holds on every
  instance (the broker confirmed it with Redis);
* ``PUB`` (event) ``{topic, seq, t}`` → ``TICK`` with the same payload to every subscriber
  of ``topic`` on every instance. ``t`` is the load generator's send time, carried
  through untouched so that it can measure latency on its own clock.
"""

from __future__ import annotations

import argparse

import msgspec

from wskit import Context, Router, message, rpc, serve
from wskit.pubsub import RedisBroker


class TopicReq(msgspec.Struct):
    topic: str


class Tick(msgspec.Struct):
    topic: str
    seq: int
    t: int


Sub = rpc("SUB", TopicReq, "SUBBED", TopicReq)
Pub = message("PUB", Tick)
TickMsg = message("TICK", Tick)


def create_router() -> Router[dict[str, object]]:
    router: Router[dict[str, object]] = Router()

    @router.rpc(Sub)
    async def sub(ctx: Context[TopicReq]) -> None:
        await ctx.subscribe(ctx.payload.topic)
        await ctx.reply(ctx.payload)

    @router.on(Pub)
    async def pub(ctx: Context[Tick]) -> None:
        await ctx.publish(ctx.payload.topic, TickMsg, ctx.payload)

    return router


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    serve(
        create_router(),
        host="127.0.0.1",
        port=args.port,
        broker=RedisBroker(args.redis, namespace=args.namespace),
        log_level="WARNING",
    )


if __name__ == "__main__":
    main()
