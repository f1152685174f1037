"""The router the CLI tests serve and inspect (``tests.cli.app:router``).

ECHO answers its payload; WAIT answers after ``ms`` milliseconds, with a progress first;
MISSING always answers NOT_FOUND; PID answers the serving process's id (to tell a
restarted server from the one before); WHOAMI answers the connection's user (set by a
JWT given with ``--token``); POST publishes NEWS to a topic clients may subscribe
to themselves.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from wskit import Context, ErrorCode, Router, message, rpc


class Text(BaseModel):
    text: str


class Wait(BaseModel):
    ms: int


class Process(BaseModel):
    pid: int


class User(BaseModel):
    user_id: str | None


class Post(BaseModel):
    topic: str
    text: str


Echo = rpc("ECHO", Text, "ECHOED", Text)
Sleep = rpc("WAIT", Wait, "WAITED", Wait)
Missing = rpc("MISSING", Text, "FOUND", Text)
Pid = rpc("PID", None, "PID_IS", Process)
Whoami = rpc("WHOAMI", None, "YOU_ARE", User)
Publish = message("POST", Post)
News = message("NEWS", Text)

router: Router[dict[str, object]] = Router()
router.allow_subscribe("feed:*")
router.emits(News, topics=["feed:*"])


@router.use
async def passthrough(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
    await call_next()


@router.rpc(Echo)
async def echo(ctx: Context[Text]) -> None:
    await ctx.reply(ctx.payload)


@router.rpc(Sleep)
async def wait(ctx: Context[Wait]) -> None:
    await ctx.progress({"stage": "waiting"})
    await asyncio.sleep(ctx.payload.ms / 1000)
    await ctx.reply(ctx.payload)


@router.rpc(Missing)
async def missing(ctx: Context[Text]) -> None:
    await ctx.error(ErrorCode.NOT_FOUND, "no such thing", details={"text": ctx.payload.text})


@router.rpc(Pid)
async def pid(ctx: Context[None]) -> None:
    await ctx.reply({"pid": os.getpid()})


@router.rpc(Whoami)
async def whoami(ctx: Context[None]) -> None:
    user = ctx.data.get("user_id")
    await ctx.reply({"user_id": user if isinstance(user, str) else None})


@router.on(Publish)
async def post(ctx: Context[Post]) -> None:
    await ctx.publish(ctx.payload.topic, News, {"text": ctx.payload.text})


def make_router() -> Router[dict[str, object]]:
    """A factory for ``--factory``: a fresh router with the ECHO route only."""
    fresh: Router[dict[str, object]] = Router()
    fresh.rpc(Echo, echo)
    return fresh


not_a_router = {"routes": []}
