"""A conformance suite for :class:`~wskit.guards.ratelimit.RateLimiter` implementations.

``MemoryRateLimiter``, ``RedisRateLimiter`` and any third party's limiter must keep the same
promises, so they are written down once, as tests. To check a limiter, subclass
:class:`RateLimiterConformance` in a pytest module and provide a ``make_limiter`` fixture: a
callable ``(capacity, refill_per_s)`` returning a new limiter (or an awaitable of one). The
suite closes every limiter it made (``aclose()``) and uses fresh random keys in each test, so
limiters may share one backend::

    from wskit.testing.ratelimit import RateLimiterConformance

    class TestMyLimiter(RateLimiterConformance):
        @pytest.fixture
        def make_limiter(self):
            return lambda capacity, refill_per_s: MyLimiter(DSN, capacity, refill_per_s)

Set ``shared_backend = False`` when limiters made by the factory keep separate buckets (an
in-process limiter); the test that two limiters share one budget is then skipped.

Timing: the longest wait is a few hundred milliseconds; ``tolerance_ms`` (default 50) is what
a retry hint may be off by, for clock granularity and the time the test itself takes. The
suite needs ``pytest`` and ``pytest-asyncio``.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar

import pytest
import pytest_asyncio

from wskit.errors import UsageError
from wskit.guards.ratelimit import Decision, RateLimiter

__all__ = ["LimiterFactory", "LimiterSet", "RateLimiterConformance"]

#: ``make_limiter(capacity, refill_per_s)``: a new limiter, or an awaitable of one.
LimiterFactory = Callable[[float, float], "RateLimiter | Awaitable[RateLimiter]"]

#: a refill so slow that nothing comes back while a test runs (one token per ~17 minutes)
_SLOW = 0.001


def _key(kind: str = "k") -> str:
    return f"conformance:{kind}:{uuid.uuid4().hex[:12]}"


class LimiterSet:
    """Makes limiters from one factory for one test, and closes them all after it."""

    def __init__(self, factory: LimiterFactory) -> None:
        self.factory = factory
        self.made: list[RateLimiter] = []

    async def make(self, capacity: float, refill_per_s: float) -> RateLimiter:
        """A new limiter of this shape."""
        made = self.factory(capacity, refill_per_s)
        limiter = await made if inspect.isawaitable(made) else made
        self.made.append(limiter)
        return limiter

    async def close(self) -> None:
        for limiter in reversed(self.made):
            await limiter.aclose()


async def _drain(limiter: RateLimiter, key: str, count: int, cost: float = 1.0) -> list[Decision]:
    return [await limiter.take(key, cost) for _ in range(count)]


class RateLimiterConformance:
    """The behaviour every rate limiter must show. Subclass it and provide ``make_limiter``."""

    #: how far (ms) a retry hint may be below the exact value (clock granularity, test time)
    tolerance_ms: ClassVar[int] = 50
    #: concurrent takes in the atomicity test
    concurrency: ClassVar[int] = 50
    #: limiters made by one factory share their buckets (False: each limiter has its own)
    shared_backend: ClassVar[bool] = True

    @pytest_asyncio.fixture
    async def limiters(self, make_limiter: LimiterFactory) -> AsyncIterator[LimiterSet]:
        """Limiters made for one test, closed after it."""
        found = LimiterSet(make_limiter)
        try:
            yield found
        finally:
            await found.close()

    def assert_retry_close(self, decision: Decision, expected_ms: float) -> None:
        """``retry_after_ms`` is the exact wait, give or take the clock: within tolerance below, 1 ms above."""
        assert not decision.allowed
        assert expected_ms - self.tolerance_ms <= decision.retry_after_ms <= expected_ms + 1, (
            f"retry_after_ms={decision.retry_after_ms}, expected about {expected_ms}"
        )

    # -- the bucket ---------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_allows_up_to_capacity_then_refuses(self, limiters: LimiterSet) -> None:
        """A fresh key gets ``capacity`` takes; the next is refused with the time one token takes to refill."""
        limiter = await limiters.make(5, 1.0)
        key = _key()
        assert [d.allowed for d in await _drain(limiter, key, 5)] == [True] * 5
        self.assert_retry_close(await limiter.take(key), 1000)

    @pytest.mark.asyncio
    async def test_allowed_decisions_count_down_remaining(self, limiters: LimiterSet) -> None:
        """``remaining`` is what is left after each take, and ``retry_after_ms`` is 0 when allowed."""
        limiter = await limiters.make(3, _SLOW)
        decisions = await _drain(limiter, _key(), 3)
        assert [round(d.remaining, 2) for d in decisions] == [2.0, 1.0, 0.0]
        assert [d.retry_after_ms for d in decisions] == [0, 0, 0]

    @pytest.mark.asyncio
    async def test_cost_above_one_is_charged_and_hinted(self, limiters: LimiterSet) -> None:
        """A take of cost 4 charges 4 tokens; when refused, the hint is the time for the missing ones."""
        limiter = await limiters.make(10, 1.0)
        key = _key()
        first, second = await _drain(limiter, key, 2, cost=4)
        assert first.allowed and second.allowed
        assert second.remaining == pytest.approx(2.0, abs=0.1)
        self.assert_retry_close(await limiter.take(key, 4), 2000)  # 2 tokens there, 2 missing at 1/s

    @pytest.mark.asyncio
    async def test_retry_after_scales_with_the_refill_rate(self, limiters: LimiterSet) -> None:
        """At 4 tokens per second, one token is 250 ms away and three are 750 ms away."""
        limiter = await limiters.make(3, 4.0)
        key = _key()
        await _drain(limiter, key, 3)
        self.assert_retry_close(await limiter.take(key), 250)
        self.assert_retry_close(await limiter.take(key, 3), 750)

    @pytest.mark.asyncio
    async def test_refused_take_charges_nothing(self, limiters: LimiterSet) -> None:
        """A refused take leaves the bucket as it was: a smaller take that fits still passes."""
        limiter = await limiters.make(3, _SLOW)
        key = _key()
        assert (await limiter.take(key, 2)).allowed
        refused = await limiter.take(key, 2)
        assert not refused.allowed
        assert refused.remaining == pytest.approx(1.0, abs=0.01)
        assert (await limiter.take(key, 1)).allowed
        assert not (await limiter.take(key, 1)).allowed

    @pytest.mark.asyncio
    async def test_cost_must_be_positive_and_fit_the_capacity(self, limiters: LimiterSet) -> None:
        """A cost of 0 or less, or above the capacity (never satisfiable), is a ``UsageError``."""
        limiter = await limiters.make(3, 1.0)
        for cost in (0, -1, 4):
            with pytest.raises(UsageError):
                await limiter.take(_key(), cost)

    # -- time -----------------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_waiting_the_hint_is_enough(self, limiters: LimiterSet) -> None:
        """After waiting ``retry_after_ms``, the same take is allowed."""
        limiter = await limiters.make(2, 20.0)
        key = _key()
        await _drain(limiter, key, 2)
        refused = await limiter.take(key)
        self.assert_retry_close(refused, 50)
        await asyncio.sleep(refused.retry_after_ms / 1000 + 0.005)
        assert (await limiter.take(key)).allowed

    @pytest.mark.asyncio
    async def test_tokens_refill_over_time(self, limiters: LimiterSet) -> None:
        """An emptied bucket regains tokens at ``refill_per_s``: after ~3 tokens' time, 3 takes pass."""
        limiter = await limiters.make(5, 20.0)
        key = _key()
        await _drain(limiter, key, 5)
        await asyncio.sleep(0.16)  # 3.2 tokens
        assert [d.allowed for d in await _drain(limiter, key, 3)] == [True] * 3

    @pytest.mark.asyncio
    async def test_refill_stops_at_capacity(self, limiters: LimiterSet) -> None:
        """An idle bucket fills up to ``capacity`` and no further."""
        limiter = await limiters.make(2, 20.0)
        key = _key()
        await _drain(limiter, key, 2)
        await asyncio.sleep(0.3)  # 6 tokens' worth of time
        decision = await limiter.take(key)
        assert decision.allowed
        assert decision.remaining <= 1.5  # capacity 2 minus 1, plus what refilled meanwhile

    # -- keys and concurrency ---------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_keys_are_independent(self, limiters: LimiterSet) -> None:
        """Emptying one key's bucket leaves another key's untouched."""
        limiter = await limiters.make(3, _SLOW)
        a, b = _key("a"), _key("b")
        await _drain(limiter, a, 3)
        assert not (await limiter.take(a)).allowed
        assert [d.allowed for d in await _drain(limiter, b, 3)] == [True] * 3
        assert not (await limiter.take(b)).allowed

    @pytest.mark.asyncio
    async def test_keys_may_hold_any_characters(self, limiters: LimiterSet) -> None:
        """Keys with separators, braces, spaces and non-ASCII letters are ordinary keys."""
        limiter = await limiters.make(1, _SLOW)
        suffix = uuid.uuid4().hex[:8]
        keys = [f"user:ü {suffix}", f"{{tag}}:{suffix}", f"a*b?[c]:{suffix}", f"{suffix}\n"]
        assert [(await limiter.take(k)).allowed for k in keys] == [True] * len(keys)
        assert [(await limiter.take(k)).allowed for k in keys] == [False] * len(keys)

    @pytest.mark.asyncio
    async def test_concurrent_takes_allow_exactly_capacity(self, limiters: LimiterSet) -> None:
        """Many takes at once on one key: exactly ``capacity`` pass (the check and the charge are atomic)."""
        limiter = await limiters.make(10, _SLOW)
        key = _key()
        decisions = await asyncio.gather(*(limiter.take(key) for _ in range(self.concurrency)))
        assert sum(d.allowed for d in decisions) == 10
        assert all(d.retry_after_ms > 0 for d in decisions if not d.allowed)

    @pytest.mark.asyncio
    async def test_limiters_of_one_backend_share_buckets(self, limiters: LimiterSet) -> None:
        """Two limiters from the same factory charge the same bucket for the same key.

        Skipped when :attr:`shared_backend` is False (a limiter living in one process).
        """
        if not self.shared_backend:
            pytest.skip("limiters of this factory do not share a backend")
        first = await limiters.make(4, _SLOW)
        second = await limiters.make(4, _SLOW)
        key = _key()
        await _drain(first, key, 2)
        await _drain(second, key, 2)
        assert not (await first.take(key)).allowed
        assert not (await second.take(key)).allowed
