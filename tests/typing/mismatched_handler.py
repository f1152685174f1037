"""Handlers whose annotation does not match their message: mypy --strict must reject them.

Checked by tests/unit/test_typing.py (not collected by pytest): mypy must report an error on
each line marked ``# error`` and on no other line (the last handler is correct).
"""

from __future__ import annotations

from pydantic import BaseModel

from wskit import Context, Router, message, rpc


class JoinPayload(BaseModel):
    room: str


class SayPayload(BaseModel):
    room: str
    text: str


class UserReq(BaseModel):
    id: str


class User(BaseModel):
    id: str
    name: str


Join = message("JOIN", JoinPayload)
GetUser = rpc("GET_USER", UserReq, "USER", User)

router: Router[None] = Router()


@router.on(Join)  # error
async def say(ctx: Context[SayPayload]) -> None:
    await ctx.subscribe(ctx.payload.room)


@router.rpc(GetUser)  # error
async def get_user(ctx: Context[User]) -> None:
    await ctx.reply(ctx.payload)


@router.on(Join)
async def join(ctx: Context[JoinPayload]) -> None:
    await ctx.subscribe(ctx.payload.room)
