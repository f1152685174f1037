"""Rate limiting beyond the conformance suite: exact timing, bounds, Redis keys and failures, the middleware."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel
from tests.support.redis_server import free_port

from wskit import Context, ErrorCode, HandshakeRequest, Router, UsageError, WsKitError, message, rpc
from wskit.guards import (
    Decision,
    MemoryRateLimiter,
    Rate,
    RedisRateLimiter,
    by_connection,
    by_ip,
    by_type,
    by_user_or_connection,
    by_user_or_ip,
    per_minute,
    per_second,
    rate_limit,
)
from wskit.testing import RpcError, TestClient
from wskit.testing.ratelimit import LimiterSet, RateLimiterConformance


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the memory limiter, on a fake clock ---------------------------------------------------------------


def test_memory_retry_after_is_exact_and_shrinks_as_time_passes() -> None:
    """On a fake clock the hint is exact: 250 ms at 4/s, 150 ms after 100 ms, then the take passes."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(2, 4.0, clock=clock)
    assert limiter.take_nowait("k").allowed and limiter.take_nowait("k").allowed
    assert limiter.take_nowait("k") == Decision(False, 0.0, 250)
    clock.now += 0.1
    assert limiter.take_nowait("k").retry_after_ms == 150
    clock.now += 0.15
    assert limiter.take_nowait("k").allowed


def test_memory_retry_after_rounds_up() -> None:
    """At 3 tokens/s one token is 333.3 ms away: the hint says 334, so waiting it is enough."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(1, 3.0, clock=clock)
    limiter.take_nowait("k")
    refused = limiter.take_nowait("k")
    assert refused.retry_after_ms == 334
    clock.now += refused.retry_after_ms / 1000
    assert limiter.take_nowait("k").allowed


def test_memory_forgets_full_buckets() -> None:
    """Buckets that have refilled are dropped as the limiter goes (a full bucket is no bucket)."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(1, 1.0, clock=clock)
    for n in range(10):
        limiter.take_nowait(f"k{n}")
    assert limiter.statistics()["keys"] == 10
    clock.now += 2
    for _ in range(5):
        limiter.take_nowait("other")
    assert limiter.statistics() == {"keys": 1, "evicted_early": 0}


def test_memory_never_holds_more_than_max_keys() -> None:
    """1000 keys through a limiter of max_keys=100: it holds 100 and counts the early evictions."""
    limiter = MemoryRateLimiter(5, 0.001, max_keys=100, clock=FakeClock())
    for n in range(1000):
        limiter.take_nowait(f"k{n}")
    assert limiter.statistics() == {"keys": 100, "evicted_early": 900}


def test_memory_evicts_the_least_recently_used() -> None:
    """At the bound the bucket used longest ago goes, not a busy one."""
    limiter = MemoryRateLimiter(1, 0.001, max_keys=2, clock=FakeClock())
    limiter.take_nowait("a")
    limiter.take_nowait("b")
    limiter.take_nowait("a")  # refused, but a is now the most recently used
    limiter.take_nowait("c")  # evicts b
    assert not limiter.take_nowait("a").allowed
    assert limiter.take_nowait("b").allowed


@pytest.mark.parametrize(("capacity", "refill"), [(0, 1), (1, 0), (-1, 1), (1, -1), (float("inf"), 1)])
def test_bucket_shape_must_be_positive(capacity: float, refill: float) -> None:
    """A capacity or refill that is not a positive finite number is a UsageError."""
    with pytest.raises(UsageError):
        MemoryRateLimiter(capacity, refill)


def test_rate_helpers() -> None:
    """per_minute(n) bursts n and refills n/60 per second; per_second(n) refills n per second."""
    assert per_minute(60) == Rate(60, 1.0)
    assert per_second(5) == Rate(5, 5.0)
    limiter = MemoryRateLimiter(*per_minute(120))
    assert (limiter.capacity, limiter.refill_per_s) == (120, 2.0)


async def test_conformance_suite_catches_a_racy_limiter() -> None:
    """The suite's concurrency test fails a limiter that reads and writes in two steps."""

    class Racy:
        """Reads the level, yields (other takes run), then writes: the GET-then-SET race."""

        def __init__(self, capacity: float, refill_per_s: float) -> None:
            self.capacity = capacity
            self.tokens: dict[str, float] = {}

        async def take(self, key: str, cost: float = 1.0) -> Decision:
            tokens = self.tokens.get(key, self.capacity)
            await asyncio.sleep(0)
            if tokens >= cost:
                self.tokens[key] = tokens - cost
                return Decision(True, tokens - cost, 0)
            return Decision(False, tokens, 1000)

        async def aclose(self) -> None:
            pass

    limiters = LimiterSet(Racy)
    with pytest.raises(AssertionError):
        await RateLimiterConformance().test_concurrent_takes_allow_exactly_capacity(limiters)


