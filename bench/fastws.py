"""A minimal, fast asyncio WebSocket client for load generation (RFC 6455, client side only).

Why not the ``websockets`` client: it wakes a coroutine per received message, which makes a
single load-generator process the bottleneck with a thousand subscribers. Here the frames
are parsed in ``data_received`` and handed to a plain callback, with no task or future per
message. Enough of the protocol for benchmarks against our own server: text/binary frames,
fragmentation, ping → pong, close handshake. Not a general-purpose client (no extensions,
no TLS, no proxies, ``ws://`` only).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable
from typing import cast

try:
    from websockets.speedups import apply_mask  # type: ignore[import-not-found,import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

__all__ = ["WsClient", "connect"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: refuse a peer that sends an absurd frame rather than buffering it
_MAX_FRAME = 16 * 1024 * 1024

OnMessage = Callable[[bytes], None]


class WsClient(asyncio.Protocol):
    """One client connection; ``on_message(data)`` runs for every complete text or binary message."""

    def __init__(self, host: str, port: int, path: str, on_message: OnMessage) -> None:
        self.on_message = on_message
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._buf = bytearray()
        self._fragments: list[bytes] = []
        self._close_sent = False
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        if not self.opened.done():
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf += data
                return
            self._check_handshake(data[:end].decode("latin-1"))
            if not self.opened.done():
                return
            data = data[end + 4 :]
        rest = self._parse(data)
        if rest:
            self._buf += rest

    # -- protocol --------------------------------------------------------------------------

    def _check_handshake(self, head: str) -> None:
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if " 101 " not in lines[0] + " " or headers.get("sec-websocket-accept") != accept:
            self.opened.set_exception(ConnectionError(f"upgrade refused: {lines[0]}"))
            self.abort()
            return
        self.opened.set_result(None)

    def _parse(self, data: bytes) -> bytes:
        """Handle every complete frame in ``data``; returns the incomplete tail."""
        size = len(data)
        pos = 0
        on_message = self.on_message
        while size - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", data, pos + 2)
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", data, pos + 2)
                start = pos + 10
            if b1 & 0x80 or length > _MAX_FRAME:
                self.abort()  # servers never mask; a huge frame is a bug in the server
                return b""
            end = start + length
            if end > size:
                break
            pos = end
            if (b0 == 0x81 or b0 == 0x82) and not self._fragments:
                on_message(data[start:end])  # the common case: one whole text or binary message
            else:
                self._frame(b0 & 0x80, b0 & 0x0F, data[start:end])
        return data[pos:]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (1, 2) or opcode == 0:
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                self._fragments.append(payload)
                payload = b"".join(self._fragments)
                self._fragments.clear()
            self.on_message(payload)
        elif opcode == 9:
            self._send(0xA, payload)
        elif opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            if not self.closed.done():
                self.closed.set_result(code)
            if not self._close_sent:
                self._close_sent = True
                self._send(0x8, payload[:2])
            if self._transport is not None:
                self._transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        transport.write(header + mask + apply_mask(payload, mask))

    # -- API -------------------------------------------------------------------------------

    def send_text(self, data: bytes) -> None:
        """Queue one text frame (``data`` is UTF-8 JSON); never blocks."""
        self._send(0x1, data)

    async def close(self, timeout: float = 5.0) -> None:
        """Close handshake (1000), bounded by ``timeout``; then the socket is closed either way."""
        if self._transport is None:
            return
        if not self.closed.done():
            if not self._close_sent:
                self._close_sent = True
                self._send(0x8, struct.pack("!H", 1000))
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self.closed)
            except TimeoutError:
                pass
        self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def connect(host: str, port: int, on_message: OnMessage, *, path: str = "/", timeout: float = 10.0) -> WsClient:
    """Open a connection and complete the upgrade within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _transport, client = await loop.create_connection(lambda: WsClient(host, port, path, on_message), host, port)
        try:
            await client.opened
        except BaseException:
            client.abort()
            raise
    return client
