"""The ASGI host adapter: one WebSocket scope as a :class:`~wskit.lifecycle.Session`.

Only adapts: the scope to a :class:`HandshakeRequest`, admission's refusal to an HTTP answer
(the ``websocket.http.response`` extension) or a close before accept, ASGI ``send`` to a
:class:`~wskit.transports.base.Socket`, and ASGI ``receive`` to the read loop. The
lifecycle (open, RPC hand-off, close-code echo, on_close, release) is
:class:`wskit.lifecycle.Session`'s; the application around it is :mod:`wskit.asgi`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from types import CoroutineType
from typing import Any

from wskit.admission import Refusal
from wskit.connection import Connection
from wskit.errors import CloseCode, clip_close_reason
from wskit.lifecycle import Session, answer_to_close
from wskit.runtime import Runtime, shutdown_notice
from wskit.stepping import step
from wskit.transports.asgi_upgrade import Message, Receive, Scope, Send, handshake_request, refuse
from wskit.transports.base import chosen_subprotocol

__all__ = [
    "AsgiSession",
    "AsgiSocket",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "handshake_request",
    "refuse",
    "serve_websocket",
]

log = logging.getLogger("wskit.asgi")

_NO_STATUS = 1005

#: How long a close waits for a send the host is holding back (a peer that stopped reading).
CLOSE_WAIT_S = 2.0


class AsgiSocket:
    """:class:`~wskit.transports.base.Socket` over ASGI ``send``.

    ``send`` is a coroutine, but on every host measured it finishes without waiting while the
    socket keeps up; so each frame's send is stepped by hand (:func:`wskit.stepping.step`): no
    task and no event-loop round trip per frame. Only a send that has to wait (the host's flow
    control) becomes a task, and ``send_frame`` returns it: the connection queues later frames
    until it is done, so order is kept and at most one send is in flight.
    """

    __slots__ = (
        "_pending",
        "_send",
        "abandoned",
        "closed_by_us",
        "disconnect_code",
        "disconnected",
        "reader",
        "receiving",
    )

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: asyncio.Future[None] | None = None
        #: this side sent ``websocket.close``
        self.closed_by_us = False
        #: the host reported ``websocket.disconnect`` (sending is over), and its code
        self.disconnected = False
        self.disconnect_code: int | None = None
        #: the task reading this socket now (what a close that cannot finish stops)
        self.reader: asyncio.Task[Any] | None = None
        #: this side closed: reading is over
        self.abandoned = False
        #: the reader is waiting in ``receive()`` (only then is it cancelled to stop it: a
        #: handler it runs inline is left to finish, as on the other hosts)
        self.receiving = False

    def send_frame(self, data: bytes) -> Awaitable[None] | None:
        if self.closed_by_us or self.disconnected:
            raise ConnectionResetError("WebSocket is closed")
        # answers are text frames (PROTOCOL.md); ASGI makes a text frame of a str only. The
        # host's coroutine is stepped itself (no wrapper coroutine per frame: measured)
        sending = self._send({"type": "websocket.send", "text": data.decode()})
        if type(sending) is not CoroutineType:  # ASGI allows any awaitable (granian: a future)
            sending = _awaited(sending)
        try:
            pending = step(sending)
        except OSError as exc:  # uvicorn's ClientDisconnected, a reset transport
            self.disconnected = True
            raise ConnectionResetError("WebSocket is closed") from exc
        if pending is None:
            return None
        waiting = self._pending = asyncio.ensure_future(self._wait(pending))
        return waiting

    async def _wait(self, pending: asyncio.Future[None]) -> None:
        """A send the host held back, its failure as the connection expects it."""
        try:
            await pending
        except OSError as exc:
            self.disconnected = True
            raise ConnectionResetError("WebSocket is closed") from exc

    async def close(self, code: int, reason: str) -> None:
        """Send ``websocket.close``, then stop reading: the connection is over for this side.

        What the peer sends after our close is not read (RFC 6455: nothing after a close
        frame is data), and the host finishes the closing handshake on its own once the app
        returns (uvicorn keeps the socket for its close timeout; hypercorn alike), so the
        session ends now with its own close code instead of waiting for a
        ``websocket.disconnect`` some hosts never send (Starlette's ``TestClient``). A peer
        that stopped reading holds the host's sends back (uvicorn and hypercorn wait on their
        flow control before every message, a close included): the close waits for that at
        most ``CLOSE_WAIT_S`` twice, and reading stops all the same.
        """
        if self.closed_by_us or self.disconnected:
            return
        self.closed_by_us = True
        pending = self._pending
        if pending is not None and not pending.done():
            # a send the host made wait goes before the close (bounded: the peer may not read)
            await asyncio.wait([pending], timeout=CLOSE_WAIT_S)
        message = {"type": "websocket.close", "code": code, "reason": clip_close_reason(reason).decode()}
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self._send(message)
        except TimeoutError:
            pass  # the host still holds it: the peer reads nothing any more
        except (OSError, RuntimeError):  # already gone: the host's disconnect says how
            self.disconnected = True
            return
        self.abandon()

    def abandon(self) -> None:
        """Stop reading a socket this side closed: the reading task, when it waits in
        ``receive``, is cancelled (:meth:`AsgiSession.read` takes that as the end of the
        connection); a reader running a handler, or the caller itself, sees :attr:`abandoned`
        before its next ``receive``."""
        self.abandoned = True
        reader = self.reader
        if self.receiving and reader is not None and not reader.done() and reader is not asyncio.current_task():
            reader.cancel()


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


class AsgiSession(Session):
    """One accepted ASGI WebSocket: the shared lifecycle, with ASGI's read loop."""

    __slots__ = ("_receive", "max_payload_bytes")

    def __init__(self, runtime: Runtime, conn: Connection, receive: Receive, max_payload_bytes: int) -> None:
        super().__init__(runtime, conn)
        self._receive = receive
        self.max_payload_bytes = max_payload_bytes

    async def read(self) -> bool:
        """Read messages until ``websocket.disconnect`` (then finish), or until an RPC keeps
        this task (True: another task reads on)."""
        conn = self.conn
        sock = conn.socket
        assert isinstance(sock, AsgiSocket)
        task = sock.reader = asyncio.current_task()
        try:
            return await self._read(sock)
        except asyncio.CancelledError:
            if not sock.abandoned or task is None:
                raise
            others = task.uncancel()  # our own close ended the reading (AsgiSocket.abandon)
            await self.finish(None, "")
            if others:
                raise  # the host cancelled it too: pass that on
            return False
        except OSError as exc:  # the host says the peer is gone: its doing, no traceback
            log.debug("client %s: connection lost while reading: %r", conn.client_id, exc)
        except Exception:
            log.exception("client %s: reading failed", conn.client_id)
        sock.disconnected = True
        await self.finish(CloseCode.ABNORMAL, "")
        return False

    async def _read(self, sock: AsgiSocket) -> bool:
        receive, conn, limit = self._receive, self.conn, self.max_payload_bytes
        dispatch = self.runtime.dispatcher.receive
        code: int | None = None
        reason = ""
        while not sock.abandoned:
            sock.receiving = True
            message = await receive()
            sock.receiving = False
            kind = message["type"]
            if kind == "websocket.receive":
                data: str | bytes | None = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                if len(data) > limit and _too_big(data, limit):
                    # the host buffered the whole message already (its own limit, e.g.
                    # uvicorn's ws_max_size, comes first): what is left is to refuse it
                    await sock.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
                    code, reason = CloseCode.MESSAGE_TOO_BIG, "message too big"
                    break
                pending = dispatch(conn, data)
                if pending is not None and await pending:
                    self.handed_off()
                    return True
            elif kind == "websocket.disconnect":
                sock.disconnected = True
                raw = message.get("code")
                sock.disconnect_code = raw
                if raw == CloseCode.ABNORMAL:
                    code = raw  # no close frame (or a host that does not say: hypercorn)
                elif not sock.closed_by_us:
                    # the host answered the peer's close frame already; on_close sees the
                    # peer's code as answer_to_close reads it (1005: no status code)
                    code, reason, _ = answer_to_close(None if raw == _NO_STATUS else raw, message.get("reason") or "")
                break
        await self.finish(code, reason)
        return False

    async def finish(self, code: int | None, reason: str) -> None:
        task = asyncio.current_task()
        if code is None and self.conn.close_code is None and task is not None and task.cancelling():
            # the host cancelled the connection: it is stopping (hypercorn at its
            # graceful_timeout, uvicorn at timeout_graceful_shutdown), and no lifespan message
            # said so before; this peer still gets the notice and the shutdown close code
            self._host_stopping()
        await super().finish(code, reason)

    def _host_stopping(self) -> None:
        conn, settings = self.conn, self.runtime.settings
        conn.send_nowait(shutdown_notice("server shutting down", settings))
        conn.close_code, conn.close_reason = settings.shutdown_close_code, "server shutting down"

    def socket_close_code(self) -> int | None:
        sock = self.conn.socket
        return sock.disconnect_code if isinstance(sock, AsgiSocket) else None


def _too_big(data: str | bytes, limit: int) -> bool:
    # a str's UTF-8 size is between its length and 4x it: encode only when that is unclear
    if isinstance(data, bytes) or len(data) > limit:
        return True
    return len(data.encode()) > limit


async def serve_websocket(runtime: Runtime, scope: Scope, receive: Receive, send: Send, path: str) -> None:
    """Run one WebSocket scope of ``runtime``: admit, accept (or refuse), live, release."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return  # disconnected before the handshake
    hs = handshake_request(scope, path, runtime)
    admission = runtime.admission
    outcome = await admission.admit(hs)
    if isinstance(outcome, Refusal):
        await refuse(scope, send, outcome)
        return
    try:
        client_id = str(uuid.uuid4())
        chosen = chosen_subprotocol(hs.subprotocols)  # never a bearer.<token> credential
        accept = {"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"x-client-id", client_id.encode())]}
        try:
            await send(accept)
        except OSError:  # the peer left while authenticate ran: nothing to serve
            return
        conn = Connection(client_id, AsgiSocket(send), data=outcome, request=hs, limits=runtime.queue_limits)
        await AsgiSession(runtime, conn, receive, runtime.settings.max_payload_bytes).live()
    finally:
        admission.release(hs.client_ip)
