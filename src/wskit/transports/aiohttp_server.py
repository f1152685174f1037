"""The standalone host: aiohttp's WebSocket server (the default for ``serve()``).

Chosen because on this machine raw aiohttp echoes about twice the ``websockets`` library's
rate at the same memory per connection, and it serves plain HTTP on the same port (demo
page, health and readiness). This module only adapts: the upgrade (checked in
:mod:`~wskit.transports.aiohttp_upgrade`, admitted by the runtime), the socket
(:mod:`~wskit.transports.aiohttp_socket`), and aiohttp's frames to the shared lifecycle
(:class:`Session`); the decisions (admission, timeouts, shutdown) are the runtime's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, hdrs, web

from wskit.admission import Refusal
from wskit.connection import Connection
from wskit.errors import CloseCode, clip_close_reason
from wskit.lifecycle import Session as Lifecycle
from wskit.lifecycle import answer_to_close
from wskit.ops_http import own_answer
from wskit.runtime import Runtime
from wskit.transports.aiohttp_internals import check_client_masks, inbound_frames, take_tail
from wskit.transports.aiohttp_socket import CLOSE_TIMEOUT_S, AiohttpSocket, Flusher
from wskit.transports.aiohttp_upgrade import (
    HandshakeGuard,
    handshake_request,
    is_upgrade,
    refuse_handshake,
    without_protocols,
)
from wskit.transports.asyncio_internals import break_transport_cycle
from wskit.transports.base import chosen_subprotocol

__all__ = ["AiohttpSocket", "Flusher", "HandshakeGuard", "Session", "Transport", "build_app", "handshake_request"]

log = logging.getLogger("wskit.server")

HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_PING = WSMsgType.PING
_PONG = WSMsgType.PONG
#: paths browsers request of any page on their own: answered 404, not the upgrade-only 400
_BROWSER_PROBES = frozenset({"/favicon.ico"})


@dataclass(slots=True)
class Transport:
    """What the aiohttp app needs from the server around it: the runtime it hosts, and the
    host's own options."""

    runtime: Runtime
    max_payload_bytes: int
    ping_interval: float | None
    path: str | None = None
    static_files: Mapping[str, Path] = field(default_factory=dict)
    http_routes: Mapping[str, HttpHandler] = field(default_factory=dict)
    guard: HandshakeGuard | None = None
    flusher: Flusher = field(default_factory=Flusher)


class Session(Lifecycle):
    """One upgraded aiohttp connection: the shared lifecycle, with aiohttp's read loop."""

    __slots__ = ("t", "ws")

    def __init__(self, t: Transport, ws: web.WebSocketResponse, conn: Connection) -> None:
        super().__init__(t.runtime, conn)
        self.t = t
        self.ws = ws

    async def read(self) -> bool:
        """Read frames until the socket closes (then clean up), or until an RPC keeps this
        task (True: another task reads on)."""
        ws, conn = self.ws, self.conn
        receive = self.t.runtime.dispatcher.receive
        sock = conn.socket
        assert isinstance(sock, AiohttpSocket)
        # aiohttp's queue of parsed frames: when it is empty after a frame, this task is about
        # to wait, so the replies are written now rather than at the end of the loop tick (a
        # write from inside the tick costs half as much; frames that arrived together still
        # leave in one write)
        inbound: Sized = inbound_frames(ws)
        code: int | None = None
        reason = ""
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is _TEXT or kind is _BINARY:
                    data = msg.data
                    # RFC 6455 8.1: a text frame that is not UTF-8 fails the connection (1007).
                    # aiohttp does not decode (decode_text=False, for speed); isascii() is a
                    # few nanoseconds and settles the common case, only other frames are decoded
                    if kind is _TEXT and not data.isascii() and not _is_utf8(data):
                        code, reason = CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in a text frame"
                        sock.flush()
                        await sock.close(code, reason)
                        break
                    sock.batch.reading = True
                    try:
                        pending = receive(conn, data)
                    except BaseException:
                        sock.settle(True)  # what was sent before the failure still goes out
                        raise
                    if pending is not None:
                        # the handler has to wait: what it sent so far leaves now, and what
                        # it sends while it waits goes by the end-of-tick flush
                        sock.settle(True)
                        if await pending:
                            self.handed_off()
                            return True
                    else:
                        sock.settle(not inbound)
                elif kind is _PING:
                    sock.pong(msg.data)  # autoping is off: aiohttp would answer with a task per ping
                elif kind is _PONG:
                    pass  # its bytes already counted (AiohttpSocket.heard)
                elif kind is WSMsgType.CLOSE:
                    # echo the peer's code and reason, as RFC 6455 suggests and WS-Kit does; a
                    # close without a status code (aiohttp reports 0) is 1005 to on_close and
                    # answered 1000, since 1005 may not be sent
                    code, reason, echo = answer_to_close(int(msg.data), msg.extra or "")
                    sock.flush()  # answers to frames that came with the close go before it
                    await ws.close(code=echo, message=clip_close_reason(reason))
                    break
                elif kind is WSMsgType.ERROR:
                    error = msg.data
                    code = getattr(error, "code", None) or CloseCode.PROTOCOL_ERROR
                    reason = str(error)[:123]
                    # the peer's doing (on_close gets the code): not worth a line per connection
                    log.debug("client %s: closed on a protocol error: %s", conn.client_id, error)
                    break
                else:  # CLOSING / CLOSED: we closed it (ctx.close, shutdown, watchdog, slow consumer)
                    break
        except ConnectionError as exc:
            # the peer went away while we wrote to it: its doing, not ours, so no traceback
            log.debug("client %s: connection lost while reading: %r", conn.client_id, exc)
        except Exception:
            log.exception("client %s: reading failed", conn.client_id)
        # the reader that saw the end cleans up (RPCs still running are cancelled there)
        await self.finish(code, reason)
        return False

    def socket_close_code(self) -> int | None:
        return self.ws.close_code

    async def close_socket(self, code: int) -> None:
        sock = self.conn.socket
        if isinstance(sock, AiohttpSocket):
            sock.flush()  # frames still waiting for the end of the tick go before the close
        if not self.ws.closed:
            await self.ws.close(code=code)

    def release(self) -> None:
        """Break the reference cycles a finished connection leaves, so reference counting frees
        it at once instead of the cycle collector much later.

        Left to the collector, every closed connection is ~80 objects of cyclic garbage (its
        exception tracebacks hold frames that hold the socket), and after a few thousand
        connections a full collection stops the loop for hundreds of milliseconds.
        """
        super().release()
        _drop_tracebacks(self.ws.exception())
        sock = self.conn.socket
        if isinstance(sock, AiohttpSocket):
            break_transport_cycle(sock.raw_transport)  # asyncio's selector transport -> itself


