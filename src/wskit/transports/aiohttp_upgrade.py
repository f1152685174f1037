"""The aiohttp host's upgrade: what RFC 6455 refuses, the request as the runtime sees it,
and the slowloris guard on requests that never complete."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from wskit.logs import LogBudget
from wskit.transports.aiohttp_internals import pending_tail, tail_is_masked
from wskit.transports.base import HandshakeRequest

__all__ = ["HandshakeGuard", "handshake_request", "is_upgrade", "refuse_handshake", "without_protocols"]

log = logging.getLogger("wskit.server")


def handshake_request(request: web.Request, client_ip: str | None) -> HandshakeRequest:
    """The runtime-neutral view of an aiohttp upgrade request."""
    protocols = tuple(p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip())
    return HandshakeRequest(
        path=request.path,
        headers=request.headers,
        # aiohttp's own views (first value per name), not copies: kept per connection
        query_params=request.query,
        cookies=request.cookies,
        client_ip=client_ip,
        subprotocols=protocols,
    )


class HandshakeGuard:
    """Closes TCP connections that have not completed an HTTP request in time (slowloris).

    aiohttp has no header-read timeout of its own; this wraps its protocol factory, starts a
    timer per accepted connection and cancels it when the request reaches our handler.
    """

    def __init__(self, factory: Callable[[], RequestHandler], timeout_s: float) -> None:
        self._factory = factory
        self.timeout_s = timeout_s
        self._pending: dict[RequestHandler, asyncio.TimerHandle] = {}
        self.expired = 0
        self._log_budget = LogBudget()

    def __call__(self) -> RequestHandler:
        handler = self._factory()
        if self.timeout_s > 0:
            loop = asyncio.get_running_loop()
            self._pending[handler] = loop.call_later(self.timeout_s, self._expire, handler)
        return handler

    def arrived(self, handler: RequestHandler) -> None:
        timer = self._pending.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, handler: RequestHandler) -> None:
        if self._pending.pop(handler, None) is None:
            return
        transport = handler.transport
        if transport is not None and not transport.is_closing():
            self.expired += 1
            tail = self._log_budget.take()  # a client can open such sockets as fast as it likes
            if tail is not None:
                log.info("closed a connection that sent no complete request in %.1f s%s", self.timeout_s, tail)
            transport.close()


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


#: RFC 6455 4.1: the only version of the protocol, and the one a refusal names (4.4)
_WS_VERSION = "13"


def refuse_handshake(request: web.Request) -> web.Response | None:
    """The HTTP answer to an upgrade request RFC 6455 does not allow, or None.

    aiohttp upgrades any method, HTTP/1.0, and the draft versions 7 and 8; RFC 6455 4.1 asks
    for GET, HTTP/1.1 or later and version 13, and 4.4 for a 426 that names the version the
    server speaks. A client that sent frames before the 101 (4.1: it must wait for it) and
    did not mask them (5.1) is refused too: aiohttp would parse them before the mask check
    is in place.
    """
    if request.method != "GET":
        return web.Response(status=405, text="WebSocket upgrades use GET", headers={hdrs.ALLOW: "GET"})
    if request.version < (1, 1):
        return web.Response(status=400, text="WebSocket upgrades need HTTP/1.1 or later")
    if request.headers.get(hdrs.SEC_WEBSOCKET_VERSION, "").strip() != _WS_VERSION:
        return web.Response(
            status=426,
            text="Unsupported WebSocket version: this server speaks 13",
            headers={hdrs.SEC_WEBSOCKET_VERSION: _WS_VERSION},
        )
    if not tail_is_masked(pending_tail(request.protocol)):
        return web.Response(status=400, text="Unmasked frame from the client")
    return None


def without_protocols(request: web.Request) -> web.Request:
    """``request`` without its ``Sec-WebSocket-Protocol`` header, for ``prepare()``.

    When none of the offered subprotocols is chosen (only a ``bearer.<token>`` was offered),
    aiohttp would log the offered list, token included, as a warning ("Client protocols ...
    don't overlap"); handed nothing to choose from, it logs nothing and answers without the
    header, as RFC 6455 asks. Only those connections pay for the copy of the request.
    """
    headers = CIMultiDict(request.headers)
    headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL, None)
    return request.clone(headers=headers)
