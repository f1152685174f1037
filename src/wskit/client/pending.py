"""Requests waiting for their answer, by correlation id.

Each pending request knows its frame (to send it again after a reconnect when the caller
said it is idempotent), its progress callback, and on which connection it was sent: a lost
connection fails the requests sent on it at once (``UNAVAILABLE``, retryable) instead of
leaving them to their timeout, since their answers can never arrive.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wskit.client.codec import Envelope
from wskit.client.errors import ClientError

__all__ = ["Pending", "PendingRequests", "ProgressCallback"]

log = logging.getLogger("wskit.client")

#: ``on_progress(payload)``: sync, or async (then run as a task, in order per request)
ProgressCallback = Callable[[Any], object]


@dataclass(slots=True)
class Pending:
    """One request in flight."""

    correlation_id: str
    type: str
    frame: bytes
    idempotent: bool
    future: asyncio.Future[Envelope]
    #: the types that settle it: the declared response, RPC_ERROR and ERROR (a handler may
    #: send other messages carrying the same correlationId)
    answers: frozenset[str]
    on_progress: ProgressCallback | None = None
    #: the generation of the connection it was sent on; None while still queued offline
    sent_on: int | None = None
    progress_tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class PendingRequests:
    """The map of requests in flight, and the ids given to new ones."""

    def __init__(self, prefix: str) -> None:
        self._by_id: dict[str, Pending] = {}
        self._ids = itertools.count(1)
        self._prefix = prefix

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._by_id.values()))

    def new_id(self) -> str:
        """A correlation id unique to this client."""
        return f"{self._prefix}{next(self._ids)}"

    def add(self, pending: Pending) -> None:
        self._by_id[pending.correlation_id] = pending

    def get(self, correlation_id: str) -> Pending | None:
        return self._by_id.get(correlation_id)

    def discard(self, correlation_id: str) -> Pending | None:
        return self._by_id.pop(correlation_id, None)

    def settle(self, correlation_id: str, envelope: Envelope) -> bool:
        """Hand a terminal answer to its request; False when no request waits for it (or
        the frame is not one of its answers)."""
        pending = self._by_id.get(correlation_id)
        if pending is None or envelope.type not in pending.answers:
            return False
        del self._by_id[correlation_id]
        if pending.future.done():
            return False
        pending.future.set_result(envelope)
        return True

    def fail(self, correlation_id: str, error: BaseException) -> bool:
        pending = self._by_id.pop(correlation_id, None)
        if pending is None or pending.future.done():
            return False
        pending.future.set_exception(error)
        return True

    def progress(self, correlation_id: str, payload: Any) -> bool:
        """Pass a progress payload to its request's callback; False for an unknown id."""
        pending = self._by_id.get(correlation_id)
        if pending is None:
            return False
        callback = pending.on_progress
        if callback is None:
            return True
        try:
            result = callback(payload)
        except Exception:  # the caller's callback must not break the connection
            log.exception("on_progress callback of %r raised", pending.type)
            return True
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            pending.progress_tasks.add(task)
            task.add_done_callback(pending.progress_tasks.discard)
        return True

    def lost(self, generation: int) -> list[Pending]:
        """The connection ``generation`` is gone: fail its requests (UNAVAILABLE, retryable)
        unless idempotent; return the idempotent ones, to be sent again after reconnect."""
        again: list[Pending] = []
        for pending in list(self._by_id.values()):
            if pending.sent_on != generation:
                continue
            if pending.idempotent:
                pending.sent_on = None
                again.append(pending)
                continue
            self.fail(
                pending.correlation_id,
                ClientError(
                    "UNAVAILABLE",
                    f"the connection was lost while request {pending.type!r} was in flight; its answer cannot "
                    "arrive. Retry it, or pass idempotent=True to have it sent again after the reconnect",
                    retryable=True,
                ),
            )
        return again

    def fail_all(self, error: BaseException) -> None:
        for pending in list(self._by_id.values()):
            self.fail(pending.correlation_id, error)
