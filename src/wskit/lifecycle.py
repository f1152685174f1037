"""One connection's life, written once for every host: open -> read -> finish -> release.

A host (aiohttp, ASGI, memory) admits the upgrade with ``runtime.admission``, accepts it in
its own way, wraps its socket as a :class:`~wskit.transports.base.Socket`, and subclasses
:class:`Session` with the one thing that differs between hosts: :meth:`Session.read`, the
loop that takes frames off its socket and hands each to :meth:`Session.receive`. Everything
else is here: registering the connection where shutdown and readiness find it, the
watchdog, ``on_open``, the RPC hand-off (a handler that has to wait keeps the task it
started in while another task reads on), the close-code echo, ``on_close``, and breaking
the reference cycles a finished connection would leave for the garbage collector.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from wskit.connection import Connection
from wskit.errors import CloseCode, is_wire_close_code

if TYPE_CHECKING:
    from wskit.runtime import Runtime

__all__ = ["Session", "answer_to_close"]

log = logging.getLogger("wskit.lifecycle")

_NO_CONTEXT = contextvars.Context()

#: reader tasks started by hand-offs (referenced so they are not garbage-collected)
_READERS: set[asyncio.Task[bool]] = set()


def answer_to_close(code: int | None, reason: str) -> tuple[int, str, int]:
    """A peer's close frame carried ``code``: what ``on_close`` sees, and the code to echo.

    RFC 6455 asks the receiver of a close frame to answer with one, usually echoing the code
    (WS-Kit does). A close without a status code (None or 0) is 1005 to the application and
    answered 1000, since 1005 may not be sent; a code no close frame may carry (1004-1006,
    1015, 5000...) is a protocol error, seen and answered as 1002.
    Returns ``(code, reason, echo)``.
    """
    if not code:
        return CloseCode.NO_STATUS, reason, CloseCode.NORMAL
    if is_wire_close_code(code):
        return code, reason, code
    return CloseCode.PROTOCOL_ERROR, f"invalid close code {code}", CloseCode.PROTOCOL_ERROR


class Session:
    """One accepted connection of a runtime, from ``on_open`` to its release.

    A slotted object rather than closures: one is kept for every idle connection, so its
    size is the server's memory per connection. Hosts subclass it with :meth:`read` (and
    may extend :meth:`close_socket` and :meth:`release`).
    """

    __slots__ = ("conn", "context", "ended", "runtime")

    def __init__(self, runtime: Runtime, conn: Connection) -> None:
        self.runtime = runtime
        self.conn = conn
        #: made only when an RPC took a reader: done once the connection has finished
        self.ended: asyncio.Future[None] | None = None
        #: the context variables as they were once the connection opened (after ``on_open``):
        #: each reader started by a hand-off begins from a copy of these, not from the RPC's,
        #: so what a middleware set for one message never leaks into the next
        self.context = _NO_CONTEXT

    # -- what a host implements -------------------------------------------------------------

    async def read(self) -> bool:
        """Read frames until the connection ends (then :meth:`finish`), or until an RPC keeps
        this task: True, another task reads on (started by :meth:`spawn_reader`)."""
        raise NotImplementedError

    async def close_socket(self, code: int) -> None:
        """Close the host's socket with ``code`` after ``on_close`` ran (if still open)."""
        await self.conn.socket.close(code, "")

    def socket_close_code(self) -> int | None:
        """The code the host's socket was closed with, when it closed without this side's
        ``Connection.close`` (None: unknown)."""
        return None

    # -- the life ----------------------------------------------------------------------------

    async def live(self) -> None:
        """Open the connection, read it to its end (across hand-offs), finish and release.

        Cancelled (the server stopping), it still finishes: ``on_close`` runs and the
        connection leaves the hub.
        """
        opened = False
        try:
            opened = await self.open()
        finally:
            if not opened:
                await self.end()
        if opened:
            await self.run()

    async def open(self) -> bool:
        """Register the connection and run ``on_open``; False when a hook refused it (then
        :meth:`end` it). Hosts that must answer before reading (the memory transport) call
        this and :meth:`run` themselves; the others call :meth:`live`."""
        runtime, conn = self.runtime, self.conn
        conn.spawn_reader = self.spawn_reader
        runtime.connections[conn] = None
        runtime.watchdog.watch(conn)
        opened = await runtime.dispatcher.open(conn)
        self.context = contextvars.copy_context()
        return opened

    async def run(self) -> None:
        """Read the opened connection to its end (across hand-offs), then :meth:`end` it."""
        try:
            if await self.read():
                # this task became an RPC's; the connection lives until its last reader ends
                assert self.ended is not None
                await self.ended
        finally:
            await self.end()

    async def end(self) -> None:
        """Finish the connection unless a reader did (also when cancelled), then release it."""
        try:
            ended = self.ended
            if ended is None or not ended.done() or ended.cancelled():
                await self.finish(None, "")  # finish runs once: it knows when it already did
        finally:
            self.release()

    def receive(self, data: bytes | str) -> Awaitable[bool | None] | None:
        """Hand one frame to the dispatcher (see ``Dispatcher.receive``)."""
        return self.runtime.dispatcher.receive(self.conn, data)

    def spawn_reader(self) -> None:
        """Start another task reading this connection (an RPC kept the current one)."""
        task = asyncio.get_running_loop().create_task(self.read(), context=self.context.copy())
        _READERS.add(task)
        task.add_done_callback(_READERS.discard)

    def handed_off(self) -> None:
        """The reading task is an RPC's from now on: :meth:`live` waits for :attr:`ended`."""
        if self.ended is None:
            self.ended = asyncio.get_running_loop().create_future()

    async def finish(self, code: int | None, reason: str) -> None:
        """The connection ended with ``code`` (None: a close this side started, whose code the
        connection remembers): cancel its RPCs, leave its topics, run ``on_close``, close the
        socket. Runs once; later calls return at once."""
        runtime, conn = self.runtime, self.conn
        try:
            if runtime.connections.pop(conn, False) is False:
                return  # already finished
            runtime.watchdog.forget(conn)
            if code is None:
                # a close we started (ctx.close, watchdog, slow consumer) keeps its own code
                code = conn.close_code if conn.close_code is not None else self.socket_close_code()
            await runtime.dispatcher.disconnect(conn, code, reason or conn.close_reason)
            await self.close_socket(code if code and code != CloseCode.ABNORMAL else CloseCode.GOING_AWAY)
        finally:
            if self.ended is None:
                self.ended = asyncio.get_running_loop().create_future()
            if not self.ended.done():
                self.ended.set_result(None)

    def release(self) -> None:
        """Drop what would keep a finished connection alive in a reference cycle (so reference
        counting frees it at once, not the collector much later)."""
        self.conn.spawn_reader = None  # Connection -> bound method -> Session -> Connection
        self.context = _NO_CONTEXT  # what on_open set is the connection's: let it go with it
