"""Generating TypeScript and zod from JSON Schema, no Node involved: each construct the
exporter writes becomes the expected type or schema, names become identifiers without
collisions, the module lists every frame both ways and the RPCs, and the output is
deterministic. (tsc and Bun check the output in test_typescript_tsc.py and _wskit.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from examples.chat.app import ChatLimits, create_router
from pydantic import BaseModel
from tests.export.apps import full_router

from wskit import Router, message
from wskit.export.ecma_regex import ecma_pattern
from wskit.export.tsnames import RESERVED, Identifiers, identifier
from wskit.export.typescript import TsTypes, typescript_declarations
from wskit.export.zod import ZodSchemas, zod_schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


COMPONENTS: dict[str, dict[str, Any]] = {
    "Inner": {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "required": ["x"],
        "additionalProperties": False,
    },
    "Cat": {
        "type": "object",
        "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
        "required": ["kind", "lives"],
        "additionalProperties": False,
    },
    "Dog": {
        "type": "object",
        "properties": {"kind": {"enum": ["dog"]}, "good": {"type": "boolean"}},
        "required": ["kind", "good"],
        "additionalProperties": False,
    },
    "Node": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": _ref("Node")}},
        "required": ["name"],
        "additionalProperties": False,
    },
    "Page[User]": {"type": "object", "properties": {}, "additionalProperties": False},
}

#: (JSON Schema, TypeScript, zod)
CONSTRUCTS: list[tuple[dict[str, Any], str, str]] = [
    ({"type": "string"}, "string", "z.string()"),
    ({"type": "string", "format": "date-time"}, "string", "z.iso.datetime({ offset: true })"),
    ({"type": "string", "format": "uuid"}, "string", "z.guid()"),
    ({"type": "string", "format": "email"}, "string", "z.string()"),
    (
        {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
        "string",
        'z.string().min(1).max(5).regex(new RegExp("^[a-z]+$", "u"))',
    ),
    ({"type": "integer"}, "number", "z.number().int()"),
    ({"type": "integer", "minimum": 0, "maximum": 9}, "number", "z.number().int().gte(0).lte(9)"),
    ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, "number", "z.number().gt(0).lt(1)"),
    ({"type": "number", "multipleOf": 0.5}, "number", "z.number().multipleOf(0.5)"),
    ({"type": "boolean"}, "boolean", "z.boolean()"),
    ({"type": "null"}, "null", "z.null()"),
    ({"const": "cat"}, '"cat"', 'z.literal("cat")'),
    ({"const": 1}, "1", "z.literal(1)"),
    ({"const": None}, "null", "z.null()"),
    ({"enum": ["red", "blue"]}, '"red" | "blue"', 'z.enum(["red", "blue"])'),
    ({"enum": [1, "a", None]}, '1 | "a" | null', 'z.union([z.literal(1), z.literal("a"), z.null()])'),
    ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string | null", "z.string().nullable()"),
    ({"type": ["integer", "null"], "minimum": 0}, "number | null", "z.number().int().gte(0).nullable()"),
    (
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "string | number",
        "z.union([z.string(), z.number().int()])",
    ),
    (
        {"oneOf": [_ref("Cat"), _ref("Dog")], "discriminator": "kind"},
        "Cat | Dog",
        'z.discriminatedUnion("kind", [Cat, Dog])',
    ),
    ({"anyOf": [_ref("Cat"), _ref("Inner")]}, "Cat | Inner", "z.union([Cat, Inner])"),
    ({"anyOf": [{"enum": ["A"]}, {"type": "string"}]}, '"A" | (string & {})', 'z.union([z.literal("A"), z.string()])'),
    ({"type": "array", "items": {"type": "string"}}, "string[]", "z.array(z.string())"),
    (
        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "minItems": 1, "maxItems": 3},
        "(string | null)[]",
        "z.array(z.string().nullable()).min(1).max(3)",
    ),
    (
        {"type": "array", "items": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2},
        "[number, string]",
        "z.tuple([z.number().int(), z.string()])",
    ),
    (
        {"type": "array", "items": [{"type": "integer"}], "additionalItems": {"type": "string"}, "minItems": 1},
        "[number, ...string[]]",
        "z.tuple([z.number().int()]).rest(z.string())",
    ),
    (
        {"type": "array", "items": [{"type": "integer"}, {"type": "string"}], "minItems": 1, "additionalItems": False},
        "[number, string?]",
        "z.tuple([z.number().int(), z.string().optional()])",
    ),
    (
        {"type": "object", "additionalProperties": {"type": "integer"}},
        "Record<string, number>",
        "z.record(z.string(), z.number().int())",
    ),
    ({"type": "object", "additionalProperties": _ref("Inner")}, "Record<string, Inner>", "z.record(z.string(), Inner)"),
    ({"type": "object"}, "Record<string, unknown>", "z.record(z.string(), z.unknown())"),
    (
        {"type": "object", "properties": {}, "additionalProperties": False},
        "Record<string, never>",
        "z.strictObject({})",
    ),
    (
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b-c": {"type": "integer"}},
            "required": ["a"],
            "additionalProperties": False,
        },
        '{ a: string; "b-c"?: number; }',
        'z.strictObject({\n  a: z.string(),\n  "b-c": z.number().int().optional(),\n})',
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        "{ a: string; [key: string]: unknown; }",
        "z.looseObject({\n  a: z.string(),\n})",
    ),
    (_ref("Page[User]"), "Page_User_", "Page_User_"),
    ({"allOf": [_ref("Inner"), {"description": "annotated"}]}, "Inner", "Inner"),
    ({}, "unknown", "z.unknown()"),
]


def _converters() -> tuple[TsTypes, ZodSchemas]:
    names = Identifiers(["InboundMessage"])
    for name in sorted(COMPONENTS):
        names.component(name)
    types = TsTypes(names)
    zod = ZodSchemas(COMPONENTS, names, types)
    for name in zod.order(COMPONENTS):
        zod.const(name)
    return types, zod


@pytest.mark.parametrize(("schema", "ts", "zod"), CONSTRUCTS, ids=[c[1] for c in CONSTRUCTS])
def test_each_construct_becomes_its_typescript_type(schema: dict[str, Any], ts: str, zod: str) -> None:
    """JSON Schema -> TypeScript (constraints are not types: they become doc tags)."""
    assert _converters()[0].of(schema) == ts


@pytest.mark.parametrize(("schema", "ts", "zod"), CONSTRUCTS, ids=[c[1] for c in CONSTRUCTS])
def test_each_construct_becomes_its_zod_schema(schema: dict[str, Any], ts: str, zod: str) -> None:
    """JSON Schema -> zod, constraints included."""
    assert _converters()[1].of(schema) == zod


def test_a_recursive_model_is_a_getter_with_its_type_stated() -> None:
    """zod 4 infers a recursive object from a getter whose type is written out."""
    names = Identifiers()
    zod = ZodSchemas(COMPONENTS, names, TsTypes(names))
    assert zod.const("Node") == [
        "export const Node = z.strictObject({\n"
        "  name: z.string(),\n"
        "  get children(): z.ZodOptional<z.ZodType<Node[]>> { return z.array(Node).optional(); },\n"
        "});"
    ]


def test_a_reference_back_outside_an_object_is_lazy() -> None:
    """A cycle through no object property: z.lazy, and the const's type stated."""
    components = {"List": {"type": "array", "items": {"anyOf": [{"type": "string"}, _ref("List")]}}}
    names = Identifiers()
    zod = ZodSchemas(components, names, TsTypes(names))
    assert zod.const("List") == [
        "export const List: z.ZodType<List> = z.array(z.union([z.string(), z.lazy(() => List)]));"
    ]


