"""The picows host's side of a WebSocket: frames written at once, pings, closes.

:class:`PicowsSocket` is the :class:`~wskit.transports.base.Socket` the runtime writes to;
:func:`ping` and :func:`heard` are the Watchdog's sweep over it (``Watchdog.enable_pings``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from picows import WSCloseCode, WSMsgType, WSTransport

from wskit.connection import Connection
from wskit.errors import clip_close_reason

__all__ = ["CLOSE_TIMEOUT_S", "PicowsSocket", "heard", "ping"]

#: how long a closing handshake may take before the TCP connection is cut
CLOSE_TIMEOUT_S = 2.0

_TEXT = WSMsgType.TEXT


class PicowsSocket:
    """:class:`~wskit.transports.base.Socket` over picows's ``WSTransport``: frames are
    written at once (picows tries ``send()`` first); while the transport has paused writing,
    ``send_frame`` returns the wait for it to resume."""

    __slots__ = ("_resumed", "heard_since_ping", "ws")

    def __init__(self) -> None:
        self.ws: WSTransport | None = None
        self._resumed: asyncio.Future[None] | None = None
        #: a frame arrived since the last ping (the Watchdog's proof of life)
        self.heard_since_ping = True

    def send_frame(self, data: bytes) -> Awaitable[None] | None:
        ws = self.ws
        if ws is None or ws.is_close_frame_sent or ws.is_disconnected:
            raise ConnectionResetError("WebSocket is closed")
        ws.send(_TEXT, data)
        return self._resumed

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
