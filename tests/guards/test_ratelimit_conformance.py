"""The rate limiter conformance suite, run against the memory and Redis limiters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wskit.guards import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from wskit.testing.ratelimit import RateLimiterConformance


class TestMemoryRateLimiter(RateLimiterConformance):
    """Each memory limiter keeps its own buckets (one process)."""

    shared_backend = False

    @pytest.fixture
    def make_limiter(self) -> Callable[[float, float], RateLimiter]:
        return MemoryRateLimiter


class TestRedisRateLimiter(RateLimiterConformance):
    """Redis limiters of one namespace share their buckets, whichever process runs them."""

    @pytest.fixture
    def make_limiter(self, redis_url: str, namespace: str) -> Callable[[float, float], RateLimiter]:
        def make(capacity: float, refill_per_s: float) -> RateLimiter:
            return RedisRateLimiter(redis_url, capacity, refill_per_s, namespace=namespace)

        return make
