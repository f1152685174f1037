"""Making, remaking and leaving the client's own subscriptions (``$ws:subscribe``).

The client hands in how to ask: through the offline queue for the application's
``subscribe()``/``unsubscribe()``, straight on the connection being set up for the
resubscribes of a reconnect (which must land before the queue is flushed). This module
decides what to ask and what an answer means: the position to start from, a refused
recovery (afresh, and reset callbacks to run once the connection is ready), a
subscription refused outright after a reconnect.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from wskit.client.codec import ERROR_TYPES, Envelope, reserved_frame
from wskit.client.errors import ClientError
from wskit.client.reports import Reporter
from wskit.client.subscriptions import (
    SUBSCRIBE_TYPE,
    SUBSCRIBED_TYPE,
    UNSUBSCRIBE_TYPE,
    UNSUBSCRIBED_TYPE,
    Positions,
    Subscription,
)
from wskit.errors import ErrorCode

__all__ = ["Ask", "Subscriber", "is_recovery_refusal"]

log = logging.getLogger("wskit.client")

#: ``ask(correlation id, type, frame, answer types)`` -> the answer
Ask = Callable[[str, str, bytes, frozenset[str]], Awaitable[Envelope]]


def is_recovery_refusal(error: ClientError) -> bool:
    """Whether ``error`` says the history cannot cover a gap (reload, then subscribe afresh)."""
    return error.code == ErrorCode.FAILED_PRECONDITION and error.details.get("reason") == "recovery"


class Subscriber:
    """The client's subscriptions by topic, and the exchanges that keep them."""

    def __init__(self, positions: Positions, new_id: Callable[[], str], reporter: Reporter) -> None:
        self.positions = positions
        self.topics: dict[str, Subscription] = {}
        self._new_id = new_id
        self._reporter = reporter
        #: topics whose first subscribe() is still waiting for its answer (not resubscribed:
        #: their own $ws:subscribe is in the offline queue or on the wire)
        self._first: set[str] = set()
        #: topics subscribed on the current connection (left on it too when unsubscribed)
        self.on_server: set[str] = set()
        #: resets whose callbacks are still to run
        self._due: list[tuple[Subscription, ClientError]] = []

    async def subscribe(
        self, topic: str, ask: Ask, unsubscribe: Callable[[Subscription], Awaitable[None]]
    ) -> Subscription:
        """The subscription of ``topic`` (the existing one when already subscribed)."""
        existing = self.topics.get(topic)
        if existing is not None:
            return existing
        sub = Subscription(topic, self.positions, unsubscribe)
        self.topics[topic] = sub
        self._first.add(topic)
        try:
            await self._subscribe_once(sub, ask)
        except BaseException:
            if self.topics.get(topic) is sub:
                del self.topics[topic]
            sub.active = False
            raise
        finally:
            self._first.discard(topic)
        return sub

    async def unsubscribe(self, sub: Subscription, ask: Ask | None) -> None:
        """Forget ``sub``; tell the server too when ``ask`` is given (connected)."""
        self.topics.pop(sub.topic, None)
        self.positions.forget(sub.topic)
        if ask is None:
            return
        await self._leave(sub, ask)

    async def _leave(self, sub: Subscription, ask: Ask) -> None:
        self.on_server.discard(sub.topic)
        cid = self._new_id()
        data = reserved_frame(UNSUBSCRIBE_TYPE, {"correlationId": cid}, {"topic": sub.topic})
        answer = await ask(cid, UNSUBSCRIBE_TYPE, data, frozenset({UNSUBSCRIBED_TYPE, *ERROR_TYPES}))
        if answer.type in ERROR_TYPES:
            raise ClientError.from_payload(answer.payload)

    async def resubscribe(self, ask: Ask) -> None:
        """Make every subscription again on a new connection, together. One refused outright
        (a non-retryable code: permissions changed, a bad or unknown topic) is dropped and
        reported; a retryable refusal (``RESOURCE_EXHAUSTED`` from a rate limit,
        ``UNAVAILABLE`` while the server drains) keeps every subscription and is raised, for
        the client to reconnect after its ``retry_after_ms``. Raises what broke the connection."""
        self.on_server.clear()
        subs = [sub for sub in self.topics.values() if sub.active and sub.topic not in self._first]
        if not subs:
            return
        results = await asyncio.gather(*(self._subscribe_once(sub, ask) for sub in subs), return_exceptions=True)
        retry: ClientError | None = None
        for sub, result in zip(subs, results, strict=True):
            if isinstance(result, ClientError):
                if result.retryable:
                    retry = retry or result
                    continue
                sub.active = False
                self.topics.pop(sub.topic, None)
                self._reporter.error(result, "resubscribe-refused")
            elif isinstance(result, BaseException):
                raise result
        if retry is not None:
            raise retry

    def history_lost(self, error: ClientError) -> bool:
        """An unprompted ``FAILED_PRECONDITION {reason: recovery, topic}``: the server lost
        publications of a topic we follow; what follows starts from a new position. True when
        a reset is now due (see :meth:`take_resets`)."""
        topic = error.details.get("topic")
        sub = self.topics.get(topic) if isinstance(topic, str) else None
        if sub is None or not is_recovery_refusal(error):
            return False
        self.positions.forget(sub.topic)
        self._due.append((sub, error))
        return True

    def take_resets(self) -> list[Coroutine[Any, Any, None]]:
        """The resets due (their callbacks, to be run as tasks once the connection takes
        application frames: a callback reloading state makes requests)."""
        due, self._due = self._due, []
        return [self._reset(sub, error) for sub, error in due]

    async def _subscribe_once(self, sub: Subscription, ask: Ask) -> None:
        """One ``$ws:subscribe`` from the known position; on a refused recovery a reset is due
        (:meth:`take_resets`) and the subscription is made afresh."""
        for _ in range(2):
            position = self.positions.get(sub.topic)
            body: dict[str, Any] = {"topic": sub.topic}
            if position is not None:
                body.update(offset=position.offset, epoch=position.epoch)
            cid = self._new_id()
            data = reserved_frame(SUBSCRIBE_TYPE, {"correlationId": cid}, body)
            answer = await ask(cid, SUBSCRIBE_TYPE, data, frozenset({SUBSCRIBED_TYPE, *ERROR_TYPES}))
            if answer.type == SUBSCRIBED_TYPE:
                payload = answer.payload if isinstance(answer.payload, dict) else {}
                self.positions.confirm(sub.topic, payload.get("offset"), payload.get("epoch"))
                self.on_server.add(sub.topic)
                if not sub.active:  # unsubscribed while this answer was on its way
                    self.positions.forget(sub.topic)
                    await self._leave(sub, ask)
                return
            error = ClientError.from_payload(answer.payload)
            if position is None or not is_recovery_refusal(error):
                raise error
            log.warning("wskit client: topic %r cannot be recovered from %s: subscribing afresh", sub.topic, position)
            self.positions.forget(sub.topic)
            self._due.append((sub, error))
        raise ClientError(ErrorCode.INTERNAL, f"the server refused to subscribe {sub.topic!r} afresh after a reset")

    async def _reset(self, sub: Subscription, error: ClientError) -> None:
        for callback in sub.reset_callbacks:
            try:
                result = callback(error)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the application's callback must not stop the resubscribe
                log.exception("on_reset callback of topic %r raised", sub.topic)
