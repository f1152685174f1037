"""Drive a coroutine by hand: its first step now, the rest in a task only if it must wait.

The dispatcher steps an RPC handler inside the task that reads the connection: a handler
that answers without waiting costs a function call, not a task and an event-loop round trip
(about 6 us on Python 3.11). One that waits is driven on by :func:`resume` in that same
task (so ``asyncio.current_task()``, timeouts and cancellation are all that task's), while a
new task takes over reading. :func:`step` does the same for coroutines we know well enough
to finish in a fresh task (their first step ran outside it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume", "step"]


class _Yield:
    """Re-yield a value that the stepped coroutine yielded, from inside a real task."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, None]:
        # A future yielded by ``await fut`` still has _asyncio_future_blocking set, so the
        # task treats it exactly as if the stepped coroutine had yielded it itself.
        yield self.value


async def resume(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drive ``coro``, already stepped once (it yielded ``yielded``), to its end in this task."""
    while True:
        try:
            await _Yield(yielded)
        except BaseException as exc:  # noqa: BLE001 - cancellation is passed on to coro
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            yielded = coro.send(None)
        except StopIteration:
            return


def step(coro: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Run ``coro`` until it first suspends: None if it finished, else a task finishing it.

    Exceptions raised in the first step propagate to the caller.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    except BaseException:
        coro.close()
        raise
    return asyncio.ensure_future(resume(coro, yielded))
