"""After being told of a gap (its position dropped), re-subscribing without an offset returns
where the topic is now, so the client can reload and go on from there."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from wskit import Context, Router, message, rpc
from wskit.testing import TestClient


class Topic(BaseModel):
    topic: str


class Pos(BaseModel):
    offset: int | None
    epoch: str | None


class Text(BaseModel):
    text: str


Sub = rpc("SUB", Topic, "SUBBED", Pos)
Note = message("NOTE", Text)


def build() -> Router[Any]:
    router: Router[Any] = Router()
    router.enable_history("room:*", max_len=100, ttl_s=60)

    @router.rpc(Sub)
    async def sub(ctx: Context[Topic]) -> None:
        position = await ctx.subscribe(ctx.payload.topic)
        offset, epoch = position if position is not None else (None, None)
        await ctx.reply({"offset": offset, "epoch": epoch})

    return router


async def test_resubscribe_after_a_gap_returns_the_current_position() -> None:
    """SUB, three publications, a gap (hub.lost): the client gets the error; SUB again gives offset 3."""
    router = build()
    async with TestClient(router) as client:
        first = await client.request(Sub, {"topic": "room:a"})
        assert first.payload.offset == 0
        for i in range(3):
            await router.publish("room:a", Note, {"text": str(i)})
        for _ in range(3):
            assert (await client.receive()).type == "NOTE"
        router.hub.lost("room:a")
        error = await client.receive()
        assert error.type == "ERROR" and error.payload["details"]["reason"] == "recovery"
        again = await client.request(Sub, {"topic": "room:a"})
        assert (again.payload.offset, again.payload.epoch) == (3, first.payload.epoch)
