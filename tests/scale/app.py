"""The app the multi-process tests run in several server processes sharing one Redis.

    python -m tests.scale.app --port P --redis URL --namespace NS

Users authenticate with ``?user=<id>``. ``POST`` publishes to a topic and answers only once
the broker accepted it, so a client knows exactly which messages were sent.
"""

from __future__ import annotations

import argparse
import os

from pydantic import BaseModel

from wskit import Context, HandshakeRequest, Router, message, rpc, serve
from wskit.pubsub.redis import RedisBroker


class Topic(BaseModel):
    topic: str
    offset: int | None = None
    epoch: str | None = None


class Position(BaseModel):
    topic: str
    offset: int | None = None
    epoch: str | None = None


class Post(BaseModel):
    topic: str
    n: int


class Posted(BaseModel):
    n: int


class UserCmd(BaseModel):
    user: str
    text: str = ""


class Done(BaseModel):
    ok: bool


class Note(BaseModel):
    text: str


Sub = rpc("SUB", Topic, "SUBBED", Position)
PostRpc = rpc("POST", Post, "POSTED", Posted)
Tick = message("TICK", Post)
Notify = rpc("NOTIFY", UserCmd, "NOTIFIED", Done)
Kick = rpc("KICK", UserCmd, "KICKED", Done)
Ban = rpc("BAN", UserCmd, "BANNED", Done)
NoteMsg = message("NOTE", Note)
Whoami = rpc("WHOAMI", None, "IAM", Note)


def build_router() -> Router[dict[str, str]]:
    router: Router[dict[str, str]] = Router()
    router.enable_history("h:*", max_len=10_000, ttl_s=600)

    @router.rpc(Sub)
    async def sub(ctx: Context[Topic]) -> None:
        position = await ctx.subscribe(ctx.payload.topic, offset=ctx.payload.offset, epoch=ctx.payload.epoch)
        offset, epoch = position if position is not None else (None, None)
        await ctx.reply({"topic": ctx.payload.topic, "offset": offset, "epoch": epoch})

    @router.rpc(PostRpc)
    async def post(ctx: Context[Post]) -> None:
        await ctx.publish(ctx.payload.topic, Tick, ctx.payload)
        await ctx.reply({"n": ctx.payload.n})

    @router.rpc(Notify)
    async def notify(ctx: Context[UserCmd]) -> None:
        await ctx.router.send_to_user(ctx.payload.user, NoteMsg, {"text": ctx.payload.text})
        await ctx.reply({"ok": True})

    @router.rpc(Kick)
    async def kick(ctx: Context[UserCmd]) -> None:
        await ctx.router.disconnect_user(ctx.payload.user, 4000, "kicked")
        await ctx.reply({"ok": True})

    @router.rpc(Ban)
    async def ban(ctx: Context[UserCmd]) -> None:
        await ctx.router.ban_user(ctx.payload.user, ttl_s=60)
        await ctx.reply({"ok": True})

    @router.rpc(Whoami)
    async def whoami(ctx: Context[None]) -> None:
        await ctx.reply({"text": f"{ctx.data.get('user_id')}@{os.getpid()}"})

    return router


def authenticate(request: HandshakeRequest) -> dict[str, str]:
    user = request.query_params.get("user")
    return {"user_id": user} if user else {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--namespace", default="wskit-test")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve(
        build_router(),
        host="127.0.0.1",
        port=args.port,
        authenticate=authenticate,
        broker=RedisBroker(args.redis, namespace=args.namespace),
        workers=args.workers,
        log_level="INFO",
    )


if __name__ == "__main__":
    main()
