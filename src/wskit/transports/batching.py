"""Writing a socket's text frames in batches: the part of a host's socket that does not
depend on its WebSocket library, shared by the aiohttp and picows hosts.

A :class:`FrameBatch` frames server text frames itself (servers never mask) and holds them
until one ``write`` can take them all: when the reading side is about to wait (``settle``),
at the end of the event-loop tick (:class:`Flusher`, for frames sent from anywhere else:
another connection's handler, a fan-out, a timer), or past :data:`FLUSH_BYTES`. Replies to
frames that arrived together leave in one system call instead of one each, and a fan-out
marks thousands of sockets and writes each once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

__all__ = ["FLUSH_BYTES", "Flusher", "FrameBatch", "framed", "text_frame_header"]

log = logging.getLogger("wskit.server")

#: Frames waiting for the end of the loop tick are written at once past this many bytes.
FLUSH_BYTES = 64 * 1024

#: headers of final, unmasked text frames under 126 bytes, made once
_SMALL_HEADERS = tuple(bytes((0x81, size)) for size in range(126))


def text_frame_header(size: int) -> bytes:
    """The header of a final, unmasked text frame of ``size`` payload bytes (RFC 6455 5.2)."""
    if size < 126:
        return _SMALL_HEADERS[size]
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


def framed(payloads: list[bytes]) -> bytes:
    """``payloads`` as consecutive final, unmarked text frames, ready for one write."""
    parts: list[bytes] = []
    for payload in payloads:
        parts.append(text_frame_header(len(payload)))
        parts.append(payload)
    return b"".join(parts)


class _Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    """Writes every marked socket's waiting frames once per event-loop tick. One per server
    (so per event loop)."""

    __slots__ = ("_dirty", "_loop")

    def __init__(self) -> None:
        self._dirty: list[_Flushable] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def mark(self, sock: _Flushable) -> None:
        if not self._dirty:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush)
        self._dirty.append(sock)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for sock in dirty:
            try:
                sock.flush()
            except Exception:  # one socket's failure must not strand the others' frames
                log.exception("writing a batch of frames failed")


class FrameBatch:
    """The frames one socket holds until its next write.

    ``add`` queues a text frame's payload (True: past :data:`FLUSH_BYTES`, write now);
    ``take`` empties the batch (the payloads in order; :func:`framed` makes one write of
    them, or a host writes a lone frame its own way). While :attr:`reading` (the socket's read
    side is inside ``Dispatcher.receive``), a new batch is not marked for the end of the
    tick: the reader settles it itself (:meth:`settled`). The socket that owns the batch is
    passed to the calls that mark it, never kept: a socket -> batch -> socket cycle would be
    garbage only the collector frees, per closed connection.
    """

    __slots__ = ("_flusher", "_pending", "_pending_bytes", "_unmarked", "reading")

    def __init__(self, flusher: Flusher) -> None:
        self._flusher = flusher
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0
        self._unmarked = False
        #: the read side is inside ``Dispatcher.receive`` and settles afterwards
        self.reading = False

    def add(self, data: bytes, owner: _Flushable) -> bool:
        pending = self._pending
        if pending is None:
            pending = self._pending = []
            if self.reading:
                self._unmarked = True
            else:
                self._flusher.mark(owner)
        pending.append(data)
        self._pending_bytes += len(data)
        return self._pending_bytes >= FLUSH_BYTES

    def take(self) -> list[bytes] | None:
        self._unmarked = False
        pending = self._pending
        if pending is None:
            return None
        self._pending = None
        self._pending_bytes = 0
        return pending

    def settled(self, now: bool, owner: _Flushable) -> bool:
        """The reader is done with a frame: True when the batch should be written ``now``
        (the reader is about to wait); otherwise it is left to the end-of-tick flush."""
        self.reading = False
        if self._pending is None:
            return False
        if now:
            return True
        if self._unmarked:
            self._unmarked = False
            self._flusher.mark(owner)
        return False
