"""Topic subscriptions the client keeps across reconnects, and its position in each topic.

Every delivery on a history topic carries ``meta.topic``, ``meta.offset`` and ``meta.epoch``
(PROTOCOL.md, "Topics"). The client remembers the last position per topic, for the topics it
subscribed itself and for those a server handler subscribed it to (``client.positions``), and
drops a delivery it already has (a replay overlapping the live stream), so the application
sees every message once. After a reconnect each subscription is made again from its position
(``$ws:subscribe`` with ``offset`` and ``epoch``): the server replays what was missed. When
the history no longer covers the gap the server refuses (``FAILED_PRECONDITION``, reason
``recovery``): the subscription's ``on_reset`` callbacks run (reload your state there) and
the client subscribes afresh from the live stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from wskit.client.errors import ClientError
from wskit.protocol import (
    SUBSCRIBE_TYPE,
    SUBSCRIBED_TYPE,
    UNSUBSCRIBE_TYPE,
    UNSUBSCRIBED_TYPE,
    Position,
    Step,
    step,
)

__all__ = [
    "MAX_OTHER_TOPICS",
    "MAX_TOPIC_CHARS",
    "SUBSCRIBED_TYPE",
    "SUBSCRIBE_TYPE",
    "UNSUBSCRIBED_TYPE",
    "UNSUBSCRIBE_TYPE",
    "Positions",
    "Subscription",
]

log = logging.getLogger("wskit.client")

#: ``on_reset(error)``: the subscription could not be recovered; sync or async
ResetCallback = Callable[[ClientError], object]


#: topics tracked beyond the client's own subscriptions (those a server handler subscribed
#: it to), and the longest topic name tracked: a hostile server cannot grow the map unbounded
MAX_OTHER_TOPICS = 1000
MAX_TOPIC_CHARS = 128


class Positions:
    """The last position seen per history topic, and the duplicate filter.

    Every topic the client subscribed itself is tracked (``subscribed(topic)``); of the
    others, at most ``max_others`` topics of at most ``max_topic_chars`` characters. A
    delivery on a topic beyond that is passed on untracked and reported (``on_untracked``).
    """

    def __init__(
        self,
        *,
        subscribed: Callable[[str], bool] | None = None,
        on_untracked: Callable[[str], object] | None = None,
        max_others: int = MAX_OTHER_TOPICS,
        max_topic_chars: int = MAX_TOPIC_CHARS,
    ) -> None:
        self._by_topic: dict[str, Position] = {}
        self._others: set[str] = set()
        self.subscribed = subscribed
        self.on_untracked = on_untracked
        self._max_others = max_others
        self._max_topic_chars = max_topic_chars

    @property
    def view(self) -> Mapping[str, Position]:
        return self._by_topic

    def get(self, topic: str) -> Position | None:
        return self._by_topic.get(topic)

    def forget(self, topic: str) -> None:
        self._by_topic.pop(topic, None)
        self._others.discard(topic)

    def _trackable(self, topic: str) -> bool:
        if topic in self._by_topic and topic not in self._others:
            return True  # one of ours
        if self.subscribed is not None and self.subscribed(topic):
            self._others.discard(topic)
            return True
        if topic in self._others:
            return True
        if len(topic) <= self._max_topic_chars and len(self._others) < self._max_others:
            self._others.add(topic)
            return True
        return False

    def confirm(self, topic: str, offset: object, epoch: object) -> None:
        """A ``$ws:subscribed`` answer's position (when the topic keeps history)."""
        if isinstance(offset, int) and not isinstance(offset, bool) and isinstance(epoch, str):
            current = self._by_topic.get(topic)
            if current is None or step(current, offset, epoch) is not Step.DUPLICATE:
                self._by_topic[topic] = Position(offset, epoch)

    def admit(self, meta: Mapping[str, Any]) -> bool:
        """Record a delivery's position; False when the client already has it (drop it)."""
        topic = meta.get("topic")
        offset = meta.get("offset")
        epoch = meta.get("epoch")
        if not isinstance(topic, str) or not isinstance(offset, int) or not isinstance(epoch, str):
            return True  # not a history delivery: nothing to track
        if not self._trackable(topic):
            if self.on_untracked is not None:
                self.on_untracked(topic)
            return True  # passed on, without a position (nor a duplicate filter)
        seen = step(self._by_topic.get(topic), offset, epoch)
        if seen is Step.DUPLICATE:
            return False
        if seen is Step.GAP:
            log.warning("wskit client: topic %r skipped from offset %s to %s", topic, self._by_topic[topic], offset)
        self._by_topic[topic] = Position(offset, epoch)
        return True


class Subscription:
    """A topic this client subscribed to itself (``await client.subscribe(topic)``).

    It is made again after every reconnect, from the last position seen, until
    :meth:`unsubscribe`. ``position`` is that position (None on topics without history).
    """

    def __init__(
        self, topic: str, positions: Positions, unsubscribe: Callable[[Subscription], Awaitable[None]]
    ) -> None:
        self.topic = topic
        self._positions = positions
        self._unsubscribe = unsubscribe
        self._on_reset: list[ResetCallback] = []
        #: False once unsubscribed (or refused on a resubscribe)
        self.active = True

    @property
    def position(self) -> Position | None:
        return self._positions.get(self.topic)

    def on_reset(self, callback: ResetCallback) -> Callable[[], None]:
        """Call ``callback(error)`` when history could not cover a reconnect's gap (messages
        were missed: reload state); the client then resubscribes from the live stream.
        Returns a function that removes the callback."""
        self._on_reset.append(callback)

        def remove() -> None:
            if callback in self._on_reset:
                self._on_reset.remove(callback)

        return remove

    @property
    def reset_callbacks(self) -> list[ResetCallback]:
        return list(self._on_reset)

    async def unsubscribe(self) -> None:
        """Leave the topic (on the server too, when connected) and stop resubscribing."""
        if self.active:
            self.active = False
            await self._unsubscribe(self)

    def __repr__(self) -> str:
        return f"Subscription({self.topic!r}, position={self.position}, active={self.active})"
