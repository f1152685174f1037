"""One WebSocket connection over aiohttp's client: open it, read it, watch it, close it.

aiohttp's exceptions are translated here (httpx's rule: third-party errors become ours at the
boundary): whatever keeps a connection from opening is one :class:`DialFailed`, with the
HTTP status of a refused upgrade or the mark of an untrusted certificate. The end of an open
connection is one :class:`Lost` value.

Dead-connection detection: every ``ping_interval`` seconds the client pings; if nothing at
all arrives (the pong, or any frame) within ``pong_timeout``, the peer is considered dead:
the connection is dropped without waiting for a closing handshake that cannot come, and the
client reconnects. Worst case, a dead peer is noticed ``ping_interval + pong_timeout`` after
its last frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from wskit.client.auth import Handshake
from wskit.errors import ConfigError, WsKitException

__all__ = ["Connection", "DialFailed", "Heartbeat", "Lost"]

log = logging.getLogger("wskit.client")

#: what the reader hands each data frame to; an awaitable result is awaited in order
FrameHandler = Callable[[bytes | str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Dead-connection detection. Defaults: ping every 10 s, dead after 5 s without an answer
    (a dead peer is noticed within 15 s). ``ping_interval=None`` turns it off."""

    ping_interval: float | None = 10.0
    pong_timeout: float = 5.0

    def __post_init__(self) -> None:
        if (self.ping_interval is not None and self.ping_interval <= 0) or self.pong_timeout <= 0:
            raise ConfigError(f"Heartbeat: times must be > 0, got {self.ping_interval} and {self.pong_timeout}")


