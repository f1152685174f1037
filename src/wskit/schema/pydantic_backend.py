"""The pydantic v2 backend (the default): pydantic models, dataclasses and TypedDicts.

Inbound frames are validated by one ``TypeAdapter`` over a discriminated union of envelope
TypedDicts, straight from the JSON bytes (``validate_json``): pydantic-core parses and
validates in a single pass and builds the payload model directly.

Strictness: the protocol rejects unknown payload keys at every depth, but a user's models may
ignore or allow extras. We compile each payload model from a copy of its core schema in which
every model, dataclass and TypedDict forbids extras (nested ones too, inside lists, dicts and
unions). The copy still names the user's classes, so pydantic-core builds instances of exactly
the declared classes, nested too, with nothing to restore afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import partial
from typing import Annotated, Any, AnyStr, Literal, NotRequired, Union, cast

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, core_schema, to_json
from typing_extensions import TypedDict

from wskit.schema.declarations import MessageSchema
from wskit.schema.validator import (
    MAX_CORRELATION_ID_LENGTH,
    MAX_ISSUES,
    MAX_TRACEPARENT_LENGTH,
    MAX_TRACESTATE_LENGTH,
    Inbound,
    Issue,
    OutboundValidationError,
    PayloadEncoder,
    classify_failure,
    to_builtins,
)

__all__ = ["PydanticValidator"]

_FORBID = ConfigDict(extra="forbid")
#: meta is the protocol's, not the application's: no coercion ("12" is not a timestamp)
_STRICT_META = ConfigDict(extra="forbid", strict=True)

# -- recursive strictness ---------------------------------------------------------------------

#: schema kinds that hold the keys of one object (their ``extra_behavior`` decides unknown keys)
_OBJECT_KINDS = frozenset({"model-fields", "typed-dict", "dataclass-args"})
#: schema kinds built around a class whose config also carries the extra behaviour
_CLASS_KINDS = frozenset({"model", "dataclass"})
#: keys of a schema node that hold values or callables, never schemas
_VALUE_KEYS = frozenset({"cls", "config", "default", "expected", "members", "metadata"})
#: our strict copies get their own definition names, so they never mix with pydantic's own
_REF_SUFFIX = ":wskit-strict"


def _forbid_extras(node: Any, classes: set[type[Any]]) -> Any:
    """A copy of core schema ``node`` in which every object rejects unknown keys.

    Only dicts and lists are copied (the schema itself is left untouched). ``classes``
    collects the model and dataclass classes met, for :func:`_compiling`.
    """
    if isinstance(node, list):
        return [_forbid_extras(item, classes) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if not isinstance(kind, str):  # not a schema: a mapping of field names or tags to schemas
        return {key: _forbid_extras(value, classes) for key, value in node.items()}
    out = {key: value if key in _VALUE_KEYS else _forbid_extras(value, classes) for key, value in node.items()}
    if kind in _OBJECT_KINDS:
        out["extra_behavior"] = "forbid"
    elif kind in _CLASS_KINDS:
        classes.add(out["cls"])
        if "extra_behavior" in out:
            out["extra_behavior"] = "forbid"
        out["config"] = {**out.get("config", {}), "extra_fields_behavior": "forbid"}
    for key in ("ref", "schema_ref"):
        if isinstance(out.get(key), str):
            out[key] += _REF_SUFFIX
    return out


def _strict_type(model: type[Any], classes: set[type[Any]]) -> type:
    """A stand-in for ``model`` whose core schema rejects unknown keys at every depth.

    Compile it under :func:`_compiling` with the same ``classes``.
    """
    schema = _forbid_extras(TypeAdapter(model).core_schema, classes)

    class Strict:
        @classmethod
        def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
            return cast(core_schema.CoreSchema, schema)

    Strict.__name__ = Strict.__qualname__ = f"Strict{model.__name__}"
    return Strict


@contextlib.contextmanager
def _compiling(classes: set[type[Any]]) -> Iterator[None]:
    """While strict schemas compile, have pydantic-core compile them rather than reuse validators.

    pydantic-core swaps a schema of a complete model or pydantic dataclass for that class's own
    prebuilt validator, which would bring back the class's own extra handling. It only reuses
    classes whose ``__dict__`` says ``__pydantic_complete__``, so the flag is lowered for the
    compile (a synchronous step when the router is first used) and restored right after.
    """
    flagged = [cls for cls in classes if cls.__dict__.get("__pydantic_complete__") is True]
    for cls in flagged:
        cls.__pydantic_complete__ = False
    try:
        yield
    finally:
        for cls in flagged:
            cls.__pydantic_complete__ = True


# -- envelope ---------------------------------------------------------------------------------


class _Number:
    """A JSON number in meta: an int stays an int (as msgspec keeps it), a float stays a float.

    One union with its own error, so a bad value has the issue path ``["meta", key]`` rather
    than one path per union member.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [core_schema.int_schema(strict=True), core_schema.float_schema(strict=True)],
            custom_error_type="number_type",
            custom_error_message="Input should be a valid number",
        )


