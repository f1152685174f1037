"""The in-process broker: the default when one process serves everything."""

from __future__ import annotations

from wskit.pubsub.broker import Deliver

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Delivers published frames straight to this process's hub (no copies, no I/O)."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self.published = 0

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, topic: str, data: bytes, *, exclude: str | None = None) -> None:
        self.published += 1
        if self._deliver is not None:
            self._deliver(topic, data, exclude)

    async def subscribe(self, topic: str) -> None:
        return None

    async def unsubscribe(self, topic: str) -> None:
        return None

    async def close(self) -> None:
        self._deliver = None

    def __repr__(self) -> str:
        return "MemoryBroker()"