# -- the Redis limiter --------------------------------------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test Redis, to look at the keys."""
    found = aioredis.Redis.from_url(redis_url)
    try:
        yield found
    finally:
        await found.aclose()


async def test_redis_key_expires_when_the_bucket_would_be_full(
    redis_url: str, namespace: str, client: aioredis.Redis
) -> None:
    """One token missing at 2/s: the key lives 500 ms; an untouched key does not exist."""
    limiter = RedisRateLimiter(redis_url, 4, 2.0, namespace=namespace)
    try:
        await limiter.take("k")
        assert 400 < await client.pttl(limiter.key("k")) <= 500
        assert await client.exists(limiter.key("untouched")) == 0
        assert limiter.key("k") == f"{namespace}:rl:k"
    finally:
        await limiter.aclose()


async def test_redis_key_ttl_is_a_minimum(redis_url: str, namespace: str, client: aioredis.Redis) -> None:
    """With key_ttl_s=60, a bucket's key lives at least a minute."""
    limiter = RedisRateLimiter(redis_url, 4, 2.0, namespace=namespace, key_ttl_s=60)
    try:
        await limiter.take("k")
        assert 59_000 < await client.pttl(limiter.key("k")) <= 60_000
    finally:
        await limiter.aclose()


async def test_redis_refused_connection_is_unavailable() -> None:
    """With nothing listening, a take raises UNAVAILABLE at once."""
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", 4, 1.0)
    try:
        started = time.monotonic()
        with pytest.raises(WsKitError) as raised:
            await limiter.take("k")
        assert raised.value.code == ErrorCode.UNAVAILABLE
        assert time.monotonic() - started < 1.0
    finally:
        await limiter.aclose()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung Redis)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


async def test_redis_silent_server_is_unavailable_within_the_timeout(silent_port: int) -> None:
    """A Redis that never answers costs timeout_s, then UNAVAILABLE (no retry loop)."""
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{silent_port}/0", 4, 1.0, timeout_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(WsKitError) as raised:
            await limiter.take("k")
        assert raised.value.code == ErrorCode.UNAVAILABLE
        assert time.monotonic() - started < 1.0
    finally:
        await limiter.aclose()


async def test_redis_given_client_is_left_open(client: aioredis.Redis, namespace: str) -> None:
    """A limiter built on the application's client does not close it; a closed limiter refuses."""
    limiter = RedisRateLimiter(client, 4, 1.0, namespace=namespace)
    assert (await limiter.take("k")).allowed
    await limiter.aclose()
    await limiter.aclose()
    assert await client.ping()
    with pytest.raises(WsKitError) as raised:
        await limiter.take("k")
    assert raised.value.code == ErrorCode.UNAVAILABLE


async def test_redis_script_reloads_after_a_flush(redis_url: str, namespace: str, client: aioredis.Redis) -> None:
    """After Redis forgot the script (restart, SCRIPT FLUSH), the next take loads it again."""
    limiter = RedisRateLimiter(redis_url, 4, 1.0, namespace=namespace)
    try:
        await limiter.take("k")
        await client.script_flush()
        assert (await limiter.take("k")).remaining == pytest.approx(2.0, abs=0.1)
    finally:
        await limiter.aclose()


# -- the middleware -----------------------------------------------------------------------------------


class Text(BaseModel):
    text: str


Say = message("SAY", Text)
Shout = message("SHOUT", Text)
Ack = message("ACK", Text)
Echo = rpc("ECHO", Text, "ECHOED", Text)


def build(
    limiter: Any, *, key: Callable[[Context[Any]], str] = by_user_or_ip, **options: Any
) -> tuple[Router[Any], list[str]]:
    """A router rate-limited globally; handlers record what they ran and acknowledge."""
    router: Router[Any] = Router()
    handled: list[str] = []
    router.use(rate_limit(limiter, key=key, **options))

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        handled.append(ctx.payload.text)
        await ctx.send(Ack, {"text": ctx.payload.text})

    @router.on(Shout)
    async def shout(ctx: Context[Text]) -> None:
        handled.append(ctx.payload.text.upper())
        await ctx.send(Ack, {"text": ctx.payload.text.upper()})

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        handled.append(ctx.payload.text)
        await ctx.reply({"text": ctx.payload.text})

    return router, handled


