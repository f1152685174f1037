"""``asgi_app`` under each real ASGI host (uvicorn's three WebSocket implementations,
hypercorn), over real sockets on 127.0.0.1: what the host adds or may lose at the edges
(the upgrade, refusals, sizes, closes, HTTP paths, lifespan). The protocol itself runs over
the same hosts in the conformance suite (tests/protocol, ``wire`` fixture)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.asgi.hosts import HOSTS, Host, running
from tests.asgi.served import Echo, build_router
from tests.protocol.wire import WAIT, http_exchange
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wskit.asgi import AsgiApp, asgi_app


@pytest.fixture(params=HOSTS)
def host_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def closes() -> list[int | None]:
    return []


@contextlib.asynccontextmanager
async def _serve(host_name: str, closes: list[int | None], **options: Any) -> AsyncIterator[tuple[AsgiApp, Host]]:
    app = asgi_app(build_router(closes), env={}, **options)
    async with running(app, host_name) as host:
        yield app, host


@pytest.fixture
async def served(host_name: str, closes: list[int | None]) -> AsyncIterator[tuple[AsgiApp, Host]]:
    async with _serve(host_name, closes) as pair:
        yield pair


async def _rpc(ws: ClientConnection, cid: str, text: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": cid}, "payload": {"text": text}}))
    async with asyncio.timeout(WAIT):
        answer: dict[str, Any] = json.loads(await ws.recv())
    return answer


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        got: dict[str, Any] = json.loads(await ws.recv())
    return got


async def test_echo_rpc_event_and_client_id_header(served: tuple[AsgiApp, Host]) -> None:
    """An RPC is answered with its correlationId, an event's answer arrives, and the 101
    carries the x-client-id the server assigned."""
    _, host = served
    async with connect(host.url(), open_timeout=WAIT) as ws:
        assert ws.response is not None
        assert len(ws.response.headers.get("x-client-id", "")) == 36
        assert await _rpc(ws, "c1", "hi") == {
            "type": "ECHO_OK",
            "meta": {"correlationId": "c1"},
            "payload": {"text": "hi"},
        }
        await ws.send(json.dumps({"type": "POKE", "payload": {"text": "x"}}))
        assert await _recv(ws) == {"type": "POKED", "meta": {}, "payload": {"text": "x"}}


async def test_pubsub_between_two_clients(served: tuple[AsgiApp, Host]) -> None:
    """A publish by one client reaches another subscribed to the room (and the sender)."""
    _, host = served
    async with connect(host.url(), open_timeout=WAIT) as a, connect(host.url(), open_timeout=WAIT) as b:
        for ws in (a, b):
            await ws.send(json.dumps({"type": "JOIN", "payload": {"room": "r"}}))
            assert (await _recv(ws))["type"] == "JOINED"
        await a.send(json.dumps({"type": "SAY", "payload": {"room": "r", "text": "hello"}}))
        expected = {"type": "ROOM_MSG", "payload": {"room": "r", "text": "hello"}}
        assert await _recv(b) == expected
        assert await _recv(a) == expected


async def test_invalid_frame_is_answered(served: tuple[AsgiApp, Host]) -> None:
    """A frame that is not JSON gets ERROR INVALID_ARGUMENT, and the connection stays usable."""
    _, host = served
    async with connect(host.url(), open_timeout=WAIT) as ws:
        await ws.send("not json")
        got = await _recv(ws)
        assert (got["type"], got["payload"]["code"]) == ("ERROR", "INVALID_ARGUMENT")
        assert (await _rpc(ws, "c2", "still"))["type"] == "ECHO_OK"


async def test_bearer_subprotocol_is_never_echoed(served: tuple[AsgiApp, Host]) -> None:
    """Offered ``bearer.<token>`` and ``chat``, the server accepts with ``chat``."""
    _, host = served
    async with connect(host.url(), subprotocols=["bearer.s3cret", "chat"], open_timeout=WAIT) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"


@pytest.mark.parametrize(
    ("options", "headers", "status"),
    [
        ({"allowed_origins": "https://ok.example"}, {"Origin": "https://evil.example"}, 403),
        ({"authenticate": lambda request: None}, {}, 401),
    ],
    ids=["origin-403", "authenticate-401"],
)
async def test_refusals_are_http_statuses(
    host_name: str, closes: list[int | None], options: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    """Refusals at upgrade are real HTTP statuses (every host tested has websocket.http.response)."""
    async with _serve(host_name, closes, **options) as (_, host):
        got, _, body = await http_exchange(host.port, "/", upgrade=True, headers=headers)
        assert got == status
        assert body in (b"Forbidden", b"Unauthorized")


async def test_per_ip_cap_is_429(host_name: str, closes: list[int | None]) -> None:
    """MAX_CONNECTIONS_PER_IP: the connection over the cap gets HTTP 429, the first lives on."""
    async with (
        _serve(host_name, closes, max_connections_per_ip=1) as (_, host),
        connect(host.url(), open_timeout=WAIT) as ws,
    ):
        with pytest.raises(InvalidStatus) as refused:
            await connect(host.url(), open_timeout=WAIT)
        assert refused.value.response.status_code == 429
        assert (await _rpc(ws, "c3", "ok"))["type"] == "ECHO_OK"


async def test_oversize_frame_closes_1009(host_name: str, closes: list[int | None]) -> None:
    """A frame over max_payload_bytes closes the connection with 1009; on_close sees 1009."""
    async with _serve(host_name, closes, max_payload_bytes=1000) as (_, host):
        async with connect(host.url(), open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "x"}, "payload": {"text": "é" * 600}}))
            with pytest.raises(ConnectionClosed) as closed:
                await _recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with asyncio.timeout(WAIT):
            while not closes:  # noqa: ASYNC110 - bounded; on_close runs on the server's side
                await asyncio.sleep(0.01)
        assert closes == [1009]


async def test_client_close_is_echoed(host_name: str, closes: list[int | None]) -> None:
    """The peer's close code comes back in the server's close frame."""
    async with _serve(host_name, closes) as (_, host), connect(host.url(), open_timeout=WAIT, close_timeout=WAIT) as ws:
        await ws.close(4001, "bye")
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None, "no close frame came back"
        assert rcvd.code == 4001


@pytest.mark.parametrize(
    ("path", "options", "status"),
    [
        ("/healthz", {}, 200),
        ("/readyz", {}, 200),
        ("/", {}, 400),  # a plain GET on the upgrade path
        ("/elsewhere", {"path": "/ws"}, 404),
        ("/ws", {"path": "/ws"}, 400),
    ],
)
async def test_http_paths(
    host_name: str, closes: list[int | None], path: str, options: dict[str, Any], status: int
) -> None:
    """The app's own HTTP answers, as serve() gives them."""
    async with _serve(host_name, closes, **options) as (_, host):
        got, _, _ = await http_exchange(host.port, path, upgrade=False)
        assert got == status


