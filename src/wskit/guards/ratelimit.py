"""Rate limiting: token buckets (in memory or in Redis), key functions, and the middleware.

A bucket holds up to ``capacity`` tokens and gains ``refill_per_s`` per second; a message
costs ``cost`` tokens (default 1) and is refused when the bucket has fewer. So a client may
burst ``capacity`` messages, then keeps going at the refill rate. A refused message gets
``RESOURCE_EXHAUSTED`` with ``retryAfterMs``: the time until its cost is back, rounded up, so
a client that waits exactly that long is let through.

Why it is built this way:

- **One interface, two backends.** :class:`MemoryRateLimiter` for one process;
  :class:`RedisRateLimiter` when several processes must share a budget. Both pass the
  conformance suite in :mod:`wskit.testing.ratelimit`, as must any third-party limiter.
- **Atomic in one round trip.** The Redis bucket is read, refilled, charged and written by
  one Lua script that takes the time from Redis ``TIME``, so concurrent servers neither race
  nor disagree about the clock.
- **Bounded.** A full bucket is the same as no bucket, so both backends forget full buckets:
  Redis keys expire when their bucket would be full again; the memory limiter drops them as
  it goes and never holds more than ``max_keys`` (evicting the least recently used).
- **Fail open, loudly.** When Redis is unreachable the limiter raises ``UNAVAILABLE``
  quickly; :func:`rate_limit` then lets the message through and logs a warning (at most one
  every 10 s): an outage of the limiter must not take the application down. Pass
  ``fail_open=False`` to refuse instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, runtime_checkable

from wskit.context import Context
from wskit.errors import ErrorCode, UsageError, WsKitError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "Decision",
    "KeyFunc",
    "MemoryRateLimiter",
    "Rate",
    "RateLimit",
    "RateLimiter",
    "RedisRateLimiter",
    "by_connection",
    "by_ip",
    "by_type",
    "by_user_or_connection",
    "by_user_or_ip",
    "per_minute",
    "per_second",
    "rate_limit",
]

log = logging.getLogger("wskit.guards.ratelimit")

#: Tokens are compared with this slack, so float rounding never refuses a client that waited
#: exactly ``retry_after_ms``.
_EPSILON: Final = 1e-9


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


def _check_shape(capacity: float, refill_per_s: float) -> None:
    if not capacity > 0 or not refill_per_s > 0 or math.isinf(capacity) or math.isinf(refill_per_s):
        raise UsageError(f"a rate limit needs capacity > 0 and refill_per_s > 0, got {capacity!r}, {refill_per_s!r}")


def _check_cost(cost: float, capacity: float) -> None:
    if not cost > 0:
        raise UsageError(f"cost must be > 0, got {cost!r}")
    if cost > capacity:
        raise UsageError(f"cost {cost} exceeds the bucket capacity {capacity}: it could never be allowed")


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
        _check_shape(capacity, refill_per_s)
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
        _check_cost(cost, self.capacity)
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
        _check_shape(capacity, refill_per_s)
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
        _check_cost(cost, self.capacity)
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


# -- keys ------------------------------------------------------------------------------------

#: A function naming the bucket a message is charged to.
KeyFunc = Callable[[Context[Any, Any]], str]


def _client_ip(ctx: Context[Any, Any]) -> str | None:
    request = ctx.connection.request
    return request.client_ip if request is not None else None


def by_connection(ctx: Context[Any, Any]) -> str:
    """One bucket per connection: ``conn:<client_id>``."""
    return f"conn:{ctx.client_id}"


def by_ip(ctx: Context[Any, Any]) -> str:
    """One bucket per client IP (``ip:<address>``); per connection when the IP is unknown."""
    ip = _client_ip(ctx)
    return f"ip:{ip}" if ip else by_connection(ctx)


def by_user_or_ip(ctx: Context[Any, Any]) -> str:
    """``user:<user_id>`` when authenticated, else the client IP, else the connection.

    The prefixes keep a user named like an address apart from that address.
    """
    user = ctx.data.get("user_id")
    return f"user:{user}" if user is not None else by_ip(ctx)


def by_user_or_connection(ctx: Context[Any, Any]) -> str:
    """``user:<user_id>`` when authenticated, else the connection (``MESSAGE_RATE_LIMIT``'s rule)."""
    user = ctx.data.get("user_id")
    return f"user:{user}" if user is not None else by_connection(ctx)


def by_type(ctx: Context[Any, Any]) -> str:
    """One bucket per sender (as :func:`by_user_or_ip`) and message type: ``user:u1:SAY``."""
    return f"{by_user_or_ip(ctx)}:{ctx.type}"


# -- middleware ------------------------------------------------------------------------------

_WARN_EVERY_S: Final = 10.0


class RateLimit:
    """The middleware :func:`rate_limit` returns; also counts what it decided.

    Attributes: ``limiter``, ``key``, ``cost``, ``fail_open``. :meth:`aclose` closes the
    limiter (the server calls it when it built the guard from ``MESSAGE_RATE_LIMIT``).
    """

    __slots__ = ("_counts", "_last_warning", "_unchecked_since_warning", "cost", "fail_open", "key", "limiter")

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        key: KeyFunc = by_user_or_ip,
        cost: float | Callable[[Context[Any, Any]], float] = 1.0,
        fail_open: bool = True,
    ) -> None:
        self.limiter = limiter
        self.key = key
        self.cost = cost
        self.fail_open = fail_open
        self._counts = {"allowed": 0, "limited": 0, "unchecked": 0}
        self._last_warning = -math.inf
        self._unchecked_since_warning = 0

    async def __call__(self, ctx: Context[Any, Any], call_next: Callable[[], Awaitable[None]]) -> None:
        cost = self.cost
        charge = cost(ctx) if callable(cost) else cost
        try:
            decision = await self.limiter.take(self.key(ctx), charge)
        except WsKitError as exc:
            if exc.code != ErrorCode.UNAVAILABLE or not self.fail_open:
                raise
            self._let_through(exc)
        else:
            if not decision.allowed:
                self._counts["limited"] += 1
                raise WsKitError(
                    ErrorCode.RESOURCE_EXHAUSTED, "Rate limit exceeded", retry_after_ms=decision.retry_after_ms
                )
            self._counts["allowed"] += 1
        await call_next()

    def _let_through(self, exc: WsKitError) -> None:
        self._counts["unchecked"] += 1
        self._unchecked_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            log.warning(
                "rate limiter unavailable (%s); %d message(s) let through unchecked",
                exc.message,
                self._unchecked_since_warning,
            )
            self._last_warning, self._unchecked_since_warning = now, 0

    def statistics(self) -> dict[str, int]:
        """Messages ``allowed``, ``limited`` (refused) and ``unchecked`` (limiter down, let through)."""
        return dict(self._counts)

    async def aclose(self) -> None:
        """Close the limiter."""
        await self.limiter.aclose()

    def __repr__(self) -> str:
        return f"<RateLimit {self.limiter!r} key={getattr(self.key, '__name__', self.key)}>"


def rate_limit(
    limiter: RateLimiter,
    *,
    key: KeyFunc = by_user_or_ip,
    cost: float | Callable[[Context[Any, Any]], float] = 1.0,
    fail_open: bool = True,
) -> RateLimit:
    """Middleware charging each message to ``key(ctx)``'s bucket in ``limiter``.

    A message over the limit is answered ``RESOURCE_EXHAUSTED`` ("Rate limit exceeded", with
    ``retryAfterMs``) and not handled. ``cost`` is a number or ``cost(ctx)``. When the limiter
    raises ``UNAVAILABLE`` (Redis down), the message is let through with a warning in the log
    (at most one per 10 s, with the count of messages let through meanwhile); with
    ``fail_open=False`` it is answered ``UNAVAILABLE`` instead. Use it globally
    (``router.use(rate_limit(...))``) or per route (``middleware=[rate_limit(...)]``); two
    middlewares sharing one limiter share buckets unless their keys differ.
    """
    return RateLimit(limiter, key=key, cost=cost, fail_open=fail_open)