async def test_limited_message_is_refused_and_not_handled() -> None:
    """The third message in a bucket of 2 gets RESOURCE_EXHAUSTED with retryAfterMs; its handler does not run."""
    router, handled = build(MemoryRateLimiter(2, 1.0))
    async with TestClient(router, data={"user_id": "u1"}) as client:
        for text in ("a", "b", "c"):
            await client.send(Say, {"text": text})
        assert [(await client.receive()).payload["text"] for _ in range(2)] == ["a", "b"]
        refused = await client.receive()
    assert refused.type == "ERROR"
    assert refused.payload["code"] == "RESOURCE_EXHAUSTED"
    assert refused.payload["message"] == "Rate limit exceeded"
    assert 950 <= refused.payload["retryAfterMs"] <= 1000
    assert refused.payload["retryable"] is True
    assert handled == ["a", "b"]


async def test_limited_rpc_gets_rpc_error() -> None:
    """A limited RPC is answered RPC_ERROR RESOURCE_EXHAUSTED with retryAfterMs (its correlationId kept)."""
    router, handled = build(MemoryRateLimiter(1, 2.0))
    async with TestClient(router, data={"user_id": "u1"}) as client:
        assert (await client.request(Echo, {"text": "a"})).payload.text == "a"
        with pytest.raises(RpcError) as raised:
            await client.request(Echo, {"text": "b"})
    assert raised.value.code == ErrorCode.RESOURCE_EXHAUSTED
    assert 450 <= raised.value.payload["retryAfterMs"] <= 500
    assert handled == ["a"]


async def test_other_users_are_unaffected() -> None:
    """One user's empty bucket does not limit another user on the same router."""
    router, handled = build(MemoryRateLimiter(1, 0.001))
    async with TestClient(router, data={"user_id": "u1"}) as one, TestClient(router, data={"user_id": "u2"}) as two:
        await one.send(Say, {"text": "1a"})
        await one.send(Say, {"text": "1b"})
        await two.send(Say, {"text": "2a"})
        assert (await one.receive()).type == "ACK"
        assert (await one.receive()).payload["code"] == "RESOURCE_EXHAUSTED"
        assert (await two.receive()).payload["text"] == "2a"
    assert handled == ["1a", "2a"]


async def test_anonymous_clients_share_their_ip_bucket() -> None:
    """by_user_or_ip: two anonymous connections from one address draw from one bucket."""
    router, handled = build(MemoryRateLimiter(1, 0.001))
    request = HandshakeRequest(path="/", headers={}, client_ip="10.0.0.7")
    async with TestClient(router, request=request) as one, TestClient(router, request=request) as two:
        await one.send(Say, {"text": "a"})
        assert (await one.receive()).type == "ACK"
        await two.send(Say, {"text": "b"})
        assert (await two.receive()).payload["code"] == "RESOURCE_EXHAUSTED"
    assert handled == ["a"]


async def test_by_type_keeps_a_bucket_per_message_type() -> None:
    """With key=by_type, an exhausted SAY bucket leaves SHOUT alone."""
    router, handled = build(MemoryRateLimiter(1, 0.001), key=by_type)
    async with TestClient(router, data={"user_id": "u1"}) as client:
        await client.send(Say, {"text": "a"})
        await client.send(Say, {"text": "b"})
        await client.send(Shout, {"text": "c"})
        kinds = [(await client.receive()).payload.get("code", "ACK") for _ in range(3)]
    assert kinds == ["ACK", "RESOURCE_EXHAUSTED", "ACK"]
    assert handled == ["a", "C"]


async def test_cost_may_depend_on_the_message() -> None:
    """A cost function charges long messages more."""
    router, handled = build(MemoryRateLimiter(10, 0.001), cost=lambda ctx: 8 if len(ctx.payload.text) > 3 else 1)
    async with TestClient(router, data={"user_id": "u1"}) as client:
        for text in ("long one", "x", "y", "another long one"):
            await client.send(Say, {"text": text})
        codes = [(await client.receive()).payload.get("code", "ACK") for _ in range(4)]
    assert codes == ["ACK", "ACK", "ACK", "RESOURCE_EXHAUSTED"]
    assert handled == ["long one", "x", "y"]


