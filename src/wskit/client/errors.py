"""What the client raises: a server's answer, or why the client stopped.

::

    WsKitError (wskit.errors)
    └── ClientError             the server answered RPC_ERROR / ERROR, or the request could
        │                       not be delivered (UNAVAILABLE on a lost connection,
        │                       DEADLINE_EXCEEDED after ``timeout``, RESOURCE_EXHAUSTED when
        │                       the offline queue dropped it)
        └── ClientStopped       the client stopped for good: closed by the application, or
                                the server said "do not come back" (1008, 401...), or the
                                reconnect attempts ran out. ``close_code`` / ``http_status``
                                say which.
    WsKitException
    └── BadFrame                the server sent something this client cannot use (not JSON,
                                an unknown type, an answer to no request, a payload that
                                fails its schema): reported to ``on_error``, never raised

Every ``ClientError`` has a definite ``retryable`` (the server's flag, else the catalog's
default for the code) so callers can decide without knowing the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wskit.errors import CATALOG, ErrorCode, WsKitError, WsKitException

__all__ = ["BadFrame", "ClientError", "ClientStopped"]


def _code_of(code: ErrorCode | str) -> ErrorCode | str:
    try:
        return ErrorCode(code)
    except ValueError:
        return code


class ClientError(WsKitError):
    """A request or message failed: ``code``, ``message``, ``details``, ``retryable``,
    ``retry_after_ms`` (None when the server gave no hint).

    Raised by :meth:`Client.request` for ``RPC_ERROR`` answers and for requests the client
    could not deliver; passed to ``on_error`` for ``ERROR`` frames that answer an event.
    """

    retryable: bool  # always decided here, never None
    retry_after_ms: int | None

    def __init__(
        self,
        code: ErrorCode | str,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        retryable: bool | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        norm = _code_of(code)
        spec = CATALOG.get(norm) if isinstance(norm, ErrorCode) else None
        if retryable is None:
            retryable = spec.retryable if spec is not None else False
        super().__init__(norm, message, details=dict(details or {}), retryable=retryable, retry_after_ms=retry_after_ms)
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms

    @classmethod
    def from_payload(cls, payload: object) -> ClientError:
        """The error an ``RPC_ERROR``/``ERROR`` payload describes (a malformed one is INTERNAL)."""
        if not isinstance(payload, Mapping) or not isinstance(payload.get("code"), str):
            return cls(ErrorCode.INTERNAL, "the server sent an error frame without a code")
        details = payload.get("details")
        retry_after = payload.get("retryAfterMs")
        retryable = payload.get("retryable")
        message = payload.get("message")
        return cls(
            payload["code"],
            message if isinstance(message, str) else None,
            details=details if isinstance(details, Mapping) else None,
            retryable=retryable if isinstance(retryable, bool) else None,
            retry_after_ms=retry_after if isinstance(retry_after, int) and not isinstance(retry_after, bool) else None,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.code)!r}, {self.message!r}, retryable={self.retryable})"


class ClientStopped(ClientError):
    """The client is closed and will not reconnect by itself; ``reason`` says why.

    ``close_code`` is the WebSocket close code that stopped it, ``http_status`` the HTTP
    answer to a refused upgrade (either may be None). Call :meth:`Client.connect` again to
    start over (for instance with a new token).
    """

    def __init__(
        self,
        code: ErrorCode | str,
        reason: str,
        *,
        close_code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(code, reason, retryable=False)
        self.reason = reason
        self.close_code = close_code
        self.http_status = http_status


class BadFrame(WsKitException):
    """A frame from the server that the client skipped. ``kind``: ``not-json``,
    ``unknown-type``, ``unknown-correlation-id``, ``invalid-payload``, ``too-big``,
    ``handler-failed``; ``head``: the frame's first characters, for the log."""

    def __init__(self, kind: str, detail: str, head: str = "") -> None:
        super().__init__(f"{kind}: {detail}" + (f" (frame starts {head!r})" if head else ""))
        self.kind = kind
        self.detail = detail
        self.head = head
