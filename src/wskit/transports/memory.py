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
from wskit.transports.base import HandshakeRequest

if TYPE_CHECKING:
    from wskit.runtime import Runtime

__all__ = ["Closed", "MemorySocket", "MemoryTransport"]


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
        self._to_server: asyncio.Queue[Any] = asyncio.Queue()
        self.connection = Connection(client_id, MemorySocket(self), data=data, request=request, limits=limits)
        self._readers: set[asyncio.Task[None]] = set()
        self._ended: asyncio.Future[None] | None = None

    async def open(self) -> bool:
        """Run ``on_open``; start the server-side read loop. False when refused."""
        await self.runtime.hub.start()
        dispatcher = self.runtime.dispatcher
        if not await dispatcher.open(self.connection):
            await dispatcher.disconnect(self.connection, self.connection.close_code)
            return False
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()

        def spawn_reader() -> None:
            task = loop.create_task(self._read_loop(dispatcher))
            self._readers.add(task)
            task.add_done_callback(self._readers.discard)

        self.connection.spawn_reader = spawn_reader
        spawn_reader()
        return True

    async def _read_loop(self, dispatcher: Any) -> None:
        """Read until closed, or until an RPC keeps this task (another reader goes on then)."""
        conn = self.connection
        try:
            while True:
                data = await self._to_server.get()
                if data is _STOP or self.closed is not None:
                    break
                pending = dispatcher.receive(conn, data)
                if pending is not None and await pending:
                    return
        except asyncio.CancelledError:
            pass
        closed = self.closed
        code, reason = (closed.code, closed.reason) if closed else (CloseCode.GOING_AWAY, "")
        try:
            await dispatcher.disconnect(conn, code, reason)
        finally:
            if self._ended is not None and not self._ended.done():
                self._ended.set_result(None)

    def send(self, data: bytes | str) -> None:
        """A frame from the client. Over ``max_payload_bytes`` it closes with 1009, as sockets do."""
        if self.closed is not None:
            raise ConnectionError(f"connection closed ({self.closed.code})")
        size = len(data.encode() if isinstance(data, str) else data)
        if size > self.max_payload_bytes:
            self.shut(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        self._to_server.put_nowait(data)

    def shut(self, code: int, reason: str) -> None:
        """Close both directions (from either side)."""
        if self.closed is not None:
            return
        self.closed = Closed(code, reason)
        self.inbox.put_nowait(self.closed)
        self._to_server.put_nowait(_STOP)

    async def wait_closed(self) -> None:
        """Until the server side has finished with the connection (``on_close`` ran)."""
        if self._ended is not None:
            await asyncio.shield(self._ended)
