"""Frames in and out: envelopes, and payloads through the project's schema backends.

Outbound payloads are checked and serialised by the backend that would check them on the
server (:func:`wskit.schema.select_validator` picks pydantic or msgspec from the model), so a
payload the server would refuse fails here with an :class:`OutboundValidationError`, before
it is queued or sent. Inbound payloads become instances of the declared class with the
model's own rules (pydantic ``validate_python``, ``msgspec.convert``): unlike the server,
the client does not reject keys it does not know, so a server that adds a field to a
message does not break the clients already deployed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from pydantic import TypeAdapter
from pydantic_core import from_json

from wskit.errors import UsageError
from wskit.protocol import ERROR_TYPE, RPC_ERROR_TYPE, dumps, type_prefix
from wskit.schema.declarations import MessageSchema
from wskit.schema.registry import select_validator
from wskit.schema.validator import PayloadEncoder, Validator

__all__ = ["ERROR_TYPES", "Envelope", "Message", "PayloadCodecs", "parse_envelope", "reserved_frame"]

#: the frames that answer a request with an error (``RPC_ERROR``, ``ERROR``)
ERROR_TYPES = frozenset({RPC_ERROR_TYPE, ERROR_TYPE})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    """A message from the server: ``type``, ``meta`` and ``payload`` (an instance of the
    declared payload class; None for messages declared without one)."""

    type: str
    meta: Mapping[str, Any]
    payload: T


@dataclass(frozen=True, slots=True)
class Envelope:
    """An inbound frame parsed but not yet typed: the payload is plain JSON data."""

    type: str
    meta: dict[str, Any]
    payload: Any
    size: int = field(default=0)


def parse_envelope(data: bytes | str) -> Envelope:
    """The envelope of one frame; raises ``ValueError`` saying what is wrong with it."""
    obj = from_json(data)  # ValueError for what is not JSON
    if not isinstance(obj, dict):
        raise ValueError(f"a frame must be a JSON object, got {type(obj).__name__}")
    type_name = obj.get("type")
    if not isinstance(type_name, str):
        raise ValueError("a frame needs a string 'type'")
    meta = obj.get("meta")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise ValueError(f"'meta' of {type_name!r} must be an object")
    return Envelope(type_name, meta, obj.get("payload"), len(data))


def reserved_frame(type_name: str, meta: Mapping[str, Any], payload: Mapping[str, Any] | None = None) -> bytes:
    """A framework frame (``$ws:subscribe``, ``$ws:rpc-cancel``...): plain data, no schema."""
    out = type_prefix(type_name) + b',"meta":' + dumps(dict(meta))
    if payload is not None:
        out += b',"payload":' + dumps(dict(payload))
    return out + b"}"


@functools.lru_cache(maxsize=256)
def _adapter(model: Any) -> TypeAdapter[Any]:
    """One TypeAdapter per class: building one costs far more than validating with it."""
    return TypeAdapter(model)


def _decoder(model: type[Any] | None) -> Callable[[Any], Any]:
    if model is None:
        return _none
    if hasattr(model, "__struct_fields__"):
        import msgspec  # a Struct was declared, so msgspec is installed

        return functools.partial(msgspec.convert, type=model)
    return _adapter(cast(Hashable, model)).validate_python


def _none(_: Any) -> None:
    return None


class PayloadCodecs:
    """Per declared message type: the backend's encoder (outbound) and a decoder (inbound).

    Built on first use of each declaration and kept: a client uses a handful of types.
    ``validator`` picks the backend like ``Router(validator=...)`` does (None: by model).
    """

    def __init__(self, validator: Validator | str | None = None) -> None:
        self._validator = validator
        self._encoders: dict[int, tuple[MessageSchema[Any], PayloadEncoder | None]] = {}
        self._decoders: dict[int, tuple[MessageSchema[Any], Callable[[Any], Any]]] = {}

    def encode(self, schema: MessageSchema[Any], payload: Any, meta: Mapping[str, Any]) -> bytes:
        """The frame of ``schema`` with ``payload`` (validated) and ``meta``.

        Raises :class:`~wskit.schema.OutboundValidationError` for a payload the server would
        refuse, ``UsageError`` for a payload given to a message declared without one.
        """
        entry = self._encoders.get(id(schema))
        if entry is None:
            models = [schema.payload_model] if schema.payload_model is not None else []
            backend = select_validator(self._validator, models)
            entry = self._encoders[id(schema)] = (schema, backend.encoder(schema, validate=True))
        encoder = entry[1]
        out = type_prefix(schema.type) + b',"meta":' + dumps(dict(meta))
        if encoder is not None:
            out += b',"payload":' + encoder(payload)
        elif payload is not None:
            raise UsageError(f"message {schema.type!r} is declared without a payload, got {type(payload).__name__}")
        return out + b"}"

    def decode(self, schema: MessageSchema[T], envelope: Envelope) -> Message[T]:
        """``envelope`` as a typed :class:`Message` of ``schema``; raises ``ValueError``
        (pydantic's ``ValidationError``, msgspec's) when the payload does not fit."""
        entry = self._decoders.get(id(schema))
        if entry is None:
            entry = self._decoders[id(schema)] = (schema, _decoder(schema.payload_model))
        payload = entry[1](envelope.payload)
        return Message(envelope.type, envelope.meta, payload)
