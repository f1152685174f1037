"""Pub/sub brokers: :class:`MemoryBroker` (one process) and, with ``wskit[redis]``, Redis."""

from __future__ import annotations

from wskit.pubsub.broker import Broker, Deliver
from wskit.pubsub.memory import MemoryBroker

__all__ = ["Broker", "Deliver", "MemoryBroker"]
