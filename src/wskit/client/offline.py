"""The offline queue: frames the application sends while there is no open connection.

Bounded in count and in bytes (DESIGN.md, "Bounded everything"). At the bound the policy
decides, and nothing is lost silently: every dropped frame is reported to ``on_drop`` and
logged, and a dropped request fails at once with ``RESOURCE_EXHAUSTED``.

- ``queue`` (default): ``send()`` waits for room (backpressure on the application);
- ``drop-oldest``: the oldest queued frame makes room for the new one;
- ``drop-new``: the new frame is dropped.

A frame larger than ``max_bytes`` on its own can never fit: it is refused with
``RESOURCE_EXHAUSTED`` under every policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from wskit.client.errors import ClientError
from wskit.errors import ConfigError, ErrorCode

__all__ = ["Dropped", "OfflineLimits", "OfflinePolicy", "OfflineQueue", "Queued"]

log = logging.getLogger("wskit.client")


class OfflinePolicy(StrEnum):
    """What to do with a frame sent while the offline queue is full."""

    QUEUE = "queue"
    DROP_OLDEST = "drop-oldest"
    DROP_NEW = "drop-new"


@dataclass(frozen=True, slots=True)
class OfflineLimits:
    """Bounds of the offline queue. Defaults: 1,000 frames, 1 MiB, policy ``queue``."""

    max_count: int = 1000
    max_bytes: int = 1024 * 1024
    policy: OfflinePolicy | str = OfflinePolicy.QUEUE

    def __post_init__(self) -> None:
        if self.max_count < 1 or self.max_bytes < 1:
            raise ConfigError(f"OfflineLimits: bounds must be >= 1, got {self.max_count} frames, {self.max_bytes} B")
        try:
            OfflinePolicy(self.policy)
        except ValueError:
            raise ConfigError(
                f"OfflineLimits: policy must be one of {[p.value for p in OfflinePolicy]}, got {self.policy!r}"
            ) from None


@dataclass(slots=True)
class Queued:
    """One frame waiting for a connection: its bytes, its type (for reports), and the
    correlation id when it is a request (so a drop can fail the caller)."""

    data: bytes
    type: str
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Dropped:
    """A report of one frame the offline queue dropped (``reason``: which bound, which policy)."""

    type: str
    size: int
    correlation_id: str | None
    reason: str


class OfflineQueue:
    """FIFO of :class:`Queued` frames under :class:`OfflineLimits`."""

    def __init__(
        self,
        limits: OfflineLimits,
        *,
        on_drop: Callable[[Dropped], object] | None = None,
        on_request_dropped: Callable[[str, ClientError], object] | None = None,
    ) -> None:
        self.limits = limits
        self.policy = OfflinePolicy(limits.policy)
        self._items: deque[Queued] = deque()
        self._bytes = 0
        self._room = asyncio.Event()
        self._on_drop = on_drop
        self._on_request_dropped = on_request_dropped
        #: frames dropped since the client was made
        self.dropped = 0
        self._closed: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _fits(self, size: int) -> bool:
        return len(self._items) < self.limits.max_count and self._bytes + size <= self.limits.max_bytes

    async def put(self, item: Queued, *, bypass: Callable[[], bool] | None = None) -> bool:
        """Queue ``item`` under the policy (may wait for room under ``queue``); True once
        queued (or dropped by the policy). False when, after waiting for room, ``bypass()``
        says the connection is back: the caller sends it directly (nothing takes from the
        queue again until the next reconnect).

        Raises :class:`ClientError` ``RESOURCE_EXHAUSTED`` for a frame over ``max_bytes``.
        """
        if self._closed is not None:
            raise self._closed
        size = len(item.data)
        if size > self.limits.max_bytes:
            raise ClientError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"a {item.type!r} frame of {size} B cannot be queued while offline: the offline queue "
                f"holds at most {self.limits.max_bytes} B (OfflineLimits.max_bytes)",
                retryable=False,
            )
        while not self._fits(size):
            if self.policy is OfflinePolicy.DROP_NEW:
                self._report(item, "offline queue full (drop-new)")
                return True
            if self.policy is OfflinePolicy.DROP_OLDEST:
                oldest = self._items.popleft()
                self._bytes -= len(oldest.data)
                self._report(oldest, "offline queue full (drop-oldest)")
                continue
            self._room.clear()
            await self._room.wait()
            if self._closed is not None:
                raise self._closed
            if bypass is not None and bypass():
                return False
        self._items.append(item)
        self._bytes += size
        return True

    def take_all(self) -> list[Queued]:
        """Everything queued, oldest first, leaving the queue empty (and waking waiters)."""
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        self._room.set()
        return items

    def close(self, error: BaseException) -> list[Queued]:
        """Refuse further frames with ``error`` (waiters too); returns what was queued."""
        self._closed = error
        return self.take_all()

    def reopen(self) -> None:
        """Accept frames again (``connect()`` after a stop)."""
        self._closed = None

    def remove(self, correlation_id: str) -> bool:
        """Take back a queued request (its caller gave up); True when it was queued."""
        for item in self._items:
            if item.correlation_id == correlation_id:
                self._items.remove(item)
                self._bytes -= len(item.data)
                self._room.set()
                return True
        return False

    def restore(self, items: list[Queued]) -> None:
        """Put back, at the front and in order, frames taken out but not sent (they fitted
        before, so no bound is checked)."""
        for item in reversed(items):
            self._items.appendleft(item)
            self._bytes += len(item.data)

    def report(self, item: Queued, reason: str) -> None:
        """Report ``item`` as dropped (on_drop, the log, and its request's caller)."""
        self._report(item, reason)

    def _report(self, item: Queued, reason: str) -> None:
        self.dropped += 1
        log.warning(
            "wskit client dropped a %r frame (%d B) while offline: %s; raise OfflineLimits or use policy 'queue'",
            item.type,
            len(item.data),
            reason,
        )
        if item.correlation_id is not None and self._on_request_dropped is not None:
            error = ClientError(
                ErrorCode.RESOURCE_EXHAUSTED, f"request {item.type!r} was dropped from the offline queue: {reason}"
            )
            self._on_request_dropped(item.correlation_id, error)
        if self._on_drop is not None:
            try:
                self._on_drop(Dropped(item.type, len(item.data), item.correlation_id, reason))
            except Exception:  # the application's callback must not break sending
                log.exception("on_drop callback raised")
