"""Helpers of the Redis broker fault tests: start brokers with short timings, cut their link, wait for a state."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from tests.support.waiting import PATIENCE_S, eventually

from wskit.pubsub.broker import BrokerState, HistoryPolicy, Publication
from wskit.pubsub.redis import RedisBroker
from wskit.testing.brokers import RecordingListener

__all__ = ["HISTORY", "NoJitter", "Pair", "admin", "kill_link", "ns", "pub", "start_broker", "wait_state"]

HISTORY = HistoryPolicy("h:*", max_len=1000, ttl_s=60)


class NoJitter:
    """Stands in for ``random`` in the broker: always the longest backoff, so the outage is long enough."""

    @staticmethod
    def uniform(low: float, high: float) -> float:
        return high


def pub(topic: str, n: int) -> Publication:
    return Publication(topic, b'{"type":"MSG"', b',"payload":{"n":%d}}' % n)


def ns(pubs: list[Publication]) -> list[int]:
    """The ``n`` of each publication made by :func:`pub`, in order."""
    return [int(p.tail.split(b":")[-1].rstrip(b"}")) for p in pubs]


async def admin(url: str, *args: Any) -> Any:
    """One command on a connection of its own (decoded reply)."""
    async with aioredis.Redis.from_url(url, protocol=2, decode_responses=True) as client:
        return await client.execute_command(*args)


async def wait_state(broker: RedisBroker, state: BrokerState, timeout: float = 2 * PATIENCE_S) -> None:
    await eventually(lambda: broker.state is state, timeout=timeout, what=f"broker {state}")


async def start_broker(url: str, namespace: str, **options: Any) -> tuple[RedisBroker, RecordingListener]:
    """A READY broker with short timeouts and backoff (``options`` override them)."""
    options = {"publish_timeout_s": 1.0, "backoff_min_s": 0.05, "backoff_max_s": 0.3, **options}
    broker = RedisBroker(url, namespace=namespace, **options)
    listener = RecordingListener()
    await broker.start(listener)
    assert broker.state is BrokerState.READY
    return broker, listener


async def kill_link(url: str, broker: RedisBroker) -> None:
    """CLIENT KILL the broker's pub/sub connection only (its command connections stay)."""
    clients = await admin(url, "CLIENT", "LIST", "TYPE", "pubsub")
    ids = [
        line.split("id=")[1].split()[0]
        for line in clients.splitlines()
        if f"name=wskit:{broker.instance_id}:sub" in line
    ]
    assert len(ids) == 1
    await admin(url, "CLIENT", "KILL", "ID", ids[0])


class Pair:
    """Instance ``a`` (whose subscriber link can be cut; it then stays down 0.5 s) and ``b``, on one Redis."""

    def __init__(self, url: str, a: RedisBroker, listener: RecordingListener, b: RedisBroker) -> None:
        self.url, self.a, self.listener, self.b = url, a, listener, b

    async def cut_link(self) -> None:
        """Kill ``a``'s pub/sub connection and wait until it knows (commands still reach Redis)."""
        await kill_link(self.url, self.a)
        await wait_state(self.a, BrokerState.DOWN)
