"""One WebSocket connection for the remote commands, read as a queue of frames.

It is built from ``wskit.client``'s own parts: the handshake with the token in the
``access_token`` query (as ``Client`` sends it), the connection (its heartbeat, its close
handling) and the envelope parser. It does not use :class:`wskit.client.Client` itself: a
debugging command sends any type with any JSON, prints every frame whatever its type, and
must report a lost connection instead of reconnecting; ``Client`` is typed by declarations
and reconnects by design.

What can go wrong is a :class:`~wskit.client.ClientError` (``UNAVAILABLE``) whose message is
the line to print: the server cannot be reached (``cannot connect to ws://127.0.0.1:9/:
connection refused``), refused the upgrade (with the HTTP status), or closed the connection
(with the close code).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from wskit.client.auth import TokenSource
from wskit.client.codec import Envelope, parse_envelope
from wskit.client.connection import Connection, DialFailed, Heartbeat, Lost
from wskit.client.errors import ClientError
from wskit.errors import CloseCode, ErrorCode

__all__ = ["Frame", "Link", "closed"]

#: frames read but not yet taken; the reader waits beyond it (the socket pushes back)
_QUEUE_FRAMES = 1000
#: largest frame accepted from the server (the client's default)
_MAX_FRAME_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame from the server: its text and, when it is a wskit envelope, the parsed envelope."""

    text: str
    envelope: Envelope | None

    @property
    def type(self) -> str | None:
        return self.envelope.type if self.envelope is not None else None

    @property
    def meta(self) -> dict[str, Any]:
        return self.envelope.meta if self.envelope is not None else {}

    def error(self) -> str:
        """``NOT_FOUND: no such user {"id": "2"}`` from an ``ERROR`` or ``RPC_ERROR`` frame."""
        error = ClientError.from_payload(self.envelope.payload if self.envelope is not None else None)
        details = f" {json.dumps(dict(error.details), ensure_ascii=False)}" if error.details else ""
        return f"{error.code}: {error.message}{details}"

    def refusal(self, prefix: str = "") -> ClientError:
        """The error an ``ERROR``/``RPC_ERROR`` frame reports, its message the line to print."""
        error = ClientError.from_payload(self.envelope.payload if self.envelope is not None else None)
        return ClientError(error.code, prefix + self.error(), details=error.details)

    def line(self) -> str:
        """The frame as one line of JSON (a frame that is not JSON as a JSON string)."""
        try:
            value = json.loads(self.text)
        except ValueError:
            value = self.text
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Link:
    """An open connection: :meth:`send` frames, :meth:`receive` what the server sends, in order."""

    def __init__(self, url: str, session: aiohttp.ClientSession, conn: Connection) -> None:
        self.url = url
        self._session = session
        self._conn = conn
        self._frames: asyncio.Queue[Frame] = asyncio.Queue(_QUEUE_FRAMES)
        conn.start(self._on_frame)

    @classmethod
    async def open(cls, url: str, *, token: str | None, timeout: float) -> Link:
        """Connect to ``url``; raises :class:`ClientError` saying why it could not."""
        tokens = TokenSource(token)
        handshake = tokens.handshake(URL(url), token, headers={}, protocols=())
        session = aiohttp.ClientSession()
        try:
            conn = await Connection.open(
                session,
                handshake,
                generation=1,
                ssl=None,
                max_message_bytes=_MAX_FRAME_BYTES,
                connect_timeout=timeout,
                heartbeat=Heartbeat(),
            )
        except DialFailed as exc:
            await session.close()
            raise ClientError(ErrorCode.UNAVAILABLE, f"cannot connect to {url}: {_why(exc, token)}") from exc
        except BaseException:
            await session.close()
            raise
        return cls(url, session, conn)

    def _on_frame(self, data: bytes | str) -> Any:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        try:
            envelope: Envelope | None = parse_envelope(text)
        except ValueError:
            envelope = None
        return self._frames.put(Frame(text, envelope))

    async def send(self, data: bytes) -> None:
        """Write one text frame; :class:`ClientError` when the connection has ended."""
        try:
            await self._conn.send(data)
        except ConnectionError:
            raise ClientError(ErrorCode.UNAVAILABLE, closed(await self._conn.wait_lost())) from None

    async def receive(self, timeout: float | None) -> Frame | None:
        """The next frame; None after ``timeout`` seconds without one; :class:`ClientError` once the
        connection has ended and every frame read before the end was taken."""
        if not self._frames.empty():
            return self._frames.get_nowait()
        getting = asyncio.ensure_future(self._frames.get())
        ending = asyncio.ensure_future(self._conn.wait_lost())
        try:
            done, _ = await asyncio.wait((getting, ending), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
            if not getting.done():
                getting.cancel()
        if getting in done:
            return getting.result()
        if ending in done:
            raise ClientError(ErrorCode.UNAVAILABLE, closed(ending.result()))
        return None

    async def close(self) -> None:
        """Close with the closing handshake (bounded), then release the HTTP session."""
        try:
            await self._conn.close(1000, "done")
        finally:
            await self._session.close()

    async def __aenter__(self) -> Link:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def closed(lost: Lost) -> str:
    """How the connection ended, for one line: ``the server closed the connection: 1009 (message too big)``."""
    if lost.code == CloseCode.ABNORMAL:
        return f"the connection dropped without a close frame (1006): {lost.reason}"
    try:
        name = CloseCode(lost.code).name.lower().replace("_", " ")
    except ValueError:
        name = "application code" if 3000 <= lost.code <= 4999 else "unknown code"
    who = "this command" if lost.by_client else "the server"
    return f"{who} closed the connection: {lost.code} ({name})"


def _why(exc: DialFailed, token: str | None) -> str:
    """The reason a connection could not be made, in the words of the OS or HTTP."""
    if exc.status is not None:
        if exc.status == 401:
            return f"{exc} ({'the token was refused' if token else 'pass --token'})"
        return str(exc)
    # the client keeps aiohttp's error as the context of DialFailed: its OS error says it best
    cause = exc.__context__
    os_error = getattr(cause, "os_error", None)
    if type(cause).__name__ == "ClientConnectorDNSError":
        return f"cannot resolve the host name ({getattr(os_error, 'strerror', None) or cause})"
    number = getattr(os_error, "errno", None)
    if isinstance(number, int) and number > 0:
        return "connection refused" if number == errno.ECONNREFUSED else os.strerror(number).lower()
    return str(exc)
