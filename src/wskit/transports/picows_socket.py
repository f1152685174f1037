"""The picows host's side of a WebSocket: frames written in batches, pings, closes.

:class:`PicowsSocket` is the :class:`~wskit.transports.base.Socket` the runtime writes to;
:func:`ping` and :func:`heard` are the Watchdog's sweep over it (``Watchdog.enable_pings``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from picows import WSCloseCode, WSMsgType, WSTransport

from wskit.connection import Connection
from wskit.errors import clip_close_reason
from wskit.transports.batching import Flusher, FrameBatch, framed

__all__ = ["CLOSE_TIMEOUT_S", "PicowsSocket", "heard", "ping"]

#: how long a closing handshake may take before the TCP connection is cut
CLOSE_TIMEOUT_S = 2.0


_TEXT = WSMsgType.TEXT


class PicowsSocket:
    """:class:`~wskit.transports.base.Socket` over picows's ``WSTransport``.

    Text frames are framed here and written in batches to the TCP transport underneath
    (:class:`~wskit.transports.batching.FrameBatch`: the answers to frames that arrived
    together leave in one ``send()``, a fan-out writes each socket once per tick); control
    frames are picows's, written after the batch so the order holds. While the transport has
    paused writing, ``send_frame`` returns the wait for it to resume.
    """

    __slots__ = ("_resumed", "batch", "heard_since_ping", "ws")

    def __init__(self, flusher: Flusher) -> None:
        self.ws: WSTransport | None = None
        self._resumed: asyncio.Future[None] | None = None
        #: a frame arrived since the last ping (the Watchdog's proof of life)
        self.heard_since_ping = True
        #: frames waiting for the next write (``reading`` while a frame is being dispatched)
        self.batch = FrameBatch(flusher)

    def send_frame(self, data: bytes) -> Awaitable[None] | None:
        ws = self.ws
        if ws is None or ws.is_close_frame_sent or ws.is_disconnected:
            raise ConnectionResetError("WebSocket is closed")
        if self.batch.add(data, self):
            self.flush()
        return self._resumed

    def settle(self, now: bool) -> None:
        """The reader is done with a frame: write what it sent ``now`` (nothing more is
        buffered), or leave it to the end-of-tick flush."""
        if self.batch.settled(now, self):
            self.flush()

    def flush(self) -> None:
        frames = self.batch.take()
        ws = self.ws
        if frames is None or ws is None or ws.is_close_frame_sent or ws.is_disconnected:
            return
        if len(frames) == 1:
            ws.send(_TEXT, frames[0])  # picows frames a lone one in C: the request/response case
        else:
            ws.underlying_transport.write(framed(frames))

    @property
    def writing_paused(self) -> bool:
        """picows's transport has paused writing (the peer is not reading)."""
        return self._resumed is not None

    def pause_writing(self) -> None:
        if self._resumed is None:
            self._resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    def ping(self) -> None:
        ws = self.ws
        if ws is not None and not ws.is_close_frame_sent and not ws.is_disconnected:
            self.heard_since_ping = False
            ws.send_ping()

    async def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or ws.is_disconnected:
            return
        self.flush()  # frames sent before the close go out before it
        if not ws.is_close_frame_sent:
            ws.send_close(WSCloseCode(code), clip_close_reason(reason))
        try:
            await asyncio.wait_for(ws.wait_disconnected(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            ws.disconnect(False)  # the peer does not read: cut


def ping(conn: Connection) -> None:
    """The Watchdog's ping (see ``Watchdog.enable_pings``)."""
    sock = conn.socket
    if isinstance(sock, PicowsSocket):
        sock.ping()


def heard(conn: Connection) -> bool:
    """Whether a frame came from ``conn`` since its last ping."""
    sock = conn.socket
    return not isinstance(sock, PicowsSocket) or sock.heard_since_ping
