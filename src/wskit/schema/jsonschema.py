"""JSON Schema (draft-07) of a router's messages, from whichever backend validates them.

The exported contract (AsyncAPI, TypeScript) must refuse what the server refuses, or a client
built from it sends frames the server answers ``INVALID_ARGUMENT``. So the schemas keep what the
decoders enforce beyond the model library's own JSON Schema: unknown keys are rejected at every
depth (``additionalProperties: false`` on every object with fixed keys, whatever the model's own
``extra`` says, as both backends compile it), and constraints pydantic drops when a
``WithJsonSchema`` sits beside a ``Field(max_length=...)`` are put back.

The dialect is draft-07, the one AsyncAPI tools read: 2020-12 constructs the libraries emit
(``prefixItems``, ``dependentRequired``, object ``discriminator``) are rewritten, and every
``$ref`` points into one shared components map (``#/components/schemas/Name`` by default),
whose names the library makes unique (``module.Name`` when two classes share a name).

What JSON Schema cannot state is refused rather than exported looser than the decoder: a
Python function validating a field (pydantic ``AfterValidator``, ``field_validator``...) or a
custom type without a JSON Schema raises :class:`SchemaExportError` naming the message type,
the field and why. One direction stays looser on purpose: pydantic's lax mode also takes
``"12"`` for an ``int``; the schema states the canonical form a client should send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from wskit.errors import UsageError
from wskit.schema.declarations import MessageSchema

if TYPE_CHECKING:
    from wskit.router import Router

__all__ = ["REF_TEMPLATE", "JsonSchemas", "SchemaExportError", "json_schemas", "payload_schemas"]

#: Where ``$ref`` points by default: the components of an AsyncAPI (or OpenAPI) document.
REF_TEMPLATE: Final = "#/components/schemas/{name}"

#: One schema to export: (message type, meta key or None for the payload, the Python type).
_Entry = tuple[str, str | None, Any]


class SchemaExportError(UsageError):
    """A message's schema cannot be written as JSON Schema without accepting more than the
    server does. ``message_type`` and ``field`` (``Model.name``, ``Model`` for a check of the
    whole model, or None) say where, ``reason`` why and how to fix it."""

    def __init__(self, message_type: str, field: str | None, reason: str) -> None:
        self.message_type = message_type
        self.field = field
        self.reason = reason
        where = f" at {field}" if field else ""
        super().__init__(f"cannot export the JSON Schema of message {message_type!r}{where}: {reason}")


@dataclass(frozen=True, slots=True)
class JsonSchemas:
    """The JSON Schemas of a set of messages, sharing one components map.

    ``payloads``: message type -> schema of its payload (usually a ``$ref``), None for a
    message declared without payload; sorted by type. ``meta``: message type -> the schemas
    of the extra meta keys it declares (``message(..., meta={...})``), only for types that
    declare some. ``components``: name -> schema, every ``$ref`` target, sorted by name.
    """

    payloads: dict[str, dict[str, Any] | None]
    meta: dict[str, dict[str, dict[str, Any]]]
    components: dict[str, dict[str, Any]]


def payload_schemas(router: Router[Any], *, ref_template: str = REF_TEMPLATE) -> JsonSchemas:
    """The JSON Schemas of every message ``router`` names, inbound and outbound
    (``router.declared()``), made by the backend that validates them (``router.validator``).

    ``ref_template`` places the components: ``{name}`` is replaced by a component's name.
    Raises :class:`SchemaExportError` for a schema JSON Schema cannot state (see the module).
    """
    schemas = [schema for schema, _ in router.declared().values()]
    return json_schemas(schemas, backend=router.validator.name, ref_template=ref_template)


def json_schemas(
    schemas: Iterable[MessageSchema[Any]], *, backend: str = "pydantic", ref_template: str = REF_TEMPLATE
) -> JsonSchemas:
    """The JSON Schemas of ``schemas`` as ``backend`` (``"pydantic"`` or ``"msgspec"``) validates them.

    Raises :class:`SchemaExportError` for a schema JSON Schema cannot state, and for another backend.
    """
    ordered = sorted({s.type: s for s in schemas}.values(), key=lambda s: s.type)
    entries: list[_Entry] = []
    for schema in ordered:
        if schema.payload_model is not None:
            entries.append((schema.type, None, schema.payload_model))
        entries.extend((schema.type, key, tp) for key, tp in sorted(schema.meta.items()))
    if backend == "pydantic":
        generated, components = _pydantic(entries, ref_template)
    elif backend == "msgspec":
        generated, components = _msgspec(entries, ref_template)
    else:
        raise SchemaExportError(
            ordered[0].type if ordered else "?", None, f"the {backend!r} backend has no JSON Schema export"
        )
    payloads: dict[str, dict[str, Any] | None] = {}
    meta: dict[str, dict[str, dict[str, Any]]] = {}
    for (type_name, key, _), generated_schema in zip(entries, generated, strict=True):
        out = _draft07(generated_schema, type_name)
        if key is None:
            payloads[type_name] = out
        else:
            meta.setdefault(type_name, {})[key] = out
    for schema in ordered:
        payloads.setdefault(schema.type, None)
    shared = {name: _draft07(_closed_root(components[name]), f"(component {name})") for name in sorted(components)}
    return JsonSchemas(dict(sorted(payloads.items())), meta, shared)


# -- pydantic -------------------------------------------------------------------------------

_FUNCTION_KINDS: Final = frozenset({"function-before", "function-after", "function-wrap", "function-plain"})
_OPAQUE_KINDS: Final = {"is-instance": "cls", "is-subclass": "cls", "callable": None}
_JS_HOOKS: Final = ("pydantic_js_functions", "pydantic_js_annotation_functions")
#: keys of a core schema node that hold values or callables, never schemas
_VALUE_KEYS: Final = frozenset({"cls", "config", "default", "expected", "members", "metadata", "function"})


def _pydantic(entries: list[_Entry], ref_template: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    from pydantic import TypeAdapter
    from pydantic.errors import PydanticInvalidForJsonSchema
    from pydantic.json_schema import GenerateJsonSchema

    inputs: list[Any] = []
    for index, (type_name, _, tp) in enumerate(entries):
        core = TypeAdapter(tp).core_schema
        if not isinstance(core, dict):  # pydantic's stand-in for a schema it could not build
            raise SchemaExportError(
                type_name,
                _owner(tp),
                "pydantic could not build its schema (a forward reference it cannot resolve): "
                "define the names it uses, then call model_rebuild()",
            )
        core = _PydanticWalk(type_name).node(core, _owner(tp), None)
        inputs.append((index, "validation", core))
    generator = GenerateJsonSchema(ref_template=ref_template.replace("{name}", "{model}"))
    try:
        mapping, definitions = generator.generate_definitions(inputs)
    except PydanticInvalidForJsonSchema as exc:
        raise SchemaExportError(_first_type(entries), None, str(exc)) from None
    components = {str(name): schema for name, schema in definitions.items()}
    return [mapping[(index, "validation")] for index in range(len(entries))], components


def _owner(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


def _first_type(entries: list[_Entry]) -> str:
    return ", ".join(sorted({type_name for type_name, _, _ in entries})) or "?"


class _PydanticWalk:
    """A copy of a pydantic core schema, checked for what JSON Schema cannot state.

    The copy is what the JSON Schema is generated from; it differs from the original only
    where a ``WithJsonSchema`` would hide a constraint pydantic enforces beside it.
    """

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def node(self, node: Any, owner: str, field: str | None) -> Any:
        if isinstance(node, list):
            return [self.node(item, owner, field) for item in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if not isinstance(kind, str):  # a mapping of field names (or tags) to schemas
            return {key: self.node(value, owner, key) for key, value in node.items()}
        where = f"{owner}.{field}" if field else owner
        metadata = node.get("metadata") or {}
        replaced = _with_json_schema(metadata)
        if replaced is not None:
            return _restated(node, replaced, metadata)
        if kind in _OPAQUE_KINDS and not any(metadata.get(hook) for hook in _JS_HOOKS):
            shown = node.get(_OPAQUE_KINDS[kind] or "", kind)
            raise SchemaExportError(
                self.type_name,
                where,
                f"{getattr(shown, '__qualname__', shown)} has no JSON Schema: give it one "
                "(__get_pydantic_json_schema__, or WithJsonSchema on the field)",
            )
        if kind in _FUNCTION_KINDS and not _expressed(node, metadata):
            function = node.get("function", {}).get("function")
            name = getattr(function, "__qualname__", repr(function))
            raise SchemaExportError(
                self.type_name,
                where,
                f"it is checked by the Python function {name}, whose rule JSON Schema cannot state; "
                "state it as a constraint (Field(pattern=..., max_length=...)) or describe what the "
                "field accepts with pydantic's WithJsonSchema",
            )
        if kind in ("model", "typed-dict", "dataclass") and "cls" in node:
            owner, field = _owner(node["cls"]), None
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _VALUE_KEYS or key == "serialization":
                out[key] = value
            elif kind == "json-or-python" and key == "python_schema":
                out[key] = value  # JSON Schema describes JSON input only
            elif kind == "dataclass-args" and key == "fields":  # a list of named field nodes
                out[key] = [self.node(item, owner, item.get("name")) for item in value]
            else:
                out[key] = self.node(value, owner, field)
        return out


def _with_json_schema(metadata: Mapping[str, Any]) -> Any:
    """The ``WithJsonSchema`` that replaces this node's JSON Schema, if any."""
    from pydantic import WithJsonSchema

    for hook in metadata.get("pydantic_js_annotation_functions", ()):
        annotation = getattr(hook, "__self__", None)
        if isinstance(annotation, WithJsonSchema):
            return annotation
    return None


