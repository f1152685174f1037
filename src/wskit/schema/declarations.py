"""Message contracts: ``message()`` for events, ``rpc()`` for request/response pairs.

A declaration only records the type name and the model classes; the validator backend turns
the set of declarations a router uses into one decoder when the router is frozen. Models may
be pydantic models, msgspec Structs or dataclasses (which backend accepts which is the
backend's business, see :mod:`wskit.schema.validator`).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from wskit.errors import UsageError
from wskit.protocol import (
    ERROR_TYPE,
    INBOUND_META_KEYS,
    RPC_ERROR_TYPE,
    SERVER_META_KEYS,
    is_reserved_type,
    valid_type_name,
)

__all__ = ["MessageSchema", "RpcSchema", "message", "rpc"]

P = TypeVar("P")
Req = TypeVar("Req")
Res = TypeVar("Res")

_WIRE_TYPES = frozenset({ERROR_TYPE, RPC_ERROR_TYPE})


def _check_type_name(type_name: object) -> str:
    if not isinstance(type_name, str):
        raise UsageError(f"a message type must be a string, got {type(type_name).__name__}")
    if is_reserved_type(type_name):
        raise UsageError(
            f"message type {type_name!r} is reserved: names starting with '__' or '$' belong to the framework"
        )
    if type_name in _WIRE_TYPES:
        raise UsageError(f"message type {type_name!r} is reserved for error frames")
    if not valid_type_name(type_name):
        raise UsageError(
            f"message type {type_name!r} is not a valid name: use 1-128 characters from A-Z a-z 0-9 _ . : / -"
        )
    return type_name


def _check_model(model: object, what: str) -> None:
    if model is not None and not isinstance(model, type):
        raise UsageError(f"{what} must be a class (pydantic model, msgspec Struct or dataclass), got {model!r}")


@dataclass(frozen=True, eq=False, slots=True)
class MessageSchema(Generic[P]):
    """A declared message: its ``type`` and the class of its payload (None: no payload).

    ``meta`` names extra meta keys this message accepts beyond those every message accepts
    (``timestamp``, ``correlationId``, ``timeoutMs``, ``traceparent``, ``tracestate``), key ->
    Python type.
    """

    type: str
    payload_model: builtins.type[P] | None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        model = self.payload_model.__name__ if self.payload_model is not None else None
        return f"message({self.type!r}, {model})"


@dataclass(frozen=True, eq=False, slots=True)
class RpcSchema(Generic[Req, Res]):
    """A declared RPC: a request message answered by exactly one ``response`` message."""

    request: MessageSchema[Req]
    response: MessageSchema[Res]

    @property
    def type(self) -> str:
        """The request's type, which is what the router routes on."""
        return self.request.type

    def __repr__(self) -> str:
        return f"rpc({self.request!r} -> {self.response!r})"


@overload
def message(type: str, payload_model: None = None, *, meta: Mapping[str, Any] | None = None) -> MessageSchema[None]: ...
@overload
def message(type: str, payload_model: type[P], *, meta: Mapping[str, Any] | None = None) -> MessageSchema[P]: ...
def message(
    type: str, payload_model: type[Any] | None = None, *, meta: Mapping[str, Any] | None = None
) -> MessageSchema[Any]:
    """Declare a message ``type`` whose payload is ``payload_model`` (omit for none).

    Raises :class:`UsageError` for reserved or malformed type names.
    """
    _check_model(payload_model, f"payload model of {type!r}")
    extra_meta = dict(meta or {})
    clash = set(extra_meta) & (INBOUND_META_KEYS | SERVER_META_KEYS)
    if clash:
        raise UsageError(f"meta keys {sorted(clash)} of {type!r} are reserved by the protocol")
    return MessageSchema(_check_type_name(type), payload_model, extra_meta)


def rpc(
    type: str,
    request_model: type[Req] | None,
    response_type: str,
    response_model: type[Res] | None,
) -> RpcSchema[Req, Res]:
    """Declare an RPC: request ``type`` with ``request_model``, answered by ``response_type``."""
    request: MessageSchema[Req] = message(type, request_model)  # type: ignore[assignment]
    response: MessageSchema[Res] = message(response_type, response_model)  # type: ignore[assignment]
    if request.type == response.type:
        raise UsageError(f"rpc {type!r}: the response type must differ from the request type")
    return RpcSchema(request, response)
