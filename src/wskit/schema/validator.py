"""The validation interface every schema backend implements.

A backend compiles a router's inbound declarations into one :class:`Decoder` (a tagged union on
``type``: bytes in, envelope and validated payload out, in one pass) and builds one
:class:`PayloadEncoder` per outbound message type. The router never touches a model library
directly, which is what lets pydantic and msgspec pass the same conformance suite.

Only the failure path parses JSON a second time (:func:`classify_failure`), to tell a malformed
frame from an unknown type from an invalid payload and to find the ``correlationId`` the
answer must carry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from pydantic_core import to_json

from wskit.errors import ErrorCode, UsageError, WsKitError, WsKitException
from wskit.protocol import is_reserved_type
from wskit.schema.declarations import MessageSchema

__all__ = [
    "MAX_CORRELATION_ID_LENGTH",
    "MAX_ISSUES",
    "MAX_TRACEPARENT_LENGTH",
    "MAX_TRACESTATE_LENGTH",
    "DecodeFailure",
    "Decoder",
    "Inbound",
    "Issue",
    "OutboundValidationError",
    "PayloadEncoder",
    "Validator",
    "bounded_issues",
    "classify_failure",
    "clip",
    "payload_json",
    "strict_json",
    "to_builtins",
]

#: One validation problem, as sent in ``details.issues``: ``{"path": [...], "message": "..."}``.
Issue = dict[str, Any]

# Everything a client sends comes back in an answer at most this large: an error is not a
# way to make the server write more than it read (a payload of 90k unknown keys once earned a
# 6.5 MB answer) nor to store what it should not (a 1 MiB correlationId repeated in every
# progress frame of 64 RPCs in flight).

#: Longest ``meta.correlationId`` accepted (a UUID is 36): longer ones are INVALID_ARGUMENT,
#: answered with ``ERROR`` since such an id is not echoed.
MAX_CORRELATION_ID_LENGTH = 128
#: Longest ``meta.traceparent`` accepted: W3C Trace Context's version 00 is exactly 55.
#: Within the bound a malformed one is ignored (a new trace), not refused.
MAX_TRACEPARENT_LENGTH = 55
#: Longest ``meta.tracestate`` accepted: the 512 characters W3C asks every hop to carry.
MAX_TRACESTATE_LENGTH = 512
#: Issues listed in ``details.issues``; ``details.omitted`` counts the rest.
MAX_ISSUES = 16
#: Path elements per issue (a deeper path keeps its start, then ``"..."``).
MAX_PATH_DEPTH = 16
#: Characters of a client-supplied string (a key in a path, a type name) quoted in an answer.
MAX_QUOTED = 64
#: Characters of one issue's message.
MAX_MESSAGE = 256


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` cut to ``limit`` characters (marked with an ellipsis) for quoting in an answer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _clip_step(step: Any) -> Any:
    return clip(step) if isinstance(step, str) else step


def bounded_issues(issues: Sequence[Issue], total: int | None = None) -> dict[str, Any]:
    """``details`` for an invalid message: at most :data:`MAX_ISSUES` issues, each path and
    message clipped, and ``omitted`` (how many more there were) when some were left out.

    ``total`` is the backend's count of issues when it listed fewer than it found.
    """
    shown: list[Issue] = []
    for issue in issues[:MAX_ISSUES]:
        path = list(issue.get("path", ()))
        if len(path) > MAX_PATH_DEPTH:
            path = [*path[: MAX_PATH_DEPTH - 1], "..."]
        shown.append(
            {"path": [_clip_step(step) for step in path], "message": clip(str(issue.get("message", "")), MAX_MESSAGE)}
        )
    details: dict[str, Any] = {"issues": shown}
    omitted = max(len(issues), total or 0) - len(shown)
    if omitted > 0:
        details["omitted"] = omitted
    return details


#: Validates (when asked) and serialises one outbound payload to JSON bytes.
PayloadEncoder = Callable[[Any], bytes]


#: A decoded inbound envelope: ``(type, meta, payload)`` with strict meta and the validated
#: payload. A plain tuple: it is built once per message, and a NamedTuple costs 4x more.
Inbound = tuple[str, dict[str, Any], Any]


class Decoder(Protocol):
    """Bytes (or str) of one frame -> :class:`Inbound`; raises :class:`DecodeFailure`."""

    def decode(self, data: bytes | str) -> Inbound: ...


class Validator(Protocol):
    """A schema backend (pydantic, msgspec, or a third party's)."""

    name: str

    def accepts(self, model: type) -> bool:
        """Whether this backend can validate ``model``."""
        ...

    def decoder(self, schemas: Sequence[MessageSchema[Any]], *, internal: Collection[str]) -> Decoder:
        """One decoder for all inbound ``schemas`` plus the framework's ``internal`` types.

        Internal types (heartbeat, RPC cancel) decode with any meta and no payload check.
        """
        ...

    def encoder(self, schema: MessageSchema[Any], *, validate: bool) -> PayloadEncoder | None:
        """The payload encoder of an outbound message type; None when it has no payload."""
        ...


class OutboundValidationError(UsageError):
    """An outbound payload failed its schema: nothing was sent (PROTOCOL.md, errors table)."""

    def __init__(self, type_name: str, issues: list[Issue]) -> None:
        self.type_name = type_name
        self.issues = issues
        shown = "; ".join(f"{'.'.join(map(str, i['path'])) or '<payload>'}: {i['message']}" for i in issues[:5])
        super().__init__(f"outbound {type_name!r} payload fails its schema: {shown}")


def to_builtins(value: Any) -> Any:
    """Plain JSON-able data from a model instance of any supported kind (or as it is)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if hasattr(type(value), "__struct_fields__"):
        import msgspec

        return msgspec.to_builtins(value)
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _struct_builtins(value: Any) -> Any:
    """pydantic-core's fallback for what it cannot serialise itself: msgspec Structs."""
    if hasattr(type(value), "__struct_fields__"):
        import msgspec

        return msgspec.to_builtins(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def payload_json(value: Any) -> bytes:
    """Compact JSON bytes of a payload of any supported kind, without a schema to check it by.

    For frames that have no declared message type (``ctx.progress``): a pydantic model, msgspec
    Struct, dataclass or TypedDict instance, or plain data holding any of those (a dict of
    models), serialised as the backends serialise declared payloads. Raises ``ValueError``
    (pydantic's ``PydanticSerializationError``) for values that are not JSON-able.
    """
    if hasattr(type(value), "__struct_fields__"):
        import msgspec

        return msgspec.json.encode(value)
    return to_json(value, fallback=_struct_builtins)


class DecodeFailure(WsKitException):
    """A frame that cannot be routed: the error to answer and the correlationId to answer to."""

    def __init__(self, error: WsKitError, correlation_id: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.correlation_id = correlation_id


def classify_failure(
    data: bytes | str,
    known: Collection[str],
    issues: Callable[[], list[Issue]],
    *,
    issue_count: Callable[[], int] | None = None,
) -> DecodeFailure:
    """Turn a failed decode into the error PROTOCOL.md prescribes.

    ``issues`` is called only when the frame was a well-formed envelope of a known type, so a
    backend's error formatting costs nothing for garbage; it may list only the first
    :data:`MAX_ISSUES` when ``issue_count`` tells how many there were. The ``correlationId``
    (when the frame had a string one, at most :data:`MAX_CORRELATION_ID_LENGTH` long) decides
    between ERROR and RPC_ERROR. Quoted client input is clipped (see :func:`bounded_issues`).
    """
    error, correlation_id = _classify(data, known, issues, issue_count)
    return DecodeFailure(error, correlation_id)


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def strict_json(data: bytes | str) -> Any:
    """Parse as RFC 8259 JSON only: UTF-8, no BOM, no NaN/Infinity. Raises ``ValueError``
    (``RecursionError`` for absurd nesting is turned into one too)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("nested too deep") from None


def _classify(
    data: bytes | str,
    known: Collection[str],
    issues: Callable[[], list[Issue]],
    issue_count: Callable[[], int] | None,
) -> tuple[WsKitError, str | None]:
    try:
        obj = strict_json(data)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return WsKitError(ErrorCode.INVALID_ARGUMENT, "Frame is not valid JSON"), None
    if not isinstance(obj, dict):
        return WsKitError(ErrorCode.INVALID_ARGUMENT, "Frame must be a JSON object"), None
    type_name = obj.get("type")
    if not isinstance(type_name, str):
        return WsKitError(ErrorCode.INVALID_ARGUMENT, "Frame needs a string 'type'"), None
    meta = obj.get("meta")
    correlation_id = meta.get("correlationId") if isinstance(meta, dict) else None
    if not isinstance(correlation_id, str) or len(correlation_id) > MAX_CORRELATION_ID_LENGTH:
        correlation_id = None
    if is_reserved_type(type_name) and type_name not in known:
        quoted = clip(type_name)
        message = f"Type {quoted!r} is reserved for the framework"
        return WsKitError(ErrorCode.INVALID_ARGUMENT, message, details={"type": quoted}), correlation_id
    if type_name not in known:
        quoted = clip(type_name)
        message = f"No handler for type {quoted!r}"
        return WsKitError(ErrorCode.UNIMPLEMENTED, message, details={"type": quoted}), correlation_id
    found = issues()
    details = bounded_issues(found, issue_count() if issue_count is not None else None)
    return WsKitError(ErrorCode.INVALID_ARGUMENT, "Invalid message", details=details), correlation_id
