"""zod schemas of a router's contract in the shape WS-Kit 0.10 takes: what
``wskit types --zod MODULE:ROUTER`` prints.

The module imports ``message``, ``rpc`` and ``z`` from ``@ws-kit/zod`` and exports, for each
payload component, its TypeScript type and a zod schema of the same name (strict objects:
unknown keys are refused, as the server refuses them), then one ``message(...)`` per event and
one ``rpc(...)`` per RPC, named after the message type. A WS-Kit client passes those to
``send``, ``request`` and ``on`` and gets typed payloads checked before they leave.

What the schemas check is what the server checks, translated: lengths, ranges, patterns
(rewritten for JavaScript by :mod:`wskit.export.ecma_regex`, or left to the server when they
cannot be), ``date-time``, ``date`` and ``uuid`` formats; never more, so a client never refuses
what the server would accept. Defaults are not applied (a field with a default is optional),
and the meta of each message admits the keys wskit reads or adds besides WS-Kit's own
(``CLIENT_META``, ``SERVER_META``), since WS-Kit's meta is strict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from wskit.export.ecma_regex import ecma_pattern
from wskit.export.frames import ERROR_PAYLOAD, INBOUND_META, OUTBOUND_META
from wskit.export.tsnames import HEADER, Contract, Identifiers, component_of, literal, property_key
from wskit.export.typescript import GENERATED_NAMES, TsTypes, component_declarations
from wskit.protocol import is_reserved_type

if TYPE_CHECKING:
    from wskit.router import Router

__all__ = ["WSKIT_ZOD_IMPORT", "ZodSchemas", "zod_schemas"]

#: where the generated module takes WS-Kit's builders and zod from (one zod instance for both)
WSKIT_ZOD_IMPORT: Final = 'import { message, rpc, z } from "@ws-kit/zod";'
_CLIENT_META: Final = "CLIENT_META"
_SERVER_META: Final = "SERVER_META"
_MESSAGES: Final = "MESSAGES"
#: meta keys WS-Kit's message() already has
_WSKIT_META: Final = frozenset({"timestamp", "correlationId"})
#: formats zod checks no stricter than the server does
_FORMATS: Final = {
    "date-time": "z.iso.datetime({ offset: true })",
    "date": "z.iso.date()",
    "uuid": "z.guid()",
}


def zod_schemas(router: Router[Any]) -> str:
    """The TypeScript module of ``router``'s zod schemas and WS-Kit messages (see the module).

    Deterministic. Raises :class:`~wskit.schema.jsonschema.SchemaExportError` (a ``UsageError``)
    for a payload JSON Schema cannot state.
    """
    contract = Contract.of(router)
    names = contract.identifiers((*GENERATED_NAMES, _CLIENT_META, _SERVER_META, _MESSAGES))
    types = TsTypes(names)
    zod = ZodSchemas(contract.components, names, types)
    out = [HEADER.format(command="wskit types --zod"), WSKIT_ZOD_IMPORT, ""]
    shown = [*contract.schemas.components, ERROR_PAYLOAD]
    out += component_declarations(contract, types, only=shown)
    out += ["// -- zod schemas of the payloads (a value beside each type of the same name)", ""]
    for name in zod.order(shown):
        out += [*zod.const(name), ""]
    out += _messages(contract, zod)
    return "\n".join(out) + "\n"


class ZodSchemas:
    """JSON Schema (draft-07, as the exporter writes it) -> zod 4 expressions.

    Components are defined in dependency order; a reference back into a cycle (a recursive
    model) is written as a getter with its type stated, the form zod 4 infers recursive types
    from, or as ``z.lazy`` outside an object.
    """

    def __init__(self, components: Mapping[str, dict[str, Any]], names: Identifiers, types: TsTypes) -> None:
        self.components = components
        self.names = names
        self.types = types
        self.emitted: set[str] = set()
        #: components whose const is a plain zod object (usable in a discriminated union)
        self.objects: set[str] = set()
        self._forward = 0
        self._in_property = 0
        self._objects = 0

    def order(self, names: Iterable[str]) -> list[str]:
        """``names`` and the components they refer to, each after those it refers to (cycles
        broken where first met)."""
        done: set[str] = set()
        out: list[str] = []

        def visit(name: str, path: set[str]) -> None:
            if name in done or name in path:
                return
            for ref in sorted(set(_refs(self.components[name]))):
                visit(ref, path | {name})
            done.add(name)
            out.append(name)

        for name in sorted(names):
            visit(name, set())
        return out

    def const(self, name: str) -> list[str]:
        """``export const Name = <zod>;`` for component ``name``."""
        self._forward = 0
        ident = self.names.component(name)
        expression = self.of(self.components[name])
        self.emitted.add(name)
        if self._forward:  # a reference back to itself outside any object: TypeScript needs the type
            return [f"export const {ident}: z.ZodType<{ident}> = {expression};"]
        if expression.startswith(("z.strictObject(", "z.looseObject(")):
            self.objects.add(name)
        return [f"export const {ident} = {expression};"]

    def of(self, schema: Any) -> str:
        """The zod expression of ``schema``."""
        if schema is True or schema == {}:
            return "z.unknown()"
        if schema is False:
            return "z.never()"
        if "$ref" in schema:
            return self._ref(component_of(schema["$ref"]))
        if "const" in schema:
            return _zod_literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if len(values) > 1 and all(isinstance(v, str) for v in values):
                return f"z.enum([{', '.join(literal(v) for v in values)}])"
            return _union([_zod_literal(v) for v in values])
        parts: list[str] = []
        if "allOf" in schema:
            parts += [self._all_of_member(s) for s in schema["allOf"]]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                parts.append(self._any_of(schema[key], schema.get("discriminator")))
        if "type" in schema or any(k in schema for k in ("properties", "additionalProperties", "items")):
            parts.append(self._typed(schema))
        parts = [p for p in parts if p != "z.unknown()"]
        if not parts:
            return "z.unknown()"
        found = parts[0]
        for part in parts[1:]:
            found = f"z.intersection({found}, {part})"
        return found

    def _ref(self, name: str) -> str:
        ident = self.names.component(name)
        if name in self.emitted:
            return ident
        self._forward += 1
        return ident if self._in_property else f"z.lazy(() => {ident})"

    def _all_of_member(self, schema: Any) -> str:
        # constraints beside a $ref (jsonschema moves them into allOf): state them on the target
        return self.of(schema) if "$ref" in schema or "type" in schema else "z.unknown()"

    def _any_of(self, options: list[Any], discriminator: Any) -> str:
        nulls = [o for o in options if isinstance(o, dict) and o.get("type") == "null"]
        rest = [o for o in options if o not in nulls]
        if nulls and len(rest) == 1:
            return f"{self.of(rest[0])}.nullable()"
        refs = [component_of(o["$ref"]) for o in rest if isinstance(o, dict) and set(o) == {"$ref"}]
        if (
            isinstance(discriminator, str)
            and not nulls
            and len(refs) == len(rest) > 1
            and all(r in self.objects and _tag_of(self.components[r], discriminator) for r in refs)
        ):
            shown = ", ".join(self.names.component(r) for r in refs)
            return f"z.discriminatedUnion({literal(discriminator)}, [{shown}])"
        return _union([self.of(o) for o in options])

    def _typed(self, schema: Mapping[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            plain = [k for k in kind if k != "null"]
            inner = _union([self._typed({**schema, "type": k}) for k in plain])
            return f"{inner}.nullable()" if "null" in kind and plain else inner if plain else "z.null()"
        if kind is None:
            kind = "array" if "items" in schema else "object"
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number"):
            return "z.number()" + (".int()" if kind == "integer" else "") + _number_checks(schema)
        if kind == "boolean":
            return "z.boolean()"
        if kind == "null":
            return "z.null()"
        if kind == "array":
            return self._array(schema)
        if kind == "object":
            return self._object(schema)
        return "z.unknown()"

    def _string(self, schema: Mapping[str, Any]) -> str:
        base = _FORMATS.get(schema.get("format", ""), "z.string()")
        checks = ""
        if "minLength" in schema:
            checks += f".min({schema['minLength']})"
        if "maxLength" in schema:
            checks += f".max({schema['maxLength']})"
        if "pattern" in schema:
            translated = ecma_pattern(schema["pattern"])
            if translated is not None:
                checks += f".regex(new RegExp({literal(translated[0])}, {literal(translated[1])}))"
        return base + checks

    def _array(self, schema: Mapping[str, Any]) -> str:
        items = schema.get("items", True)
        if not isinstance(items, list):
            sized = "".join(f".{m}({schema[k]})" for k, m in (("minItems", "min"), ("maxItems", "max")) if k in schema)
            return f"z.array({self.of(items)}){sized}"
        required = schema.get("minItems", len(items))
        elements = [self.of(s) + ("" if i < required else ".optional()") for i, s in enumerate(items)]
        found = f"z.tuple([{', '.join(elements)}])"
        rest = schema.get("additionalItems", True)
        if rest is not False and schema.get("maxItems", len(items) + 1) > len(items):
            found += f".rest({self.of(rest)})"
        return found

    def _object(self, schema: Mapping[str, Any]) -> str:
        extra = schema.get("additionalProperties")
        properties = schema.get("properties", {})
        if not properties and isinstance(extra, dict):
            return f"z.record(z.string(), {self.of(extra)})"
        if not properties and extra is not False and schema.get("maxProperties") != 0:
            return "z.record(z.string(), z.unknown())"
        required = set(schema.get("required", ()))
        outer = self._objects == 0
        self._objects += 1
        try:
            members = [self._property(key, sub, key in required) for key, sub in properties.items()]
        finally:
            self._objects -= 1
        if not members:
            shape = "{}"
        elif outer:  # a component's own keys, one a line
            shape = "{\n" + "".join(f"  {m},\n" for m in members) + "}"
        else:
            shape = "{ " + ", ".join(members) + " }"
        if extra is False or schema.get("maxProperties") == 0:
            return f"z.strictObject({shape})"
        if isinstance(extra, dict):
            return f"z.object({shape}).catchall({self.of(extra)})"
        return f"z.looseObject({shape})"

    def _property(self, key: str, schema: Any, required: bool) -> str:
        before = self._forward
        self._in_property += 1
        try:
            expression = self.of(schema) + ("" if required else ".optional()")
        finally:
            self._in_property -= 1
        if self._forward == before:
            return f"{property_key(key)}: {expression}"
        # a reference into a cycle: a getter (evaluated on first use) with its type stated
        self._forward = before
        stated = f"z.ZodType<{self.types.of(schema)}>"
        stated = stated if required else f"z.ZodOptional<{stated}>"
        return f"get {property_key(key)}(): {stated} {{ return {expression}; }}"

    def inline(self, schema: Any) -> str:
        """The zod expression of ``schema`` on one line (an argument, not a component)."""
        self._objects += 1
        try:
            return self.of(schema)
        finally:
            self._objects -= 1

    def meta_shape(self, schema: Mapping[str, Any], skip: frozenset[str]) -> list[str]:
        """``key: <zod>.optional()`` for each property of a meta schema but ``skip``."""
        properties = schema.get("properties", {})
        return [f"{property_key(k)}: {self.of(s)}.optional()" for k, s in properties.items() if k not in skip]


def _messages(contract: Contract, zod: ZodSchemas) -> list[str]:
    names = zod.names
    client = zod.meta_shape(contract.components[INBOUND_META], _WSKIT_META)
    server = zod.meta_shape(contract.components[OUTBOUND_META], _WSKIT_META)
    out = [
        "// -- messages: WS-Kit's message() and rpc(), named after their types",
        "",
        "/** Meta keys wskit reads from clients besides WS-Kit's timestamp and correlationId. */",
        f"export const {_CLIENT_META} = {{ {', '.join(client)} }};",
        "/** Meta keys wskit adds to what it sends (deliveries on topics carry their position). */",
        f"export const {_SERVER_META} = {{ {', '.join(server)} }};",
        "",
    ]
    payloads = contract.schemas.payloads
    responses = {response: request for request, response in contract.rpcs.items()}
    idents = {t: names.claim(t) for t in sorted({*contract.inbound, *contract.outbound})}
    for type_name in sorted(idents):
        ident = idents[type_name]
        payload = payloads.get(type_name)
        shown = zod.inline(payload) if payload is not None else "undefined"
        if type_name in contract.rpcs:
            response = contract.rpcs[type_name]
            answer = payloads.get(response)
            answered = zod.inline(answer) if answer is not None else "undefined"
            out.append(f"export const {ident} = rpc({literal(type_name)}, {shown}, {literal(response)}, {answered});")
            continue
        if type_name in responses:
            out.append(f"export const {ident} = {idents[responses[type_name]]}.response;")
            continue
        spread = [f"...{_CLIENT_META}"] if type_name in contract.inbound else []
        spread += [f"...{_SERVER_META}"] if type_name in contract.outbound else []
        declared = contract.schemas.meta.get(type_name, {})
        spread += [f"{property_key(k)}: {zod.of(s)}.optional()" for k, s in declared.items()]
        meta = spread[0][3:] if len(spread) == 1 and not declared else "{ " + ", ".join(spread) + " }"
        out.append(f"export const {ident} = message({literal(type_name)}, {shown}, {meta});")
    out += ["", "// -- the framework's messages a WS-Kit client may listen for", ""]
    for frame in contract.frames:
        if frame.inbound or is_reserved_type(frame.type):
            continue  # $ws: and __ frames: WS-Kit's message() refuses the first, its client runs the second
        payload = frame.envelope["properties"].get("payload")
        shown = zod.inline(payload) if payload is not None else "undefined"
        idents[frame.type] = names.claim(frame.type)
        out.append(f"export const {idents[frame.type]} = message({literal(frame.type)}, {shown}, {_SERVER_META});")
    out += ["", "/** Every message above by its type, to look one up from a frame's `type`. */"]
    out.append(f"export const {_MESSAGES} = {{")
    out += [f"  {property_key(t)}: {ident}," for t, ident in idents.items()]
    out.append("} as const;")
    return out


def _union(members: list[str]) -> str:
    unique = list(dict.fromkeys(members))
    if "z.unknown()" in unique:
        return "z.unknown()"
    if len(unique) == 1:
        return unique[0]
    return f"z.union([{', '.join(unique)}])"


def _zod_literal(value: Any) -> str:
    if value is None:
        return "z.null()"
    if isinstance(value, (str, int, float, bool)):
        return f"z.literal({literal(value)})"
    return "z.unknown()"  # an object or array constant: zod has no literal for it; the server checks


def _number_checks(schema: Mapping[str, Any]) -> str:
    checks = ""
    for key, method in (
        ("minimum", "gte"),
        ("maximum", "lte"),
        ("exclusiveMinimum", "gt"),
        ("exclusiveMaximum", "lt"),
        ("multipleOf", "multipleOf"),
    ):
        value = schema.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            checks += f".{method}({literal(value)})"
    return checks


def _tag_of(schema: Mapping[str, Any], key: str) -> bool:
    """Whether the object ``schema`` fixes ``key`` to one value (a discriminated union's tag)."""
    tag = schema.get("properties", {}).get(key, {})
    return key in schema.get("required", ()) and ("const" in tag or len(tag.get("enum", ())) == 1)


def _refs(schema: Any) -> Iterator[str]:
    """Every component ``schema`` refers to."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            yield component_of(schema["$ref"])
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)
