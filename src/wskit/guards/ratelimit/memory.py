"""Token buckets in this process's memory: :class:`MemoryRateLimiter`.

Bounded: a full bucket is the same as no bucket, so full buckets are dropped as the limiter
goes, and it never holds more than ``max_keys`` (evicting the least recently used).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from wskit.errors import UsageError
from wskit.guards.ratelimit.limiter import Decision, check_cost, check_shape

__all__ = ["MemoryRateLimiter"]

#: Tokens are compared with this slack, so float rounding never refuses a client that waited
#: exactly ``retry_after_ms``.
_EPSILON: Final = 1e-9


def _retry_after_ms(missing: float, refill_per_s: float) -> int:
    """Milliseconds until ``missing`` tokens have refilled, rounded up (at least 1)."""
    return max(1, math.ceil(missing * 1000.0 / refill_per_s - 1e-6))


class MemoryRateLimiter:
    """Token buckets in this process's memory (one server process, or per-process limits).

    ``capacity`` and ``refill_per_s`` shape every bucket. ``max_keys`` (default 100 000)
    bounds the buckets kept: full ones are dropped as the limiter goes, and beyond the bound
    the least recently used is evicted (if it was not full yet, that key gets a fresh bucket:
    counted in ``statistics()["evicted_early"]``). ``clock`` (default ``time.monotonic``)
    is injectable for tests.
    """

    def __init__(
        self,
        capacity: float,
        refill_per_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_shape(capacity, refill_per_s)
        if max_keys < 1:
            raise UsageError("max_keys must be >= 1")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self.max_keys = max_keys
        self._clock = clock
        # key -> [tokens, updated_at]; in least-recently-used order
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self._evicted_early = 0

    def _level(self, bucket: list[float], now: float) -> float:
        return min(self.capacity, bucket[0] + max(0.0, now - bucket[1]) * self.refill_per_s)

    async def take(self, key: str, cost: float = 1.0) -> Decision:
        """Charge ``cost`` to ``key`` (see :meth:`RateLimiter.take`); never waits."""
        return self.take_nowait(key, cost)

    def take_nowait(self, key: str, cost: float = 1.0) -> Decision:
        """:meth:`take` for synchronous callers."""
        check_cost(cost, self.capacity)
        now = self._clock()
        buckets = self._buckets
        bucket = buckets.get(key)
        tokens = self.capacity if bucket is None else self._level(bucket, now)
        if tokens + _EPSILON >= cost:
            tokens = max(0.0, tokens - cost)
            decision = Decision(True, tokens, 0)
        else:
            decision = Decision(False, tokens, _retry_after_ms(cost - tokens, self.refill_per_s))
        if bucket is None:
            buckets[key] = [tokens, now]
        else:
            bucket[0], bucket[1] = tokens, now
            buckets.move_to_end(key)
        self._sweep(now)
        return decision

    def _sweep(self, now: float) -> None:
        """Drop full buckets from the old end (a little per call), then enforce ``max_keys``."""
        buckets = self._buckets
        for _ in range(2):
            oldest = next(iter(buckets.values()), None)
            if oldest is None or self._level(oldest, now) < self.capacity:
                break
            buckets.popitem(last=False)
        while len(buckets) > self.max_keys:
            _, bucket = buckets.popitem(last=False)
            if self._level(bucket, now) < self.capacity:
                self._evicted_early += 1

    def statistics(self) -> dict[str, int]:
        """``keys`` held now, and ``evicted_early``: buckets evicted before they were full."""
        return {"keys": len(self._buckets), "evicted_early": self._evicted_early}

    async def aclose(self) -> None:
        """Forget every bucket."""
        self._buckets.clear()

    def __repr__(self) -> str:
        shape = f"capacity={self.capacity} refill_per_s={self.refill_per_s}"
        return f"<MemoryRateLimiter {shape} keys={len(self._buckets)}>"
