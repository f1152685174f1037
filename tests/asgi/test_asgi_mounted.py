"""``asgi_app`` mounted in FastAPI and Starlette beside their own routes: driven by real
sockets under uvicorn, and by Starlette's own ``TestClient``; lifespan adopted by the parent
(``FastAPI(lifespan=app.lifespan)``) or not forwarded at all (start on first use)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from tests.asgi.hosts import running
from tests.asgi.served import Echo, build_router
from tests.protocol.wire import WAIT, http_exchange
from websockets.asyncio.client import connect

from wskit.asgi import AsgiApp, asgi_app
from wskit.transports.asgi import Message

ECHO = {"type": "ECHO", "meta": {"correlationId": "1"}, "payload": {"text": "hi"}}
ECHO_OK = {"type": "ECHO_OK", "meta": {"correlationId": "1"}, "payload": {"text": "hi"}}


def _fastapi(wskit_app: AsgiApp, *, adopt: bool) -> FastAPI:
    api = FastAPI(lifespan=wskit_app.lifespan) if adopt else FastAPI()

    @api.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    api.mount("/ws", wskit_app)
    return api


@pytest.mark.parametrize("adopt", [True, False], ids=["adopted-lifespan", "first-use"])
async def test_fastapi_mount_under_uvicorn(adopt: bool) -> None:
    """Under uvicorn, FastAPI's own route and wskit at /ws/ (upgrade, /ws/healthz) share the
    port; wskit starts by the adopted lifespan or on first use, and an adopted lifespan stops it."""
    wskit_app = asgi_app(build_router(), env={})
    async with running(_fastapi(wskit_app, adopt=adopt), "uvicorn-websockets-sansio") as host:
        assert wskit_app.started is adopt
        status, _, body = await http_exchange(host.port, "/hello", upgrade=False)
        assert (status, json.loads(body)) == (200, {"hello": "world"})
        assert (await http_exchange(host.port, "/ws/healthz", upgrade=False))[0] == 200
        assert (await http_exchange(host.port, "/ws/", upgrade=False))[0] == 400
        async with connect(host.url("/ws/"), open_timeout=WAIT) as ws:
            await ws.send(json.dumps(ECHO))
            async with asyncio.timeout(WAIT):
                assert json.loads(await ws.recv()) == ECHO_OK
        assert wskit_app.started
    assert wskit_app.started is not adopt  # only the adopted lifespan stopped it


async def test_fastapi_mount_honours_root_path() -> None:
    """Behind a proxy prefix (uvicorn --root-path /api), the mount still serves /ws/."""
    wskit_app = asgi_app(build_router(), env={}, path="/")
    async with running(_fastapi(wskit_app, adopt=True), "uvicorn-websockets-sansio", root_path="/api") as host:
        async with connect(host.url("/ws/"), open_timeout=WAIT) as ws:
            await ws.send(json.dumps(ECHO))
            async with asyncio.timeout(WAIT):
                assert json.loads(await ws.recv()) == ECHO_OK
        assert (await http_exchange(host.port, "/ws/readyz", upgrade=False))[0] == 200


def test_starlette_testclient_with_adopted_lifespan() -> None:
    """Starlette's TestClient drives the mounted app: RPC, /ws/readyz, and a refusal as an
    HTTP status; leaving the client stops wskit through the adopted lifespan."""
    router = build_router()
    wskit_app = asgi_app(router, env={}, allowed_origins="https://ok.example")
    with TestClient(_fastapi(wskit_app, adopt=True)) as client:
        assert wskit_app.started
        assert client.get("/hello").json() == {"hello": "world"}
        assert client.get("/ws/readyz").status_code == 200
        with client.websocket_connect("/ws/", headers={"origin": "https://ok.example"}) as ws:
            assert ws.accepted_subprotocol is None
            ws.send_text(json.dumps(ECHO))
            assert ws.receive_json() == ECHO_OK
        from starlette.testclient import WebSocketDenialResponse

        with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/ws/"):
            pass
        assert denied.value.status_code == 403
    assert not wskit_app.started


def test_starlette_testclient_mounted_without_lifespan_starts_on_first_use() -> None:
    """Mounted in a Starlette app that forwards no lifespan to it, wskit starts at its first
    connection (and stays usable for the next)."""
    wskit_app = asgi_app(build_router(), env={})

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    parent = Starlette(routes=[Route("/", home), Mount("/ws", app=wskit_app)])
    with TestClient(parent) as client:
        assert not wskit_app.started
        assert client.get("/").text == "home"
        for _ in range(2):
            with client.websocket_connect("/ws/") as ws:
                ws.send_text(json.dumps(ECHO))
                assert ws.receive_json() == ECHO_OK
        assert wskit_app.started
        # the parent's own shutdown cannot reach it: its lifespan stops it when entered
        client.portal.call(wskit_app.shutdown)  # type: ignore[union-attr]
    assert not wskit_app.started


def test_starlette_testclient_close_code_reaches_on_close() -> None:
    """A close from the client reaches on_close with its code through the TestClient too."""
    closes: list[int | None] = []
    wskit_app = asgi_app(build_router(closes), env={})
    with TestClient(Starlette(routes=[Mount("/ws", app=wskit_app)], lifespan=wskit_app.lifespan)) as client:
        with client.websocket_connect("/ws/") as ws:
            ws.close(4002)
        # the app runs in the client's thread; give its loop a moment to finish the connection
        for _ in range(100):
            if closes:
                break
            client.portal.call(asyncio.sleep, 0.01)  # type: ignore[union-attr]
    assert closes == [4002]


async def test_refusal_without_the_extension_closes_before_accept() -> None:
    """A host without websocket.http.response: a refusal is a close before accept (1008; the
    host answers the handshake with HTTP 403), sent after the connect message."""
    wskit_app = asgi_app(build_router(), env={}, authenticate=lambda request: None)
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "websocket.connect"})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "root_path": "", "headers": [], "query_string": b"", "client": None}
    async with asyncio.timeout(WAIT), wskit_app.lifespan():
        await wskit_app(scope, inbox.get, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


def test_testclient_websocket_disconnect_on_server_close() -> None:
    """A close the server starts (1009 over the size limit) reaches the TestClient's socket."""
    wskit_app = asgi_app(build_router(), env={}, max_payload_bytes=100)
    with TestClient(Starlette(routes=[Mount("/ws", app=wskit_app)], lifespan=wskit_app.lifespan)) as client:
        with client.websocket_connect("/ws/") as ws:
            ws.send_text(json.dumps({**ECHO, "payload": {"text": "x" * 200}}))
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 1009
    assert Echo.response.type == "ECHO_OK"


