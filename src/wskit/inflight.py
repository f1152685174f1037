"""RPCs in flight: correlation ids, deadlines, cancellation.

Each RPC runs in its own task, registered on its connection under its correlationId (an
RPC without one still runs, but cannot be cancelled by the client). ``meta.timeoutMs`` sets
a deadline: when it passes before the terminal answer, the caller gets
``DEADLINE_EXCEEDED`` and the handler is cancelled. ``$ws:rpc-cancel`` does the same with
``CANCELLED``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from wskit.errors import ErrorCode, WsKitError

if TYPE_CHECKING:
    from wskit.context import Context

__all__ = ["MAX_TIMEOUT_MS", "RpcCall", "inflight_bytes", "set_deadline"]

#: Deadlines further away than this are clamped (a day): timers are bounded like the rest.
MAX_TIMEOUT_MS = 86_400_000


def _new_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task that runs its first step at once where Python can (3.12+: eager tasks).

    A handler that answers without awaiting I/O then costs no event-loop round trip; on 3.11
    it is an ordinary task.
    """
    if _eager is not None:
        return _eager(loop, coro)  # type: ignore[no-any-return]
    return loop.create_task(coro)


_eager: Any = getattr(asyncio, "eager_task_factory", None)


def set_deadline(ctx: Context[Any, Any]) -> None:
    """``ctx.deadline`` from the request's ``meta.timeoutMs`` (loop time; clamped)."""
    timeout = ctx.meta.get("timeoutMs")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout == timeout:  # not NaN
        loop = asyncio.get_running_loop()
        ctx.deadline = loop.time() + min(max(float(timeout), 0.0), MAX_TIMEOUT_MS) / 1000.0


def inflight_bytes(rpcs: dict[object, Any]) -> int:
    """Frame bytes held by a connection's RPCs in flight (summed when one starts waiting)."""
    return sum(call.size for call in rpcs.values())


class RpcCall:
    """One RPC in flight: its context, task and deadline timer.

    Either the RPC has a task of its own (:meth:`start`), or it took over the task that was
    reading the connection when its handler first had to wait (:meth:`adopt`): then the task
    outlives the call, so "finished" is tracked here rather than read from the task.
    """

    __slots__ = ("cancel_requested", "ctx", "finished", "key", "size", "task", "timer")

    def __init__(self, ctx: Context[Any, Any], task: asyncio.Task[Any], key: object, size: int = 0) -> None:
        self.ctx = ctx
        self.task = task
        self.key = key
        #: bytes of the request frame: what this call holds while it runs (see inflight_bytes)
        self.size = size
        self.timer: asyncio.TimerHandle | None = None
        self.finished = False
        self.cancel_requested = False

    @classmethod
    def adopt(cls, ctx: Context[Any, Any], task: asyncio.Task[Any], size: int = 0) -> RpcCall:
        """Track an RPC that continues in ``task`` (the current one); call :meth:`finish` after."""
        key: object = ctx.correlation_id if ctx.correlation_id is not None else object()
        call = cls(ctx, task, key, size)
        ctx.connection.rpcs[key] = call
        if ctx.deadline is not None:
            loop = asyncio.get_running_loop()
            call.timer = loop.call_at(ctx.deadline, call.abort, WsKitError(ErrorCode.DEADLINE_EXCEEDED))
        return call

    def finish(self) -> None:
        """The adopted RPC is over: untrack it and leave its task as it was before."""
        self._finished(None)
        if self.cancel_requested:
            self.task.uncancel()  # the cancellation was for the RPC, not for the task

    @classmethod
    def start(cls, coro: Coroutine[Any, Any, None], ctx: Context[Any, Any], size: int = 0) -> RpcCall:
        """Run ``coro`` (the handler pipeline) as a tracked task with ``ctx``'s deadline."""
        loop = asyncio.get_running_loop()
        task = _new_task(loop, coro)
        key: object = ctx.correlation_id if ctx.correlation_id is not None else object()
        call = cls(ctx, task, key, size)
        if task.done():
            return call  # finished in its eager first step: nothing left to track
        ctx.connection.rpcs[key] = call
        if ctx.deadline is not None:
            call.timer = loop.call_at(ctx.deadline, call.abort, WsKitError(ErrorCode.DEADLINE_EXCEEDED))
        task.add_done_callback(call._finished)
        return call

    def abort(self, error: WsKitError) -> None:
        """Answer ``error`` (unless already answered) and cancel the handler."""
        ctx = self.ctx
        if ctx.answered or self.finished or self.task.done():
            return
        ctx.cancelled = True
        ctx.fail(error)
        self.cancel_requested = True
        self.task.cancel()

    def abandon(self) -> None:
        """The connection is gone: cancel without answering."""
        self.ctx.cancelled = True
        self.ctx.answered = True
        if not self.finished and not self.task.done():
            self.cancel_requested = True
            self.task.cancel()

    def _finished(self, _: object) -> None:
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
        rpcs = self.ctx.connection.rpcs
        if rpcs.get(self.key) is self:
            del rpcs[self.key]
