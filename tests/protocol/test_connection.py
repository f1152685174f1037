"""PROTOCOL.md, "Connection" and "Close codes": the upgrade, lifecycle hooks, closes and limits."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
from tests.protocol.wire import (
    WAIT,
    App,
    Peer,
    SocketPeer,
    Wire,
    assert_usable,
    build_app,
    http_exchange,
    recv,
    send_json,
    wait_closed,
)
from websockets.asyncio.client import connect

from wskit import Context, Router, Server
from wskit.static import WSKIT_JS, WSKIT_JS_HEADERS

# -- the upgrade (real sockets only) -------------------------------------------------------


async def test_upgrade_response_carries_uuid4_client_id(socket_wire: Wire) -> None:
    """The 101 response carries x-client-id: a UUID4."""
    endpoint = await socket_wire.serve(build_app().router)
    peer = await endpoint.connect()
    assert isinstance(peer, SocketPeer)
    header = peer.client_id_header
    assert header is not None
    assert uuid.UUID(header).version == 4
    assert str(uuid.UUID(header)) == header


async def test_client_id_header_is_the_server_assigned_id(socket_wire: Wire) -> None:
    """The x-client-id of the 101 is the id the server uses for the connection (ctx.client_id)."""
    endpoint = await socket_wire.serve(build_app().router)
    peer = await endpoint.connect()
    assert isinstance(peer, SocketPeer)
    await send_json(peer, {"type": "WHOAMI_RPC", "meta": {"correlationId": "w"}, "payload": {}})
    got = await recv(peer)
    assert got["payload"] == {"clientId": peer.client_id_header}


async def test_client_ids_differ_per_connection(socket_wire: Wire) -> None:
    """Each connection gets its own client id."""
    endpoint = await socket_wire.serve(build_app().router)
    first, second = await endpoint.connect(), await endpoint.connect()
    assert isinstance(first, SocketPeer)
    assert isinstance(second, SocketPeer)
    assert first.client_id_header != second.client_id_header


def _token_auth(request: Any) -> dict[str, Any] | None:
    token = request.query_params.get("access_token")
    return {"user": token} if token else None


async def test_authenticate_none_is_http_401_unauthorized(socket_wire: Wire) -> None:
    """authenticate() returning None refuses the upgrade with HTTP 401, body "Unauthorized"."""
    endpoint = await socket_wire.serve(build_app().router, authenticate=_token_auth)
    assert endpoint.server is not None
    status, _, body = await http_exchange(endpoint.server.port, "/?label=reject", upgrade=True)
    assert (status, body) == (401, b"Unauthorized")


async def test_authenticate_data_becomes_connection_data(socket_wire: Wire) -> None:
    """What authenticate() returns is the connection's data (the guarded route lets it through)."""
    endpoint = await socket_wire.serve(build_app().router, authenticate=_token_auth)
    peer = await endpoint.connect(query="?access_token=bob")
    await send_json(peer, {"type": "SECRET", "meta": {}, "payload": {}})
    assert await recv(peer) == {"type": "SECRET_OK", "meta": {}, "payload": {"user": "bob"}}


async def test_async_authenticate_is_awaited(socket_wire: Wire) -> None:
    """An async authenticate() is awaited; None still refuses with 401."""

    async def authenticate(request: Any) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return _token_auth(request)

    endpoint = await socket_wire.serve(build_app().router, authenticate=authenticate)
    assert endpoint.server is not None
    status, _, _ = await http_exchange(endpoint.server.port, "/", upgrade=True)
    assert status == 401
    await assert_usable(await endpoint.connect(query="?access_token=t"))


async def test_plain_get_is_http_400(socket_wire: Wire) -> None:
    """A plain GET that is not an upgrade is answered HTTP 400."""
    endpoint = await socket_wire.serve(build_app().router)
    assert endpoint.server is not None
    status, _, _ = await http_exchange(endpoint.server.port, "/", upgrade=False)
    assert status == 400


async def test_upgrade_accepted_on_any_path(socket_wire: Wire) -> None:
    """Upgrades are accepted on any path no HTTP route takes, as WS-Kit on Bun does."""
    endpoint = await socket_wire.serve(build_app().router)
    assert endpoint.server is not None
    async with connect(f"ws://127.0.0.1:{endpoint.server.port}/some/where", open_timeout=WAIT) as ws:
        await assert_usable(SocketPeer(ws))


async def test_healthz_is_not_refused_as_non_upgrade(socket_wire: Wire) -> None:
    """GET /healthz is one of the server's own HTTP paths: it is answered 200, not 400."""
    endpoint = await socket_wire.serve(build_app().router)
    assert endpoint.server is not None
    status, _, _ = await http_exchange(endpoint.server.port, "/healthz", upgrade=False)
    assert status == 200


async def test_wskit_js_is_served(socket_wire: Wire) -> None:
    """GET /wskit.js answers the browser client shipped in the package, as a cacheable module."""
    endpoint = await socket_wire.serve(build_app().router)
    assert endpoint.server is not None
    status, headers, body = await http_exchange(endpoint.server.port, "/wskit.js", upgrade=False)
    assert status == 200
    assert headers["content-type"].startswith("text/javascript")
    assert "max-age" in headers["cache-control"]
    assert headers["etag"] == WSKIT_JS_HEADERS["ETag"]
    assert body == WSKIT_JS
    assert b"export class Client" in body