async def test_lifespan_startup_failure_is_reported() -> None:
    """A runtime that cannot start answers lifespan.startup.failed with the reason (here: the
    router is served already, by another asgi_app in this process)."""
    router = build_router()
    first = asgi_app(router, env={})
    second = asgi_app(router, env={})
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async with asyncio.timeout(WAIT), first.lifespan():
        await second({"type": "lifespan"}, inbox.get, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "already served" in sent[0]["message"]
    assert not second.started


async def test_lifespan_messages_start_and_stop() -> None:
    """lifespan.startup -> complete (started), lifespan.shutdown -> complete (stopped)."""
    app = asgi_app(build_router(), env={})
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            assert app.started and app.runtime.serving
            await inbox.put({"type": "lifespan.shutdown"})

    await inbox.put({"type": "lifespan.startup"})
    async with asyncio.timeout(WAIT):
        await app({"type": "lifespan"}, inbox.get, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not app.started and not app.runtime.serving


def test_one_app_lives_twice_on_two_event_loops() -> None:
    """Entered by one TestClient after another (each runs its own event loop), the app starts,
    serves and stops each time."""
    wskit_app = asgi_app(build_router(), env={})
    parent = Starlette(routes=[Mount("/ws", app=wskit_app)], lifespan=wskit_app.lifespan)
    for _ in range(2):
        with TestClient(parent) as client, client.websocket_connect("/ws/") as ws:
            ws.send_text(json.dumps(ECHO))
            assert ws.receive_json() == ECHO_OK
        assert not wskit_app.started
