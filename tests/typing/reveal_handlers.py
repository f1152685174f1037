"""Typing checks run by mypy --strict from tests/unit/test_typing.py (not collected by pytest).

Each ``reveal_type`` line ends with ``# reveal: <expected>``; the test compares mypy's note for
that line with the expectation.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict, reveal_type

from pydantic import BaseModel

from wskit import Context, Router, message, rpc
from wskit.testing import TestClient


class JoinPayload(BaseModel):
    room: str


class UserReq(BaseModel):
    id: str


class User(BaseModel):
    id: str
    name: str


Join = message("JOIN", JoinPayload)
Ping = message("PING")
GetUser = rpc("GET_USER", UserReq, "USER", User)

reveal_type(Join)  # reveal: wskit.schema.declarations.MessageSchema[reveal_handlers.JoinPayload]
reveal_type(Ping)  # reveal: wskit.schema.declarations.MessageSchema[None]
reveal_type(GetUser)  # reveal: wskit.schema.declarations.RpcSchema[reveal_handlers.UserReq, reveal_handlers.User]

router: Router[dict[str, str]] = Router()


@router.on(Join)
async def join(ctx: Context[JoinPayload]) -> None:
    reveal_type(ctx.payload)  # reveal: reveal_handlers.JoinPayload
    reveal_type(ctx.payload.room)  # reveal: str
    await ctx.subscribe(ctx.payload.room)


@router.on(Ping)
async def ping(ctx: Context[None]) -> None:
    reveal_type(ctx.payload)  # reveal: None


@router.rpc(GetUser)
async def get_user(ctx: Context[UserReq]) -> None:
    reveal_type(ctx.payload)  # reveal: reveal_handlers.UserReq
    await ctx.reply(User(id=ctx.payload.id, name="Ada"))


reveal_type(join)  # reveal: def (wskit.context.Context[reveal_handlers.JoinPayload, Any]) -> typing.Awaitable[None]


async def call(client: TestClient) -> None:
    response = await client.request(GetUser, UserReq(id="1"))
    reveal_type(response.payload)  # reveal: reveal_handlers.User


class AppData(TypedDict):
    user_id: str
    room: NotRequired[str]


typed_router: Router[AppData] = Router()


@typed_router.on(Join)
async def typed_join(ctx: Context[JoinPayload, AppData]) -> None:
    reveal_type(ctx.data)  # reveal: TypedDict(reveal_handlers.AppData, {'user_id': str, 'room'?: str})
    reveal_type(ctx.data["user_id"])  # reveal: str
    reveal_type(ctx.payload)  # reveal: reveal_handlers.JoinPayload


@typed_router.on(Ping)
async def untyped_ping(ctx: Context[None]) -> None:
    reveal_type(ctx.data)  # reveal: typing.Mapping[str, Any]
