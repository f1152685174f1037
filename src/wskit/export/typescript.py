"""TypeScript declarations of a router's contract: what ``wskit types MODULE:ROUTER`` prints.

Generated in Python from the JSON Schemas the validating backend writes
(:mod:`wskit.schema.jsonschema`), so no Node is needed to generate them. The output is one
module: a type per payload component, the discriminated unions ``InboundMessage`` (what a
client may send) and ``OutboundMessage`` (what the server may send, the framework's frames
included), ``Payloads`` (type -> payload), ``Rpcs`` (request type -> request, response and
response type) and const arrays of the application's type names.

TypeScript cannot state value constraints (lengths, ranges, patterns, formats): they are
written as doc comments on the property, and the zod schemas (:mod:`wskit.export.zod`) check
them. Integers are ``number``, formatted strings ``string``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from wskit.export.frames import INBOUND_META, OUTBOUND_META, REPLY_META, Frame
from wskit.export.tsnames import HEADER, Contract, Identifiers, component_of, literal, property_key

if TYPE_CHECKING:
    from wskit.router import Router

__all__ = ["GENERATED_NAMES", "TsTypes", "component_declarations", "typescript_declarations"]

#: the names the declarations define besides the components (which yield to them)
GENERATED_NAMES: Final = (
    "InboundMessage",
    "OutboundMessage",
    "InboundOf",
    "OutboundOf",
    "Payloads",
    "Rpcs",
    "INBOUND_TYPES",
    "OUTBOUND_TYPES",
    "RPC_TYPES",
)

#: keywords that document a value, shown as doc tags
_DOC_TAGS: Final = (
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "default",
)


def typescript_declarations(router: Router[Any], *, zod: bool = False) -> str:
    """The TypeScript module declaring ``router``'s contract (see the module), or with ``zod``
    the zod schemas WS-Kit's client takes (:func:`wskit.export.zod.zod_schemas`).

    Deterministic: the same router gives the same text. Raises
    :class:`~wskit.schema.jsonschema.SchemaExportError` (a ``UsageError``) for a payload JSON
    Schema cannot state.
    """
    if zod:
        from wskit.export.zod import zod_schemas

        return zod_schemas(router)
    contract = Contract.of(router)
    names = contract.identifiers(GENERATED_NAMES)
    types = TsTypes(names)
    out = [HEADER.format(command="wskit types"), ""]
    out += component_declarations(contract, types)
    out += _frames(contract, types)
    out += _maps(contract, types)
    return "\n".join(out) + "\n"


def component_declarations(contract: Contract, types: TsTypes, *, only: Iterable[str] | None = None) -> list[str]:
    """A declaration per component (or per component in ``only``): the application's payload
    types, then the framework's."""
    wanted = set(contract.components if only is None else only)
    app = sorted(name for name in contract.schemas.components if name in wanted)
    framework = sorted(wanted.intersection(contract.components) - set(contract.schemas.components))
    out = ["// -- payloads", ""]
    for name in app:
        out += [*types.declaration(name, contract.components[name]), ""]
    out += ["// -- the framework's shapes", ""]
    for name in framework:
        out += [*types.declaration(name, contract.components[name]), ""]
    return out


