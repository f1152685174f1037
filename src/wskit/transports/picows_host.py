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

An idle connection has no task: the first reader (the upgrade's task) ends once the
connection is open and nothing waits; the next frame starts a reader, which stays while
frames keep coming and ends when :class:`IdleSweep` finds that none came for a whole
period. A reader task and its coroutine frames are ~2 KB, a quarter of an idle
connection's memory; a busy connection pays for one task creation per idle spell, not per
message.
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
from wskit.transports.picows_internals import enter_task, leave_task, release_transport, slim
from wskit.transports.picows_socket import PicowsSocket

__all__ = [
    "IDLE_SWEEP_S",
    "INLINE_BYTES",
    "MAX_FRAGMENTS",
    "QUEUE_BYTES",
    "QUEUE_FRAMES",
    "READERS",
    "IdleSweep",
    "Peer",
    "PicowsSession",
]

log = logging.getLogger("wskit.server")

_EMPTY_CONTEXT = contextvars.Context()

#: seconds between looks of the idle sweep: a reader with no frame for a whole period ends
IDLE_SWEEP_S = 2.0

#: reader tasks started by hand-offs and by frames to idle connections (referenced so they
#: are not garbage-collected; the host waits for them when it stops)
READERS: set[asyncio.Task[bool]] = set()

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


class IdleSweep:
    """Ends the reader tasks of connections that stopped sending (one timer for the host, a
    look at each connection that has a reader, every :data:`IDLE_SWEEP_S`)."""

    __slots__ = ("handle", "peers", "period")

    def __init__(self, period: float = IDLE_SWEEP_S) -> None:
        self.period = period
        #: connections with a reader task
        self.peers: set[Peer] = set()
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.handle = asyncio.get_running_loop().call_later(self.period, self.sweep)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def sweep(self) -> None:
        for peer in list(self.peers):
            if peer.active:
                peer.active = False
            elif peer.wake is not None:  # waiting, and no frame since the last look
                peer.retiring = True
                peer.wake_reader()
        self.start()


class Peer(WSListener):
    """picows's listener for one connection: reassembles fragments, checks text frames,
    answers pings and closes, and dispatches (or queues) messages for :attr:`session`."""

    __slots__ = (
        "active",
        "busy",
        "code",
        "context",
        "disconnected",
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
        "retiring",
        "session",
        "size",
        "sock",
        "sweep",
        "wake",
    )

    def __init__(
        self, sock: PicowsSocket, max_payload_bytes: int, context: contextvars.Context, sweep: IdleSweep
    ) -> None:
        self.sock = sock
        self.sweep = sweep
        self.active = True  # a frame came since the sweep's last look
        self.retiring = False  # the sweep found the reader idle: it ends unless a frame came
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
        #: frames waiting for the reader, made when the first one waits (an idle connection
        #: holds none: a deque's first block is ~600 bytes)
        self.queue: deque[bytes] | None = None
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
        self.disconnected = False
        #: the transport owning the socket (under TLS on the stock loop, not picows's: see
        #: ``asyncio_internals.socket_transport``), whose cycle is broken when it closes
        self.raw: asyncio.BaseTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.sock.ws = transport
        slim(transport)
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
        self.disconnected = True
        if self.reader is None and not self.busy and session is not None:
            self.busy = True
            session.spawn_reader()  # no reader while idle: one to finish the connection
        self.wake_reader()

    def pause_writing(self) -> None:
        self.sock.pause_writing()

    def resume_writing(self) -> None:
        self.sock.resume_writing()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.sock.heard_since_ping = True
        self.active = True
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
        if reader is None and not self.busy and self.session is not None and len(data) <= INLINE_BYTES:
            # idle, without a task: one is made now (it starts on the next loop turn) and the
            # frame dispatched as below, so answers keep their order with what follows in this
            # read (a close frame, say)
            reader = self.session.start_reader()
        if self.busy or reader is None or len(data) > INLINE_BYTES:
            queue = self.queue
            if queue is None:
                queue = self.queue = deque()
            queue.append(data)
            self.queued += len(data)
            if not self.busy:
                self.busy = True
                if reader is not None:
                    self.wake_reader()  # a big message: the reader dispatches it, in its turn
                elif self.session is not None:
                    self.session.spawn_reader()  # idle, without a task: a reader for this frame
            ws = self.sock.ws
            full = len(queue) >= QUEUE_FRAMES or self.queued >= QUEUE_BYTES
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
            self.wake_reader()

    def wake_reader(self) -> None:
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
        if queue is None:
            return pending
        if not queue:
            self.queue = None  # idle again: the deque goes
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
        """Start a reader (an RPC kept the current one, or the connection had none while
        idle)."""
        self.start_reader()

    def start_reader(self) -> asyncio.Task[bool]:
        """A new reader task, the peer's from now on, in a Context of its own that the peer
        knows (see :attr:`Peer.context`), made from the context as the connection opened."""
        context = self.context.copy()  # as the connection opened (Session.context)
        task = asyncio.get_running_loop().create_task(self.read(), context=context)
        READERS.add(task)
        task.add_done_callback(READERS.discard)
        peer = self.peer
        peer.context, peer.reader = context, task
        return task

    async def run(self) -> None:
        """The first reader, in the upgrade's task (made with :attr:`Peer.context`): it ends as
        soon as nothing waits, and whichever reader sees the connection end ends it."""
        await self.read(linger=False)

    async def read(self, *, linger: bool = True) -> bool:
        """Dispatch queued frames and what handlers left, until the connection ends (then end
        it), an RPC keeps this task (True: another reader was started), or nothing waits:
        at once when not ``linger``, else when the idle sweep finds no frame came."""
        peer = self.peer
        peer.reader = asyncio.current_task()
        peer.busy = True
        sweep = peer.sweep
        sweep.peers.add(peer)
        loop = asyncio.get_running_loop()
        try:
            while True:
                pending = peer.take()
                if pending is not None:
                    if await pending:
                        return True  # an RPC kept this task; the reader started meanwhile reads on
                    continue
                if peer.disconnected:
                    break
                if not linger or peer.retiring:
                    peer.retiring = False
                    if not linger or not peer.active:  # (a frame since the sweep: stay)
                        sweep.peers.discard(peer)
                        peer.reader = None
                        peer.busy = False  # the next frame starts a reader
                        return False
                peer.busy = False  # from here frames are dispatched from picows's callback
                peer.wake = loop.create_future()
                await peer.wake
                peer.wake = None
        except asyncio.CancelledError:  # the server stopping: the connection still ends
            sweep.peers.discard(peer)
            await self.end()
            raise
        except Exception:
            log.exception("client %s: reading failed", self.conn.client_id)
        sweep.peers.discard(peer)
        await self.finish(peer.code, peer.reason)
        await self.end()  # released here: no task waits for the connection's end
        return False

    def socket_close_code(self) -> int | None:
        ws = self.peer.sock.ws
        handshake = ws.close_handshake if ws is not None else None
        if handshake is not None and handshake.sent is not None:
            return _code(handshake.sent.code)
        return None

    def release(self) -> None:
        peer = self.peer
        if peer.session is None:
            return  # released already
        super().release()
        self.runtime.admission.release(self.conn.client_ip)  # its place under the IP's cap
        peer.queue = None
        peer.queued = 0
        peer.session = None  # Peer -> Session -> Peer
        peer.reader = None
        peer.pending = None
        peer.context = _EMPTY_CONTEXT  # the Context holds what handlers set, for this connection only


def _code(code: WSCloseCode) -> int:
    # picows's enum is a Cython one: codes it does not name (4000) come as plain ints
    return int(cast(SupportsInt, code))
