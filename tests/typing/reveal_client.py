"""Typing checks of wskit.client, run by mypy --strict from tests/client/test_typing.py (not
collected by pytest). Each ``reveal_type`` line ends with ``# reveal: <expected>``."""

from __future__ import annotations

from typing import reveal_type

import msgspec
from pydantic import BaseModel

from wskit import message, rpc
from wskit.client import Client, ClientError, Message, State, Subscription


class UserReq(BaseModel):
    id: str


class User(BaseModel):
    id: str
    name: str


class Point(msgspec.Struct):
    x: int
    y: int


GetUser = rpc("GET_USER", UserReq, "USER", User)
Move = rpc("MOVE", Point, "MOVED", Point)
RoomMsg = message("ROOM_MSG", User)
Ping = message("PING")


async def main(client: Client) -> None:
    user = await client.request(GetUser, {"id": "1"}, timeout=5.0, on_progress=lambda p: None)
    reveal_type(user)  # reveal: wskit.client.codec.Message[reveal_client.User]
    reveal_type(user.payload)  # reveal: reveal_client.User
    reveal_type(user.payload.name)  # reveal: str
    reveal_type(user.type)  # reveal: str
    moved = await client.request(Move, Point(1, 2))
    reveal_type(moved.payload)  # reveal: reveal_client.Point
    await client.send(Ping)
    reveal_type(client.state)  # reveal: wskit.client.state.State
    sub = await client.subscribe("feed:news")
    reveal_type(sub)  # reveal: wskit.client.subscriptions.Subscription
    assert isinstance(sub, Subscription) and client.state != State.CLOSED

    def on_room(msg: Message[User]) -> None:
        reveal_type(msg.payload)  # reveal: reveal_client.User

    remove = client.on(RoomMsg, on_room)
    reveal_type(remove)  # reveal: def ()
    try:
        await client.send(RoomMsg, {"id": "1", "name": "Ada"})
    except ClientError as error:
        reveal_type(error.retryable)  # reveal: bool
        reveal_type(error.retry_after_ms)  # reveal: int | None


def mismatched(client: Client) -> None:
    def on_point(msg: Message[Point]) -> None: ...

    client.on(RoomMsg, on_point)  # error