def test_components_are_ordered_after_what_they_use() -> None:
    """A schema is defined after the schemas it refers to; a cycle does not loop."""
    components = {"A": {"type": "array", "items": _ref("B")}, "B": {"type": "array", "items": _ref("C")}, **COMPONENTS}
    components["C"] = {"anyOf": [_ref("Node"), {"type": "null"}]}
    order = ZodSchemas(components, Identifiers(), TsTypes(Identifiers())).order(["A"])
    assert order == ["Node", "C", "B", "A"]


def test_documentation_tags_carry_the_constraints() -> None:
    """A property's description and constraints are its doc comment."""
    types, _ = _converters()
    schema = {
        "type": "object",
        "properties": {
            "n": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "description": "How many */ at most"}
        },
        "additionalProperties": False,
    }
    assert types.declaration("Counted", schema) == [
        "export interface Counted {",
        "  /**",
        "   * How many *\\/ at most",
        "   * @integer",
        "   * @minimum 1",
        "   */",
        "  n?: number | null;",
        "}",
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("User", "User"),
        ("Page[User]", "Page_User_"),
        ("app.models.User", "app_models_User"),
        ("1st", "_1st"),
        ("string", "string_"),
        ("Record", "Record_"),
        ("z", "z_"),
        ("board:drawn/v1", "board_drawn_v1"),
    ],
)
def test_names_become_identifiers(name: str, expected: str) -> None:
    """Characters identifiers cannot hold become _, reserved words and shadowed globals get _."""
    assert identifier(name, set()) == expected


