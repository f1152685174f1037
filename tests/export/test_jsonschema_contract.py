"""What the JSON Schema export promises beyond the shared cases: names, meta, the router's
view, and a clear refusal of what JSON Schema cannot state."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, create_model, field_validator
from tests.export.support import validator

from wskit import Context, Router, message, rpc
from wskit.schema.jsonschema import SchemaExportError, json_schemas, payload_schemas


def _upper(value: str) -> str:
    if not value.isupper():
        raise ValueError("upper case only")
    return value


class Checked(BaseModel):
    code: Annotated[str, AfterValidator(_upper)]


class Stated(BaseModel):
    """The chat demo's way: a validator function with the rule restated for the contract."""

    code: Annotated[
        Annotated[str, AfterValidator(_upper), WithJsonSchema({"type": "string", "pattern": "^[A-Z]+$"})],
        Field(max_length=4),
    ]


class Normalised(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def strip(cls, value: str) -> str:
        return value.strip()


class Opaque:
    pass


class WithOpaque(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque


class StructWithOpaque(msgspec.Struct):
    thing: Opaque


class Loose(BaseModel):
    """A model that allows extras: the server still refuses them, so the contract does too."""

    model_config = ConfigDict(extra="allow")
    a: int


def test_a_validator_function_is_refused_with_type_field_and_reason() -> None:
    """An AfterValidator without a stated schema names the message type, the field and the function."""
    with pytest.raises(SchemaExportError) as caught:
        json_schemas([message("CHECKED", Checked)])
    error = caught.value
    assert (error.message_type, error.field) == ("CHECKED", "Checked.code")
    assert "_upper" in error.reason and "WithJsonSchema" in error.reason
    assert "'CHECKED'" in str(error) and "Checked.code" in str(error)


def test_a_field_validator_is_refused() -> None:
    """@field_validator is a Python function too: the field is named."""
    with pytest.raises(SchemaExportError) as caught:
        json_schemas([message("NORM", Normalised)])
    assert caught.value.field == "Normalised.name"
    assert "Normalised.strip" in caught.value.reason


def test_a_type_without_json_schema_is_refused() -> None:
    """An arbitrary class (pydantic) names the field and the class."""
    with pytest.raises(SchemaExportError) as caught:
        json_schemas([message("OPAQUE", WithOpaque)])
    assert caught.value.field == "WithOpaque.thing"
    assert "Opaque has no JSON Schema" in caught.value.reason


def test_a_type_without_json_schema_is_refused_by_msgspec() -> None:
    """The msgspec export names the field too."""
    with pytest.raises(SchemaExportError) as caught:
        json_schemas([message("OPAQUE", StructWithOpaque)], backend="msgspec")
    assert (caught.value.message_type, caught.value.field) == ("OPAQUE", "StructWithOpaque.thing")


def test_a_stated_schema_keeps_the_constraints_beside_it() -> None:
    """WithJsonSchema beside Field(max_length=...): both the pattern and the length are exported
    (pydantic alone drops the length, which the validator still enforces)."""
    schemas = json_schemas([message("STATED", Stated)])
    code = schemas.components["Stated"]["properties"]["code"]
    assert code["pattern"] == "^[A-Z]+$"
    assert code["maxLength"] == 4
    check = validator(schemas.payloads["STATED"] or {}, schemas.components)
    assert check.is_valid({"code": "ABCD"})
    assert not check.is_valid({"code": "ABCDE"})


def test_extras_allowed_by_the_model_are_still_refused() -> None:
    """extra="allow" on the model: the decoder forbids unknown keys, so the schema does."""
    schemas = json_schemas([message("LOOSE", Loose)])
    assert schemas.components["Loose"]["additionalProperties"] is False


def test_a_keyword_draft_07_lacks_is_refused() -> None:
    """A stated schema using a 2020-12 keyword cannot be exported as draft-07."""
    stated = WithJsonSchema({"type": "object", "unevaluatedProperties": False})
    model: Any = create_model("Odd", value=(Annotated[dict[str, int], stated], ...))
    with pytest.raises(SchemaExportError, match="unevaluatedProperties"):
        json_schemas([message("ODD", model)])


def test_an_unknown_backend_is_refused() -> None:
    """Only pydantic and msgspec know how to write JSON Schema."""
    with pytest.raises(SchemaExportError, match="'custom' backend"):
        json_schemas([message("A", Loose)], backend="custom")


def test_models_of_one_name_in_two_modules_get_two_components() -> None:
    """Two classes named Item: two components, each message pointing at its own."""
    one: Any = create_model("Item", __module__="shop.one", a=(int, ...))
    two: Any = create_model("Item", __module__="shop.two", b=(str, ...))
    schemas = json_schemas([message("ONE", one), message("TWO", two)])
    assert len(schemas.components) == 2
    assert schemas.payloads["ONE"] != schemas.payloads["TWO"]
    first = validator(schemas.payloads["ONE"] or {}, schemas.components)
    assert first.is_valid({"a": 1}) and not first.is_valid({"b": "x"})


def test_struct_names_of_one_name_in_two_modules_get_two_components() -> None:
    """The same for msgspec Structs."""
    one = msgspec.defstruct("Item", [("a", int)], module="shop.one")
    two = msgspec.defstruct("Item", [("b", str)], module="shop.two")
    schemas = json_schemas([message("ONE", one), message("TWO", two)], backend="msgspec")
    assert len(schemas.components) == 2
    assert schemas.payloads["ONE"] != schemas.payloads["TWO"]


def test_meta_keys_and_payloadless_messages() -> None:
    """Declared meta keys get schemas; a message without payload has None."""
    schemas = json_schemas([message("PING", meta={"room": str}), message("A", Loose)])
    assert schemas.payloads["PING"] is None
    assert schemas.meta == {"PING": {"room": {"type": "string"}}}
    assert list(schemas.payloads) == ["A", "PING"]


class Tick(msgspec.Struct):
    n: int


class Ask(msgspec.Struct):
    q: str


class Answer(msgspec.Struct):
    a: str


def test_payload_schemas_covers_the_routers_messages_with_its_backend() -> None:
    """Routed types, RPC responses and emitted messages, made by msgspec for a Struct router."""
    router: Router[Any] = Router()

    @router.rpc(rpc("ASK", Ask, "ANSWER", Answer))
    async def ask(ctx: Context[Ask]) -> None:
        await ctx.reply(Answer(a=ctx.payload.q))

    router.emits(message("TICK", Tick), topics=["ticks"])
    schemas = payload_schemas(router)
    assert list(schemas.payloads) == ["ANSWER", "ASK", "TICK"]
    # msgspec writes no "title" on properties; pydantic would
    assert schemas.components["Tick"]["properties"] == {"n": {"type": "integer"}}


class Dangling(BaseModel):
    ref: Missing  # type: ignore[name-defined]  # noqa: F821 - never defined, on purpose


def test_a_model_pydantic_could_not_build_is_refused() -> None:
    """A forward reference pydantic cannot resolve: a clear error, not pydantic's own."""
    with pytest.raises(SchemaExportError, match="model_rebuild") as caught:
        json_schemas([message("DANGLING", Dangling)])
    assert caught.value.field == "Dangling"
