"""Rate-limit details the behaviour tests leave open: the middleware's defaults, its exact
counts, its warning when the limiter is down (one per 10 s, with the number let through),
the smallest retryAfterMs, keys of a connection without a handshake request, and the bounds
each limiter accepts. The middleware is called directly with a stand-in context."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from wskit import ErrorCode, UsageError, WsKitError
from wskit.guards import MemoryRateLimiter, RateLimit, RedisRateLimiter, by_ip, by_user_or_ip, rate_limit
from wskit.guards import ratelimit as ratelimit_module
from wskit.telemetry import Telemetry


def _ctx(user: str | None = "u1", *, request: Any = None) -> Any:
    """What the middleware and the key functions read of a Context."""
    data = {} if user is None else {"user_id": user}
    client_ip = request.client_ip if request is not None else None
    return SimpleNamespace(
        data=data,
        connection=SimpleNamespace(client_ip=client_ip, user_id=user),
        client_id="c1",
        type="SAY",
        runtime=SimpleNamespace(telemetry=Telemetry()),
    )


async def _next() -> None:
    return None


class Down:
    """A limiter whose backend is unreachable."""

    async def take(self, key: str, cost: float = 1.0) -> Any:
        raise WsKitError(ErrorCode.UNAVAILABLE, "down")

    async def aclose(self) -> None:
        return None


class FakeTime:
    """Stands in for the ``time`` module inside wskit.guards.ratelimit (monotonic only)."""

    def __init__(self) -> None:
        self.now = 5000.0

    def monotonic(self) -> float:
        return self.now


async def _outcomes(guard: RateLimit, count: int, ctx: Any = None) -> list[str]:
    out = []
    for _ in range(count):
        try:
            await guard(ctx or _ctx(), _next)
            out.append("ok")
        except WsKitError as exc:
            out.append(str(exc.code))
    return out


# -- the middleware ----------------------------------------------------------------------------


def test_middleware_defaults() -> None:
    """RateLimit(limiter): keyed by user or IP, each message costs 1, fails open."""
    guard = RateLimit(MemoryRateLimiter(1, 1.0))
    assert (guard.key, guard.cost, guard.fail_open) == (by_user_or_ip, 1.0, True)


async def test_rate_limit_charges_one_token_per_message_by_default() -> None:
    """rate_limit() with a bucket of 3: exactly three messages pass, the fourth is refused."""
    guard = rate_limit(MemoryRateLimiter(3, 0.001))
    assert await _outcomes(guard, 4) == ["ok", "ok", "ok", "RESOURCE_EXHAUSTED"]


async def test_middleware_counts_every_decision() -> None:
    """Three allowed and two limited: statistics() says exactly that (not just "some")."""
    guard = rate_limit(MemoryRateLimiter(3, 0.001))
    await _outcomes(guard, 5)
    assert guard.statistics() == {"allowed": 3, "limited": 2, "unchecked": 0}


async def test_unchecked_messages_are_counted_and_warned_about_once_per_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Limiter down: the first message logs a warning (1 let through); the next four, within
    10 s, log nothing; exactly 10 s after the warning the next one logs again, counting the five
    let through since. statistics() counts all six."""
    clock = FakeTime()
    monkeypatch.setattr(ratelimit_module, "time", clock)
    guard = rate_limit(Down())
    with caplog.at_level(logging.WARNING, logger="wskit.guards.ratelimit"):
        assert await _outcomes(guard, 5) == ["ok"] * 5
        clock.now += 10.0
        assert await _outcomes(guard, 1) == ["ok"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "wskit.guards.ratelimit"]
    assert len(warnings) == 2
    assert "; 1 message(s) let through" in warnings[0]
    assert "; 5 message(s) let through" in warnings[1]
    assert guard.statistics() == {"allowed": 0, "limited": 0, "unchecked": 6}


# -- retry-after and keys ------------------------------------------------------------------------


def test_retry_after_is_at_least_one_millisecond_and_no_more() -> None:
    """Refilling 1000 tokens/s, a missing token is back in 1 ms: retryAfterMs is 1."""
    limiter = MemoryRateLimiter(1, 1000.0, clock=lambda: 0.0)
    assert limiter.take_nowait("k").allowed
    refused = limiter.take_nowait("k")
    assert not refused.allowed and refused.retry_after_ms == 1


def test_ip_keys_without_a_handshake_request_are_the_connection() -> None:
    """A connection without a handshake request (no IP known): by_ip is the connection's key."""
    assert by_ip(_ctx(None)) == "conn:c1"
    assert by_user_or_ip(_ctx(None)) == "conn:c1"
    assert by_ip(_ctx(None, request=SimpleNamespace(client_ip="10.0.0.1"))) == "ip:10.0.0.1"


# -- bounds of the limiters -----------------------------------------------------------------------


def test_memory_limiter_accepts_one_key_and_refuses_none() -> None:
    """max_keys=1 is valid (one bucket kept); max_keys=0 raises UsageError."""
    limiter = MemoryRateLimiter(1, 1.0, max_keys=1, clock=lambda: 0.0)
    limiter.take_nowait("a")
    limiter.take_nowait("b")
    assert limiter.statistics()["keys"] == 1
    with pytest.raises(UsageError):
        MemoryRateLimiter(1, 1.0, max_keys=0)


async def test_redis_limiter_accepts_a_zero_key_ttl_and_refuses_a_zero_timeout() -> None:
    """key_ttl_s=0 is valid (keys expire as soon as full); timeout_s=0 or a negative key_ttl_s
    raise UsageError. (Nothing connects: the constructor only checks its arguments.)"""
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 4, 1.0, key_ttl_s=0)
    assert (limiter.key_ttl_s, limiter.timeout_s, limiter.namespace) == (0, 0.5, "wskit")
    await limiter.aclose()
    with pytest.raises(UsageError):
        RedisRateLimiter("redis://127.0.0.1:1/0", 4, 1.0, timeout_s=0)
    with pytest.raises(UsageError):
        RedisRateLimiter("redis://127.0.0.1:1/0", 4, 1.0, key_ttl_s=-1)
