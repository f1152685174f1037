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
from tests.brokers.redis_helpers import NoJitter, kill_link, wait_state
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wskit import Context, Router, message
from wskit.pubsub.broker import BrokerState, HistoryPolicy
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


def build_router(*, max_len: int = 100) -> Router[Any]:
    """The application: the same code runs on every instance."""
    router: Router[Any] = Router()
    router.enable_history("h:*", max_len=max_len, ttl_s=60)

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
async def instances(
    url: str, namespace: str, *, max_len: int = 100, **options: Any
) -> AsyncIterator[tuple[Server, Server]]:
    """Instances A and B of one app; ``options`` go to A's broker."""
    a = Server(build_router(max_len=max_len), host="127.0.0.1", port=0, authenticate=authenticate,
               broker=RedisBroker(url, namespace=namespace, **options))  # fmt: skip
    b = Server(build_router(max_len=max_len), host="127.0.0.1", port=0, authenticate=authenticate,
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


async def test_outage_longer_than_the_history_reaches_the_client_as_failed_precondition(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History of 3, instance A's link down while 10 messages are said on B: A's subscriber gets
    ERROR FAILED_PRECONDITION {reason: recovery, topic} before the first message after the gap,
    never a silent jump in offsets."""
    import wskit.pubsub.redis as module

    monkeypatch.setattr(module, "random", NoJitter)
    options = {"backoff_min_s": 0.5, "backoff_max_s": 0.5, "publish_timeout_s": 1.0}
    async with instances(redis_url, namespace, max_len=3, **options) as (a, b):
        broker_a = a.router.hub.broker
        assert isinstance(broker_a, RedisBroker)
        async with connect(f"{a.url}?user=bob") as bob, connect(f"{b.url}?user=ann") as ann:
            await _join(bob, a, "h:room")
            for text in ("1", "2"):
                await ann.send(json.dumps({"type": "SAY", "payload": {"room": "h:room", "text": text}}))
            before = await _frames(bob)
            await kill_link(redis_url, broker_a)
            await wait_state(broker_a, BrokerState.DOWN)
            for n in range(3, 13):
                await ann.send(json.dumps({"type": "SAY", "payload": {"room": "h:room", "text": str(n)}}))
            policy = HistoryPolicy("h:*", max_len=3)
            await _until_async(lambda: b.router.hub.broker.position("h:room", policy), lambda p: p[0] == 12)
            assert broker_a.state is BrokerState.DOWN, "the messages must be said during the outage"
            await wait_state(broker_a, BrokerState.READY)
            after = await _frames(bob)
    assert [m["meta"]["offset"] for m in before] == [1, 2]
    assert after[0]["type"] == "ERROR"
    assert after[0]["payload"]["code"] == "FAILED_PRECONDITION"
    assert after[0]["payload"]["details"] == {"reason": "recovery", "topic": "h:room"}
    assert [(m["meta"]["offset"], m["payload"]["text"]) for m in after[1:]] == [(10, "10"), (11, "11"), (12, "12")]


async def _until_async(read: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check(await read()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_publish_during_an_outage_tells_the_client_it_was_delivered_locally(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance A's link down: a SAY on a plain topic reaches A's own subscriber, and the sender
    gets UNAVAILABLE with details {delivered: local}; on a history topic it is refused whole."""
    import wskit.pubsub.redis as module

    monkeypatch.setattr(module, "random", NoJitter)
    async with instances(redis_url, namespace, backoff_min_s=1.0, backoff_max_s=1.0) as (a, _):
        broker_a = a.router.hub.broker
        assert isinstance(broker_a, RedisBroker)
        async with connect(f"{a.url}?user=ann") as ann:
            await _join(ann, a, "room")
            await _join(ann, a, "h:room")
            await kill_link(redis_url, broker_a)
            await wait_state(broker_a, BrokerState.DOWN)
            await ann.send(json.dumps({"type": "SAY", "payload": {"room": "room", "text": "local"}}))
            await ann.send(json.dumps({"type": "SAY", "payload": {"room": "h:room", "text": "kept"}}))
            got = await _frames(ann)
            assert broker_a.state is BrokerState.DOWN
    assert got[0] == {"type": "ROOM_MSG", "payload": {"room": "room", "text": "local"}}
    assert (got[1]["type"], got[1]["payload"]["code"]) == ("ERROR", "UNAVAILABLE")
    assert got[1]["payload"]["details"] == {"delivered": "local"}
    assert (got[2]["type"], got[2]["payload"]["code"]) == ("ERROR", "UNAVAILABLE")
    assert "details" not in got[2]["payload"]
    assert len(got) == 3
