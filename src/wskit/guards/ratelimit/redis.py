"""Token buckets in Redis, shared by every process that uses it: :class:`RedisRateLimiter`.

Atomic in one round trip: the bucket is read, refilled, charged and written by one Lua
script that takes the time from Redis ``TIME``, so concurrent servers neither race nor
disagree about the clock. Keys expire when their bucket would be full again. redis-py is
imported when a limiter is built (the ``redis`` extra).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

from wskit.errors import ErrorCode, UsageError, WsKitError
from wskit.guards.ratelimit.limiter import Decision, check_cost, check_shape

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisRateLimiter"]


# KEYS: the bucket. ARGV: capacity, refill per second, cost, minimum TTL in ms (0: none).
# Returns {allowed (0/1), remaining tokens (string: Lua numbers are truncated to integers on
# the way out), retry after in ms}. Time is Redis TIME in microseconds (an exact double).
# The key expires when its bucket would be full again, since a missing bucket is a full one.
_TAKE_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local min_ttl_ms = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
elseif now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate / 1000000)
end
local allowed = 0
local retry_ms = 0
if tokens + 1e-9 >= cost then
  tokens = math.max(0, tokens - cost)
  allowed = 1
else
  retry_ms = math.max(1, math.ceil((cost - tokens) * 1000 / rate - 1e-6))
end
local ttl_ms = math.max(1, min_ttl_ms, math.ceil((capacity - tokens) * 1000 / rate))
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return {allowed, string.format('%.17g', tokens), retry_ms}
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every process using the same Redis and ``namespace``.

    ``redis_url_or_client``: a URL (the limiter then owns its client and closes it in :meth:`aclose`) or a
    ``redis.asyncio.Redis`` client (left open). Each take is one ``EVALSHA`` of one Lua script
    (the script is loaded again after a Redis restart: one extra round trip, once). Keys are
    ``{namespace}:rl:{key}`` and expire when their bucket is full again, or after
    ``key_ttl_s`` when that is longer. ``timeout_s`` (default 0.5) bounds each take: an
    unreachable Redis raises ``WsKitError`` ``UNAVAILABLE`` within it, without retries.
    """

    def __init__(
        self,
        redis_url_or_client: str | Redis,
        capacity: float,
        refill_per_s: float,
        *,
        namespace: str = "wskit",
        key_ttl_s: float | None = None,
        timeout_s: float = 0.5,
    ) -> None:
        check_shape(capacity, refill_per_s)
        if key_ttl_s is not None and key_ttl_s < 0:
            raise UsageError("key_ttl_s must be >= 0 (or None)")
        if not timeout_s > 0:
            raise UsageError("timeout_s must be > 0")
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RedisRateLimiter needs redis-py: pip install 'wskit[redis]'") from exc
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self.namespace = namespace
        self.key_ttl_s = key_ttl_s
        self.timeout_s = timeout_s
        self._owned = isinstance(redis_url_or_client, str)
        self._client: Redis = (
            aioredis.Redis.from_url(
                redis_url_or_client,
                retry=Retry(NoBackoff(), 0),  # a limiter answers now or fails open: no retry loop
                socket_connect_timeout=timeout_s,
                socket_timeout=timeout_s,
            )
            if isinstance(redis_url_or_client, str)
            else redis_url_or_client
        )
        self._script: AsyncScript = self._client.register_script(_TAKE_LUA)
        self._min_ttl_ms = 0 if key_ttl_s is None else math.ceil(key_ttl_s * 1000)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._closed = False

    def key(self, key: str) -> str:
        """The Redis key of ``key``'s bucket."""
        return f"{self.namespace}:rl:{key}"

    async def take(self, key: str, cost: float = 1.0) -> Decision:
        """Charge ``cost`` to ``key`` (see :meth:`RateLimiter.take`), in one round trip to Redis."""
        check_cost(cost, self.capacity)
        if self._closed:
            raise WsKitError(ErrorCode.UNAVAILABLE, "Rate limiter is closed")
        args = (repr(self.capacity), repr(self.refill_per_s), repr(float(cost)), self._min_ttl_ms)
        try:
            async with asyncio.timeout(self.timeout_s):
                result: Any = await self._script(keys=[self.key(key)], args=args)
        except self._errors as exc:
            raise WsKitError(ErrorCode.UNAVAILABLE, f"Rate limiter unavailable: {type(exc).__name__}") from exc
        allowed, remaining, retry_ms = result
        return Decision(bool(allowed), float(remaining), int(retry_ms))

    async def aclose(self) -> None:
        """Close the client when this limiter created it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"<RedisRateLimiter capacity={self.capacity} refill_per_s={self.refill_per_s} ns={self.namespace!r}>"
