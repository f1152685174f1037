"""The standalone transport: aiohttp's WebSocket server (the default for ``serve()``).

Chosen because on this machine raw aiohttp echoes about twice the ``websockets`` library's
rate at the same memory per connection, and it serves plain HTTP on the same port (demo
page, ``/wskit.js``, health and metrics). This module only adapts: the upgrade request to a
:class:`HandshakeRequest`, the socket to :class:`Socket`, and aiohttp's read loop to the
dispatcher.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from wskit.connection import Connection, QueueLimits
from wskit.errors import CloseCode
from wskit.pubsub.broker import BrokerState
from wskit.router import Router
from wskit.transports.base import HandshakeRequest
from wskit.transports.stepping import step

__all__ = ["AiohttpSocket", "Authenticate", "build_app", "handshake_request"]

log = logging.getLogger("wskit.server")

#: ``authenticate(request)`` -> connection data, or None to refuse (sync or async).
Authenticate = Callable[[HandshakeRequest], "Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None"]

_TEXT = WSMsgType.TEXT


class AiohttpSocket:
    """:class:`~wskit.transports.base.Socket` over an aiohttp ``WebSocketResponse``."""

    __slots__ = ("ws",)

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    def send_frame(self, data: bytes) -> Awaitable[None] | None:
        # send_frame writes synchronously and awaits only to drain a full buffer
        return step(self.ws.send_frame(data, _TEXT))

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:123])


def handshake_request(request: web.Request) -> HandshakeRequest:
    """The runtime-neutral view of an aiohttp upgrade request."""
    query: dict[str, str] = {}
    for key, value in request.query.items():
        query.setdefault(key, value)
    protocols = tuple(p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip())
    return HandshakeRequest(
        path=request.path,
        headers=request.headers,
        query_params=query,
        cookies=dict(request.cookies),
        client_ip=request.remote,
        subprotocols=protocols,
    )


async def _is_banned(router: Router[Any], user_id: str) -> bool:
    try:
        return await router.hub.broker.is_banned(user_id)
    except Exception as exc:  # noqa: BLE001 - fail open: a Redis outage must not lock everyone out
        log.warning("ban check for user %s failed (%s); letting the connection in", user_id, exc)
        return False


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def build_app(
    router: Router[Any],
    *,
    authenticate: Authenticate | None,
    path: str | None,
    max_payload_bytes: int,
    ping_interval: float | None,
    queue_limits: QueueLimits,
    static_files: Mapping[str, str | Path],
    http_routes: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    connections: set[web.WebSocketResponse],
) -> web.Application:
    """An aiohttp application serving ``router`` (WebSocket upgrades) plus the HTTP routes."""
    files = {route: Path(file) for route, file in static_files.items()}

    async def handle(request: web.Request) -> web.StreamResponse:
        if not _is_upgrade(request):
            if request.method == "GET" and request.path in http_routes:
                return await http_routes[request.path](request)
            if request.path == "/healthz":
                return web.Response(text="ok")
            if request.path == "/readyz":
                state = router.hub.broker.state
                ready = state is BrokerState.READY
                return web.Response(status=200 if ready else 503, text=f"broker {state}")
            file = files.get(request.path)
            if file is not None and request.method in ("GET", "HEAD"):
                return web.FileResponse(file)
            if path is not None and request.path != path:
                return web.Response(status=404, text="Not Found")
            return web.Response(status=400, text="Expected a WebSocket upgrade (Upgrade: websocket)")
        if path is not None and request.path != path:
            return web.Response(status=404, text="Not Found")
        return await upgrade(request)

    async def upgrade(request: web.Request) -> web.StreamResponse:
        hs = handshake_request(request)
        data: Mapping[str, Any] = {}
        if authenticate is not None:
            try:
                result = authenticate(hs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("authenticate() raised for %s %s", hs.client_ip, hs.path)
                return web.Response(status=500, text="Internal Server Error")
            if result is None:
                return web.Response(status=401, text="Unauthorized")
            if not isinstance(result, Mapping):
                log.error("authenticate() must return a mapping or None, got %r", type(result).__name__)
                return web.Response(status=500, text="Internal Server Error")
            data = result
        user_id = data.get("user_id")
        if user_id is not None and await _is_banned(router, str(user_id)):
            return web.Response(status=403, text="Forbidden")
        client_id = str(uuid.uuid4())
        ws = web.WebSocketResponse(
            max_msg_size=max_payload_bytes,
            heartbeat=ping_interval,
            compress=False,
            decode_text=False,
            autoclose=False,
        )
        ws.headers["x-client-id"] = client_id
        await ws.prepare(request)
        conn = Connection(client_id, AiohttpSocket(ws), data=data, request=hs, limits=queue_limits)
        dispatcher = router.dispatcher
        receive = dispatcher.receive
        connections.add(ws)
        code: int | None = None
        reason = ""
        try:
            if await dispatcher.open(conn):
                while True:
                    msg = await ws.receive()
                    kind = msg.type
                    if kind is _TEXT or kind is WSMsgType.BINARY:
                        pending = receive(conn, msg.data)
                        if pending is not None:
                            await pending
                    elif kind is WSMsgType.CLOSE:
                        # echo the peer's code and reason, as RFC 6455 suggests and WS-Kit does
                        code, reason = int(msg.data), msg.extra or ""
                        await ws.close(code=code, message=reason.encode()[:123])
                        break
                    elif kind is WSMsgType.ERROR:
                        error = msg.data
                        code = getattr(error, "code", None) or CloseCode.PROTOCOL_ERROR
                        reason = str(error)[:123]
                        log.info("client %s: closed on a protocol error: %s", client_id, error)
                        break
                    else:  # CLOSING / CLOSED: we closed it (ctx.close, shutdown, slow consumer)
                        break
        finally:
            connections.discard(ws)
            if code is None:
                code = ws.close_code if ws.close_code is not None else CloseCode.GOING_AWAY
            await dispatcher.disconnect(conn, code, reason)
            if not ws.closed:
                await ws.close(code=code if code != CloseCode.ABNORMAL else CloseCode.GOING_AWAY)
        return ws

    app = web.Application(client_max_size=max_payload_bytes)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