async def test_ws_path_refuses_other_paths_404(host_name: str, closes: list[int | None]) -> None:
    """With ``path=`` (WS_PATH) set, an upgrade elsewhere is HTTP 404, and on the path it works."""
    async with _serve(host_name, closes, path="/ws") as (_, host):
        got, _, _ = await http_exchange(host.port, "/other", upgrade=True)
        assert got == 404
        async with connect(host.url("/ws"), open_timeout=WAIT) as ws:
            assert (await _rpc(ws, "c4", "ok"))["type"] == "ECHO_OK"


async def test_root_path_is_honoured(host_name: str, closes: list[int | None]) -> None:
    """Behind a prefix (the host's root_path), WS_PATH and the HTTP paths are relative to it."""
    app = asgi_app(build_router(closes), env={}, path="/ws")
    async with running(app, host_name, root_path="/api") as host:
        # uvicorn: a proxy stripped the prefix, the scope adds it back; hypercorn: the prefix
        # stays in the URL
        url_prefix = "/api" if host_name == "hypercorn" else ""
        async with connect(host.url(f"{url_prefix}/ws"), open_timeout=WAIT) as ws:
            assert (await _rpc(ws, "c5", "ok"))["type"] == "ECHO_OK"
        got, _, _ = await http_exchange(host.port, f"{url_prefix}/healthz", upgrade=False)
        assert got == 200