_CorrelationId = Annotated[str, StringConstraints(max_length=MAX_CORRELATION_ID_LENGTH)]
_Traceparent = Annotated[str, StringConstraints(max_length=MAX_TRACEPARENT_LENGTH)]
_Tracestate = Annotated[str, StringConstraints(max_length=MAX_TRACESTATE_LENGTH)]


def _meta_type(name: str, extra: dict[str, Any]) -> type:
    fields: dict[str, Any] = {
        "timestamp": _Number,
        "correlationId": _CorrelationId,
        "timeoutMs": _Number,
        "traceparent": _Traceparent,
        "tracestate": _Tracestate,
    }
    fields.update(extra)
    meta = TypedDict(f"{name}Meta", fields, total=False)  # type: ignore[misc]
    meta.__pydantic_config__ = _STRICT_META  # type: ignore[attr-defined]
    return cast(type, meta)


class _EmptyPayload(TypedDict):
    __pydantic_config__ = _FORBID  # type: ignore[misc]


def _make_envelope(type_name: str, payload: Any, meta: Any, *, required: bool) -> type:
    fields: dict[str, Any] = {
        "type": Literal[type_name],
        "meta": NotRequired[meta],
        "payload": payload if required else NotRequired[payload],
    }
    return cast(type, TypedDict(f"{type_name}Envelope", fields))  # type: ignore[operator]


def _issues(error: ValidationError, *, skip: int) -> list[Issue]:
    """The first :data:`MAX_ISSUES` issues of ``error`` (the answer lists no more).

    ``errors()`` builds Python objects for every issue: 90 ms for a 1 MB payload of 90k
    unknown keys, a cost the client chooses. ``json()`` renders them all in Rust (~10x less)
    and only the first few are parsed back.
    """
    if error.error_count() <= MAX_ISSUES:
        items: Iterable[Any] = error.errors(include_url=False, include_context=False, include_input=False)
    else:
        items = _first_items(error.json(include_url=False, include_context=False, include_input=False), MAX_ISSUES)
    return [{"path": list(item["loc"][skip:]), "message": item["msg"]} for item in items]


_JSON = json.JSONDecoder()


def _first_items(text: str, count: int) -> Iterator[Any]:
    """The first ``count`` elements of the JSON array ``text``, without parsing the rest."""
    at = text.index("[") + 1
    for _ in range(count):
        while text[at] in " \n,":
            at += 1
        if text[at] == "]":
            return
        item, at = _JSON.raw_decode(text, at)
        yield item


# A JSON string (escapes included), matched possessively so a long one cannot backtrack.
_STRING_BYTES = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_STRING_TEXT = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)


def _has_constant(data: bytes | str) -> bool:
    """Whether ``NaN``/``Infinity`` appear outside strings in a frame pydantic-core parsed.

    pydantic-core's parser takes these non-JSON constants anywhere (even under ignored keys),
    so the protocol's "not JSON" answer needs this check. It is a lexical scan, not a second
    parse, and runs only when the bytes contain the words at all (chat text "Infinity war").
    """
    if isinstance(data, bytes):
        found = _bare_word(data, b'"', b"\\", (b"NaN", b"Infinity"))
    else:
        found = _bare_word(data, '"', "\\", ("NaN", "Infinity"))
    return _has_constant_slow(data) if found is None else found


def _bare_word(data: AnyStr, quote: AnyStr, slash: AnyStr, words: tuple[AnyStr, ...]) -> bool | None:
    """In valid JSON a word stands outside strings when an even number of quotes precede it.

    None when a backslash precedes a word (an escaped quote would break the count).
    """
    for word in words:
        at = data.find(word)
        while at != -1:
            if data.find(slash, 0, at) != -1:
                return None
            if data.count(quote, 0, at) % 2 == 0:
                return True
            at = data.find(word, at + 1)
    return False


