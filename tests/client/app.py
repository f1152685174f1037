"""The router the client tests talk to, and a helper to serve it on a chosen port.

Handlers record what the server saw (``Seen``) so tests observe effects on the server side:
a cancelled handler, the tokens that came with each upgrade, the order messages arrived in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from wskit import Context, ErrorCode, Router, Server, WsKitError, message, rpc


class Text(BaseModel):
    text: str


class UserReq(BaseModel):
    id: str


class User(BaseModel):
    id: str
    name: str


class Wait(BaseModel):
    key: str


class Kick(BaseModel):
    code: int


class Pub(BaseModel):
    topic: str
    text: str


class Room(BaseModel):
    topic: str


Say = message("SAY", Text)
Heard = message("HEARD", Text)
GetUser = rpc("GET_USER", UserReq, "USER", User)
Echo = rpc("ECHO", Text, "ECHOED", Text)
Slow = rpc("SLOW", Wait, "DONE", Text)
Close = message("CLOSE_ME", Kick)
Publish = message("PUBLISH", Pub)
Join = message("JOIN", Room)


@dataclass
class Seen:
    """What the server saw, for the tests to assert on."""

    said: list[str] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    cancelled: dict[str, asyncio.Event] = field(default_factory=dict)
    release: dict[str, asyncio.Event] = field(default_factory=dict)
    slow_calls: list[str] = field(default_factory=list)

    def event(self, table: dict[str, asyncio.Event], key: str) -> asyncio.Event:
        return table.setdefault(key, asyncio.Event())


def build_router(seen: Seen) -> Router[Any]:
    router: Router[Any] = Router()
    router.allow_subscribe("feed:*")
    router.allow_subscribe("live:*")
    router.enable_history("feed:*")
    router.enable_history("room:*")

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        seen.said.append(ctx.payload.text)
        await ctx.send(Heard, {"text": ctx.payload.text})

    @router.rpc(GetUser)
    async def get_user(ctx: Context[UserReq]) -> None:
        if ctx.payload.id != "1":
            raise WsKitError(ErrorCode.NOT_FOUND, "no such user", details={"id": ctx.payload.id})
        await ctx.progress({"stage": "loading"})
        await ctx.progress({"stage": "found"})
        await ctx.reply({"id": "1", "name": "Ada"})

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply({"text": ctx.payload.text})

    @router.rpc(Slow)
    async def slow(ctx: Context[Wait]) -> None:
        key = ctx.payload.key
        seen.slow_calls.append(key)
        seen.event(seen.started, key).set()
        try:
            await seen.event(seen.release, key).wait()
        except asyncio.CancelledError:
            seen.event(seen.cancelled, key).set()
            raise
        await ctx.reply({"text": key})

    @router.on(Close)
    async def close_me(ctx: Context[Kick]) -> None:
        await ctx.close(ctx.payload.code, "closed by the test")

    @router.on(Publish)
    async def publish(ctx: Context[Pub]) -> None:
        await ctx.publish(ctx.payload.topic, Heard, {"text": ctx.payload.text})

    @router.on(Join)
    async def join(ctx: Context[Room]) -> None:
        await ctx.subscribe(ctx.payload.topic)

    return router


def recording_auth(seen: Seen, *, accept: set[str] | None = None) -> Any:
    """An ``authenticate`` that records the ``access_token`` (or bearer header/subprotocol)
    and admits everyone, or only ``accept`` when given (else HTTP 401)."""

    def authenticate(request: Any) -> dict[str, Any] | None:
        token = request.query_params.get("access_token")
        header = request.headers.get("authorization")
        if header:
            token = header.removeprefix("Bearer ")
        protocol = request.headers.get("sec-websocket-protocol")
        if protocol and protocol.startswith("bearer."):
            token = protocol.split(",")[0].strip().removeprefix("bearer.")
        seen.tokens.append(token)
        if accept is not None and token not in accept:
            return None
        return {"user_id": token or "anon"}

    return authenticate


@contextlib.asynccontextmanager
async def serving(router: Router[Any], port: int = 0, **options: Any) -> AsyncIterator[Server]:
    """``Server`` on 127.0.0.1:``port`` with no environment (``env={}``)."""
    async with Server(router, host="127.0.0.1", port=port, env={}, **options) as server:
        yield server