class Down:
    """A limiter whose backend is unreachable."""

    async def take(self, key: str, cost: float = 1.0) -> Decision:
        raise WsKitError(ErrorCode.UNAVAILABLE, "Rate limiter unavailable: ConnectionError")

    async def aclose(self) -> None:
        pass


async def test_unavailable_limiter_fails_open_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """When the limiter is down, messages are handled and one warning (not one per message) is logged."""
    router, handled = build(Down())
    with caplog.at_level(logging.WARNING, logger="wskit.guards.ratelimit"):
        async with TestClient(router, data={"user_id": "u1"}) as client:
            for text in ("a", "b", "c"):
                await client.send(Say, {"text": text})
            assert [(await client.receive()).type for _ in range(3)] == ["ACK"] * 3
    assert handled == ["a", "b", "c"]
    warnings = [r for r in caplog.records if r.name == "wskit.guards.ratelimit"]
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()


async def test_unavailable_limiter_can_fail_closed() -> None:
    """With fail_open=False the message is answered UNAVAILABLE and not handled."""
    router, handled = build(Down(), fail_open=False)
    async with TestClient(router, data={"user_id": "u1"}) as client:
        await client.send(Say, {"text": "a"})
        refused = await client.receive()
    assert refused.payload["code"] == "UNAVAILABLE"
    assert handled == []


async def test_redis_limiter_through_the_middleware(redis_url: str, namespace: str) -> None:
    """The Redis limiter refuses through the middleware like the memory one."""
    limiter = RedisRateLimiter(redis_url, 1, 1.0, namespace=namespace)
    try:
        router, handled = build(limiter)
        async with TestClient(router, data={"user_id": "u1"}) as client:
            await client.send(Say, {"text": "a"})
            await client.send(Say, {"text": "b"})
            assert (await client.receive()).type == "ACK"
            refused = await client.receive()
        assert refused.payload["code"] == "RESOURCE_EXHAUSTED"
        assert 900 <= refused.payload["retryAfterMs"] <= 1000
        assert handled == ["a"]
    finally:
        await limiter.aclose()


# -- key functions ------------------------------------------------------------------------------------


async def keys_of(*, data: dict[str, Any] | None = None, client_ip: str | None = None) -> tuple[list[str], str]:
    """What each key function says about one message (and the connection's client id)."""
    router: Router[Any] = Router()
    seen: list[str] = []

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        seen.extend(f(ctx) for f in (by_user_or_ip, by_ip, by_type, by_connection, by_user_or_connection))
        await ctx.send(Ack, {"text": "ok"})

    request = HandshakeRequest(path="/", headers={}, client_ip=client_ip)
    async with TestClient(router, data=data, request=request) as client:
        await client.send(Say, {"text": "x"})
        await client.receive()
        return seen, client.client_id


async def test_keys_of_an_authenticated_user() -> None:
    """A user is keyed by user id (IP and connection keys stay available)."""
    seen, cid = await keys_of(data={"user_id": "u1"}, client_ip="10.0.0.1")
    assert seen == ["user:u1", "ip:10.0.0.1", "user:u1:SAY", f"conn:{cid}", "user:u1"]


async def test_keys_of_an_anonymous_client() -> None:
    """Anonymous: by_user_or_ip falls back to the IP, by_user_or_connection to the connection."""
    seen, cid = await keys_of(client_ip="10.0.0.1")
    assert seen == ["ip:10.0.0.1", "ip:10.0.0.1", "ip:10.0.0.1:SAY", f"conn:{cid}", f"conn:{cid}"]


async def test_keys_without_an_ip_fall_back_to_the_connection() -> None:
    """Without a known client IP, the IP keys become the connection's."""
    seen, cid = await keys_of()
    assert seen == [f"conn:{cid}", f"conn:{cid}", f"conn:{cid}:SAY", f"conn:{cid}", f"conn:{cid}"]


async def test_middleware_counts_its_decisions() -> None:
    """statistics() counts allowed, limited and unchecked messages (for metrics)."""
    guard = rate_limit(MemoryRateLimiter(1, 0.001))
    router: Router[Any] = Router()
    router.use(guard)

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        await ctx.send(Ack, ctx.payload)

    async with TestClient(router, data={"user_id": "u1"}) as client:
        await client.send(Say, {"text": "a"})
        await client.send(Say, {"text": "b"})
        await client.receive()
        await client.receive()
    assert guard.statistics() == {"allowed": 1, "limited": 1, "unchecked": 0}