def _has_constant_slow(data: bytes | str) -> bool:
    """:func:`_has_constant` for frames with escapes: drop every string, then look."""
    if isinstance(data, bytes):
        rest = _STRING_BYTES.sub(b"", data)
        return b"NaN" in rest or b"Infinity" in rest
    text = _STRING_TEXT.sub("", data)
    return "NaN" in text or "Infinity" in text


class _Decoder:
    __slots__ = ("_bare", "_known", "_skip", "_validate_json")

    def __init__(self, adapter: TypeAdapter[Any], known: frozenset[str], bare: frozenset[str], *, tagged: bool) -> None:
        # pydantic-core's own entry point: TypeAdapter.validate_json wraps it in ~0.3 us of
        # Python per call (measured: 0.72 -> 0.42 us for a one-field payload)
        self._validate_json = adapter.validator.validate_json
        self._known = known
        self._bare = bare  # types without payload: an empty {} payload decodes to None
        self._skip = 1 if tagged else 0  # a union's error locations start with the tag

    def decode(self, data: bytes | str) -> Inbound:
        try:
            env = self._validate_json(data)
        except ValidationError as error:
            issues = partial(_issues, error, skip=self._skip)
            raise classify_failure(data, self._known, issues, issue_count=error.error_count) from None
        if (
            (b"NaN" in data or b"Infinity" in data)
            if isinstance(data, bytes)
            else ("NaN" in data or "Infinity" in data)
        ) and _has_constant(data):
            raise classify_failure(data, self._known, list) from None
        type_name = env["type"]
        # .get: the framework's own types (not bare: $ws:subscribe reads its payload) may omit it
        payload = None if type_name in self._bare else env.get("payload")
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
        classes: set[type[Any]] = set()
        for schema in schemas:
            meta = _meta_type(schema.type, dict(schema.meta))
            model = schema.payload_model
            if model is None:
                members.append(_make_envelope(schema.type, _EmptyPayload, meta, required=False))
            else:
                members.append(_make_envelope(schema.type, _strict_type(model, classes), meta, required=True))
        for name in internal:
            # the framework's own types: any meta object, a payload object or null (as msgspec)
            members.append(_make_envelope(name, dict[str, Any] | None, dict[str, Any], required=False))
        # a one-member "union" is just the member: its Literal type does the tag check
        union: Any = members[0] if len(members) == 1 else Annotated[Union[tuple(members)], Field(discriminator="type")]
        with _compiling(classes):
            adapter: TypeAdapter[Any] = TypeAdapter(union)
        known = frozenset([s.type for s in schemas] + list(internal))
        bare = frozenset(s.type for s in schemas if s.payload_model is None)
        return _Decoder(adapter, known, bare, tagged=len(members) > 1)

    def encoder(self, schema: MessageSchema[Any], *, validate: bool) -> PayloadEncoder | None:
        model = schema.payload_model
        if model is None:
            return None
        adapter: TypeAdapter[Any] = TypeAdapter(model)
        # dicts are checked strictly (unknown keys rejected at every depth, as inbound)
        classes: set[type[Any]] = set()
        strict_type = _strict_type(model, classes)
        with _compiling(classes):
            strict: TypeAdapter[Any] = TypeAdapter(strict_type)
        type_name = schema.type
        # pydantic-core's serializer and validator themselves: TypeAdapter.dump_json and
        # validate_python add ~0.4 and ~0.2 us of Python per call around them (measured)
        to_json_core = adapter.serializer.to_json
        validate_strict = strict.validator.validate_python
        # a TypedDict's instances are dicts (and isinstance() refuses TypedDict classes)
        instance_type: type = dict if hasattr(model, "__required_keys__") else model
        # instances pydantic built were validated then; only a stdlib dataclass never was
        trusted = issubclass(model, BaseModel) or hasattr(model, "__pydantic_validator__")

        def encode(value: Any) -> bytes:
            if not validate:
                return to_json_core(value) if isinstance(value, instance_type) else to_json(value)
            try:
                if isinstance(value, instance_type) and trusted:
                    try:
                        # the serializer re-checks every field's type at no extra cost;
                        # model_construct() or assignment can still have slipped in a bad value
                        return to_json_core(value, warnings="error")
                    except PydanticSerializationError:
                        value = _plain(value)
                elif not isinstance(value, dict):
                    value = _plain(value)
                return to_json_core(validate_strict(value))
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
