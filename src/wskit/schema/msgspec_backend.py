"""The msgspec backend (``wskit[msgspec]``): the fast path, for msgspec Structs and dataclasses.

Inbound frames decode through one ``msgspec.json.Decoder`` over a tagged union of envelope
Structs (``tag_field="type"``): parsing, routing and validation in a single C pass.

Strictness: payloads decode through strict stand-ins of the declared types
(:mod:`wskit.schema.msgspec_strict`), so unknown keys are rejected at every depth, and are
then handed to the handler as instances of the declared classes, nested ones too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Annotated, Any, Union

from wskit.errors import UsageError
from wskit.schema.declarations import MessageSchema
from wskit.schema.validator import (
    MAX_CORRELATION_ID_LENGTH,
    MAX_TRACEPARENT_LENGTH,
    MAX_TRACESTATE_LENGTH,
    Inbound,
    Issue,
    OutboundValidationError,
    PayloadEncoder,
    classify_failure,
    to_builtins,
)

try:
    import msgspec
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the msgspec backend needs msgspec: pip install 'wskit[msgspec]'") from exc

from wskit.schema.msgspec_strict import StrictTypes

__all__ = ["MsgspecValidator"]

_PATH = re.compile(r" - at `\$(.*)`$")
#: ``.name``, ``[3]``, or ``[...]``: msgspec's mark for a dict value, whose key it does not give
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")


def _issues(error: msgspec.ValidationError) -> list[Issue]:
    text = str(error)
    match = _PATH.search(text)
    path: list[str | int] = []
    if match:
        text = text[: match.start()]
        for name, index in _SEGMENT.findall(match.group(1)):
            path.append(name if not index else "..." if index == "..." else int(index))
    field = _FIELD.search(text)
    if field:
        # msgspec names the offending field in the message, not in the path
        path.append(field.group(1))
    return [{"path": path, "message": text}]


def _is_struct(model: type) -> bool:
    return isinstance(model, type) and issubclass(model, msgspec.Struct)


class _Decoder:
    __slots__ = ("_decoder", "_known", "_routes")

    def __init__(
        self,
        decoder: Any,
        known: frozenset[str],
        routes: dict[type, tuple[str, Callable[[Any], Any] | None]],
    ) -> None:
        self._decoder = decoder
        self._known = known
        # envelope class -> (type name, payload builder); the tag is not a Struct attribute
        self._routes = routes

    def decode(self, data: bytes | str) -> Inbound:
        try:
            env = self._decoder.decode(data)
        except msgspec.ValidationError as error:
            raise classify_failure(data, self._known, partial(_issues, error)) from None
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise classify_failure(data, self._known, list) from None
        type_name, build = self._routes[type(env)]
        meta = env.meta
        # to_builtins leaves out UNSET fields, so absent keys stay absent
        meta_dict: dict[str, Any] = {} if meta is _UNSET else _to_builtins(meta)
        payload = env.payload if build is None else build(env.payload)
        return type_name, meta_dict, payload


_UNSET = msgspec.UNSET
_to_builtins = msgspec.to_builtins


_CorrelationId = Annotated[str, msgspec.Meta(max_length=MAX_CORRELATION_ID_LENGTH)]
_Traceparent = Annotated[str, msgspec.Meta(max_length=MAX_TRACEPARENT_LENGTH)]
_Tracestate = Annotated[str, msgspec.Meta(max_length=MAX_TRACESTATE_LENGTH)]


def _meta_struct(name: str, extra: dict[str, Any]) -> type[Any]:
    fields: list[Any] = [
        ("timestamp", Union[int, float, msgspec.UnsetType], _UNSET),
        ("correlationId", Union[_CorrelationId, msgspec.UnsetType], _UNSET),
        ("timeoutMs", Union[int, float, msgspec.UnsetType], _UNSET),
        ("traceparent", Union[_Traceparent, msgspec.UnsetType], _UNSET),
        ("tracestate", Union[_Tracestate, msgspec.UnsetType], _UNSET),
    ]
    fields += [(key, Union[tp, msgspec.UnsetType], _UNSET) for key, tp in extra.items()]
    return msgspec.defstruct(f"{name}Meta", fields, forbid_unknown_fields=True)


class _Empty(msgspec.Struct, forbid_unknown_fields=True):
    pass


class MsgspecValidator:
    """Validate with msgspec. Accepts msgspec Structs and dataclasses."""

    name = "msgspec"

    def accepts(self, model: type) -> bool:
        return _is_struct(model) or dataclasses.is_dataclass(model)

    def decoder(self, schemas: Sequence[MessageSchema[Any]], *, internal: Collection[str]) -> _Decoder:
        members: list[Any] = []
        routes: dict[type, tuple[str, Callable[[Any], Any] | None]] = {}
        strict = StrictTypes()  # one per decoder: models shared by messages are built once
        for schema in schemas:
            build: Callable[[Any], Any] | None = None
            meta = _meta_struct(schema.type, dict(schema.meta))
            model = schema.payload_model
            payload_type: Any
            if model is None:
                payload_type = _Empty
                default: Any = _UNSET
            elif self.accepts(model):
                payload_type, build = strict.strict(model)
                default = msgspec.NODEFAULT
            else:
                raise UsageError(f"the msgspec backend cannot validate {model!r} (message {schema.type!r})")
            if model is None:
                build = _none
            members.append(_envelope(schema.type, meta, payload_type, default))
            routes[members[-1]] = (schema.type, build)
        for name in internal:
            members.append(_envelope(name, dict[str, Any], Union[dict[str, Any], None], None))
            # the payload is kept as decoded: $ws:subscribe reads it (the others ignore it)
            routes[members[-1]] = (name, None)
        union: Any = members[0] if len(members) == 1 else Union[tuple(members)]
        known = frozenset([s.type for s in schemas] + list(internal))
        return _Decoder(msgspec.json.Decoder(union), known, routes)

    def encoder(self, schema: MessageSchema[Any], *, validate: bool) -> PayloadEncoder | None:
        model = schema.payload_model
        if model is None:
            return None
        encode_json = msgspec.json.Encoder().encode
        type_name = schema.type
        if not validate:
            return encode_json
        # msgspec does not check types when a Struct is constructed, so even an instance of
        # the declared class is validated: encode once, then decode those bytes strictly.
        check = msgspec.json.Decoder(StrictTypes().strict(model)[0]).decode

        def encode(value: Any) -> bytes:
            if not isinstance(value, (dict, model)):
                value = to_builtins(value)
            try:
                data = encode_json(value)
                check(data)
            except msgspec.ValidationError as error:
                raise OutboundValidationError(type_name, _issues(error)) from None
            except TypeError as error:
                issue = {"path": [], "message": str(error)}
                raise OutboundValidationError(type_name, [issue]) from None
            return data

        return encode


def _none(_: Any) -> None:
    return None


def _envelope(type_name: str, meta: Any, payload: Any, payload_default: Any) -> type[Any]:
    # meta may be omitted but not null: UNSET marks "absent"
    fields: list[Any] = [("meta", Union[meta, msgspec.UnsetType], _UNSET)]
    if payload_default is msgspec.NODEFAULT:
        fields.insert(0, ("payload", payload))
    else:
        fields.append(("payload", payload, payload_default))
    return msgspec.defstruct(f"{type_name}Envelope", fields, tag_field="type", tag=type_name)
