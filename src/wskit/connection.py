"""One connection's server-side state and its bounded outbound queue.

Sending never awaits the peer: :meth:`Connection.send_nowait` writes straight to the socket
while the transport keeps up, and only when it pushes back does a backlog (bounded in
messages and bytes) and a writer task appear. What happens at the bound is a policy:
``close`` (1013, the default: a slow consumer reconnects and recovers), ``drop-oldest`` or
``drop-new``; every drop is counted and logged. So a publisher fanning out to thousands of
sockets writes the same bytes to each without ever waiting on the slowest one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from wskit.errors import CloseCode
from wskit.transports.base import HandshakeRequest, Socket

if TYPE_CHECKING:
    from wskit.telemetry import Telemetry

__all__ = ["Connection", "OverflowPolicy", "QueueLimits"]

log = logging.getLogger("wskit.connection")

_NO_TOPICS: frozenset[str] = frozenset()

#: process-wide counters (metrics read them): frames dropped, slow consumers closed
STATS: dict[str, int] = {"dropped": 0, "closed_slow": 0}
DROP_LOG_INTERVAL_S = 5.0

# closes started from synchronous code; referenced here so they are not garbage-collected
_closing_tasks: set[asyncio.Future[None]] = set()


class OverflowPolicy(StrEnum):
    """What to do when a connection's outbound queue is full."""

    CLOSE = "close"
    DROP_OLDEST = "drop-oldest"
    DROP_NEW = "drop-new"


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Bounds of one connection's outbound backlog (frames waiting for a slow socket).

    The bound is per connection: a process holding N slow consumers may hold up to N times
    ``max_bytes`` in backlogs (plus what sits in each socket's transport buffer). ``policy``
    may be given as its string (``"drop-oldest"``). Raises :class:`ValueError` for a bound
    below 1 or an unknown policy.
    """

    max_messages: int = 1024
    max_bytes: int = 4 * 1024 * 1024
    policy: OverflowPolicy = OverflowPolicy.CLOSE

    def __post_init__(self) -> None:
        if self.max_messages < 1 or self.max_bytes < 1:
            raise ValueError("QueueLimits needs max_messages >= 1 and max_bytes >= 1")
        # the send path compares policies by identity: a plain "drop-new" must become the member
        object.__setattr__(self, "policy", OverflowPolicy(self.policy))


class Connection:
    """A connected client: identity, data, topics, and the way out to its socket."""

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_closing",
        "_next_drop_log",
        "_writer",
        "client_id",
        "client_ip",
        "close_code",
        "close_reason",
        "closed",
        "data",
        "dropped",
        "last_activity",
        "limits",
        "opened_at",
        "positions",
        "reader_waiting",
        "received",
        "rpcs",
        "sent",
        "socket",
        "spawn_reader",
        "telemetry",
        "topics",
        "watchdog",
    )

    def __init__(
        self,
        client_id: str,
        socket: Socket,
        *,
        data: Mapping[str, Any] | None = None,
        request: HandshakeRequest | None = None,
        limits: QueueLimits | None = None,
    ) -> None:
        self.client_id = client_id
        self.socket = socket
        self.data: dict[str, Any] = dict(data or {})
        #: the client's address as admission resolved it (behind trusted proxies: the
        #: forwarded one). The upgrade request itself is not kept: its headers, query and
        #: cookies would stay for the connection's life (~1.5 KB of an idle connection's
        #: memory); ``authenticate`` copies what the application needs into ``data``
        self.client_ip = request.client_ip if request is not None else None
        self.limits = limits or QueueLimits()
        #: shared empty set until the first subscribe (an idle connection's memory counts)
        self.topics: set[str] | frozenset[str] = _NO_TOPICS
        #: in-flight RPCs by correlationId (see wskit.inflight)
        self.rpcs: dict[object, Any] = {}
        #: starts another task reading this connection (set by transports that support it):
        #: an RPC whose handler has to wait keeps the task it started in and hands reading on
        self.spawn_reader: Callable[[], None] | None = None
        #: reading stopped at the in-flight RPC bound; the next RPC to finish resumes it
        self.reader_waiting = False
        #: the Watchdog guarding this connection (told when AUTH sets a token expiry)
        self.watchdog: Any = None
        #: per history topic: (epoch, last offset delivered), or a buffer while recovering
        self.positions: dict[str, Any] = {}
        #: time.monotonic() of the last application message, and of the opening (watchdog)
        self.last_activity = 0.0
        self.opened_at = 0.0
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.dropped = 0
        #: frames read from and queued for this peer (the disconnect event reports them)
        self.received = 0
        self.sent = 0
        #: the runtime's counters and events (set when the connection opens)
        self.telemetry: Telemetry | None = None
        self._backlog: deque[bytes] | None = None
        self._backlog_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._next_drop_log = 0.0

    @property
    def user_id(self) -> Any:
        """The connection's user (``data["user_id"]``), None when anonymous."""
        return self.data.get("user_id")

    @property
    def backlog(self) -> int:
        """Frames waiting for the socket (0 while the transport keeps up)."""
        return len(self._backlog) if self._backlog is not None else 0

    def send_nowait(self, data: bytes, overflow: OverflowPolicy | None = None) -> bool:
        """Queue one frame for this peer. False when it was not queued (closed or dropped).

        ``overflow`` overrides the connection's policy for this frame when the queue is full.
        """
        if self._closing:
            return False
        self.sent += 1
        backlog = self._backlog
        if backlog is None:
            try:
                pending = self.socket.send_frame(data)
            except (ConnectionError, RuntimeError):
                self._closing = True
                return False
            if pending is not None:
                # the transport wants us to wait: later frames go to the backlog
                self._backlog = deque()
                self._writer = asyncio.ensure_future(self._drain(pending))
            return True
        limits = self.limits
        if len(backlog) >= limits.max_messages or self._backlog_bytes + len(data) > limits.max_bytes:
            return self._overflow(data, overflow or limits.policy)
        backlog.append(data)
        self._backlog_bytes += len(data)
        return True

    def _overflow(self, data: bytes, policy: OverflowPolicy) -> bool:
        backlog = self._backlog
        assert backlog is not None
        if policy is OverflowPolicy.DROP_NEW:
            self._dropped(1, "newest", OverflowPolicy.DROP_NEW)
            return False
        if policy is OverflowPolicy.DROP_OLDEST:
            if len(data) > self.limits.max_bytes:
                # it could never fit: dropping the queued frames would lose them for nothing
                self._dropped(1, "newest (larger than the whole queue)", OverflowPolicy.DROP_OLDEST)
                return False
            count = 0
            while backlog and (
                len(backlog) >= self.limits.max_messages or self._backlog_bytes + len(data) > self.limits.max_bytes
            ):
                self._backlog_bytes -= len(backlog.popleft())
                count += 1
            self._dropped(count, "oldest", OverflowPolicy.DROP_OLDEST)
            backlog.append(data)
            self._backlog_bytes += len(data)
            return True
        self.dropped += 1
        STATS["closed_slow"] += 1
        if self.telemetry is not None:
            self.telemetry.drop(self.client_id, "close", 1)
        else:
            log.warning("client %s: outbound queue full (slow consumer), closing with 1013", self.client_id)
        self._backlog = deque()
        self._backlog_bytes = 0
        self.close_soon(CloseCode.TRY_AGAIN_LATER, "slow consumer: outbound queue full")
        return False

    def _dropped(self, count: int, which: str, policy: OverflowPolicy) -> None:
        # counted always, logged at most every few seconds per connection: a flood of drops
        # must not become a flood of log lines
        self.dropped += count
        STATS["dropped"] += count
        if self.telemetry is not None:
            self.telemetry.drop(self.client_id, policy.value, count)
            return
        now = time.monotonic()
        if now >= self._next_drop_log:
            self._next_drop_log = now + DROP_LOG_INTERVAL_S
            log.warning(
                "client %s: outbound queue full, dropping the %s frames (%d dropped so far)",
                self.client_id,
                which,
                self.dropped,
            )

    async def _drain(self, pending: Awaitable[None]) -> None:
        try:
            await pending
            backlog = self._backlog
            while backlog:
                data = backlog.popleft()
                self._backlog_bytes -= len(data)
                more = self.socket.send_frame(data)
                if more is not None:
                    await more
        except (ConnectionError, RuntimeError):
            self._closing = True
        finally:
            self._backlog = None
            self._backlog_bytes = 0
            self._writer = None

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the backlog has reached the socket (or ``timeout`` seconds passed)."""
        writer = self._writer
        if writer is not None:
            await asyncio.wait([writer], timeout=timeout)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send what is queued, then close with ``code``; idempotent."""
        if self._closing and self.close_code is not None:
            return
        if self.close_code is None:
            self.close_code, self.close_reason = int(code), reason
        await self.flush()
        self._closing = True
        await self.socket.close(int(code), reason)

    def close_soon(self, code: int, reason: str) -> None:
        """Close from synchronous code (overflow, timers)."""
        if self.close_code is None:
            self.close_code, self.close_reason = int(code), reason
        self._closing = True
        task = asyncio.ensure_future(self.socket.close(int(code), reason))
        _closing_tasks.add(task)
        task.add_done_callback(_closing_tasks.discard)

    def __repr__(self) -> str:
        return f"<Connection {self.client_id} user={self.user_id!r} topics={len(self.topics)}>"