class TsTypes:
    """JSON Schema (draft-07, as the exporter writes it) -> TypeScript type expressions."""

    def __init__(self, names: Identifiers) -> None:
        self.names = names

    def declaration(self, name: str, schema: Mapping[str, Any]) -> list[str]:
        """``export interface`` (an object with fixed keys) or ``export type`` for component ``name``."""
        ident = self.names.component(name)
        lines = _doc(schema.get("description"), [])
        if _is_interface(schema):
            lines.append(f"export interface {ident} {{")
            lines += self._members(schema, "  ")
            lines.append("}")
        else:
            lines.append(f"export type {ident} = {self.of(schema)};")
        return lines

    def of(self, schema: Any) -> str:
        """The TypeScript type of values ``schema`` accepts (as close as TypeScript can say)."""
        if schema is True or schema == {}:
            return "unknown"
        if schema is False:
            return "never"
        if "$ref" in schema:
            return self.names.component(component_of(schema["$ref"]))
        if "const" in schema:
            return _literal_type(schema["const"])
        if "enum" in schema:
            return union(_literal_type(v) for v in schema["enum"])
        parts: list[str] = []
        if "allOf" in schema:
            parts += [self.of(s) for s in schema["allOf"]]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                parts.append(union(self.of(s) for s in schema[key]))
        if _structural(schema):
            parts.append(self._typed(schema))
        return intersection(parts)

    def _typed(self, schema: Mapping[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            return union(self._typed({**schema, "type": k}) for k in kind)
        if kind is None:
            kind = "object" if _has_object_keys(schema) else "array" if "items" in schema else None
        if kind in ("integer", "number"):
            return "number"
        if kind in ("string", "boolean", "null"):
            return str(kind)
        if kind == "array":
            return self._array(schema)
        if kind == "object":
            return self._object(schema)
        return "unknown"

    def _array(self, schema: Mapping[str, Any]) -> str:
        items = schema.get("items", True)
        if not isinstance(items, list):
            return f"{parenthesized(self.of(items))}[]"
        required = schema.get("minItems", len(items))
        elements = [self.of(s) + ("" if i < required else "?") for i, s in enumerate(items)]
        rest = schema.get("additionalItems", True)
        if rest is not False and schema.get("maxItems", len(items) + 1) > len(items):
            elements.append(f"...{parenthesized(self.of(rest))}[]")
        return f"[{', '.join(elements)}]"

    def _object(self, schema: Mapping[str, Any]) -> str:
        extra = schema.get("additionalProperties")
        if not schema.get("properties"):
            if extra is False or schema.get("maxProperties") == 0:
                return "Record<string, never>"
            patterns = list(schema.get("patternProperties", {}).values())
            values = [extra] if isinstance(extra, dict) else []
            return f"Record<string, {union(self.of(s) for s in values + patterns) if values + patterns else 'unknown'}>"
        return "{ " + " ".join(self._members(schema, "")) + " }"

    def _members(self, schema: Mapping[str, Any], indent: str) -> list[str]:
        """The lines of an object type's members; doc comments only when indented (multi-line)."""
        required = set(schema.get("required", ()))
        out: list[str] = []
        shown: list[str] = []
        for key, sub in schema.get("properties", {}).items():
            value = self.of(sub)
            shown.append(value if key in required else f"{value} | undefined")
            if indent:
                out += [indent + line for line in _doc(_description(sub), _tags(sub))]
            out.append(f"{indent}{property_key(key)}{'' if key in required else '?'}: {value};")
        extra = schema.get("additionalProperties")
        if extra is None or extra is True or isinstance(extra, dict):
            # the index signature must admit every declared property's type
            values = union([self.of(extra if isinstance(extra, dict) else True), *shown])
            out.append(f"{indent}[key: string]: {values};")
        return out


def _frames(contract: Contract, types: TsTypes) -> list[str]:
    inbound = [_app_frame(t, contract, types, inbound=True) for t in contract.inbound]
    outbound = [_app_frame(t, contract, types, inbound=False) for t in contract.outbound]
    for frame in contract.frames:
        (inbound if frame.inbound else outbound).append(_framework_frame(frame, types))
    return [
        "// -- frames",
        "",
        "/** Every frame a client may send: the application's messages, then the framework's. */",
        f"export type InboundMessage ={_union_lines(inbound)};",
        "",
        "/** Every frame the server may send: the application's messages, then the framework's. */",
        f"export type OutboundMessage ={_union_lines(outbound)};",
        "",
        "/** The inbound frame of type `T`. */",
        'export type InboundOf<T extends InboundMessage["type"]> = Extract<InboundMessage, { type: T }>;',
        "/** The outbound frame of type `T`. */",
        'export type OutboundOf<T extends OutboundMessage["type"]> = Extract<OutboundMessage, { type: T }>;',
        "",
    ]


def _app_frame(type_name: str, contract: Contract, types: TsTypes, *, inbound: bool) -> str:
    names = types.names
    extra = contract.schemas.meta.get(type_name, {})
    declared = [f"{property_key(k)}?: {types.of(s)};" for k, s in extra.items()]
    if inbound:
        correlated = type_name in contract.rpcs
        declared += ["correlationId: string;"] if correlated else []
        own = ["{ " + " ".join(declared) + " }"] if declared else []
        meta_type = intersection([names.component(INBOUND_META), *own])
        meta = f"meta{'' if correlated else '?'}: {meta_type}"
    else:
        reply = type_name in contract.rpcs.values()
        own = ["{ " + " ".join(declared) + " }"] if declared else []
        meta_type = intersection([names.component(REPLY_META if reply else OUTBOUND_META), *own])
        meta = f"meta{'' if reply else '?'}: {meta_type}"
    payload = contract.schemas.payloads.get(type_name)
    parts = [f"type: {literal(type_name)}", meta]
    if payload is not None:
        parts.append(f"payload: {types.of(payload)}")
    elif inbound:
        parts.append("payload?: Record<string, never>")  # a client may send {} for "no payload"
    return "{ " + "; ".join(parts) + " }"


def _framework_frame(frame: Frame, types: TsTypes) -> str:
    envelope = frame.envelope
    required = set(envelope["required"])
    parts = []
    for key, schema in envelope["properties"].items():
        parts.append(f"{key}{'' if key in required else '?'}: {types.of(schema)}")
    return "{ " + "; ".join(parts) + " }"


def _maps(contract: Contract, types: TsTypes) -> list[str]:
    payloads = contract.schemas.payloads
    out = ["/** The payload of each application message type (`undefined`: declared without payload). */"]
    out.append("export interface Payloads {")
    for type_name, schema in payloads.items():
        out.append(f"  {property_key(type_name)}: {types.of(schema) if schema is not None else 'undefined'};")
    out += ["}", "", "/** Each RPC: its request payload, its response payload and the response's type. */"]
    out.append("export interface Rpcs {")
    for request, response in contract.rpcs.items():
        out.append(
            f"  {property_key(request)}: {{ request: Payloads[{literal(request)}]; "
            f"response: Payloads[{literal(response)}]; responseType: {literal(response)} }};"
        )
    out += ["}", ""]
    for name, values, what in (
        ("INBOUND_TYPES", contract.inbound, "The application's message types a client sends."),
        ("OUTBOUND_TYPES", contract.outbound, "The application's message types the server sends."),
        ("RPC_TYPES", list(contract.rpcs), "The request types of the application's RPCs."),
    ):
        shown = ", ".join(literal(v) for v in values)
        out += [f"/** {what} */", f"export const {name} = [{shown}] as const;"]
    return out


# -- helpers --------------------------------------------------------------------------------


def union(members: Any) -> str:
    """``A | B``: members flattened, duplicates dropped, ``unknown`` absorbing, ``never`` vanishing."""
    found: list[str] = []
    for member in members:
        for part in _split(member, "|"):
            if part == "unknown":
                return "unknown"
            if part != "never" and part not in found:
                found.append(part)
    if "string" in found and any(part.startswith('"') for part in found):
        # `"A" | string` is `string` to TypeScript: keep the literals (and their completion)
        found[found.index("string")] = "(string & {})"
    return " | ".join(found) if found else "never"


def intersection(members: list[str]) -> str:
    """``A & B`` (unions parenthesized); ``unknown`` members vanish."""
    found = [m for m in members if m != "unknown"]
    if not found:
        return "unknown"
    if len(found) == 1:
        return found[0]
    return " & ".join(f"({m})" if _split(m, "|") != [m] else m for m in found)


def parenthesized(type_text: str) -> str:
    """``type_text`` safe before ``[]``."""
    if _split(type_text, "|") != [type_text] or _split(type_text, "&") != [type_text]:
        return f"({type_text})"
    return type_text


def _split(text: str, operator: str) -> list[str]:
    """``text`` split at top-level ``operator`` (outside brackets and string literals)."""
    parts, depth, quote, start = [], 0, "", 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char == operator and depth == 0 and text[i - 1 : i + 2] == f" {operator} ":
            parts.append(text[start : i - 1])
            start = i + 2
        i += 1
    parts.append(text[start:])
    return parts


def _literal_type(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + " ".join(f"{property_key(k)}: {_literal_type(v)};" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_literal_type(v) for v in value) + "]"
    return literal(value)


def _structural(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` says something about the value's type beyond its combinators."""
    return "type" in schema or _has_object_keys(schema) or "items" in schema


def _has_object_keys(schema: Mapping[str, Any]) -> bool:
    return any(k in schema for k in ("properties", "additionalProperties", "patternProperties"))


def _is_interface(schema: Mapping[str, Any]) -> bool:
    combined = any(k in schema for k in ("$ref", "allOf", "anyOf", "oneOf", "enum", "const"))
    return bool(schema.get("properties")) and schema.get("type", "object") == "object" and not combined


def _description(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    found = schema.get("description")
    return found if isinstance(found, str) else None


def _tags(schema: Any) -> list[str]:
    """Doc tags for the value constraints of ``schema`` (and of its non-null branch)."""
    if not isinstance(schema, dict):
        return []
    branches = [schema]
    for key in ("anyOf", "oneOf"):
        branches += [s for s in schema.get(key, ()) if isinstance(s, dict) and s.get("type") != "null"]
    tags: list[str] = []
    for branch in branches:
        if branch.get("type") == "integer":
            tags.append("@integer")
        shown = {key: branch[key] if key == "pattern" else literal(branch[key]) for key in _DOC_TAGS if key in branch}
        tags += [f"@{key} {value}" for key, value in shown.items()]
    return list(dict.fromkeys(tags))


def _doc(description: str | None, tags: list[str]) -> list[str]:
    lines = [*(description.strip().splitlines() if description else []), *tags]
    lines = [line.replace("*/", "*\\/") for line in lines]
    if not lines:
        return []
    if len(lines) == 1:
        return [f"/** {lines[0]} */"]
    return ["/**", *(f" * {line}".rstrip() for line in lines), " */"]


def _union_lines(members: list[str]) -> str:
    if not members:
        return " never"
    return "".join(f"\n  | {m}" for m in members)
