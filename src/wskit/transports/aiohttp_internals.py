"""Every use wskit makes of aiohttp's and asyncio's private attributes, in one place.

The aiohttp host needs a few things neither library offers publicly. Each is one small
function here, documented with what it touches and why; ``tests/unit/test_aiohttp_internals.py``
checks every one of them against the installed versions and fails loudly when an upgrade
renames or removes an attribute (pyproject pins ``aiohttp<4``). Nothing else in wskit
touches a private attribute of either library.

What is used, and why:

- ``BaseProtocol._drain_helper()`` (aiohttp): the wait for a paused transport to resume
  writing, without a task per frame (:func:`drain_waiter`).
- ``WebSocketDataQueue._buffer`` (aiohttp, ``cdef public`` in its Cython build): whether
  more parsed frames are already queued, so replies are written before the read loop
  waits instead of at the end of the loop tick (:func:`inbound_frames`).
- asyncio's own (the selector transport's cycle to itself): ``transports.asyncio_internals``,
  shared with the picows host.
- ``RequestHandler._message_tail`` and ``RequestHandler._payload_parser``, and
  ``WebSocketResponse._reader`` (aiohttp): the client-mask check of RFC 6455 5.1, which
  aiohttp's frame parser does not make (:func:`pending_tail`, :func:`check_client_masks`).
  Sitting where aiohttp's protocol feeds its parser, the check also notes that bytes
  arrived: the ping sweep's proof that a peer is alive (``MaskCheck.received``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sized
from typing import Any, Protocol

from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_websocket import WebSocketError
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "MaskCheck",
    "check_client_masks",
    "drain_waiter",
    "inbound_frames",
    "pending_tail",
    "tail_is_masked",
]


def drain_waiter(protocol: BaseProtocol) -> Awaitable[None]:
    """The wait until ``protocol``'s transport takes writes again (it paused them).

    ``BaseProtocol._drain_helper()``: what aiohttp's own writers await; the public route
    (``StreamWriter.drain()``) needs a writer object per socket and a coroutine level more.
    """
    return protocol._drain_helper()


class _AlwaysMore:
    """Stands in for a frame queue we cannot see: never empty, so replies wait for the
    end-of-tick flush (correct, only one write less cheap)."""

    def __len__(self) -> int:
        return 1


_ALWAYS_MORE = _AlwaysMore()


def inbound_frames(ws: web.WebSocketResponse) -> Sized:
    """The queue of frames aiohttp has parsed for ``ws`` and the application not yet read.

    ``WebSocketResponse._reader._buffer`` (a deque). Call after ``prepare()``.
    """
    reader = ws._reader
    buffer: Sized | None = getattr(reader, "_buffer", None)
    return buffer if buffer is not None else _ALWAYS_MORE


def pending_tail(protocol: RequestHandler) -> bytes:
    """Bytes the client sent after its upgrade request, before the 101 answer.

    ``RequestHandler._message_tail``: aiohttp feeds them to the frame parser as soon as it is
    installed, so they are checked here, before ``prepare()``.
    """
    tail: bytes = protocol._message_tail
    return tail


class _FrameParser(Protocol):
    def feed_data(self, data: bytes) -> tuple[bool, bytes]: ...

    def feed_eof(self) -> None: ...


class MaskCheck:
    """Fails the connection (1002) at the first client frame without the mask bit.

    RFC 6455 5.1: "a server MUST close the connection upon receiving a frame that is not
    masked". aiohttp's parser unmasks when the bit is set and accepts the frame when it is
    not; this wrapper sits between aiohttp's protocol and its parser and reads only frame
    headers, skipping payloads by their length, so its cost does not grow with frame size.
    Frames before the bad one are parsed as usual; the bad one and everything after it are
    not, and the read loop gets aiohttp's ``WebSocketError`` (aiohttp then closes 1002).
    """

    __slots__ = ("_feed", "_head", "_inner", "_queue", "_skip", "failed", "received")

    def __init__(self, inner: _FrameParser, queue: Any) -> None:
        self._inner = inner
        self._feed = inner.feed_data
        self._queue = queue
        self._skip = 0  # payload bytes of the current frame not seen yet
        self._head = b""  # a frame header split across reads
        self.failed = False
        #: bytes arrived since the host last cleared it (the ping sweep's proof of life)
        self.received = True

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.received = True
        skip = self._skip
        if skip == 0 and not self._head and not self.failed:
            # the usual read: exactly one small masked frame (header 6 bytes)
            size = len(data)
            if size > 1:
                second = data[1]
                if second > 0x80 + 125 or second & 0x80 == 0 or (second & 0x7F) + 6 != size:
                    return self._scan_and_feed(data)
                return self._feed(data)
        return self._scan_and_feed(data)

    def _scan_and_feed(self, data: bytes) -> tuple[bool, bytes]:
        if self.failed:
            return True, b""
        skip = self._skip
        size = len(data)
        if skip >= size and not self._head:
            self._skip = skip - size  # all payload: the common case for a large frame
            return self._feed(data)
        bad = self.scan(data)
        if bad < 0:
            return self._feed(data)
        self.failed = True
        if bad > 0:
            self._feed(data[:bad])
        self._queue.set_exception(WebSocketError(1002, "unmasked frame from the client (RFC 6455 5.1)"))
        return True, b""

    def scan(self, data: bytes) -> int:
        """Advance over ``data``; the offset in it of an unmasked frame's header, else -1
        (0 also when the bad header began in an earlier read)."""
        shift = len(self._head)
        buf = self._head + data if shift else data
        end = len(buf)
        pos = self._skip if not shift else 0
        self._head = b""
        while pos < end:
            if end - pos < 2:
                self._head = buf[pos:]
                self._skip = 0
                return -1
            second = buf[pos + 1]
            if not second & 0x80:
                return max(pos - shift, 0)
            length = second & 0x7F
            header = 6 if length < 126 else 8 if length == 126 else 14
            if end - pos < header:
                self._head = buf[pos:]
                self._skip = 0
                return -1
            if length == 126:
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            pos += header + length
        self._skip = pos - end
        return -1


def take_tail(protocol: RequestHandler) -> bytes:
    """Take the bytes the client sent before the 101 away from aiohttp (``_message_tail``).

    ``prepare()`` would feed them to its frame parser before :func:`check_client_masks` can
    put the mask check in front of it, and the bytes may have grown while the upgrade was
    being admitted (an async ``authenticate``): the host feeds them through the check
    itself, so it also starts at the first frame header rather than in the middle of a frame.
    """
    tail: bytes = protocol._message_tail
    protocol._message_tail = b""
    return tail


def check_client_masks(ws: web.WebSocketResponse, protocol: RequestHandler, tail: bytes = b"") -> MaskCheck:
    """Put a :class:`MaskCheck` in front of the frame parser ``ws.prepare()`` installed.

    ``RequestHandler._payload_parser`` is what ``data_received`` feeds; ``ws._reader`` is the
    frame queue the read loop waits on. Call right after ``prepare()``: ``prepare`` does not
    yield to the event loop between installing the parser and returning unless writing the
    101 answer paused the transport, which a 200-byte answer does not. ``tail``: the bytes
    :func:`take_tail` took before ``prepare()``.
    """
    check = MaskCheck(protocol._payload_parser, ws._reader)
    protocol._payload_parser = check
    if tail:
        check.feed_data(tail)  # what take_tail() held back, through the check
    return check


def tail_is_masked(tail: bytes) -> bool:
    """True when every frame header in ``tail`` (bytes before the 101) carries the mask bit."""
    return MaskCheck(_NoParser(), None).scan(tail) < 0


class _NoParser:
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        return False, b""

    def feed_eof(self) -> None:
        pass
