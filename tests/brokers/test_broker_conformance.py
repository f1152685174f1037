"""The broker conformance suite, run against the memory and the Redis brokers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from wskit.pubsub import MemoryBroker
from wskit.pubsub.broker import Broker
from wskit.pubsub.redis import RedisBroker
from wskit.testing.brokers import BrokerConformance

__all__ = ["TestMemoryBroker", "TestRedisBroker"]


class TestMemoryBroker(BrokerConformance):
    """One process: presence lives in it, so the multi-instance tests do not apply."""

    shared_backend = False

    @pytest.fixture
    def make_broker(self) -> Callable[..., Broker]:
        return lambda **options: MemoryBroker()


class TestRedisBroker(BrokerConformance):
    """Brokers of one namespace on one Redis act as the instances of one deployment."""

    @pytest.fixture
    def make_broker(self, redis_url: str, namespace: str) -> Callable[..., Broker]:
        def make(**options: Any) -> Broker:
            return RedisBroker(redis_url, namespace=namespace, **options)

        return make

    async def crash(self, broker: Broker) -> None:
        assert isinstance(broker, RedisBroker)
        await broker._crash()
