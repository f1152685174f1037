"""Rate limiting: token buckets (in memory or in Redis), key functions, and the middleware.

A bucket holds up to ``capacity`` tokens and gains ``refill_per_s`` per second; a message
costs ``cost`` tokens (default 1) and is refused when the bucket has fewer. So a client may
burst ``capacity`` messages, then keeps going at the refill rate. A refused message gets
``RESOURCE_EXHAUSTED`` with ``retryAfterMs``: the time until its cost is back, rounded up, so
a client that waits exactly that long is let through.

The parts, each importable from here: :mod:`~wskit.guards.ratelimit.limiter` (the
:class:`RateLimiter` interface, :class:`Decision`, :class:`Rate`),
:mod:`~wskit.guards.ratelimit.memory` (:class:`MemoryRateLimiter`),
:mod:`~wskit.guards.ratelimit.redis` (:class:`RedisRateLimiter`),
:mod:`~wskit.guards.ratelimit.keys` (which bucket a message is charged to), and this module:
the middleware, :func:`rate_limit`.

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

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from wskit.context import Context
from wskit.errors import ErrorCode, WsKitError
from wskit.guards.ratelimit.keys import (
    KeyFunc,
    by_connection,
    by_ip,
    by_type,
    by_user_or_connection,
    by_user_or_ip,
)
from wskit.guards.ratelimit.limiter import Decision, Rate, RateLimiter, per_minute, per_second
from wskit.guards.ratelimit.memory import MemoryRateLimiter
from wskit.guards.ratelimit.redis import RedisRateLimiter

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
                ctx.runtime.telemetry.limited(ctx.client_id, ctx.connection.user_id, ctx.type)
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
