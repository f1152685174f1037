"""The picows host's accepted connection: frames dispatched from picows's callback.

picows parses frames in Cython and calls :meth:`Peer.on_ws_frame` for each, from the event
loop's read callback. While no handler is waiting, a frame goes straight to
``Dispatcher.receive`` there (no task and no loop round trip per message: the point of this
host). When ``receive`` returns an awaitable (a handler had to wait), a task awaits it and
frames that arrive meanwhile are queued (copied: picows reuses its buffer), so one
connection's messages keep their order; reading the socket pauses past
:data:`QUEUE_FRAMES` or :data:`QUEUE_BYTES`. A message over :data:`INLINE_BYTES` (costly to
decode and validate) goes through the reader too, which lets the loop serve other
connections after each: picows calls back for every frame of a read in one go, and a
client pipelining megabyte frames would otherwise hold the loop for all of them. The
lifecycle itself is :class:`wskit.lifecycle.Session`'s.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Generator
from typing import SupportsInt, cast

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from wskit.connection import Connection
from wskit.errors import CloseCode, clip_close_reason
from wskit.lifecycle import Session, answer_to_close
from wskit.runtime import Runtime
from wskit.transports.asyncio_internals import break_transport_cycle, socket_transport
from wskit.transports.picows_internals import enter_task, leave_task, release_transport
from wskit.transports.picows_socket import PicowsSocket

__all__ = ["INLINE_BYTES", "MAX_FRAGMENTS", "QUEUE_BYTES", "QUEUE_FRAMES", "Peer", "PicowsSession"]

log = logging.getLogger("wskit.server")

_EMPTY_CONTEXT = contextvars.Context()

#: reader tasks started by hand-offs (referenced so they are not garbage-collected)
_READERS: set[asyncio.Task[bool]] = set()

#: frames queued behind a waiting handler before reading the socket pauses
QUEUE_FRAMES = 64
#: ...or bytes
QUEUE_BYTES = 1 << 20
#: the largest message dispatched from picows's callback; bigger ones wait their turn in the
#: reader task, one per loop iteration
INLINE_BYTES = 64 * 1024
#: fragments of one message (empty continuation frames cost a list entry each, not bytes)
MAX_FRAGMENTS = 4096

_TEXT, _BINARY, _CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_PING, _CLOSE = WSMsgType.PING, WSMsgType.CLOSE


class _Yield:
    """Awaited by the reader: one loop iteration for the other connections (``asyncio.sleep(0)``
    without a coroutine object per use)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


_A_TURN_FOR_OTHERS = _Yield()


