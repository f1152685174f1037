"""The local registry: live connections, the topic index, and the broker behind them.

Fan-out is synchronous and serialisation-free: the broker hands the hub one frame (bytes,
encoded once by the publisher) and the hub writes those same bytes to each local member's
queue without awaiting any socket.
"""

from __future__ import annotations

import logging

from wskit.connection import Connection
from wskit.pubsub.broker import Broker
from wskit.pubsub.memory import MemoryBroker

__all__ = ["Hub"]

log = logging.getLogger("wskit.hub")


class Hub:
    """Connections by client id and topic members, for one process."""

    def __init__(self, broker: Broker | None = None) -> None:
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.connections: dict[str, Connection] = {}
        self.members: dict[str, set[Connection]] = {}
        self.delivered = 0
        self._started = False

    async def start(self) -> None:
        """Connect the broker to this hub (idempotent)."""
        if not self._started:
            self._started = True
            await self.broker.start(self.deliver)

    async def set_broker(self, broker: Broker) -> None:
        """Swap the broker before serving; topics with members are re-subscribed on it."""
        if broker is self.broker:
            return
        old, self.broker = self.broker, broker
        if self._started:
            await old.close()
            self._started = False
        await self.start()
        for topic in self.members:
            await broker.subscribe(topic)

    def add(self, conn: Connection) -> None:
        self.connections[conn.client_id] = conn

    async def remove(self, conn: Connection) -> None:
        """Forget a closed connection and leave its topics."""
        self.connections.pop(conn.client_id, None)
        for topic in list(conn.topics):
            await self.unsubscribe(conn, topic)

    async def subscribe(self, conn: Connection, topic: str) -> bool:
        """Add ``conn`` to ``topic``; False when it was already a member."""
        if topic in conn.topics:
            return False
        members = self.members.get(topic)
        if members is None:
            # first local member: the broker must start carrying this topic here first
            await self.broker.subscribe(topic)
            members = self.members.setdefault(topic, set())
        members.add(conn)
        conn.topics.add(topic)
        return True

    async def unsubscribe(self, conn: Connection, topic: str) -> bool:
        """Remove ``conn`` from ``topic``; False when it was not a member."""
        if topic not in conn.topics:
            return False
        conn.topics.discard(topic)
        members = self.members.get(topic)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.members[topic]
                await self.broker.unsubscribe(topic)
        return True

    async def publish(self, topic: str, data: bytes, *, exclude: str | None = None) -> None:
        if not self._started:
            await self.start()  # publishing before any server started must not vanish
        await self.broker.publish(topic, data, exclude=exclude)

    def deliver(self, topic: str, data: bytes, exclude: str | None) -> None:
        """Write one published frame to every local member of ``topic`` (not ``exclude``)."""
        members = self.members.get(topic)
        if not members:
            return
        count = 0
        # send_nowait never changes membership synchronously, so no copy of the set is needed
        for conn in members:
            if conn.client_id != exclude and conn.send_nowait(data):
                count += 1
        self.delivered += count

    async def close(self) -> None:
        await self.broker.close()
        self._started = False
