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

from wskit.errors import ErrorCode, UsageError, WsKitError
from wskit.protocol import is_reserved_type
from wskit.schema.declarations import MessageSchema

__all__ = [
    "DecodeFailure",
    "Decoder",
    "Inbound",
    "Issue",
    "OutboundValidationError",
    "PayloadEncoder",
    "Validator",
    "classify_failure",
    "payload_json",
    "strict_json",
    "to_builtins",
]

#: One validation problem, as sent in ``details.issues``: ``{"path": [...], "message": "..."}``.
Issue = dict[str, Any]

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


class DecodeFailure(Exception):
    """A frame that cannot be routed: the error to answer and the correlationId to answer to."""

    def __init__(self, error: WsKitError, correlation_id: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.correlation_id = correlation_id


def classify_failure(
    data: bytes | str,
    known: Collection[str],
    issues: Callable[[], list[Issue]],
) -> DecodeFailure:
    """Turn a failed decode into the error PROTOCOL.md prescribes.

    ``issues`` is called only when the frame was a well-formed envelope of a known type, so a
    backend's error formatting costs nothing for garbage. The ``correlationId`` (when the
    frame had a string one) decides between ERROR and RPC_ERROR.
    """
    error, correlation_id = _classify(data, known, issues)
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
    data: bytes | str, known: Collection[str], issues: Callable[[], list[Issue]]
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
    if not isinstance(correlation_id, str):
        correlation_id = None
    if is_reserved_type(type_name) and type_name not in known:
        message = f"Type {type_name!r} is reserved for the framework"
        return WsKitError(ErrorCode.INVALID_ARGUMENT, message, details={"type": type_name}), correlation_id
    if type_name not in known:
        message = f"No handler for type {type_name!r}"
        return WsKitError(ErrorCode.UNIMPLEMENTED, message, details={"type": type_name}), correlation_id
    found = issues()
    return (
        WsKitError(ErrorCode.INVALID_ARGUMENT, "Invalid message", details={"issues": found}),
        correlation_id,
    )
