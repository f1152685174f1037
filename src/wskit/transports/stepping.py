"""Run a coroutine's first step synchronously; keep a task only if it really has to wait.

Transports' send coroutines (aiohttp's ``send_frame``) write to the socket buffer and only
await when the buffer is over its limit. Stepping them by hand makes the common case a plain
function call: no task, no event-loop round trip. Only for coroutines we know: user code
could observe that its first step ran outside a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["step"]


class _Yield:
    """Re-yield a value that the stepped coroutine yielded, from inside a real task."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, None]:
        # A future yielded by ``await fut`` still has _asyncio_future_blocking set, so the
        # task treats it exactly as if the stepped coroutine had yielded it itself.
        yield self.value


async def _resume(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
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
    return asyncio.ensure_future(_resume(coro, yielded))
