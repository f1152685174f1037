"""The application the ASGI tests serve: echo RPC, an event, rooms, and what the server saw.

Importable by a host's command line too (``uvicorn tests.asgi.served:app``), for the tests
that stop a host by signal: ``app`` reports on stdout each ``on_close`` code and each
lifespan answer it gives, so the test reads what happened inside the host's process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from wskit import Context, Router, message, rpc
from wskit.asgi import AsgiApp, asgi_app
from wskit.transports.asgi import Receive, Scope, Send


class Text(BaseModel):
    text: str


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str


class Seconds(BaseModel):
    s: float


Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Slow = rpc("SLOW", Seconds, "SLOW_OK", Seconds)
Poke = message("POKE", Text)
Poked = message("POKED", Text)
Join = message("JOIN", Room)
Joined = message("JOINED", Room)
SayMsg = message("SAY", Say)
RoomMsg = message("ROOM_MSG", Say)


def build_router(closes: list[int | None] | None = None, *, report: bool = False) -> Router[Any]:
    """The router; ``closes`` collects ``on_close`` codes, ``report`` prints them too."""
    router: Router[Any] = Router()

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(Slow)
    async def slow(ctx: Context[Seconds]) -> None:
        await asyncio.sleep(ctx.payload.s)
        await ctx.reply(ctx.payload)

    @router.on(Poke)
    async def poke(ctx: Context[Text]) -> None:
        await ctx.send(Poked, ctx.payload)

    @router.on(Join)
    async def join(ctx: Context[Room]) -> None:
        await ctx.subscribe(ctx.payload.room)
        await ctx.send(Joined, ctx.payload)

    @router.on(SayMsg)
    async def say(ctx: Context[Say]) -> None:
        await ctx.publish(ctx.payload.room, RoomMsg, ctx.payload)

    @router.on_close
    def closed(ctx: Context[Any]) -> None:
        if closes is not None:
            closes.append(ctx.close_code)
        if report:
            print(f"on_close {ctx.close_code}", flush=True)

    return router


def reporting(inner: AsgiApp) -> Any:
    """``inner``, printing every lifespan answer it gives (for a test reading stdout)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await inner(scope, receive, send)
            return

        async def tell(msg: Any) -> None:
            print(msg["type"], flush=True)
            await send(msg)

        await inner(scope, receive, tell)

    return app


#: what a host's command line serves (the runtime starts only by its lifespan)
app = reporting(asgi_app(build_router(report=True), shutdown_grace_ms=500))
