"""The client's connection state and the ways to watch it change.

Four states (API.md): ``connecting`` (the first connection is being made), ``open``,
``reconnecting`` (the connection was lost, or the server announced a shutdown, and the client
is waiting or dialling again) and ``closed`` (by the application, or stopped for a reason the
client will not retry past). Changes are pushed to callbacks and to async iterators; each
iterator has its own bounded buffer so a slow reader never holds the client up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum

from wskit.client.errors import ClientStopped

__all__ = ["State", "StateChange", "StateWatch"]

log = logging.getLogger("wskit.client")

#: state changes an iterator keeps when its reader falls behind (the oldest go first)
ITERATOR_BUFFER = 64


class State(StrEnum):
    """Where the connection is; compares equal to its string (``client.state == "open"``)."""

    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition: ``old`` -> ``new``; ``error`` says why when ``new`` is ``closed`` after a
    stop, or why the connection was lost when ``new`` is ``reconnecting``."""

    old: State
    new: State
    error: BaseException | None = None
    #: seconds until the next attempt, when ``new`` is ``reconnecting`` and it is known
    retry_in: float | None = None


class StateWatch:
    """Holds the current state and tells its watchers of every change."""

    def __init__(self) -> None:
        self.state = State.CLOSED
        self._callbacks: list[Callable[[StateChange], object]] = []
        self._queues: list[asyncio.Queue[StateChange | None]] = []

    def set(self, new: State, *, error: BaseException | None = None, retry_in: float | None = None) -> None:
        """Move to ``new`` (a no-op when already there, unless a retry delay is announced)."""
        if new == self.state and retry_in is None:
            return
        change = StateChange(self.state, new, error, retry_in)
        self.state = new
        log.debug("client state %s -> %s%s", change.old, new, f" ({error})" if error else "")
        for callback in list(self._callbacks):
            try:
                callback(change)
            except Exception:  # a watcher's bug must not break the connection
                log.exception("state callback %r raised", callback)
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(change)
        if new is State.CLOSED and isinstance(error, ClientStopped):
            # a stop ends the iterators: nothing more will happen until connect() is called
            for queue in self._queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)

    def add(self, callback: Callable[[StateChange], object]) -> Callable[[], None]:
        """Call ``callback(change)`` on every change; returns a function that removes it."""
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    async def changes(self) -> AsyncIterator[StateChange]:
        """Every change from now on, until the client stops (``closed`` with a reason)."""
        queue: asyncio.Queue[StateChange | None] = asyncio.Queue(ITERATOR_BUFFER)
        self._queues.append(queue)
        try:
            while (change := await queue.get()) is not None:
                yield change
        finally:
            self._queues.remove(queue)
