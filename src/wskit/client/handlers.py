"""The application's message handlers (``client.on(Msg, handler)``) and how a frame reaches them.

Handlers run in the order frames arrive. A sync handler runs inline; an async one is awaited
before the next frame is read, so a chat's messages are handled in order. Long work belongs
in a task the handler starts: while a handler runs, the connection is not read (the heartbeat
knows this and does not call a busy connection dead).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from wskit.client.codec import Envelope, Message, PayloadCodecs
from wskit.client.reports import Reporter
from wskit.schema.declarations import MessageSchema

__all__ = ["Handler", "Handlers"]

log = logging.getLogger("wskit.client")

P = TypeVar("P")

#: ``handler(msg)``, sync or async
Handler = Callable[[Message[P]], Awaitable[None] | None]


class Handlers:
    """Handlers by message type; several may listen to one type (each gets its own typed copy)."""

    def __init__(self) -> None:
        self._by_type: dict[str, list[tuple[MessageSchema[Any], Handler[Any]]]] = {}

    def add(self, schema: MessageSchema[P], handler: Handler[P]) -> Callable[[], None]:
        """Register ``handler`` for ``schema``'s type; returns a function that removes it."""
        entry: tuple[MessageSchema[Any], Handler[Any]] = (schema, handler)
        self._by_type.setdefault(schema.type, []).append(entry)

        def remove() -> None:
            entries = self._by_type.get(schema.type, [])
            if entry in entries:
                entries.remove(entry)
                if not entries:
                    del self._by_type[schema.type]

        return remove

    def knows(self, type_name: str) -> bool:
        return type_name in self._by_type

    async def dispatch(self, envelope: Envelope, codecs: PayloadCodecs, reporter: Reporter, raw: bytes | str) -> None:
        """Hand ``envelope`` to every handler of its type; bad payloads and failing handlers
        are reported, never raised (the connection keeps working)."""
        for schema, handler in list(self._by_type.get(envelope.type, ())):
            try:
                message = codecs.decode(schema, envelope)
            except Exception as exc:  # noqa: BLE001 - a model's validator may raise anything
                reporter.bad_frame("invalid-payload", f"{envelope.type!r} does not fit its declaration: {exc}", raw)
                continue
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # the application's bug: logged in full, reading goes on
                log.exception("wskit client: the handler of %r raised", envelope.type)
                reporter.bad_frame("handler-failed", f"the handler of {envelope.type!r} raised {exc!r}")
