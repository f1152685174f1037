"""Pub/sub brokers: :class:`MemoryBroker` (one process) and :class:`RedisBroker` (many).

A third-party broker may play only some of the roles :class:`Broker` combines
(:class:`PubSubBroker`, :class:`HistoryStore`, :class:`PresenceStore`, :class:`UserControl`);
:mod:`wskit.pubsub.broker` says what the framework does without each.

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
    HistoryStore,
    Member,
    PresenceStore,
    Publication,
    PubSubBroker,
    RecoveryError,
    Role,
    UserControl,
    missing_roles,
    roles_of,
)
from wskit.pubsub.memory import MemoryBroker

__all__ = [
    "Broker",
    "BrokerListener",
    "BrokerState",
    "HistoryPolicy",
    "HistoryStore",
    "Member",
    "MemoryBroker",
    "PresenceStore",
    "PubSubBroker",
    "Publication",
    "RecoveryError",
    "RedisBroker",
    "Role",
    "UserControl",
    "missing_roles",
    "roles_of",
]


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":
        import importlib

        return importlib.import_module("wskit.pubsub.redis").RedisBroker
    raise AttributeError(name)
