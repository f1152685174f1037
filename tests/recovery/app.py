"""The server the recovery tests run in processes of their own (so that they can be killed).

    python -m tests.recovery.app --port P [--redis URL --namespace NS]

Clients may subscribe themselves to ``seq:*`` (a topic with history). ``PUBLISH`` publishes
``NUMBER {n}`` to a topic and answers only once the broker took it, so the publisher knows
exactly what was published and in which order. Without ``--redis`` the broker is in memory
(the storm test needs connections, not scale-out). Shutdown timing comes from the
environment (``SHUTDOWN_RETRY_AFTER_MS``, ``SHUTDOWN_RETRY_JITTER_MS``, ``SHUTDOWN_GRACE_MS``).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel

from wskit import Context, Router, message, rpc, serve
from wskit.pubsub import MemoryBroker
from wskit.pubsub.redis import RedisBroker

__all__ = ["TOPICS", "Number", "Publish", "build_router"]

#: the topics clients may subscribe to; they keep history
TOPICS = "seq:*"


class Num(BaseModel):
    n: int


class Pub(BaseModel):
    topic: str
    n: int


Number = message("NUMBER", Num)
Publish = rpc("PUBLISH", Pub, "PUBLISHED", Num)


def build_router() -> Router[Any]:
    router: Router[Any] = Router()
    router.allow_subscribe(TOPICS)
    router.enable_history(TOPICS, max_len=10_000, ttl_s=600)

    @router.rpc(Publish)
    async def publish(ctx: Context[Pub]) -> None:
        await ctx.publish(ctx.payload.topic, Number, {"n": ctx.payload.n})
        await ctx.reply({"n": ctx.payload.n})

    return router


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis")
    parser.add_argument("--namespace", default="wskit-recovery")
    args = parser.parse_args()
    broker = RedisBroker(args.redis, namespace=args.namespace) if args.redis else MemoryBroker()
    serve(build_router(), host="127.0.0.1", port=args.port, broker=broker, transport="aiohttp")


if __name__ == "__main__":
    main()