class DialFailed(WsKitException):
    """A connection could not be opened. ``status``: the HTTP answer to a refused upgrade
    (None when there was none: refused, reset, DNS, timeout); ``retry_after``: its
    ``Retry-After`` in seconds; ``untrusted``: the TLS certificate failed verification."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, untrusted: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.untrusted = untrusted


@dataclass(frozen=True, slots=True)
class Lost:
    """How an open connection ended: the close ``code`` (1006 when there was no close frame),
    why, and whether this client ended it on purpose."""

    code: int
    reason: str
    by_client: bool = False


def _retry_after(headers: object) -> float | None:
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if not isinstance(value, str):
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: too rare on an upgrade to be worth parsing


class Connection:
    """An open WebSocket: :meth:`open` it, :meth:`start` reading, :meth:`send` frames, and
    await :meth:`wait_lost` for its end."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, generation: int, heartbeat: Heartbeat) -> None:
        self.ws = ws
        #: counts the client's connections: requests remember which one they were sent on
        self.generation = generation
        self._heartbeat = heartbeat
        self._lost: asyncio.Future[Lost] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._heard = asyncio.Event()
        self._busy = False
        self._closer: asyncio.Future[None] | None = None
        #: the server said it is shutting down: no application frame goes out on it any more
        self.draining = False
        #: the subprotocol the server chose (never the ``bearer.`` one)
        self.protocol = ws.protocol

    @classmethod
    async def open(
        cls,
        session: aiohttp.ClientSession,
        handshake: Handshake,
        *,
        generation: int,
        ssl: ssl_module.SSLContext | None,
        max_message_bytes: int,
        connect_timeout: float,
        heartbeat: Heartbeat,
    ) -> Connection:
        """Open a connection; raises :class:`DialFailed` saying why not."""
        try:
            async with asyncio.timeout(connect_timeout):
                ws = await session.ws_connect(
                    handshake.url,
                    headers=handshake.headers,
                    protocols=handshake.protocols,
                    ssl=ssl if ssl is not None else True,
                    max_msg_size=max_message_bytes,
                    autoping=False,  # pongs are the heartbeat's evidence: we see and answer them
                    timeout=aiohttp.ClientWSTimeout(ws_close=heartbeat.pong_timeout),
                )
        except aiohttp.WSServerHandshakeError as exc:
            message = f"upgrade refused: HTTP {exc.status} {exc.message}".strip()
            raise DialFailed(message, status=exc.status, retry_after=_retry_after(exc.headers)) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            message = f"the server's TLS certificate is not trusted: {exc.certificate_error}"
            raise DialFailed(message, untrusted=True) from None
        except TimeoutError:
            raise DialFailed(f"no WebSocket upgrade within {connect_timeout} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DialFailed(f"{type(exc).__name__}: {exc}") from None
        return cls(ws, generation, heartbeat)

    def start(self, on_frame: FrameHandler) -> None:
        """Start reading (frames go to ``on_frame``, in order) and the heartbeat."""
        self._reader = asyncio.create_task(self._read(on_frame), name=f"wskit-client-read-{self.generation}")
        if self._heartbeat.ping_interval is not None:
            self._pinger = asyncio.create_task(self._ping(self._heartbeat.ping_interval), name="wskit-client-ping")

    @property
    def is_lost(self) -> bool:
        return self._lost.done()

    async def wait_lost(self) -> Lost:
        """How the connection ended (waits until it has)."""
        return await asyncio.shield(self._lost)

    async def send(self, data: bytes) -> None:
        """Write one text frame; raises ``ConnectionError`` once the connection is closing."""
        if self._lost.done() or self.ws.closed:
            raise ConnectionResetError("the WebSocket connection is closed")
        await self.ws.send_frame(data, aiohttp.WSMsgType.TEXT)

    async def _read(self, on_frame: FrameHandler) -> None:
        ws = self.ws
        lost: Lost | None = None
        said = ""
        try:
            while True:
                msg = await ws.receive()
                self._heard.set()
                kind = msg.type
                if kind is aiohttp.WSMsgType.TEXT or kind is aiohttp.WSMsgType.BINARY:
                    self._busy = True
                    try:
                        result = on_frame(msg.data)
                        if result is not None:
                            await result
                    finally:
                        self._busy = False
                elif kind is aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                elif kind is aiohttp.WSMsgType.PONG:
                    continue
                elif kind is aiohttp.WSMsgType.ERROR:
                    # aiohttp closed it already (a frame over max_msg_size: 1009)
                    lost = Lost(ws.close_code or 1006, f"{type(msg.data).__name__}: {msg.data}", by_client=True)
                    break
                else:  # CLOSE handled by aiohttp (autoclose), then CLOSED / CLOSING
                    if kind is aiohttp.WSMsgType.CLOSE and isinstance(msg.extra, str) and msg.extra:
                        said = msg.extra[:123]  # the server's close reason (at most 123 bytes on the wire)
                    break
        except (ConnectionError, aiohttp.ClientError) as exc:
            lost = Lost(1006, f"{type(exc).__name__}: {exc}")
        finally:
            if lost is None:
                code = ws.close_code if ws.close_code is not None else 1006
                why = f"closed by the server: {said}" if said else "closed by the server"
                lost = Lost(code, why if code != 1006 else "the connection dropped")
            self._finish(lost)

    async def _ping(self, interval: float) -> None:
        timeout = self._heartbeat.pong_timeout
        while not self._lost.done():
            await asyncio.sleep(interval)
            self._heard.clear()
            try:
                await self.ws.ping()
            except (ConnectionError, aiohttp.ClientError):
                return  # the reader sees the end
            try:
                async with asyncio.timeout(timeout):
                    await self._heard.wait()
            except TimeoutError:
                if self._busy:
                    continue  # our own handler holds the reader: the answer may be waiting unread
                log.warning("wskit client: no answer to a ping within %.1f s: the connection is dead", timeout)
                self.abort(Lost(1006, f"no answer to a ping within {timeout} s (heartbeat)", by_client=True))
                return

    def abort(self, lost: Lost) -> None:
        """End the connection now without waiting for the peer (a dead peer never answers)."""
        if self._lost.done():
            return
        self._finish(lost)
        if self._reader is not None:
            self._reader.cancel()
        # aiohttp's close() after a cancelled receive() writes a close frame and releases the
        # socket without waiting for an answer
        self._closer = asyncio.ensure_future(self._quiet_close(1001, b""))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with the closing handshake (bounded by ``pong_timeout``), then stop reading."""
        if not self._lost.done():
            self._finish(Lost(code, reason or "closed by the client", by_client=True))
        await self._quiet_close(code, reason.encode()[:123])
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _quiet_close(self, code: int, message: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message)

    def _finish(self, lost: Lost) -> None:
        if not self._lost.done():
            self._lost.set_result(lost)
        if self._pinger is not None and self._pinger is not asyncio.current_task():
            self._pinger.cancel()