class Peer(WSListener):
    """picows's listener for one connection: reassembles fragments, checks text frames,
    answers pings and closes, and dispatches (or queues) messages for :attr:`session`."""

    __slots__ = (
        "busy",
        "code",
        "context",
        "gone",
        "kind",
        "max_bytes",
        "parts",
        "paused",
        "pending",
        "queue",
        "queued",
        "raw",
        "reader",
        "reason",
        "session",
        "size",
        "sock",
        "wake",
    )

    def __init__(self, sock: PicowsSocket, max_payload_bytes: int, context: contextvars.Context) -> None:
        self.sock = sock
        #: the contextvars Context the reader task runs in (the host creates reader tasks with
        #: a Context it keeps): a frame dispatched from picows's callback runs its first step
        #: there too, so a middleware's var.set()/var.reset() across an await see one Context
        self.context = context
        self.session: PicowsSession | None = None
        #: the task reading this connection (:meth:`PicowsSession.read`), made the current
        #: task while a frame is dispatched from picows's callback
        self.reader: asyncio.Task[bool] | None = None
        #: the reader is not waiting for frames (a handler is, or it is not started): queue
        self.busy = True
        self.queue: deque[bytes] = deque()
        self.queued = 0  # bytes in the queue
        self.paused = False  # reading the socket paused: the queue is full
        #: what a handler dispatched from the callback left for the reader to await
        self.pending: Awaitable[bool | None] | None = None
        self.wake: asyncio.Future[None] | None = None  # the reader waits on it
        self.parts: list[bytes] | None = None  # a fragmented message being reassembled
        self.kind = _TEXT  # ...its opcode
        self.size = 0  # ...and its size so far
        self.max_bytes = max_payload_bytes  # the largest message (MAX_PAYLOAD_BYTES)
        self.code: int | None = None  # how the connection ended, when the peer or a check ended it
        self.reason = ""
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: the transport owning the socket (under TLS on the stock loop, not picows's: see
        #: ``asyncio_internals.socket_transport``), whose cycle is broken when it closes
        self.raw: asyncio.BaseTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.sock.ws = transport
        self.raw = socket_transport(transport.underlying_transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        session = self.session
        if self.code is None and session is not None and session.conn.close_code is None:
            handshake = transport.close_handshake
            sent = handshake.sent if handshake is not None else None
            if sent is not None:  # picows failed the connection (a bad frame): its code
                self.code, self.reason = _code(sent.code), sent.reason or ""
            else:
                self.code = CloseCode.ABNORMAL
        self.sock.resume_writing()  # a send waiting for the transport fails on its next frame
        release_transport(transport.underlying_transport)
        raw, self.raw = self.raw, None
        break_transport_cycle(raw)  # asyncio's selector transport -> itself
        if not self.gone.done():
            self.gone.set_result(None)
        self._wake()

    def pause_writing(self) -> None:
        self.sock.pause_writing()

    def resume_writing(self) -> None:
        self.sock.resume_writing()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.sock.heard_since_ping = True
        kind = frame.msg_type
        if transport.is_close_frame_sent:
            if kind == _CLOSE:
                transport.disconnect()  # the peer answered our close: the server ends TCP
            return  # nothing after a close is data (RFC 6455 5.5.1)
        if kind in (_TEXT, _BINARY):
            if self.parts is not None:
                self._fail(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            elif frame.fin:
                self._message(kind, frame.get_payload_as_bytes(), frame.last_in_buffer)
            else:
                self.parts = [frame.get_payload_as_bytes()]
                self.kind, self.size = kind, frame.payload_size
        elif kind == _CONT:
            parts = self.parts
            if parts is None:
                self._fail(CloseCode.PROTOCOL_ERROR, "continuation frame without a message")
                return
            self.size += frame.payload_size
            if self.size > self.max_bytes or len(parts) >= MAX_FRAGMENTS:
                self.parts = None
                self._fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                self.parts = None
                self._message(self.kind, b"".join(parts), frame.last_in_buffer)
        elif kind == _PING:
            if self.sock.writing_paused:
                return  # the peer does not read: a pong per ping would grow our buffer for ever
            self.sock.flush()
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind == _CLOSE:
            # echo the peer's code (1005 to on_close and 1000 on the wire for none; 1002 for
            # a code no close frame may carry), then end the TCP connection (RFC 6455 7.1.1)
            got = answer_to_close(_code(frame.get_close_code()), frame.get_close_reason() or "")
            self.code, self.reason, echo = got
            self.sock.flush()  # answers to frames that came with the close go before it
            transport.send_close(WSCloseCode(echo), clip_close_reason(self.reason))
            transport.disconnect()

    def _fail(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason
        self.sock.flush()
        ws = self.sock.ws
        if ws is not None:
            ws.send_close(WSCloseCode(code), reason.encode())
            ws.disconnect()

    def _message(self, kind: WSMsgType, data: bytes, last: bool) -> None:
        # RFC 6455 8.1: a text frame that is not UTF-8 fails the connection (1007); isascii()
        # settles the common case in nanoseconds
        if kind == _TEXT and not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in a text frame")
                return
        reader = self.reader
        if self.busy or reader is None or len(data) > INLINE_BYTES:
            self.queue.append(data)
            self.queued += len(data)
            if not self.busy and reader is not None:
                self.busy = True  # a big message: the reader dispatches it, in its turn
                self._wake()
            ws = self.sock.ws
            full = len(self.queue) >= QUEUE_FRAMES or self.queued >= QUEUE_BYTES
            if full and not self.paused and ws is not None:
                self.paused = True
                ws.underlying_transport.pause_reading()
            return
        # the handler's first step runs here, in the reader task as aiohttp's read loop runs
        # it (asyncio.timeout, current_task() work); the rest, if it must wait, in that task
        session = self.session
        assert session is not None
        loop = reader.get_loop()
        sock = self.sock
        sock.batch.reading = True
        enter_task(loop, reader)
        try:
            # in the reader's contextvars Context too: the rest of the handler, if it waits,
            # runs there, and a middleware's var.set()/var.reset() must see one Context
            pending = self.context.run(session.receive, data)
        finally:
            leave_task(loop, reader)
            # the last frame picows has buffered: write the answers now; otherwise the next
            # frames' answers join them (one write for a pipelining client's burst)
            sock.settle(last or pending is not None)
        if pending is not None:
            self.busy = True
            self.pending = pending
            self._wake()

    def _wake(self) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def take(self) -> Awaitable[bool | None] | None:
        """In the reader: what a handler left to await, else the queued frames dispatched in
        order until one leaves something (None: the queue is empty)."""
        pending, self.pending = self.pending, None
        session, queue, sock = self.session, self.queue, self.sock
        while pending is None and queue and session is not None:
            data = queue.popleft()
            self.queued -= len(data)
            sock.batch.reading = True
            try:
                pending = session.receive(data)
                if pending is None and queue and len(data) > INLINE_BYTES:
                    pending = _A_TURN_FOR_OTHERS  # a costly message: others' turn before the next
            finally:
                sock.settle(pending is not None or not queue)
        low = len(queue) < QUEUE_FRAMES // 2 and self.queued < QUEUE_BYTES // 2
        if self.paused and low and self.sock.ws is not None:
            self.paused = False
            self.sock.ws.underlying_transport.resume_reading()
        return pending


class PicowsSession(Session):
    """One accepted picows connection: the shared lifecycle; its read loop runs what
    :class:`Peer` could not finish in picows's callback, and sees the connection end."""

    __slots__ = ("peer",)

    def __init__(self, runtime: Runtime, conn: Connection, peer: Peer) -> None:
        super().__init__(runtime, conn)
        self.peer = peer
        peer.session = self

    def spawn_reader(self) -> None:
        """Start another reader (an RPC kept the current one), in a Context of its own that
        the peer knows (see :attr:`Peer.context`)."""
        context = self.context.copy()  # as the connection opened (Session.context)
        task = asyncio.get_running_loop().create_task(self._read(context), context=context)
        _READERS.add(task)
        task.add_done_callback(_READERS.discard)

    async def read(self) -> bool:
        """The first reader: the host's task for this connection, made with :attr:`Peer.context`."""
        return await self._read(self.peer.context)

    async def _read(self, context: contextvars.Context) -> bool:
        peer = self.peer
        peer.context = context
        peer.reader = asyncio.current_task()
        peer.busy = True
        loop = asyncio.get_running_loop()
        try:
            while True:
                pending = peer.take()
                if pending is not None:
                    if await pending:
                        self.handed_off()  # an RPC kept this task; another reader was started
                        return True
                    continue
                if peer.gone.done():
                    break
                peer.busy = False  # from here frames are dispatched from picows's callback
                peer.wake = loop.create_future()
                await peer.wake
                peer.wake = None
        except Exception:
            log.exception("client %s: reading failed", self.conn.client_id)
        await self.finish(peer.code, peer.reason)
        return False

    def socket_close_code(self) -> int | None:
        ws = self.peer.sock.ws
        handshake = ws.close_handshake if ws is not None else None
        if handshake is not None and handshake.sent is not None:
            return _code(handshake.sent.code)
        return None

    def release(self) -> None:
        super().release()
        peer = self.peer
        peer.queue.clear()
        peer.queued = 0
        peer.session = None  # Peer -> Session -> Peer
        peer.reader = None
        peer.pending = None
        peer.context = _EMPTY_CONTEXT  # the Context holds what handlers set, for this connection only


def _code(code: WSCloseCode) -> int:
    # picows's enum is a Cython one: codes it does not name (4000) come as plain ints
    return int(cast(SupportsInt, code))
