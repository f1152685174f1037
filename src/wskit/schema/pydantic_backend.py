"""The pydantic v2 backend (the default): pydantic models, dataclasses and TypedDicts.

Inbound frames are validated by one ``TypeAdapter`` over a discriminated union of envelope
TypedDicts, straight from the JSON bytes (``validate_json``): pydantic-core parses and
validates in a single pass and builds the payload model directly.

Strictness: the protocol rejects unknown payload keys, but a user's model may allow extras.
We validate against a subclass that forbids them; it keeps the user's class name and
``isinstance`` relation, so handlers see the class they declared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from functools import partial
from typing import Annotated, Any, Literal, NotRequired, Union, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_json
from typing_extensions import TypedDict

from wskit.schema.declarations import MessageSchema
from wskit.schema.validator import (
    Inbound,
    Issue,
    OutboundValidationError,
    PayloadEncoder,
    classify_failure,
    strict_json,
    to_builtins,
)

__all__ = ["PydanticValidator"]

_FORBID = ConfigDict(extra="forbid")
#: meta is the protocol's, not the application's: no coercion ("12" is not a timestamp)
_STRICT_META = ConfigDict(extra="forbid", strict=True)


def _strict(model: type[Any]) -> type[Any]:
    """A version of ``model`` that rejects unknown keys (the model itself when it already does)."""
    if issubclass(model, BaseModel):
        if model.model_config.get("extra") == "forbid":
            return model
        namespace = {
            "model_config": {**model.model_config, "extra": "forbid"},
            "__module__": model.__module__,
            "__qualname__": model.__qualname__,
            "__doc__": model.__doc__,
        }
        return type(model.__name__, (model,), namespace)
    if dataclasses.is_dataclass(model):
        config = getattr(model, "__pydantic_config__", None) or {}
        if config.get("extra") == "forbid":
            return model
        strict = dataclasses.make_dataclass(model.__name__, [], bases=(model,))
        strict.__module__ = model.__module__
        strict.__qualname__ = model.__qualname__
        strict.__pydantic_config__ = {**config, "extra": "forbid"}  # type: ignore[attr-defined]
        return strict
    return model


def _meta_type(name: str, extra: dict[str, Any]) -> type:
    fields: dict[str, Any] = {
        # float, not int | float: a union would add its member names to error paths
        "timestamp": float,
        "correlationId": str,
        "timeoutMs": float,
    }
    fields.update(extra)
    meta = TypedDict(f"{name}Meta", fields, total=False)  # type: ignore[misc]
    meta.__pydantic_config__ = _STRICT_META  # type: ignore[attr-defined]
    return cast(type, meta)


class _EmptyPayload(TypedDict):
    __pydantic_config__ = _FORBID  # type: ignore[misc]


def _make_envelope(type_name: str, payload: Any, meta: type, *, required: bool) -> type:
    fields: dict[str, Any] = {
        "type": Literal[type_name],
        "meta": NotRequired[meta],
        "payload": payload if required else NotRequired[payload],
    }
    return cast(type, TypedDict(f"{type_name}Envelope", fields))  # type: ignore[operator]


def _issues(error: ValidationError, *, skip: int) -> list[Issue]:
    out: list[Issue] = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        out.append({"path": list(item["loc"][skip:]), "message": item["msg"]})
    return out


class _Decoder:
    __slots__ = ("_adapter", "_bare", "_known", "_restore", "_skip")

    def __init__(
        self,
        adapter: TypeAdapter[Any],
        known: frozenset[str],
        bare: frozenset[str],
        restore: dict[str, type],
        *,
        tagged: bool,
    ) -> None:
        self._adapter = adapter
        self._known = known
        self._bare = bare  # types without payload: an empty {} payload decodes to None
        # strict subclasses validated the payload; the handler gets the class it declared
        self._restore = restore
        self._skip = 1 if tagged else 0  # a union's error locations start with the tag

    def decode(self, data: bytes | str) -> Inbound:
        try:
            env = self._adapter.validate_json(data)
        except ValidationError as error:
            raise classify_failure(data, self._known, partial(_issues, error, skip=self._skip)) from None
        if (
            (b"NaN" in data or b"Infinity" in data)
            if isinstance(data, bytes)
            else ("NaN" in data or "Infinity" in data)
        ):
            # pydantic's parser takes NaN/Infinity (not JSON) anywhere, even under ignored keys
            try:
                strict_json(data)
            except ValueError:
                raise classify_failure(data, self._known, list) from None
        type_name = env["type"]
        if type_name in self._bare:
            payload = None
        else:
            payload = env["payload"]
            original = self._restore.get(type_name)
            if original is not None:
                # same layout (a subclass adding only config), so this is a plain pointer swap
                object.__setattr__(payload, "__class__", original)
        return type_name, env.get("meta") or {}, payload


class PydanticValidator:
    """Validate with pydantic v2. Accepts pydantic models, dataclasses and TypedDicts."""

    name = "pydantic"

    def accepts(self, model: type) -> bool:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return True
        if dataclasses.is_dataclass(model):
            return True
        return hasattr(model, "__required_keys__")  # TypedDict

    def decoder(self, schemas: Sequence[MessageSchema[Any]], *, internal: Collection[str]) -> _Decoder:
        members: list[Any] = []
        restore: dict[str, type] = {}
        for schema in schemas:
            meta = _meta_type(schema.type, dict(schema.meta))
            model = schema.payload_model
            if model is None:
                members.append(_make_envelope(schema.type, _EmptyPayload, meta, required=False))
            else:
                strict = _strict(model)
                if strict is not model and isinstance(model, type) and not hasattr(model, "__required_keys__"):
                    restore[schema.type] = model
                members.append(_make_envelope(schema.type, strict, meta, required=True))
        for name in internal:
            members.append(_make_envelope(name, dict[str, Any], dict[str, Any], required=False))
        # a one-member "union" is just the member: its Literal type does the tag check
        union: Any = members[0] if len(members) == 1 else Annotated[Union[tuple(members)], Field(discriminator="type")]
        adapter: TypeAdapter[Any] = TypeAdapter(union)
        known = frozenset([s.type for s in schemas] + list(internal))
        bare = frozenset([s.type for s in schemas if s.payload_model is None] + list(internal))
        return _Decoder(adapter, known, bare, restore, tagged=len(members) > 1)

    def encoder(self, schema: MessageSchema[Any], *, validate: bool) -> PayloadEncoder | None:
        model = schema.payload_model
        if model is None:
            return None
        adapter: TypeAdapter[Any] = TypeAdapter(model)
        # dicts are checked strictly (unknown keys rejected, as msgspec does)
        strict: TypeAdapter[Any] = TypeAdapter(_strict(model))
        type_name = schema.type
        # instances pydantic built were validated then; only a stdlib dataclass never was
        trusted = issubclass(model, BaseModel) or hasattr(model, "__pydantic_validator__")

        def encode(value: Any) -> bytes:
            if not validate:
                return adapter.dump_json(value) if isinstance(value, model) else to_json(value)
            try:
                if isinstance(value, model) and trusted:
                    try:
                        # the serializer re-checks every field's type at no extra cost;
                        # model_construct() or assignment can still have slipped in a bad value
                        return adapter.dump_json(value, warnings="error")
                    except PydanticSerializationError:
                        value = _plain(value)
                elif not isinstance(value, dict):
                    value = _plain(value)
                return adapter.dump_json(strict.validate_python(value))
            except ValidationError as error:
                raise OutboundValidationError(type_name, _issues(error, skip=0)) from None

        return encode


def _plain(value: Any) -> Any:
    """Field values of a model instance of any kind, shallowly (nested values stay)."""
    if isinstance(value, BaseModel):
        return dict(value.__dict__)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return to_builtins(value)
