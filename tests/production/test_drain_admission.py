"""Review 17: the graceful drain and connections whose upgrade straddles its start."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.production.conftest import build_router
from tests.support.waiting import eventually
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from wskit import Server

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_an_upgrade_admitted_while_draining_is_refused_or_told(transport: str) -> None:
    """An upgrade whose (async) authenticate began before the shutdown and ends during the
    drain (held open by another connection's 1.5 s RPC):
    Admission.admit checks ``closed`` only before authenticate, so the connection is
    accepted after every notice went out. It must either be refused (503, as every other
    upgrade during the drain) or get the SERVER_SHUTDOWN notice like the connections that
    were already open; today it gets 101, no notice, UNAVAILABLE to whatever it sends, and
    then the shutdown's close."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def authenticate(request: Any) -> dict[str, Any]:
        if request.query_params.get("late"):
            entered.set()
            await release.wait()
        return {"user_id": "u"}

    server = Server(build_router(), port=0, env={}, transport=transport, authenticate=authenticate)
    await server.start()
    frames: list[dict[str, Any]] = []
    outcome: list[str] = []

    async def client() -> None:
        try:
            async with connect(server.url + "?late=1", open_timeout=10, close_timeout=2) as ws:
                outcome.append("accepted")
                await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "c"}, "payload": {"text": "x"}}))
                while True:
                    frames.append(json.loads(await ws.recv()))
        except InvalidStatus as exc:
            outcome.append(f"refused {exc.response.status_code}")
        except InvalidMessage:
            outcome.append("no HTTP answer")
        except ConnectionClosed:
            pass

    # a connection already open keeps the drain going: an RPC that takes 1.5 s
    early = await connect(server.url, open_timeout=5, close_timeout=2)
    await early.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "s"}, "payload": {"ms": 1500}}))
    task = asyncio.create_task(client())
    try:
        async with asyncio.timeout(10):
            await entered.wait()
        shutdown = asyncio.create_task(server.shutdown(grace_ms=3000))
        await eventually(lambda: server.runtime is not None and server.runtime.admission.closed)
        release.set()
        async with asyncio.timeout(15):
            await shutdown
            await task
    finally:
        release.set()
        task.cancel()
        await early.close()
        await server.stop()
    types = [frame["type"] for frame in frames]
    assert outcome == ["refused 503"] or "SERVER_SHUTDOWN" in types, (outcome, frames)
