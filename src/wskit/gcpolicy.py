"""Keep CPython's full garbage collections from stalling a server that holds many connections.

CPython runs a full collection each time the objects that survived younger collections grow
by a quarter, and a full collection walks every tracked object: ~70 per open connection
(aiohttp's request, response, reader, tasks and coroutines, plus ours). Measured here, with
5,000 connections that is ~360k objects and a 250-400 ms stop of the event loop, during
which no frame is read or written; it happens again and again while connections pile up.

The remedy is :func:`gc.freeze`: once a second the young generations are collected (so
cyclic garbage made meanwhile is freed, not frozen) and what survives moves to the permanent
generation, which full collections skip. Frozen objects are still freed by reference
counting the moment nothing refers to them, but a reference cycle that was frozen while its
connection was open is not: only the next unfreeze frees it. So no object a connection
leaves behind may be in a cycle, whoever made it: wskit's own, and aiohttp's and asyncio's
(wskit does its own pings instead of aiohttp's heartbeat, whose callback points back at the
response, and breaks asyncio's selector transport's reference to itself when a connection
is released). ``tests/protocol/test_no_cyclic_garbage.py`` counts every object the
collector would free after connections closed in every way, under the stock loop and
uvloop, with and without TLS, and requires none; ``tests/hostile/test_churn_memory.py``
requires a server whose connections were frozen while open to give their memory back.
(Before, each closed connection kept ~10 KB until the unfreeze.)

Only a reference cycle created by the application in long-lived data and dropped after it
was frozen waits for the next unfreeze (every ``GC_UNFREEZE_INTERVAL_S``), which gives
everything back to the collector and runs one full collection: the one pause of that length
the policy keeps, once per interval instead of each time the live objects grow by a quarter.

The policy is process-wide (the collector is), so servers in one process share one timer.
While it runs, every collector pass is timed (``gc.callbacks``) and handed to the servers'
``on_pause`` (the ``wskit_gc_pause_seconds`` histogram).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["GcFreezer"]


class GcFreezer:
    """The process's freezing timer, shared by the servers that run in it."""

    _users = 0
    _handle: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _interval_s = 1.0
    _unfreeze_s = 600.0
    _last_unfreeze = 0.0
    _counts = {"freezes": 0, "unfreezes": 0}
    #: told the length in seconds of every collector pass while the policy runs
    _observers: list[Callable[[float], None]] = []
    _pass_started = 0.0

    @classmethod
    def acquire(cls, interval_s: float, unfreeze_s: float, on_pause: Callable[[float], None] | None = None) -> bool:
        """Start freezing every ``interval_s`` seconds (0: do nothing). True when this call uses it.

        ``on_pause`` is told the length of each collector pass until :meth:`release`."""
        if interval_s <= 0:
            return False
        if on_pause is not None:
            cls._observers.append(on_pause)
            if cls._timed not in gc.callbacks:
                gc.callbacks.append(cls._timed)
        loop = asyncio.get_running_loop()
        if cls._users and (cls._loop is None or cls._loop.is_closed()):
            # servers of a loop that ended without stopping them: their shares end with it
            cls._users, cls._handle = 0, None
            cls._observers.clear()
            gc.unfreeze()
        cls._users += 1
        if cls._users == 1:
            cls._interval_s, cls._unfreeze_s = interval_s, unfreeze_s
            cls._last_unfreeze = time.monotonic()
            cls._loop = loop
            cls._handle = loop.call_later(interval_s, cls._tick)
        return True

    @classmethod
    def release(cls, on_pause: Callable[[float], None] | None = None) -> None:
        """One user less (``on_pause``: the observer it acquired with, told no more); the last
        one stops the timer and gives frozen objects back."""
        if on_pause is not None and on_pause in cls._observers:
            cls._observers.remove(on_pause)
        cls._users = max(cls._users - 1, 0)
        if cls._users == 0:
            cls._observers.clear()
            if cls._timed in gc.callbacks:
                gc.callbacks.remove(cls._timed)
            if cls._handle is not None:
                cls._handle.cancel()
                cls._handle = None
            gc.unfreeze()

    @classmethod
    def _tick(cls) -> None:
        now = time.monotonic()
        try:
            if cls._unfreeze_s > 0 and now - cls._last_unfreeze >= cls._unfreeze_s:
                # give everything back to the collector, with a full pass now (the next tick
                # would freeze again before CPython ran one): application cycles are freed
                cls._last_unfreeze = now
                gc.unfreeze()
                gc.collect()
                cls._counts["unfreezes"] += 1
            else:
                gc.collect(1)
                gc.freeze()
                cls._counts["freezes"] += 1
        finally:
            cls._handle = asyncio.get_running_loop().call_later(cls._interval_s, cls._tick) if cls._users else None

    @classmethod
    def _timed(cls, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            cls._pass_started = time.perf_counter()
            return
        took = time.perf_counter() - cls._pass_started
        for observe in cls._observers:
            try:
                observe(took)
            except Exception:  # noqa: BLE001 - a collector callback must never raise
                continue

    @classmethod
    def statistics(cls) -> dict[str, int]:
        """Objects frozen now, servers sharing the timer, and freezes and unfreezes so far."""
        return {"frozen": gc.get_freeze_count(), "users": cls._users, **cls._counts}
