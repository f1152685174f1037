"""Two server instances behind one Redis, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wskit import Context, Router, message
from wskit.pubsub.redis import RedisBroker
from wskit.server import Server

__all__: list[str] = []


class RoomPayload(BaseModel):
    room: str


class SayPayload(BaseModel):
    room: str
    text: str


class NotePayload(BaseModel):
    text: str


Join = message("JOIN", RoomPayload)
Say = message("SAY", SayPayload)
RoomMsg = message("ROOM_MSG", SayPayload)
Note = message("NOTE", NotePayload)


def build_router() -> Router[Any]:
    """The application: the same code runs on every instance."""
    router: Router[Any] = Router()
    router.enable_history("h:*", max_len=100, ttl_s=60)

    @router.on(Join)
    async def join(ctx: Context[RoomPayload]) -> None:
        await ctx.subscribe(ctx.payload.room)

    @router.on(Say)
    async def say(ctx: Context[SayPayload]) -> None:
        await ctx.publish(ctx.payload.room, RoomMsg, ctx.payload)

    return router


def authenticate(request: Any) -> dict[str, Any] | None:
    user = request.query_params.get("user")
    return {"user_id": user} if user else None


@asynccontextmanager
async def instances(url: str, namespace: str) -> AsyncIterator[tuple[Server, Server]]:
    a = Server(build_router(), host="127.0.0.1", port=0, authenticate=authenticate,
               broker=RedisBroker(url, namespace=namespace))  # fmt: skip
    b = Server(build_router(), host="127.0.0.1", port=0, authenticate=authenticate,
               broker=RedisBroker(url, namespace=namespace))  # fmt: skip
    async with a, b:
        yield a, b


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _join(ws: ClientConnection, server: Server, room: str) -> None:
    await ws.send(json.dumps({"type": "JOIN", "payload": {"room": room}}))
    await _until(lambda: bool(server.router.hub.members.get(room)))


async def _frames(ws: ClientConnection, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Every frame received until ``quiet`` seconds pass without one."""
    out: list[dict[str, Any]] = []
    while True:
        try:
            async with asyncio.timeout(quiet):
                out.append(json.loads(await ws.recv()))
        except TimeoutError:
            return out


async def test_publish_on_one_instance_reaches_the_other_once(redis_url: str, namespace: str) -> None:
    """A message said on instance A reaches a subscriber on instance B exactly once (history meta included)."""
    async with instances(redis_url, namespace) as (a, b):
        async with connect(f"{a.url}?user=ann") as ann, connect(f"{b.url}?user=bob") as bob:
            await _join(bob, b, "room")
            await _join(bob, b, "h:room")
            await ann.send(json.dumps({"type": "SAY", "payload": {"room": "room", "text": "hi"}}))
            await ann.send(json.dumps({"type": "SAY", "payload": {"room": "h:room", "text": "kept"}}))
            got = await _frames(bob)
        assert got[0] == {"type": "ROOM_MSG", "payload": {"room": "room", "text": "hi"}}
        assert got[1]["payload"] == {"room": "h:room", "text": "kept"}
        assert got[1]["meta"]["offset"] == 1
        assert isinstance(got[1]["meta"]["epoch"], str)
        assert len(got) == 2


async def test_send_to_user_and_disconnect_user_cross_instances(redis_url: str, namespace: str) -> None:
    """router.send_to_user / disconnect_user on instance A reach the user's socket on instance B."""
    async with instances(redis_url, namespace) as (a, b), connect(f"{b.url}?user=bob") as bob:
        await _until(lambda: "bob" in b.router.hub.users)
        await a.router.send_to_user("bob", Note, {"text": "psst"})
        note = json.loads(await asyncio.wait_for(bob.recv(), 5))
        assert (note["type"], note["payload"]) == ("NOTE", {"text": "psst"})
        await a.router.disconnect_user("bob", 4001, "kicked")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(bob.recv(), 5)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "kicked")
