"""A ban holds for users who sign in after the upgrade: by AUTH message or ctx.assign_data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from pydantic import BaseModel
from tests.production.conftest import build_router, request, ws_client
from tests.support.serving import SERVING, Served, serving
from websockets.exceptions import ConnectionClosed

from wskit import Context, Router, message

SECRET = "b" * 40


class Login(BaseModel):
    user: str


#: an application's own sign-in: assign_data(user_id=...) from a handler
LoginMsg = message("LOGIN", Login)
LoggedIn = message("LOGGED_IN", Login)


def _token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + 60)}, SECRET, algorithm="HS256")


def _router() -> Router[Any]:
    router = build_router()

    @router.on(LoginMsg)
    async def login(ctx: Context[Login]) -> None:
        ctx.assign_data(user_id=ctx.payload.user)
        await ctx.send(LoggedIn, ctx.payload)

    return router


@pytest.fixture(params=[(broker, way) for broker in ("memory", "redis") for way in SERVING], ids=lambda p: "-".join(p))
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Served, Served]]:
    """Two servers sharing a broker: one where users connect, one that bans (memory: the same);
    once per way wskit is hosted."""
    broker, way = request.param
    async with contextlib.AsyncExitStack() as stack:
        if broker == "memory":
            server = await stack.enter_async_context(serving(_router(), way, jwt_secret=SECRET))
            yield server, server
            return
        from wskit.pubsub import RedisBroker

        url = request.getfixturevalue("redis_url")
        namespace = f"wskit-bans-{uuid.uuid4().hex[:8]}"
        first, second = [
            await stack.enter_async_context(
                serving(_router(), way, jwt_secret=SECRET, broker=RedisBroker(url, namespace=namespace))
            )
            for _ in range(2)
        ]
        yield first, second


async def _closed(ws: Any) -> tuple[int | None, str]:
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


async def test_banned_user_cannot_sign_in_by_auth_message(pair: tuple[Served, Served]) -> None:
    """AUTH with a banned user's valid token: RPC_ERROR PERMISSION_DENIED {reason: banned}, then
    close 1008 "banned"; the identity is never assigned. Another user signs in as usual."""
    server, banning = pair
    await banning.router.ban_user("mallory")
    async with ws_client(server.url) as ws:
        answer = await request(ws, "AUTH", {"token": _token("mallory")})
        assert answer["type"] == "RPC_ERROR"
        assert answer["payload"]["code"] == "PERMISSION_DENIED"
        assert answer["payload"]["details"] == {"reason": "banned"}
        assert await _closed(ws) == (1008, "banned")
    assert "mallory" not in server.router.hub.users
    async with ws_client(server.url) as ws:
        assert (await request(ws, "AUTH", {"token": _token("alice")}))["type"] == "AUTH_OK"
        assert (await request(ws, "ECHO", {"text": "in"}, cid="e"))["type"] == "ECHO_OK"


async def test_banned_user_set_by_assign_data_is_closed(pair: tuple[Served, Served]) -> None:
    """ctx.assign_data(user_id=<banned>) from the application's own login closes the connection
    with 1008 "banned" (checked in the background); other users stay connected."""
    server, banning = pair
    await banning.router.ban_user("mallory")
    async with ws_client(server.url) as ws:
        await ws.send(json.dumps({"type": "LOGIN", "payload": {"user": "mallory"}}))
        code, reason = await _closed(ws)
    assert (code, reason) == (1008, "banned")
    async with ws_client(server.url) as ws:
        await ws.send(json.dumps({"type": "LOGIN", "payload": {"user": "alice"}}))
        async with asyncio.timeout(5):
            assert json.loads(await ws.recv())["type"] == "LOGGED_IN"
        await asyncio.sleep(0.2)
        assert (await request(ws, "ECHO", {"text": "still"}, cid="e"))["type"] == "ECHO_OK"


async def test_unbanned_user_signs_in_again(pair: tuple[Served, Served]) -> None:
    """After unban_user the same AUTH succeeds (the check reads the live ban list)."""
    server, banning = pair
    await banning.router.ban_user("mallory")
    await banning.router.unban_user("mallory")
    async with ws_client(server.url) as ws:
        assert (await request(ws, "AUTH", {"token": _token("mallory")}))["type"] == "AUTH_OK"
