"""The aiohttp host's side of a WebSocket: frames written in batches, pings, pongs, closes.

:class:`AiohttpSocket` is the :class:`~wskit.transports.base.Socket` the runtime writes to.
Text frames are framed here and written once per event-loop tick per socket (frames to one
connection that were queued together leave in one ``send()``; a fan-out marks thousands of
sockets and writes them in one pass, :class:`Flusher`), control frames are written straight
to the transport (no task per ping or pong), and flow control is the transport's own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from aiohttp import web

from wskit.errors import clip_close_reason
from wskit.logs import LogBudget
from wskit.transports.aiohttp_internals import MaskCheck, drain_waiter
from wskit.transports.asyncio_internals import socket_transport
from wskit.transports.batching import Flusher, FrameBatch, framed

__all__ = ["CLOSE_TIMEOUT_S", "AiohttpSocket", "Flusher"]

log = logging.getLogger("wskit.server")

#: a server's ping frame: final, opcode 0x9, unmasked, empty
_PING_FRAME = b"\x89\x00"


#: How long a closing handshake may take before the TCP connection is cut instead: a peer
#: that stopped reading (the slow consumer we are closing) would otherwise hold it forever.
CLOSE_TIMEOUT_S = 2.0


#: lines about peers that stopped reading during a close, shared by every connection
_CLOSE_TIMEOUTS = LogBudget()


class AiohttpSocket:
    """:class:`~wskit.transports.base.Socket` over an aiohttp ``WebSocketResponse``.

    Text frames are framed here and written in batches (:class:`~wskit.transports.batching.FrameBatch`); control frames
    (ping, pong, close) stay aiohttp's. Flow control is the transport's: when it pauses
    writing, ``send_frame`` returns the wait for it to resume.
    """

    __slots__ = ("batch", "mask_check", "protocol", "raw_transport", "request", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, flusher: Flusher) -> None:
        self.ws = ws
        self.request = request
        self.transport = request.transport
        #: the transport that owns the socket (differs from ``transport`` under TLS); its
        #: reference cycle is broken at release
        self.raw_transport = socket_transport(self.transport)
        self.protocol = request.protocol
        #: frames waiting for the next write; its ``reading`` is set while the read loop is
        #: inside ``Dispatcher.receive`` (it settles afterwards: :meth:`settle`)
        self.batch = FrameBatch(flusher)
        #: what the transport feeds its frame parser through; it notes that bytes arrived
        self.mask_check: MaskCheck | None = None

    def send_frame(self, data: bytes) -> Awaitable[None] | None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.ws.closed:
            raise ConnectionResetError("WebSocket is closed")
        if self.batch.add(data, self):
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
        if self.protocol.writing_paused:
            return  # the peer does not read: a pong per ping would grow our buffer for ever
        if transport is not None and not transport.is_closing():
            transport.write(bytes((0x8A, len(payload))) + payload)

    def settle(self, now: bool) -> None:
        """The read loop is done with a frame: write what it sent ``now`` (it is about to
        wait), or leave it to the end-of-tick flush (more frames are already queued)."""
        if self.batch.settled(now, self):
            self.flush()

    def flush(self) -> None:
        frames = self.batch.take()
        if frames is None:
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(framed(frames))

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
