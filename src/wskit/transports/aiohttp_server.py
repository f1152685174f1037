"""The standalone transport: aiohttp's WebSocket server (the default for ``serve()``).

Chosen because on this machine raw aiohttp echoes about twice the ``websockets`` library's
rate at the same memory per connection, and it serves plain HTTP on the same port (demo
page, health and readiness). This module only adapts: the upgrade request to a
:class:`HandshakeRequest`, the socket to :class:`Socket`, aiohttp's read loop to the
dispatcher; the decisions (admission, timeouts) are the core's.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, hdrs, web
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from wskit.admission import Refusal
from wskit.connection import Connection
from wskit.errors import CloseCode, clip_close_reason
from wskit.lifecycle import Session as Lifecycle
from wskit.lifecycle import answer_to_close
from wskit.logs import LogBudget
from wskit.runtime import Runtime
from wskit.transports.aiohttp_internals import (
    MaskCheck,
    break_transport_cycle,
    check_client_masks,
    drain_waiter,
    inbound_frames,
    pending_tail,
    socket_transport,
    tail_is_masked,
    take_tail,
)
from wskit.transports.base import HandshakeRequest, chosen_subprotocol

__all__ = ["AiohttpSocket", "Flusher", "HandshakeGuard", "Session", "Transport", "build_app", "handshake_request"]

log = logging.getLogger("wskit.server")

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_PING = WSMsgType.PING
_PONG = WSMsgType.PONG
#: a server's ping frame: final, opcode 0x9, unmasked, empty
_PING_FRAME = b"\x89\x00"

HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: How long a closing handshake may take before the TCP connection is cut instead: a peer
#: that stopped reading (the slow consumer we are closing) would otherwise hold it forever.
CLOSE_TIMEOUT_S = 2.0


#: lines about peers that stopped reading during a close, shared by every connection
_CLOSE_TIMEOUTS = LogBudget()

#: Frames waiting for the end of the loop tick are written at once past this many bytes.
FLUSH_BYTES = 64 * 1024


class Flusher:
    """Writes every socket's waiting frames once per event-loop tick.

    Replies to frames that arrived together (a pipelining client) leave in one ``send()``
    instead of one system call each; a fan-out marks thousands of sockets and flushes them in
    one pass. One per server (so per event loop).
    """

    __slots__ = ("_dirty", "_loop")

    def __init__(self) -> None:
        self._dirty: list[AiohttpSocket] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def mark(self, sock: AiohttpSocket) -> None:
        if not self._dirty:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush)
        self._dirty.append(sock)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for sock in dirty:
            sock.flush()


#: headers of final, unmasked (servers never mask) text frames under 126 bytes, made once
_SMALL_HEADERS = tuple(bytes((0x81, size)) for size in range(126))


def _header(size: int) -> bytes:
    if size < 126:
        return _SMALL_HEADERS[size]
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


class AiohttpSocket:
    """:class:`~wskit.transports.base.Socket` over an aiohttp ``WebSocketResponse``.

    Text frames are framed here and written in batches (see :class:`Flusher`); control frames
    (ping, pong, close) stay aiohttp's. Flow control is the transport's: when it pauses
    writing, ``send_frame`` returns the wait for it to resume.
    """

    __slots__ = (
        "_flusher",
        "_pending",
        "_pending_bytes",
        "_unmarked",
        "mask_check",
        "protocol",
        "raw_transport",
        "reading",
        "request",
        "transport",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, flusher: Flusher) -> None:
        self.ws = ws
        self.request = request
        self.transport = request.transport
        #: the transport that owns the socket (differs from ``transport`` under TLS); its
        #: reference cycle is broken at release
        self.raw_transport = socket_transport(self.transport)
        self.protocol = request.protocol
        self._flusher = flusher
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0
        #: this socket's read loop is inside ``Dispatcher.receive`` and settles afterwards
        #: (:meth:`settle`), so frames sent meanwhile need no end-of-tick flush yet
        self.reading = False
        self._unmarked = False
        #: what the transport feeds its frame parser through; it notes that bytes arrived
        self.mask_check: MaskCheck | None = None

    def send_frame(self, data: bytes) -> Awaitable[None] | None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.ws.closed:
            raise ConnectionResetError("WebSocket is closed")
        pending = self._pending
        if pending is None:
            pending = self._pending = []
            if self.reading:
                self._unmarked = True
            else:
                self._flusher.mark(self)
        pending.append(_header(len(data)))
        pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()
        if self.protocol.writing_paused:
            return drain_waiter(self.protocol)
        return None

    def ping(self) -> None:
        """Write a ping frame now and listen afresh (the Watchdog's sweep; a closing transport
        is skipped)."""
        check = self.mask_check
        if check is not None:
            check.received = False
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(_PING_FRAME)

    def heard(self) -> bool:
        """Whether any byte arrived since :meth:`ping`: a pong, or anything else. Counted where
        aiohttp's protocol feeds its parser, so it holds while the read loop is busy (a slow
        handler, the in-flight RPC bound) or a large frame is still arriving."""
        check = self.mask_check
        return check is None or check.received

    def pong(self, payload: bytes) -> None:
        """Answer a ping with its payload (aiohttp's parser caps control payloads at 125 bytes).

        Written to the transport directly: no task per ping, and nothing to fail when the peer
        is gone (a closing transport is skipped).
        """
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(bytes((0x8A, len(payload))) + payload)

    def settle(self, now: bool) -> None:
        """The read loop is done with a frame: write what it sent ``now`` (it is about to
        wait), or leave it to the end-of-tick flush (more frames are already queued)."""
        self.reading = False
        if self._pending is None:
            return
        if now:
            self.flush()
        elif self._unmarked:
            self._unmarked = False
            self._flusher.mark(self)

    def flush(self) -> None:
        self._unmarked = False
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_bytes = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(pending))

    async def close(self, code: int, reason: str) -> None:
        self.flush()  # frames sent before the close go out before it
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=clip_close_reason(reason)), CLOSE_TIMEOUT_S)
        except TimeoutError:
            transport = self.request.transport
            if transport is not None:
                tail = _CLOSE_TIMEOUTS.take()  # peers that stop reading can be many
                if tail is not None:
                    log.info("closing handshake timed out (peer not reading): connection cut%s", tail)
                transport.abort()


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


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


#: RFC 6455 4.1: the only version of the protocol, and the one a refusal names (4.4)
_WS_VERSION = "13"


def _refuse_handshake(request: web.Request) -> web.Response | None:
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


def _without_protocols(request: web.Request) -> web.Request:
    """``request`` without its ``Sec-WebSocket-Protocol`` header, for ``prepare()``.

    When none of the offered subprotocols is chosen (only a ``bearer.<token>`` was offered),
    aiohttp would log the offered list, token included, as a warning ("Client protocols ...
    don't overlap"); handed nothing to choose from, it logs nothing and answers without the
    header, as RFC 6455 asks. Only those connections pay for the copy of the request.
    """
    headers = CIMultiDict(request.headers)
    headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL, None)
    return request.clone(headers=headers)


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
                    sock.reading = True
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
        if not _is_upgrade(request):
            return await plain_http(request)
        if t.path is not None and request.path != t.path:
            return web.Response(status=404, text="Not Found")
        refused = _refuse_handshake(request)
        if refused is not None:
            return refused
        # the upgrade is handled here rather than in a helper coroutine: every level of
        # suspended coroutine is memory held by each idle connection
        ip = runtime.admission.resolve_ip(request.remote, request.headers)
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
            await ws.prepare(_without_protocols(request) if offered and chosen is None else request)
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
        if request.path == "/healthz":
            return web.Response(text="ok")
        if request.path == "/readyz":
            ready, why = runtime.ready()
            return web.Response(status=200 if ready else 503, text=why)
        file = t.static_files.get(request.path)
        if file is not None and request.method in ("GET", "HEAD"):
            return web.FileResponse(file)
        if t.path is not None and request.path != t.path:
            return web.Response(status=404, text="Not Found")
        return web.Response(status=400, text="Expected a WebSocket upgrade (Upgrade: websocket)")

    if t.ping_interval:
        runtime.watchdog.enable_pings(t.ping_interval, _ping, _heard)
    app = web.Application(client_max_size=t.max_payload_bytes)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
