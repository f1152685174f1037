"""The application the hostile-input tests attack: a few events and RPCs with nested models.

Every valid event's handler sends something back, so "no answer" is never ambiguous. Handlers
never await anything that yields, so an RPC always finishes in its first step (its answer is
deterministic, whatever its ``timeoutMs``). :class:`Deliberate` marks the failures the app
raises on purpose; any other exception on the server is a finding.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wskit import Context, ErrorCode, Router, WsKitError, message, rpc

__all__ = ["ECHO", "Deliberate", "build_router"]

_STRICT = ConfigDict(strict=True, extra="forbid")


class Deliberate(RuntimeError):
    """A failure a handler raises on purpose (answered INTERNAL; not a finding)."""


class Point(BaseModel):
    model_config = _STRICT
    x: int = Field(ge=-1000, le=1000)
    y: float = Field(default=0.0, ge=-1e6, le=1e6, allow_inf_nan=False)


class Shape(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=32)
    points: list[Point] = Field(max_length=8)
    label: str | None = None
    closed: bool = False


class Drawn(BaseModel):
    name: str
    count: int


class Note(BaseModel):
    model_config = _STRICT
    text: str = Field(max_length=200)


class EchoBody(BaseModel):
    model_config = _STRICT
    text: str = Field(max_length=200)
    n: int | None = Field(default=None, ge=-(10**9), le=10**9)
    tags: list[str] = Field(default_factory=list, max_length=4)


class Num(BaseModel):
    model_config = _STRICT
    n: int = Field(ge=0, le=1000)


class Stage(BaseModel):
    stage: int


Draw = message("DRAW", Shape)
DrawnMsg = message("DRAWN", Drawn)
NoteMsg = message("NOTE", Note)
Noted = message("NOTED", Note)
PingMsg = message("PING")
Pong = message("PONG")
ECHO = rpc("ECHO", EchoBody, "ECHO_OK", EchoBody)
Flaky = rpc("FLAKY", Num, "FLAKY_OK", Num)
Twice = rpc("TWICE", Num, "TWICE_OK", Num)


def build_router(errors: list[BaseException]) -> Router[Any]:
    """The app; ``on_error`` appends every reported exception to ``errors``."""
    router: Router[Any] = Router()

    @router.on(Draw)
    async def draw(ctx: Context[Shape]) -> None:
        await ctx.send(DrawnMsg, {"name": ctx.payload.name, "count": len(ctx.payload.points)})

    @router.on(NoteMsg)
    async def note(ctx: Context[Note]) -> None:
        if ctx.payload.text.startswith("boom"):
            raise Deliberate("note handler fails on purpose")
        await ctx.send(Noted, ctx.payload)

    @router.on(PingMsg)
    async def ping(ctx: Context[None]) -> None:
        await ctx.send(Pong)

    @router.rpc(ECHO)
    async def echo(ctx: Context[EchoBody]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(Flaky)
    async def flaky(ctx: Context[Num]) -> None:
        n = ctx.payload.n
        if n % 4 == 0:
            raise Deliberate("flaky handler fails on purpose")
        if n % 4 == 1:
            raise WsKitError(ErrorCode.NOT_FOUND, "no such n", details={"n": n})
        if n % 4 == 2:
            raise WsKitError("ROOM_FULL", retry_after_ms=None)
        await ctx.reply({"n": n})

    @router.rpc(Twice)
    async def twice(ctx: Context[Num]) -> None:
        await ctx.progress({"stage": 1})
        await ctx.reply({"n": ctx.payload.n})
        await ctx.reply({"n": ctx.payload.n})  # dropped: only the first terminal answer counts

    @router.on_error
    def record(ctx: Context[Any], exc: BaseException) -> None:
        errors.append(exc)

    return router
