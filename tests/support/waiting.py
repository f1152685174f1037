"""Waiting in tests on conditions, not on the clock.

A test that sleeps a fixed 0.2 s and then asserts that something happened fails on a loaded
CI machine that needed 0.3 s. :func:`eventually` polls the condition instead, for up to a
generous, scaled timeout that only stops a hung test. The converse, "this must NOT happen",
needs a window of time by nature: :func:`consistently` watches the condition throughout
:data:`QUIET_S` (scaled by ``WSKIT_TIME_SCALE``) and fails as soon as it breaks. A window
too short on a slow machine can only let a regression through, never fail a good build.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tests.conftest import TIME_SCALE

__all__ = ["PATIENCE_S", "QUIET_S", "consistently", "eventually"]

T = TypeVar("T")

#: how long :func:`eventually` waits before it gives up: long enough that only a hang hits it
PATIENCE_S = 5.0 * TIME_SCALE
#: how long :func:`consistently` watches for something that must not happen
QUIET_S = 0.3 * TIME_SCALE
#: the polling period: short, the conditions are cheap
POLL_S = 0.01


async def _check(predicate: Callable[[], T | Awaitable[T]]) -> T:
    value = predicate()
    if inspect.isawaitable(value):
        return await value
    return value


async def eventually(
    predicate: Callable[[], T | Awaitable[T]], *, timeout: float = PATIENCE_S, what: str | None = None
) -> T:
    """Poll ``predicate`` (a function, or a coroutine function) until it returns something true;
    return that. Raises ``AssertionError`` naming ``what`` (default: the predicate) after
    ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await _check(predicate)
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"not true within {timeout:.1f} s: {what or _name(predicate)}")
        await asyncio.sleep(POLL_S)


async def consistently(
    predicate: Callable[[], object | Awaitable[object]], *, window: float = QUIET_S, what: str | None = None
) -> None:
    """Check ``predicate`` throughout ``window`` seconds; ``AssertionError`` as soon as it is false."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    while True:
        if not await _check(predicate):
            raise AssertionError(f"stopped being true within {window:.1f} s: {what or _name(predicate)}")
        if loop.time() >= deadline:
            return
        await asyncio.sleep(POLL_S)


def _name(predicate: Callable[..., object]) -> str:
    code = getattr(predicate, "__code__", None)
    if code is not None and predicate.__name__ == "<lambda>":
        return f"lambda at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"
    return getattr(predicate, "__qualname__", repr(predicate))
