"""``Context[P, AppData]``: handlers may type the connection data; registration still checks P."""

from __future__ import annotations

from typing import TypedDict

import pytest
from pydantic import BaseModel

from wskit import Context, Router, UsageError, message, rpc
from wskit.testing import TestClient


class Room(BaseModel):
    room: str


class Who(BaseModel):
    user: str


class AppData(TypedDict):
    user_id: str


Join = message("JOIN", Room)
WhoAmI = rpc("WHOAMI", Room, "YOU_ARE", Who)


async def test_typed_data_handlers_register_and_read_the_data() -> None:
    """A handler annotated Context[Room, AppData] is accepted and sees the connection's data."""
    router: Router[AppData] = Router()

    @router.rpc(WhoAmI)
    async def whoami(ctx: Context[Room, AppData]) -> None:
        await ctx.reply({"user": ctx.data["user_id"]})

    async with TestClient(router, data={"user_id": "u7"}) as client:
        assert (await client.request(WhoAmI, {"room": "r"})).payload.user == "u7"


def test_a_wrong_payload_is_refused_with_typed_data_too() -> None:
    """Context[Who, AppData] on a route whose payload is Room fails at registration."""
    router: Router[AppData] = Router()

    async def join(ctx: Context[Who, AppData]) -> None: ...

    with pytest.raises(UsageError, match="Who"):
        router.on(Join, join)
