"""Connections that idle, never authenticate, or outlive their token are closed, saying why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from tests.conftest import TIME_SCALE
from tests.production.conftest import request, ws_client
from tests.support.waiting import PATIENCE_S, consistently
from websockets.exceptions import ConnectionClosed

from wskit import Server


async def _closed(ws: Any, timeout: float = PATIENCE_S) -> tuple[int | None, str]:
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


async def test_idle_connection_is_closed_with_a_reason(make_server: Any) -> None:
    """IDLE_TIMEOUT_MS: no application message for that long -> close 1001 "idle timeout"."""
    server: Server = await make_server(idle_timeout_ms=300)
    async with ws_client(server.url) as ws:
        started = time.monotonic()
        code, reason = await _closed(ws)
    assert code == 1001
    assert "idle timeout" in reason
    assert time.monotonic() - started > 0.25, "closed before IDLE_TIMEOUT_MS"


async def test_messages_keep_a_connection_alive_but_heartbeats_do_not(make_server: Any) -> None:
    """Application messages reset the idle timer; __heartbeat frames are not activity."""
    # a message every 0.3 idle timeouts, for 1.5 of them: a loaded machine can be 0.7 late
    idle = 1.0 * TIME_SCALE
    server: Server = await make_server(idle_timeout_ms=int(idle * 1000))
    async with ws_client(server.url) as ws:
        for i in range(5):
            await asyncio.sleep(0.3 * idle)
            assert (await request(ws, "ECHO", {"text": str(i)}, cid=f"c{i}"))["type"] == "ECHO_OK"
    async with ws_client(server.url) as ws:

        async def beat() -> None:
            while True:  # until the close (bounded by _closed's timeout)
                await ws.send(json.dumps({"type": "__heartbeat"}))
                await asyncio.sleep(0.1 * idle)

        beating = asyncio.ensure_future(beat())
        code, _ = await _closed(ws)
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await beating
        assert code == 1001


async def test_unauthenticated_connection_is_closed_after_auth_timeout(make_server: Any) -> None:
    """AUTH_TIMEOUT_MS: a connection without a user_id is closed 1008; an authenticated one stays."""

    def authenticate(request: Any) -> dict[str, str]:
        user = request.query_params.get("user")
        return {"user_id": user} if user else {}

    server: Server = await make_server(authenticate=authenticate, auth_timeout_ms=250)
    async with ws_client(server.url) as anonymous, ws_client(server.url + "?user=ada") as known:
        code, reason = await _closed(anonymous)
        assert code == 1008
        assert "authentication timeout" in reason
        # the known one connected just after: its timer, had it one, runs out in this window
        await consistently(lambda: known.close_code is None, what="the authenticated connection stays open")
        assert (await request(known, "ECHO", {"text": "still"}))["type"] == "ECHO_OK"


async def test_token_expiry_is_enforced_while_connected(make_server: Any) -> None:
    """data["token_exp"] in the past closes the connection 1008 with a reason naming the token."""

    def authenticate(request: Any) -> dict[str, Any]:
        return {"user_id": "ada", "token_exp": time.time() + 0.4}

    server: Server = await make_server(authenticate=authenticate)
    server.watchdog.token_leeway_s = 0.0
    async with ws_client(server.url) as ws:
        assert (await request(ws, "ECHO", {"text": "before"}))["type"] == "ECHO_OK"
        code, reason = await _closed(ws)
    assert code == 1008
    assert "token expired" in reason
