"""A router exercising every feature the AsyncAPI export describes, on the msgspec backend:
RPCs (one without payload), events with declared meta keys, a tagged union, type names AsyncAPI keys cannot
hold as they are, a type both routed and emitted, emits with topics, history, client
subscriptions and presence."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from wskit import Context, Router, message, rpc


class Point(msgspec.Struct, forbid_unknown_fields=True):
    x: int
    y: int


class Pen(msgspec.Struct, tag_field="kind", tag="pen"):
    width: Annotated[int, msgspec.Meta(ge=1, le=64)]


class Spray(msgspec.Struct, tag_field="kind", tag="spray"):
    density: float


class Draw(msgspec.Struct):
    board: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    points: list[Point]
    brush: Pen | Spray
    color: Literal["red", "blue"] = "red"
    label: str | None = None


class Board(msgspec.Struct):
    board: str
    strokes: int


class Lookup(msgspec.Struct):
    board: str


class Tick(msgspec.Struct):
    n: int


Drawn = message("board:drawn/v1", Draw, meta={"replay": bool})
Ping = message("PING")
Stats = rpc("STATS", Lookup, "STATS_RESULT", Board)
Clear = rpc("CLEAR", None, "CLEARED", None)
Ticker = message("TICK", Tick)
Note = message("NOTE", Lookup)


def full_router() -> Router[Any]:
    """The router; its handlers do nothing but answer (the export reads declarations only)."""
    router: Router[Any] = Router(validator="msgspec")

    @router.on(Drawn)
    async def drawn(ctx: Context[Draw]) -> None:
        await ctx.publish(f"board:{ctx.payload.board}", Drawn, ctx.payload)

    @router.on(Ping)
    async def ping(ctx: Context[None]) -> None:
        await ctx.send(Note, Lookup(board="pong"))

    @router.on(Note)
    async def note(ctx: Context[Lookup]) -> None:
        await ctx.send(Note, ctx.payload)

    @router.rpc(Stats)
    async def stats(ctx: Context[Lookup]) -> None:
        await ctx.reply(Board(board=ctx.payload.board, strokes=0))

    @router.rpc(Clear)
    async def clear(ctx: Context[None]) -> None:
        await ctx.reply(None)

    router.emits(Drawn, topics=["board:*"])
    router.emits(Ticker, topics=["ticks", "ticks:*"])
    router.emits(Note)
    router.enable_history("board:*", max_len=50, ttl_s=60)
    router.allow_subscribe("board:*")
    router.allow_subscribe("ticks")
    router.enable_presence_events("board:*")
    return router
