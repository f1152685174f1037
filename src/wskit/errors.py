"""The one error catalog: wire codes, close codes and the exception tree.

Everything that decides how a failure looks on the wire lives here, so the router, the
transports and the clients cannot drift apart::

    Exception
    └── WsKitException              the root: ``except WsKitException`` catches all of wskit's
        ├── WsKitError              an error meant for the peer: becomes ERROR / RPC_ERROR
        │   ├── RecoveryError       history no longer covers a gap (FAILED_PRECONDITION)
        │   └── RpcError            the server answered a TestClient request with an error
        │                           (wskit.testing)
        ├── UsageError (TypeError)  the application misused the API (a bug in *our user's*
        │   │                       code): raised at registration time or from ctx methods,
        │   │                       never sent
        │   ├── ConfigError         a setting (keyword or environment variable) is unusable
        │   │   (ValueError)
        │   ├── OutboundValidationError   an outbound payload fails its schema (not sent)
        │   │                       (wskit.schema.validator)
        │   └── SchemaExportError   a message's JSON Schema cannot be exported: which message,
        │                           which field, why (wskit.schema.jsonschema)
        ├── DecodeFailure           a frame that cannot be routed, carrying the WsKitError to
        │                           answer (wskit.schema.validator; the dispatcher's own)
        ├── ConnectionClosed        the server closed a TestClient's connection
        │   (ConnectionError)       (wskit.testing)
        ├── BadFrame                the server sent the client a frame it skipped (wskit.client)
        └── DialFailed              the client could not open a connection (wskit.client)

    WsKitError
    └── ClientError                 the server answered the client with an error, or a request
        └── ClientStopped           could not be delivered; the client stopped for good
                                    (wskit.client)

The classes whose module is named live beside the code that raises them (each is a subclass
of one defined here); the rest are defined in this module.

Codes follow the gRPC-style set WS-Kit uses. Applications may use their own codes
(``"ROOM_FULL"``); those pass through unchanged and have no catalog defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Final

__all__ = [
    "CATALOG",
    "MAX_CLOSE_REASON_BYTES",
    "UNSET",
    "CloseCode",
    "ConfigError",
    "ErrorCode",
    "ErrorSpec",
    "RecoveryError",
    "UsageError",
    "WsKitError",
    "WsKitException",
    "clip_close_reason",
    "error_payload",
    "is_wire_close_code",
]


class ErrorCode(StrEnum):
    """The 13 standard wire codes (``payload.code`` of ERROR / RPC_ERROR)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    CANCELLED = "CANCELLED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    ABORTED = "ABORTED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """Catalog entry: what a code means and how a client should react by default."""

    retryable: bool
    retry_after_ms: int | None
    description: str


# Three descriptions are the exact strings WS-Kit 0.10 puts on the wire (see the reference
# capture), so clients matching on them keep working; the rest are ours.
CATALOG: Final[dict[ErrorCode, ErrorSpec]] = {
    ErrorCode.UNAUTHENTICATED: ErrorSpec(False, None, "Authentication is required"),
    ErrorCode.PERMISSION_DENIED: ErrorSpec(False, None, "Not allowed for this identity"),
    ErrorCode.INVALID_ARGUMENT: ErrorSpec(False, None, "Input validation or semantic violation"),
    ErrorCode.FAILED_PRECONDITION: ErrorSpec(False, None, "State does not allow this operation"),
    ErrorCode.NOT_FOUND: ErrorSpec(False, None, "Resource not found"),
    ErrorCode.ALREADY_EXISTS: ErrorSpec(False, None, "Resource already exists"),
    ErrorCode.UNIMPLEMENTED: ErrorSpec(False, None, "No handler for this message type"),
    ErrorCode.CANCELLED: ErrorSpec(False, None, "Cancelled by the caller"),
    ErrorCode.DEADLINE_EXCEEDED: ErrorSpec(True, 50, "Deadline exceeded"),
    ErrorCode.RESOURCE_EXHAUSTED: ErrorSpec(True, 100, "Rate limit, quota, or buffer overflow"),
    ErrorCode.UNAVAILABLE: ErrorSpec(True, 100, "Transient infrastructure error"),
    ErrorCode.ABORTED: ErrorSpec(True, 50, "Aborted by a concurrent change; retry"),
    ErrorCode.INTERNAL: ErrorSpec(False, None, "Internal server error"),
}


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455 plus the application range)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    ABNORMAL = 1006
    #: a text frame that is not UTF-8 (RFC 6455 8.1)
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    APPLICATION_MIN = 4000
    APPLICATION_MAX = 4999
    #: what a close frame without a status code means (RFC 6455 7.1.5); never sent
    NO_STATUS = 1005