async def test_lifespan_starts_and_stops_the_runtime(host_name: str, closes: list[int | None]) -> None:
    """lifespan.startup starts the runtime (router.publish works, readyz 200); the host's
    stop runs lifespan.shutdown, which stops it (its connections closed, on_close ran)."""
    router = build_router(closes)
    app = asgi_app(router, env={})
    async with running(app, host_name) as host:
        assert app.started and app.runtime.serving
        async with connect(host.url(), open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"type": "JOIN", "payload": {"room": "news"}}))
            assert (await _recv(ws))["type"] == "JOINED"
            await router.publish("news", Echo.response, {"text": "from outside"})
            assert (await _recv(ws))["payload"] == {"text": "from outside"}
    assert not app.started and not app.runtime.serving
    assert len(closes) == 1


async def test_readyz_503_while_draining(served: tuple[AsgiApp, Host]) -> None:
    """/readyz answers 503 once a graceful shutdown began (admission closed)."""
    app, host = served
    app.runtime.admission.closed = True
    try:
        got, _, body = await http_exchange(host.port, "/readyz", upgrade=False)
    finally:
        app.runtime.admission.closed = False
    assert (got, body) == (503, b"draining")


async def test_shutdown_with_open_connections_drains_them(served: tuple[AsgiApp, Host]) -> None:
    """``app.shutdown()`` (lifespan.shutdown, or a parent's) while connections are open: the
    notice first, the RPC in flight still answered within the grace period, then close 1001."""
    app, host = served
    async with connect(host.url(), open_timeout=WAIT) as ws:
        await ws.send(json.dumps({"type": "SLOW", "meta": {"correlationId": "s"}, "payload": {"s": 0.2}}))
        await asyncio.sleep(0.05)  # the RPC is running
        stopping = asyncio.ensure_future(app.shutdown(grace_ms=2000))
        notice = await _recv(ws)
        assert notice["type"] == "SERVER_SHUTDOWN"
        assert (await _recv(ws))["type"] == "SLOW_OK"
        with pytest.raises(ConnectionClosed) as closed:
            await _recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        async with asyncio.timeout(WAIT):
            await stopping
    assert not app.started


async def test_authenticate_sees_the_request(host_name: str, closes: list[int | None]) -> None:
    """``authenticate(request)`` gets the path (below the mount), case-insensitive headers, the
    first value of each query parameter, cookies, the client IP and the offered subprotocols."""
    seen: list[Any] = []

    def authenticate(request: Any) -> dict[str, str]:
        seen.append(request)
        return {"user_id": request.query_params["user"]}

    async with _serve(host_name, closes, authenticate=authenticate) as (_, host):
        headers = {"X-Custom": "yes", "Cookie": "session=abc; theme=dark"}
        url = host.url("/room/1?user=ada&user=bob&empty=")
        async with connect(url, additional_headers=headers, subprotocols=["chat"], open_timeout=WAIT):  # type: ignore[list-item]
            pass
    (request,) = seen
    assert request.path == "/room/1"
    assert request.headers["x-custom"] == request.headers["X-CUSTOM"] == "yes"
    assert dict(request.query_params) == {"user": "ada", "empty": ""}
    assert dict(request.cookies) == {"session": "abc", "theme": "dark"}
    assert request.client_ip == "127.0.0.1"
    assert request.subprotocols == ("chat",)
