"""The app of the multi-worker /metrics test: the metrics test router plus WHOAMI (the pid
of the worker that holds the connection), served with workers on one Redis.

    python -m tests.metrics.worker_app --port P --redis URL --namespace NS --workers 2
"""

from __future__ import annotations

import argparse
import os

from tests.metrics.scraping import Text, build_router

from wskit import Context, rpc, serve
from wskit.pubsub.redis import RedisBroker

Whoami = rpc("WHOAMI", Text, "IAM", Text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    router = build_router()

    @router.rpc(Whoami)
    async def whoami(ctx: Context[Text]) -> None:
        await ctx.reply({"text": str(os.getpid())})

    serve(
        router,
        host="127.0.0.1",
        port=args.port,
        broker=RedisBroker(args.redis, namespace=args.namespace),
        workers=args.workers,
        log_level="WARNING",
    )


if __name__ == "__main__":
    main()