def _heard(conn: Connection) -> bool:
    sock = conn.socket
    return not isinstance(sock, AiohttpSocket) or sock.heard()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _ping(conn: Connection) -> None:
    sock = conn.socket
    if isinstance(sock, AiohttpSocket):
        sock.ping()


def _drop_tracebacks(exc: BaseException | None) -> None:
    # the error aiohttp keeps for ws.exception() (writing the close frame to a dead transport,
    # usually) stays available; only its tracebacks, whose frames refer back to the socket, go
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__context__ or exc.__cause__


def build_app(t: Transport) -> web.Application:
    """An aiohttp application serving ``t.runtime`` (WebSocket upgrades) plus the HTTP routes."""
    runtime = t.runtime

    async def handle(request: web.Request) -> web.StreamResponse:
        if t.guard is not None:
            t.guard.arrived(request.protocol)
        if not is_upgrade(request):
            return await plain_http(request)
        ip = runtime.admission.resolve_ip(request.remote, request.headers)
        if t.path is not None and request.path != t.path:
            runtime.telemetry.refused_upgrade("path", 404, ip, request.path, "not the WebSocket path")
            return web.Response(status=404, text="Not Found")
        refused = refuse_handshake(request)
        if refused is not None:
            runtime.telemetry.refused_upgrade("bad_request", refused.status, ip, request.path, refused.text or "")
            return refused
        # the upgrade is handled here rather than in a helper coroutine: every level of
        # suspended coroutine is memory held by each idle connection
        hs = handshake_request(request, ip)
        outcome = await runtime.admission.admit(hs)
        if isinstance(outcome, Refusal):
            return web.Response(status=outcome.status, text=outcome.text, headers=dict(outcome.headers))
        chosen = chosen_subprotocol(hs.subprotocols)
        try:
            client_id = str(uuid.uuid4())
            ws = web.WebSocketResponse(
                max_msg_size=t.max_payload_bytes + 1,  # aiohttp refuses sizes >= its limit
                # pings are the Watchdog's sweep (see enable_pings below): aiohttp's heartbeat
                # re-arms a timer on every read and leaves a reference cycle per connection
                heartbeat=None,
                autoping=False,
                compress=False,
                decode_text=False,
                autoclose=False,
                protocols=() if chosen is None else (chosen,),
                timeout=CLOSE_TIMEOUT_S,  # how long a close waits for the peer's close frame
            )
            ws.headers["x-client-id"] = client_id
            # we choose the subprotocol, so aiohttp never has a reason to log the offered list
            # (which may hold a bearer.<token>)
            offered = hdrs.SEC_WEBSOCKET_PROTOCOL in request.headers
            tail = take_tail(request.protocol)  # frames sent before the 101 go through the mask check
            await ws.prepare(without_protocols(request) if offered and chosen is None else request)
            sock = AiohttpSocket(ws, request, t.flusher)
            sock.mask_check = check_client_masks(ws, request.protocol, tail)  # RFC 6455 5.1: aiohttp does not
            conn = Connection(client_id, sock, data=outcome, request=hs, limits=runtime.queue_limits)
            await Session(t, ws, conn).live()
            return ws
        finally:
            runtime.admission.release(ip)

    async def plain_http(request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path in t.http_routes:
            return await t.http_routes[request.path](request)
        own = await own_answer(runtime, request.path, request.method)
        if own is not None:
            # aiohttp writes it without blocking the loop (a slow reader waits on its own
            # task) and leaves the body out for HEAD
            headers = {**own.headers, hdrs.CONTENT_TYPE: own.content_type}
            return web.Response(status=own.status, body=own.body, headers=headers)
        file = t.static_files.get(request.path)
        if file is not None and request.method in ("GET", "HEAD"):
            return web.FileResponse(file)
        if (t.path is not None and request.path != t.path) or request.path in _BROWSER_PROBES:
            # a browser asks for its icon by itself: "no such file", not "bad request"
            return web.Response(status=404, text="Not Found")
        return web.Response(status=400, text="Expected a WebSocket upgrade (Upgrade: websocket)")

    if t.ping_interval:
        runtime.watchdog.enable_pings(t.ping_interval, _ping, _heard)
    app = web.Application(client_max_size=t.max_payload_bytes)
    # every path, newlines too: with ".*" a decoded %0A fell through to aiohttp's own 404,
    # so such an upgrade was neither counted nor answered by wskit
    app.router.add_route("*", r"/{tail:[\s\S]*}", handle)
    return app
