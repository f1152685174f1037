"""The Broker interface: how published frames move between server processes.

The local side (which connection is in which topic) is the hub's; a broker only carries
already-serialised frames between processes and tells the hub which topics it must listen
to. One process uses :class:`~wskit.pubsub.memory.MemoryBroker`; many use Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Broker", "Deliver"]

#: Called by a broker for every frame published to a topic this process listens to:
#: ``deliver(topic, frame, exclude_client_id)``. Must not block.
Deliver = Callable[[str, bytes, "str | None"], None]


class Broker(Protocol):
    """Moves published frames to every process that has members of the topic."""

    async def start(self, deliver: Deliver) -> None:
        """Begin delivering; called once by the hub before any other method."""
        ...

    async def publish(self, topic: str, data: bytes, *, exclude: str | None = None) -> None:
        """Send ``data`` to every member of ``topic`` in every process (``exclude``: a client id).

        Raises :class:`~wskit.errors.WsKitError` ``UNAVAILABLE`` when it cannot, quickly.
        """
        ...

    async def subscribe(self, topic: str) -> None:
        """This process now has members of ``topic``: start receiving its frames."""
        ...

    async def unsubscribe(self, topic: str) -> None:
        """The last local member of ``topic`` left: stop receiving its frames."""
        ...

    async def close(self) -> None:
        """Flush and release resources; idempotent."""
        ...
