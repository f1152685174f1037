"""The Redis token bucket never refills above its capacity.

Without a minimum key TTL the key expires when its bucket would be full, so an uncapped
refill is never seen; with ``key_ttl_s`` the key outlives that moment, and a bucket left
alone for long must still hold ``capacity`` tokens, not ``capacity`` plus everything the
idle time would have added. The tests age a bucket by moving its stored timestamp back
(instead of waiting), so nothing depends on the test's own timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from wskit.guards import RedisRateLimiter

CAPACITY = 4
RATE = 2.0  # tokens per second


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test Redis, to age the buckets."""
    found = aioredis.Redis.from_url(redis_url)
    try:
        yield found
    finally:
        await found.aclose()


@pytest.fixture
async def limiter(redis_url: str, namespace: str) -> AsyncIterator[RedisRateLimiter]:
    """Capacity 4 at 2/s, keys kept for at least a minute (so a full bucket's key stays)."""
    found = RedisRateLimiter(redis_url, CAPACITY, RATE, namespace=namespace, key_ttl_s=60)
    try:
        yield found
    finally:
        await found.aclose()


async def _age(client: aioredis.Redis, key: str, seconds: float) -> None:
    """Move the bucket's last update ``seconds`` into the past (by Redis's clock)."""
    sec, usec = await client.time()
    assert await client.exists(key) == 1
    await client.hset(key, "ts", f"{sec * 1_000_000 + usec - int(seconds * 1_000_000)}")


async def test_a_long_idle_bucket_holds_capacity_not_more(limiter: RedisRateLimiter, client: aioredis.Redis) -> None:
    """One token taken, then 100 s idle (200 tokens' worth at 2/s): the next take leaves
    capacity - 1 = 3, not 202."""
    await limiter.take("k")
    await _age(client, limiter.key("k"), 100)
    decision = await limiter.take("k")
    assert decision.allowed
    assert decision.remaining == pytest.approx(CAPACITY - 1, abs=0.01)


async def test_a_long_idle_bucket_allows_one_burst_of_capacity(
    limiter: RedisRateLimiter, client: aioredis.Redis
) -> None:
    """After a long idle, exactly ``capacity`` takes in a row are allowed and the next is refused."""
    await limiter.take("k")
    await _age(client, limiter.key("k"), 100)
    allowed = [(await limiter.take("k")).allowed for _ in range(CAPACITY)]
    assert allowed == [True] * CAPACITY
    refused = await limiter.take("k")
    assert not refused.allowed and refused.retry_after_ms > 0
