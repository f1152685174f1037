"""The in-memory transport: a client and the server's pipeline joined by two queues.

No sockets, no HTTP: frames are handed over as bytes, so routers are tested through exactly
the decode, dispatch and encode path that a real socket uses, in plain pytest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wskit.connection import Connection, QueueLimits
from wskit.errors import CloseCode
from wskit.lifecycle import Session
from wskit.transports.base import HandshakeRequest

if TYPE_CHECKING:
    from wskit.runtime import Runtime

__all__ = ["Closed", "MemorySession", "MemorySocket", "MemoryTransport"]


class Closed:
    """What the client side reads once the connection is closed."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"Closed({self.code}, {self.reason!r})"


_STOP = object()


class MemorySocket:
    """The server's end: frames go to the client's inbox."""

    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport

    def send_frame(self, data: bytes) -> None:
        if self._transport.closed is not None:
            raise ConnectionError("connection closed")
        self._transport.inbox.put_nowait(data)
        return None

    async def close(self, code: int, reason: str) -> None:
        self._transport.shut(code, reason)


class MemorySession(Session):
    """The shared lifecycle over the client's queue of frames."""

    __slots__ = ("transport",)

    def __init__(self, runtime: Runtime, conn: Connection, transport: MemoryTransport) -> None:
        super().__init__(runtime, conn)
        self.transport = transport

    async def read(self) -> bool:
        """Read until closed, or until an RPC keeps this task (another reader goes on then)."""
        transport = self.transport
        receive = self.runtime.dispatcher.receive
        conn = self.conn
        while True:
            data = await transport.to_server.get()
            if data is _STOP or transport.closed is not None:
                break
            pending = receive(conn, data)
            if pending is not None and await pending:
                self.handed_off()
                return True
        closed = transport.closed
        code, reason = (closed.code, closed.reason) if closed else (CloseCode.GOING_AWAY, "")
        await self.finish(code, reason)
        return False

    async def close_socket(self, code: int) -> None:
        self.transport.shut(code, "")


class MemoryTransport:
    """Runs one connection of ``runtime`` in memory; the client side reads ``inbox``."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        client_id: str,
        data: Mapping[str, Any] | None = None,
        request: HandshakeRequest | None = None,
        max_payload_bytes: int = 1024 * 1024,
        limits: QueueLimits | None = None,
    ) -> None:
        self.runtime = runtime
        self.inbox: asyncio.Queue[bytes | Closed] = asyncio.Queue()
        self.closed: Closed | None = None
        self.max_payload_bytes = max_payload_bytes
        self.to_server: asyncio.Queue[Any] = asyncio.Queue()
        self.connection = Connection(client_id, MemorySocket(self), data=data, request=request, limits=limits)
        self._session = MemorySession(runtime, self.connection, self)
        self._running: asyncio.Task[None] | None = None

    async def open(self) -> bool:
        """Run ``on_open``; start the server-side read loop. False when refused."""
        await self.runtime.hub.start()
        session = self._session
        try:
            opened = await session.open()
        except BaseException:
            await session.end()
            raise
        if not opened:
            await session.end()
            return False
        self._running = asyncio.get_running_loop().create_task(session.run())
        return True

    def send(self, data: bytes | str) -> None:
        """A frame from the client. Over ``max_payload_bytes`` it closes with 1009, as sockets do."""
        if self.closed is not None:
            raise ConnectionError(f"connection closed ({self.closed.code})")
        size = len(data.encode() if isinstance(data, str) else data)
        if size > self.max_payload_bytes:
            self.shut(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        self.to_server.put_nowait(data)

    def shut(self, code: int, reason: str) -> None:
        """Close both directions (from either side)."""
        if self.closed is not None:
            return
        self.closed = Closed(code, reason)
        self.inbox.put_nowait(self.closed)
        self.to_server.put_nowait(_STOP)

    async def wait_closed(self) -> None:
        """Until the server side has finished with the connection (``on_close`` ran)."""
        if self._running is not None:
            await asyncio.shield(self._running)
