"""Pub/sub brokers: :class:`MemoryBroker` (one process) and :class:`RedisBroker` (many).

``RedisBroker`` needs the ``redis`` extra (``pip install 'wskit[redis]'``) and is imported
on first use, so the core does not depend on redis-py.
"""

from __future__ import annotations

from typing import Any

from wskit.pubsub.broker import (
    Broker,
    BrokerListener,
    BrokerState,
    HistoryPolicy,
    Member,
    Publication,
    RecoveryError,
)
from wskit.pubsub.memory import MemoryBroker

__all__ = [
    "Broker",
    "BrokerListener",
    "BrokerState",
    "HistoryPolicy",
    "Member",
    "MemoryBroker",
    "Publication",
    "RecoveryError",
    "RedisBroker",
]


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":
        import importlib

        return importlib.import_module("wskit.pubsub.redis").RedisBroker
    raise AttributeError(name)