def test_identifiers_never_collide() -> None:
    """Names that mangle alike get _2, _3, in the order they are claimed."""
    used: set[str] = set()
    assert [identifier(n, used) for n in ("a.b", "a_b", "a:b", "a_b_2")] == ["a_b", "a_b_2", "a_b_3", "a_b_2_2"]
    assert {"Array", "Record", "unknown", "message", "rpc"} <= RESERVED


class InboundMessage(BaseModel):
    """A model named like a generated type: the model's name yields."""

    text: str


def test_a_model_named_like_a_generated_type_is_renamed() -> None:
    """The generated InboundMessage union keeps its name; the model becomes InboundMessage_2."""
    router: Router[Any] = Router()
    router.emits(message("NOTE", InboundMessage))
    text = typescript_declarations(router)
    assert "export interface InboundMessage_2 {" in text
    assert '{ type: "NOTE"; meta?: WskitOutboundMeta; payload: InboundMessage_2 }' in text
    assert text.count("export type InboundMessage =") == 1


def test_the_chat_module_lists_frames_rpcs_and_types() -> None:
    """Both unions (framework frames included), the RPC map and the type arrays."""
    text = typescript_declarations(create_router(ChatLimits(recoverable=True)))
    assert text.startswith("// Generated by wskit from the router's declarations (wskit types). Do not edit")
    assert '| { type: "SAY"; meta?: WskitInboundMeta; payload: SayPayload }' in text
    assert '| { type: "HISTORY"; meta: WskitInboundMeta & { correlationId: string; }; payload: HistoryRequest }' in text
    assert '| { type: "HISTORY_RESULT"; meta: WskitReplyMeta; payload: HistoryResult }' in text
    assert '| { type: "RPC_ERROR"; meta: WskitReplyMeta; payload: WskitErrorPayload }' in text
    for frame in ("ERROR", "SERVER_SHUTDOWN", "$ws:subscribe", "$ws:subscribed", "$ws:rpc-progress", "__heartbeat_ack"):
        assert f'{{ type: "{frame}"' in text
    assert (
        '  HISTORY: { request: Payloads["HISTORY"]; response: Payloads["HISTORY_RESULT"]; '
        'responseType: "HISTORY_RESULT" };' in text
    )
    assert 'export const RPC_TYPES = ["HISTORY", "WHO"] as const;' in text
    assert 'export const INBOUND_TYPES = ["HISTORY", "JOIN", "LEAVE", "SAY", "WHO"] as const;' in text


def test_declared_meta_and_payloadless_messages() -> None:
    """A message's declared meta keys join the meta type; no payload: {} from clients, none sent."""
    text = typescript_declarations(full_router())
    assert '| { type: "board:drawn/v1"; meta?: WskitInboundMeta & { replay?: boolean; }; payload: Draw }' in text
    assert '| { type: "PING"; meta?: WskitInboundMeta; payload?: Record<string, never> }' in text
    assert '| { type: "CLEARED"; meta: WskitReplyMeta }' in text
    assert '  "board:drawn/v1": Draw;' in text and "  PING: undefined;" in text