def _restated(node: dict[str, Any], replaced: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with its ``WithJsonSchema`` holding the constraints pydantic would drop.

    pydantic applies ``Field(max_length=...)`` and the like (``pydantic_js_updates``) inside the
    annotation that a ``WithJsonSchema`` replaces, so they vanish from the output while the
    validator still enforces them.
    """
    updates = metadata.get("pydantic_js_updates")
    if not updates or replaced.json_schema is None:
        return node
    from pydantic import WithJsonSchema

    merged = WithJsonSchema({**replaced.json_schema, **updates}, mode=replaced.mode)
    hooks = [
        merged.__get_pydantic_json_schema__ if getattr(hook, "__self__", None) is replaced else hook
        for hook in metadata.get("pydantic_js_annotation_functions", ())
    ]
    return {**node, "metadata": {**metadata, "pydantic_js_annotation_functions": hooks}}


def _expressed(node: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """Whether a validator function's node says what it accepts in JSON Schema terms:
    pydantic's own constraint checks carry their JSON Schema (``pydantic_js_updates``), a
    custom type its hook, a plain or before validator may name its input type."""
    if node.get("json_schema_input_schema") is not None:
        return True
    return any(metadata.get(key) for key in (*_JS_HOOKS, "pydantic_js_updates"))


# -- msgspec --------------------------------------------------------------------------------


def _msgspec(entries: list[_Entry], ref_template: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    try:
        import msgspec
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise SchemaExportError(_first_type(entries), None, "the msgspec backend needs msgspec") from exc
    types = [tp for _, _, tp in entries]
    try:
        generated, components = msgspec.json.schema_components(types, ref_template=ref_template)
    except TypeError as exc:
        for type_name, _, tp in entries:
            where = _unsupported(tp, _owner(tp), None)
            if where is not None:
                raise SchemaExportError(type_name, where[0], f"{where[1]}: {exc}") from None
        raise SchemaExportError(_first_type(entries), None, str(exc)) from None
    return list(generated), dict(components)


def _unsupported(tp: Any, owner: str, field: str | None, seen: set[Any] | None = None) -> tuple[str, str] | None:
    """``(where, what)`` of the first type below ``tp`` msgspec has no JSON Schema for."""
    import msgspec

    seen = set() if seen is None else seen
    try:
        if tp in seen:
            return None
        seen.add(tp)
    except TypeError:  # an unhashable annotation: nothing to remember it by
        pass
    fields: list[tuple[str, Any]] = []
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        fields = [(f.name, f.type) for f in msgspec.structs.fields(tp)]
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        import typing

        hints = typing.get_type_hints(tp, include_extras=True)
        fields = [(f.name, hints.get(f.name, f.type)) for f in dataclasses.fields(tp)]
    else:
        import typing

        for arg in typing.get_args(tp):
            found = _unsupported(arg, owner, field, seen)
            if found is not None:
                return found
        try:
            msgspec.json.schema(tp)
        except TypeError:
            where = f"{owner}.{field}" if field else owner
            return where, f"{getattr(tp, '__qualname__', tp)!s} has no JSON Schema in msgspec"
        return None
    for name, field_type in fields:
        found = _unsupported(field_type, _owner(tp), name, seen)
        if found is not None:
            return found
    return None


# -- draft-07 -------------------------------------------------------------------------------

#: keywords whose value is one schema, a list of schemas, or a map of names to schemas
_ONE: Final = ("additionalProperties", "additionalItems", "not", "if", "then", "else", "contains", "propertyNames")
_MANY: Final = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAPS: Final = ("properties", "patternProperties", "dependentSchemas", "definitions")
#: 2019-09/2020-12 keywords with no draft-07 counterpart
_UNSUPPORTED: Final = (
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "minContains",
    "maxContains",
    "$defs",
)
#: keywords that only annotate: beside a ``$ref`` they may stay (draft-07 ignores them there)
_ANNOTATIONS: Final = frozenset({"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"})


def _closed_root(schema: dict[str, Any]) -> dict[str, Any]:
    """A component that is an object without declared keys (an empty model) accepts none."""
    if schema.get("type") == "object" and not any(
        key in schema for key in ("properties", "additionalProperties", "patternProperties")
    ):
        return {**schema, "properties": {}}
    return schema


def _draft07(schema: Any, type_name: str) -> Any:
    """``schema`` rewritten in draft-07, every object with fixed keys closed to others."""
    if not isinstance(schema, dict):
        return schema
    for key in _UNSUPPORTED:
        if key in schema:
            raise SchemaExportError(type_name, None, f"the keyword {key!r} has no draft-07 equivalent")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ONE or (key == "items" and isinstance(value, dict)):
            out[key] = _draft07(value, type_name)
        elif key in _MANY or (key == "items" and isinstance(value, list)):
            out[key] = [_draft07(item, type_name) for item in value]
        elif key in _MAPS:
            out[key] = {name: _draft07(item, type_name) for name, item in value.items()}
        else:
            out[key] = value
    if "prefixItems" in out:
        # 2020-12 tuples: prefixItems + items (the rest); draft-07: items (list) + additionalItems
        rest = out.pop("items", None)
        out["items"] = out.pop("prefixItems")
        if rest is not None:
            out["additionalItems"] = rest
    if "dependentRequired" in out or "dependentSchemas" in out:
        out["dependencies"] = {**out.pop("dependentRequired", {}), **out.pop("dependentSchemas", {})}
    discriminator = out.get("discriminator")
    if isinstance(discriminator, dict):
        # OpenAPI's object form; AsyncAPI's schema takes the property name alone
        out["discriminator"] = discriminator["propertyName"]
    if "properties" in out:
        out["additionalProperties"] = False
    constraints = {key: value for key, value in out.items() if key not in _ANNOTATIONS and key != "$ref"}
    if "$ref" in out and constraints:
        # draft-07 ignores every keyword beside $ref: keep the others in effect
        annotations = {key: value for key, value in out.items() if key in _ANNOTATIONS}
        out = {"allOf": [{"$ref": out["$ref"]}, constraints], **annotations}
    return out