async def test_server_sends_transport_pings(socket_wire: Wire, tick: float) -> None:
    """The server sends transport-level pings (ping_interval)."""
    endpoint = await socket_wire.serve(build_app().router, ping_interval=tick)
    assert endpoint.server is not None
    async with aiohttp.ClientSession() as session, session.ws_connect(endpoint.server.url, autoping=False) as ws:
        msg = await ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.PING


async def test_late_pong_closes_the_connection(socket_wire: Wire, tick: float) -> None:
    """A connection that does not answer the transport ping in time is closed by the server."""
    endpoint = await socket_wire.serve(build_app().router, ping_interval=tick)
    assert endpoint.server is not None
    async with aiohttp.ClientSession() as session, session.ws_connect(endpoint.server.url, autoping=False) as ws:
        async with asyncio.timeout(WAIT):
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
                assert msg.type is aiohttp.WSMsgType.PING


async def test_frame_over_max_payload_closes_1009(peer: Peer, other: Peer) -> None:
    """A 2 MiB frame (over the default 1 MiB max_payload_bytes) closes the connection with 1009."""
    await peer.send_text(json.dumps({"type": "ECHO_RPC", "meta": {}, "payload": {"text": "x" * (2 * 1024 * 1024)}}))
    assert (await wait_closed(peer)).code == 1009
    await assert_usable(other)


async def test_max_payload_bytes_option_sets_the_limit(wire: Wire) -> None:
    """max_payload_bytes sets the limit: a frame under it is handled, one over it closes 1009."""
    endpoint = await wire.serve(build_app().router, max_payload_bytes=1000)
    peer = await endpoint.connect()
    under = {"type": "ECHO_RPC", "meta": {"correlationId": "u"}, "payload": {"text": "y" * 900}}
    await send_json(peer, under)
    assert await recv(peer) == {"type": "ECHO_OK", "meta": {"correlationId": "u"}, "payload": {"text": "y" * 900}}
    await send_json(peer, {"type": "ECHO_RPC", "meta": {}, "payload": {"text": "y" * 1100}})
    assert (await wait_closed(peer)).code == 1009


async def test_ctx_close_sends_code_and_reason(peer: Peer, other: Peer) -> None:
    """ctx.close(4000, reason) closes the connection with that code and reason."""
    await send_json(peer, {"type": "BYE", "meta": {}, "payload": {}})
    closed = await wait_closed(peer)
    assert (closed.code, closed.reason) == (4000, "server says bye")
    await assert_usable(other)


async def test_on_close_gets_the_client_close_code(peer: Peer, app: App) -> None:
    """on_close runs once the client closed, with the client's close code."""
    await peer.close(4001, "custom client close")
    assert await app.wait_closes(1) == [4001]


async def test_on_close_gets_the_server_close_code(peer: Peer, app: App) -> None:
    """on_close runs after ctx.close(), with the code the server closed with."""
    await send_json(peer, {"type": "BYE", "meta": {}, "payload": {}})
    await wait_closed(peer)
    assert await app.wait_closes(1) == [4000]


async def test_on_close_gets_1009_for_too_big_frames(peer: Peer, app: App) -> None:
    """on_close runs after a too-big frame, with 1009."""
    await peer.send_text("z" * (2 * 1024 * 1024))
    await wait_closed(peer)
    assert await app.wait_closes(1) == [1009]


def _open_router(hook: Any) -> Router[Any]:
    app = build_app()
    app.router.on_open(hook)
    return app.router


async def test_on_open_raising_closes_1011(wire: Wire) -> None:
    """on_open raising a non-WsKitError closes the connection with 1011 (no internals in the reason)."""

    async def opened(ctx: Context[Any]) -> None:
        raise RuntimeError("open failed: secret")

    endpoint = await wire.serve(_open_router(opened))
    peer = await endpoint.connect()
    closed = await wait_closed(peer)
    assert closed.code == 1011
    assert "secret" not in closed.reason


async def test_on_open_close_4401(wire: Wire) -> None:
    """on_open calling ctx.close(4401, reason) closes the connection with that code and reason."""

    async def opened(ctx: Context[Any]) -> None:
        await ctx.close(4401, "kicked by onOpen")

    endpoint = await wire.serve(_open_router(opened))
    peer = await endpoint.connect()
    closed = await wait_closed(peer)
    assert (closed.code, closed.reason) == (4401, "kicked by onOpen")


async def test_on_open_refusal_leaves_other_connections_alone(wire: Wire) -> None:
    """A connection refused by on_open does not disturb the server's other connections."""
    refuse = [False]

    async def opened(ctx: Context[Any]) -> None:
        if refuse[0]:
            raise RuntimeError("refused")

    endpoint = await wire.serve(_open_router(opened))
    kept = await endpoint.connect()
    refuse[0] = True
    refused = await endpoint.connect()
    assert (await wait_closed(refused)).code == 1011
    await assert_usable(kept)


async def test_server_stop_closes_1001() -> None:
    """Stopping the server closes its connections with 1001 (going away)."""
    server = Server(build_app().router, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with connect(server.url, open_timeout=WAIT) as ws:
            await server.stop()
            closed = await wait_closed(SocketPeer(ws))
            assert closed.code == 1001
    finally:
        await server.stop()