def test_the_zod_module_declares_ws_kit_messages() -> None:
    """message() per event with the meta keys wskit reads or adds, rpc() per RPC, its response
    taken from the rpc, the framework's ERROR, RPC_ERROR and SERVER_SHUTDOWN, and MESSAGES."""
    text = zod_schemas(full_router())
    assert text.splitlines()[1] == 'import { message, rpc, z } from "@ws-kit/zod";'
    assert 'export const STATS = rpc("STATS", Lookup, "STATS_RESULT", Board);' in text
    assert "export const STATS_RESULT = STATS.response;" in text
    assert 'export const CLEAR = rpc("CLEAR", undefined, "CLEARED", undefined);' in text
    assert 'export const PING = message("PING", undefined, CLIENT_META);' in text
    assert 'export const TICK = message("TICK", Tick, SERVER_META);' in text
    assert 'export const NOTE = message("NOTE", Lookup, { ...CLIENT_META, ...SERVER_META });' in text
    assert (
        'export const board_drawn_v1 = message("board:drawn/v1", Draw, '
        "{ ...CLIENT_META, ...SERVER_META, replay: z.boolean().optional() });"
    ) in text
    assert 'export const RPC_ERROR = message("RPC_ERROR", WskitErrorPayload, SERVER_META);' in text
    assert '  "board:drawn/v1": board_drawn_v1,' in text
    assert "$ws:" not in text.split("export const MESSAGES")[1]  # WS-Kit's message() refuses $ws: types
    assert 'brush: z.discriminatedUnion("kind", [Pen, Spray]),' in text


def test_the_cli_entry_point_gives_either_module() -> None:
    """typescript_declarations(zod=True), which `wskit types --zod` calls, is the zod module."""
    router = full_router()
    assert typescript_declarations(router, zod=True) == zod_schemas(router)
    assert typescript_declarations(router) != zod_schemas(router)


def test_the_output_is_deterministic() -> None:
    """Two routers declared alike give the same text, byte for byte."""
    assert typescript_declarations(full_router()) == typescript_declarations(full_router())
    assert zod_schemas(create_router()) == zod_schemas(create_router())


#: Python pattern -> (JavaScript source, flags)
PATTERNS: list[tuple[str, tuple[str, str]]] = [
    (r"^[a-z0-9][a-z0-9_-]{0,31}$", (r"^[a-z0-9][a-z0-9_-]{0,31}$", "u")),
    (r"^\w+$", (r"^[\p{L}\p{N}\p{M}\p{Pc}\u200C\u200D]+$", "u")),
    (r"^[\w.-]+$", (r"^[\p{L}\p{N}\p{M}\p{Pc}\u200C\u200D.-]+$", "u")),
    (r"\d{2,}\D", (r"\p{Nd}{2,}\P{Nd}", "u")),
    (r"\Aab\Z", ("^ab$", "u")),
    (r"(?P<y>\d)(?P=y)", (r"(?<y>\p{Nd})\k<y>", "u")),
    (r"a{,3}", ("a{0,3}", "u")),
    (r"a{b}", (r"a\{b\}", "u")),
    (r"[]a]", (r"[\]a]", "u")),
    (r"\-\#\:", ("-#:", "u")),
    (r"[\-a]", (r"[\-a]", "u")),
    (r"(?i)abc", ("abc", "iu")),
    (r"(?a)\w", (r"\w", "u")),
    (r"\x41\u00e9\U0001F600\012", (r"\u{41}\u{e9}\u{1f600}\u{a}", "u")),
    (r"(?:a|b)(?=c)(?!d)(?<=e)(?<!f)", (r"(?:a|b)(?=c)(?!d)(?<=e)(?<!f)", "u")),
    (r"a(?#note)b", ("ab", "u")),
]


@pytest.mark.parametrize(("python", "ecma"), PATTERNS)
def test_python_patterns_become_javascript_ones(python: str, ecma: tuple[str, str]) -> None:
    """Unicode classes, Python-only syntax and escapes the u flag refuses are translated."""
    assert ecma_pattern(python) == ecma


@pytest.mark.parametrize("python", [r"(?x)a b", r"a(?i:b)", r"(?>a)", r"a*+", r"\p{L}", r"[\W]", r"\N{DASH}", "[a"])
def test_patterns_javascript_cannot_state_are_left_to_the_server(python: str) -> None:
    """None: the zod schema then omits the check (looser than the server, never stricter)."""
    assert ecma_pattern(python) is None
