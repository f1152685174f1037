"""``serve()``'s guards under each ASGI host, switched on by the same environment variables
(``asgi_app(router, env=...)`` reads them as ``serve()`` reads ``os.environ``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from tests.asgi.hosts import HOSTS, Host, running
from tests.asgi.served import build_router
from tests.protocol.wire import WAIT
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wskit import Context, Router, message
from wskit.asgi import asgi_app
from wskit.guards import require_auth

SECRET = "s" * 40
Secret = message("SECRET")


def _token(user: str, *, exp_in: float = 60.0) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + exp_in)}, SECRET, algorithm="HS256")


def _jwt_router() -> Router[Any]:
    router = build_router()

    @router.on(Secret, middleware=[require_auth])
    async def secret(ctx: Context[None]) -> None:
        await ctx.send(Secret)

    return router


@pytest.fixture(params=HOSTS)
def host_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def _serve(host_name: str, env: dict[str, str], router: Router[Any] | None = None) -> AsyncIterator[Host]:
    async with running(asgi_app(router or build_router(), env=env), host_name) as host:
        yield host


async def _request(ws: ClientConnection, kind: str, payload: dict[str, Any], cid: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": kind, "meta": {"correlationId": cid}, "payload": payload}))
    async with asyncio.timeout(WAIT):
        answer: dict[str, Any] = json.loads(await ws.recv())
    return answer


async def test_message_rate_limit_from_env(host_name: str) -> None:
    """MESSAGE_RATE_LIMIT=3: the 4th message in the minute gets RESOURCE_EXHAUSTED."""
    async with _serve(host_name, {"MESSAGE_RATE_LIMIT": "3"}) as host, connect(host.url(), open_timeout=WAIT) as ws:
        answers = [await _request(ws, "ECHO", {"text": str(i)}, f"c{i}") for i in range(4)]
    assert [a["type"] for a in answers] == ["ECHO_OK"] * 3 + ["RPC_ERROR"]
    assert answers[3]["payload"]["code"] == "RESOURCE_EXHAUSTED"


async def test_jwt_secret_from_env_at_upgrade_and_by_auth_message(host_name: str) -> None:
    """JWT_SECRET: a token in the query authenticates, a bad one is HTTP 401, and an anonymous
    connection authenticates later by the AUTH message wskit adds."""
    async with _serve(host_name, {"JWT_SECRET": SECRET}, _jwt_router()) as host:
        async with connect(host.url(f"/?access_token={_token('ada')}"), open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"type": "SECRET"}))
            async with asyncio.timeout(WAIT):
                assert json.loads(await ws.recv())["type"] == "SECRET"
        with pytest.raises(InvalidStatus) as refused:
            await connect(host.url("/?access_token=not.a.token"), open_timeout=WAIT)
        assert refused.value.response.status_code == 401
        async with connect(host.url(), open_timeout=WAIT) as ws:
            ok = await _request(ws, "AUTH", {"token": _token("bob")}, "a")
            assert ok["type"] == "AUTH_OK" and ok["payload"]["user_id"] == "bob"


async def test_auth_timeout_from_env_closes_1008(host_name: str) -> None:
    """JWT_SECRET + AUTH_TIMEOUT_MS: a connection that never authenticates is closed with 1008."""
    env = {"JWT_SECRET": SECRET, "AUTH_TIMEOUT_MS": "300"}
    async with _serve(host_name, env, _jwt_router()) as host, connect(host.url(), open_timeout=WAIT) as lazy:
        async with asyncio.timeout(WAIT):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await lazy.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_per_ip_cap_and_origins_from_env(host_name: str) -> None:
    """MAX_CONNECTIONS_PER_IP and ALLOWED_ORIGINS from the environment: 429 and 403."""
    env = {"MAX_CONNECTIONS_PER_IP": "1", "ALLOWED_ORIGINS": "https://ok.example"}
    async with _serve(host_name, env) as host:
        with pytest.raises(InvalidStatus) as foreign:
            await connect(host.url(), origin="https://evil.example", open_timeout=WAIT)  # type: ignore[arg-type]
        assert foreign.value.response.status_code == 403
        async with connect(host.url(), origin="https://ok.example", open_timeout=WAIT):  # type: ignore[arg-type]
            with pytest.raises(InvalidStatus) as capped:
                await connect(host.url(), origin="https://ok.example", open_timeout=WAIT)  # type: ignore[arg-type]
            assert capped.value.response.status_code == 429
