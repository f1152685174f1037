"""The in-process broker: the default when one process serves everything.

It keeps the same promises as the Redis broker, inside one process: per-topic offsets and a
bounded history (length and age) with recovery, presence, user controls and bans. So an
application can be written and tested against history and presence without any service.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from wskit.pubsub.broker import (
    BrokerListener,
    BrokerState,
    HistoryPolicy,
    Member,
    Publication,
    RecoveryError,
)

__all__ = ["MemoryBroker"]


@dataclass(slots=True)
class _Stream:
    ttl_s: float
    touched: float
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    last: int = 0
    entries: deque[tuple[float, Publication]] = field(default_factory=deque)

    def trim(self, policy: HistoryPolicy, now: float) -> None:
        entries = self.entries
        while len(entries) > policy.max_len:
            entries.popleft()
        horizon = now - policy.ttl_s
        while entries and entries[0][0] < horizon:
            entries.popleft()


class MemoryBroker:
    """Delivers publications straight to this process's hub (no copies, no I/O)."""

    def __init__(self, *, clock: object = time.monotonic) -> None:
        self._listener: BrokerListener | None = None
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._presence: dict[str, dict[str, Member]] = {}
        self._bans: dict[str, float | None] = {}
        self._state = BrokerState.CONNECTING
        self._next_sweep = 0.0
        self.published = 0

    @property
    def state(self) -> BrokerState:
        return self._state

    def _now(self) -> float:
        return self._clock()  # type: ignore[operator, no-any-return]

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener
        self._state = BrokerState.READY

    def _stream(self, topic: str, history: HistoryPolicy) -> _Stream:
        now = self._now()
        if now >= self._next_sweep:
            self._sweep(now)
        stream = self._streams.get(topic)
        if stream is None:
            stream = self._streams[topic] = _Stream(history.ttl_s, now)
        stream.touched = now
        return stream

    def _sweep(self, now: float) -> None:
        # a stream untouched for its ttl has no entries left: forget it (its epoch goes with
        # it, as a Redis key expiring does), so client-chosen topic names cannot pile up
        self._next_sweep = now + 1.0
        stale = [topic for topic, s in self._streams.items() if now - s.touched > s.ttl_s]
        for topic in stale:
            del self._streams[topic]

    async def publish(self, publication: Publication, history: HistoryPolicy | None = None) -> None:
        self.published += 1
        if history is not None:
            stream = self._stream(publication.topic, history)
            stream.last += 1
            publication = publication.with_position(stream.last, stream.epoch)
            now = stream.touched
            stream.entries.append((now, publication))
            stream.trim(history, now)
        if self._listener is not None:
            self._listener.deliver(publication)

    async def subscribe(self, topic: str, history: HistoryPolicy | None = None) -> None:
        return None

    async def unsubscribe(self, topic: str) -> None:
        return None

    async def recover(self, topic: str, offset: int, epoch: str, history: HistoryPolicy) -> list[Publication]:
        stream = self._streams.get(topic)
        if stream is None:
            raise RecoveryError(topic, "No history for this topic (never published or expired)")
        if epoch != stream.epoch:
            raise RecoveryError(topic, "History epoch changed; reload the state")
        if offset > stream.last or offset < 0:
            raise RecoveryError(topic, "Offset is not in this history")
        stream.trim(history, self._now())
        if offset == stream.last:
            return []
        entries = stream.entries
        if not entries or entries[0][1].offset > offset + 1:  # type: ignore[operator]
            raise RecoveryError(topic)
        return [pub for _, pub in entries if pub.offset > offset]  # type: ignore[operator]

    async def position(self, topic: str, history: HistoryPolicy) -> tuple[int, str]:
        stream = self._stream(topic, history)
        return stream.last, stream.epoch

    async def presence_add(self, topic: str, member: Member) -> None:
        self._presence.setdefault(topic, {})[member.client_id] = member

    async def presence_remove(self, topic: str, client_id: str) -> None:
        members = self._presence.get(topic)
        if members is not None:
            members.pop(client_id, None)
            if not members:
                del self._presence[topic]

    async def presence(self, topic: str) -> list[Member]:
        return list(self._presence.get(topic, {}).values())

    async def send_to_user(self, user_id: str, data: bytes) -> None:
        if self._listener is not None:
            self._listener.deliver_to_user(user_id, data)

    async def disconnect_user(self, user_id: str, code: int, reason: str) -> None:
        if self._listener is not None:
            self._listener.disconnect_user(user_id, code, reason)

    async def ban(self, user_id: str, ttl_s: float | None = None) -> None:
        self._bans[user_id] = self._now() + ttl_s if ttl_s is not None else None

    async def unban(self, user_id: str) -> None:
        self._bans.pop(user_id, None)

    async def is_banned(self, user_id: str) -> bool:
        if user_id not in self._bans:
            return False
        until = self._bans[user_id]
        if until is not None and until <= self._now():
            del self._bans[user_id]
            return False
        return True

    async def close(self) -> None:
        self._listener = None
        self._state = BrokerState.CLOSED

    def __repr__(self) -> str:
        return "MemoryBroker()"
