"""Client subscriptions pass the guards every message passes: rate limits, require_auth,
and the shutdown's UNAVAILABLE (a subscribe must not be a way around them)."""

from __future__ import annotations

from typing import Any

from tests.subscriptions.peers import MemoryPeer, SocketPeer, subscribe_frame
from tests.support.serving import serving
from websockets.asyncio.client import connect

from wskit import Router
from wskit.guards.auth import require_auth
from wskit.testing import TestClient

__all__: list[str] = []


def _router() -> Router[Any]:
    router: Router[Any] = Router()
    router.allow_subscribe("feed:*")
    return router


async def test_require_auth_guards_subscribe() -> None:
    """Global require_auth refuses an anonymous connection's subscribe (UNAUTHENTICATED) and
    lets a signed-in one through."""
    router = _router()
    router.use(require_auth)
    async with TestClient(router) as anonymous, TestClient(router, data={"user_id": "u1"}) as user:
        await anonymous.send_raw(_json(subscribe_frame("c1", "feed:a")))
        refused = await MemoryPeer(anonymous).recv()
        assert (refused["type"], refused["payload"]["code"]) == ("RPC_ERROR", "UNAUTHENTICATED")
        assert refused["meta"] == {"correlationId": "c1"}
        peer = MemoryPeer(user)
        await peer.send(subscribe_frame("c1", "feed:a"))
        assert (await peer.recv())["type"] == "$ws:subscribed"


async def test_global_middleware_sees_subscribe_frames() -> None:
    """Application middleware registered with router.use runs for $ws:subscribe (ctx.type says
    which), so an application can log or veto them like any message."""
    router = _router()
    seen: list[str] = []

    @router.use
    async def record(ctx: Any, call_next: Any) -> None:
        seen.append(ctx.type)
        await call_next()

    async with TestClient(router) as client:
        peer = MemoryPeer(client)
        await peer.send(subscribe_frame("c1", "feed:a"))
        await peer.recv()
    assert seen == ["$ws:subscribe"]


async def test_subscribe_counts_against_the_message_rate_limit() -> None:
    """With MESSAGE_RATE_LIMIT, subscribe frames spend the budget: past it, RESOURCE_EXHAUSTED
    with retryAfterMs, to the frame's correlationId (over a real socket)."""
    async with serving(_router(), "serve", message_rate_limit=3) as server, connect(server.url) as ws:
        peer = SocketPeer(ws)
        answers = []
        for n in range(5):
            await peer.send(subscribe_frame(f"c{n}", f"feed:{n}"))
            answers.append(await peer.recv())
    assert [a["type"] for a in answers[:3]] == ["$ws:subscribed"] * 3
    over = answers[3]
    assert (over["type"], over["payload"]["code"]) == ("RPC_ERROR", "RESOURCE_EXHAUSTED")
    assert over["meta"] == {"correlationId": "c3"} and over["payload"]["retryAfterMs"] > 0


async def test_draining_answers_unavailable() -> None:
    """During a graceful shutdown a subscribe is answered UNAVAILABLE (and a bad correlationId
    does not break that answer)."""
    router = _router()
    async with TestClient(router) as client:
        peer = MemoryPeer(client)
        router.runtime.dispatcher.draining = True
        await peer.send(subscribe_frame("c1", "feed:a"))
        answer = await peer.recv()
        assert (answer["type"], answer["meta"], answer["payload"]["code"]) == (
            "RPC_ERROR",
            {"correlationId": "c1"},
            "UNAVAILABLE",
        )
        await peer.send({"type": "$ws:subscribe", "meta": {"correlationId": 5}, "payload": {"topic": "feed:a"}})
        answer = await peer.recv()
        assert (answer["type"], answer["payload"]["code"]) == ("ERROR", "UNAVAILABLE")


def _json(frame: dict[str, Any]) -> str:
    import json

    return json.dumps(frame)
