"""The rate limiter interface: token buckets by key, the :class:`Decision` of one take, and a
bucket's shape (:class:`Rate`, :func:`per_minute`, :func:`per_second`).

A bucket holds up to ``capacity`` tokens and gains ``refill_per_s`` per second; a message
costs ``cost`` tokens (default 1) and is refused when the bucket has fewer. Every limiter
(:class:`~wskit.guards.ratelimit.memory.MemoryRateLimiter`,
:class:`~wskit.guards.ratelimit.redis.RedisRateLimiter`, a third party's) passes the
conformance suite in :mod:`wskit.testing.ratelimit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from wskit.errors import UsageError

__all__ = ["Decision", "Rate", "RateLimiter", "check_cost", "check_shape", "per_minute", "per_second"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of one :meth:`RateLimiter.take`.

    ``remaining``: tokens left after this take (a float: buckets refill continuously).
    ``retry_after_ms``: 0 when allowed, else the milliseconds until ``cost`` tokens are back.
    """

    allowed: bool
    remaining: float
    retry_after_ms: int


@runtime_checkable
class RateLimiter(Protocol):
    """Token buckets by key. Implementations must pass :class:`wskit.testing.ratelimit.RateLimiterConformance`."""

    async def take(self, key: str, cost: float = 1.0) -> Decision:
        """Charge ``cost`` tokens to ``key``'s bucket if it holds them, atomically.

        Raises :class:`~wskit.errors.UsageError` when ``cost`` is not positive or exceeds the
        capacity (it could never be satisfied), ``WsKitError`` ``UNAVAILABLE`` when the
        backend cannot be reached.
        """
        ...

    async def aclose(self) -> None:
        """Release the backend's resources (idempotent)."""
        ...


class Rate(NamedTuple):
    """A bucket's shape: ``MemoryRateLimiter(*per_minute(60))``."""

    capacity: float
    refill_per_s: float


def per_minute(n: float) -> Rate:
    """``n`` messages per minute, in bursts of up to ``n``."""
    return Rate(n, n / 60.0)


def per_second(n: float) -> Rate:
    """``n`` messages per second, in bursts of up to ``n``."""
    return Rate(n, float(n))


def check_shape(capacity: float, refill_per_s: float) -> None:
    """Raise :class:`UsageError` unless both are finite and positive (a limiter's constructor calls it)."""
    if not capacity > 0 or not refill_per_s > 0 or math.isinf(capacity) or math.isinf(refill_per_s):
        raise UsageError(f"a rate limit needs capacity > 0 and refill_per_s > 0, got {capacity!r}, {refill_per_s!r}")


def check_cost(cost: float, capacity: float) -> None:
    """Raise :class:`UsageError` unless ``cost`` is positive and fits in the bucket (every take calls it)."""
    if not cost > 0:
        raise UsageError(f"cost must be > 0, got {cost!r}")
    if cost > capacity:
        raise UsageError(f"cost {cost} exceeds the bucket capacity {capacity}: it could never be allowed")