def is_wire_close_code(code: int) -> bool:
    """Whether a close frame may carry ``code`` (RFC 6455 7.4): 1000-1003, 1007-1014 (1004 is
    reserved, 1005/1006/1015 only describe what happened), 3000-4999 (registered, private).
    A peer that sends another one broke the protocol: it is answered 1002."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


#: a close frame's reason is at most 123 bytes of UTF-8 (125 minus the status code)
MAX_CLOSE_REASON_BYTES = 123


def clip_close_reason(reason: str) -> bytes:
    """``reason`` as UTF-8, cut to fit a close frame on a character boundary.

    Cutting in the middle of a character would make the peer fail the connection (1007)
    instead of seeing our close code.
    """
    data = reason.encode("utf-8", "replace")
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return data
    return data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore").encode()


class _Unset:
    """Marker for "not given" where ``None`` is a meaningful value (``retryAfterMs: null``)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()


def _normalise_code(code: ErrorCode | str) -> ErrorCode | str:
    if isinstance(code, ErrorCode):
        return code
    try:
        return ErrorCode(code)
    except ValueError:
        return code


def error_payload(
    code: ErrorCode | str,
    message: str | None = None,
    *,
    details: dict[str, Any] | None = None,
    retry_after_ms: int | _Unset | None = UNSET,
    retryable: bool | None = None,
) -> dict[str, Any]:
    """Build the ERROR / RPC_ERROR payload with the catalog's defaults filled in.

    Key order matches WS-Kit's (code, message, details, retryAfterMs, retryable).
    """
    norm = _normalise_code(code)
    spec = CATALOG.get(norm) if isinstance(norm, ErrorCode) else None
    out: dict[str, Any] = {"code": str(norm)}
    if message is None:
        message = spec.description if spec is not None else str(norm)
    out["message"] = message
    if details:
        out["details"] = details
    if not isinstance(retry_after_ms, _Unset):
        out["retryAfterMs"] = retry_after_ms
    elif spec is not None and spec.retryable and spec.retry_after_ms is not None:
        out["retryAfterMs"] = spec.retry_after_ms
    if retryable is not None:
        out["retryable"] = retryable
    elif spec is not None:
        out["retryable"] = spec.retryable
    return out


class WsKitException(Exception):
    """The root of every exception wskit raises on purpose (see the tree above)."""


class WsKitError(WsKitException):
    """An error for the peer. Raise it in a handler or middleware to answer with it.

    ``code`` is an :class:`ErrorCode` or an application code string (``"ROOM_FULL"``).
    ``retry_after_ms`` may be ``None`` explicitly (sent as ``null``: "do not retry soon");
    leaving it out uses the catalog default of retryable codes.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        retry_after_ms: int | _Unset | None = UNSET,
        retryable: bool | None = None,
    ) -> None:
        self.code: ErrorCode | str = _normalise_code(code)
        spec = CATALOG.get(self.code) if isinstance(self.code, ErrorCode) else None
        self.message: str = (
            message if message is not None else (spec.description if spec is not None else str(self.code))
        )
        self.details: dict[str, Any] = dict(details) if details else {}
        self.retry_after_ms = retry_after_ms
        self.retryable = retryable
        super().__init__(f"{self.code}: {self.message}")

    def to_payload(self) -> dict[str, Any]:
        """The wire payload of this error."""
        return error_payload(
            self.code,
            self.message,
            details=self.details,
            retry_after_ms=self.retry_after_ms,
            retryable=self.retryable,
        )

    def __repr__(self) -> str:
        return f"WsKitError({str(self.code)!r}, {self.message!r}, details={self.details!r})"


class RecoveryError(WsKitError):
    """History no longer covers what a re-subscribing client missed (``FAILED_PRECONDITION``)."""

    def __init__(self, topic: str, message: str = "History does not cover the requested offset") -> None:
        super().__init__(ErrorCode.FAILED_PRECONDITION, message, details={"reason": "recovery", "topic": topic})


class UsageError(WsKitException, TypeError):
    """The application used wskit wrongly (duplicate route, bad schema, reply in an event...).

    Raised to the application, never sent to a client as such: inside a handler it becomes an
    ``INTERNAL`` answer plus a log line naming the mistake.
    """


class ConfigError(UsageError, ValueError):
    """A setting (keyword or environment variable) has a value wskit cannot use."""
