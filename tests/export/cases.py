"""The shared cases of the JSON Schema export: one payload shape, declared for each backend,
and sample payloads (JSON-able) that the decoder must accept or reject.

Rejected samples avoid pydantic's lax conversions (``"3"`` or ``3.0`` for an ``int``): the
schema states the canonical form, which is stricter than pydantic's lax decode there, on
purpose (wskit.schema.jsonschema).
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from pydantic import AwareDatetime, BaseModel, Field


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


# -- pydantic -----------------------------------------------------------------------------


class PInner(BaseModel):
    x: int


class PNested(BaseModel):
    inner: PInner


class PLists(BaseModel):
    items: list[PInner]
    tags: list[str] = []


class PDicts(BaseModel):
    counts: dict[str, int]
    byname: dict[str, PInner] = {}


class POptional(BaseModel):
    note: str | None = None
    score: int | None


class PEnum(BaseModel):
    color: Color


class PLiteral(BaseModel):
    kind: Literal["a", "b"]
    version: Literal[1] = 1


class PConstrained(BaseModel):
    name: str = Field(min_length=1, max_length=5, pattern=r"^[a-z]+$")
    level: int = Field(ge=0, le=10)
    ratio: float = Field(gt=0, lt=1)
    limit: int = Field(default=50, ge=1)


class PFormats(BaseModel):
    at: AwareDatetime
    id: uuid.UUID


class PNode(BaseModel):
    name: str
    children: list[PNode] = []


class PTuple(BaseModel):
    pair: tuple[int, str]


class PCat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=0, le=9)


class PDog(BaseModel):
    kind: Literal["dog"]
    good: bool


class PUnion(BaseModel):
    pet: Annotated[PCat | PDog, Field(discriminator="kind")]


@dataclasses.dataclass
class Point:
    """A dataclass: both backends accept it, and both must close it to unknown keys."""

    x: int
    y: int = 0


class PDataclass(BaseModel):
    at: Point


# -- msgspec ------------------------------------------------------------------------------


class MInner(msgspec.Struct):
    x: int


class MNested(msgspec.Struct):
    inner: MInner


class MLists(msgspec.Struct):
    items: list[MInner]
    tags: list[str] = []


class MDicts(msgspec.Struct):
    counts: dict[str, int]
    byname: dict[str, MInner] = {}


class MOptional(msgspec.Struct):
    score: int | None
    note: str | None = None


class MEnum(msgspec.Struct):
    color: Color


class MLiteral(msgspec.Struct):
    kind: Literal["a", "b"]
    version: Literal[1] = 1


class MConstrained(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=5, pattern=r"^[a-z]+$")]
    level: Annotated[int, msgspec.Meta(ge=0, le=10)]
    ratio: Annotated[float, msgspec.Meta(gt=0, lt=1)]
    limit: Annotated[int, msgspec.Meta(ge=1)] = 50


class MFormats(msgspec.Struct):
    at: Annotated[datetime, msgspec.Meta(tz=True)]
    id: uuid.UUID


class MNode(msgspec.Struct):
    name: str
    children: list[MNode] = []


class MTuple(msgspec.Struct):
    pair: tuple[int, str]


class MDataclass(msgspec.Struct):
    at: Point


class MCat(msgspec.Struct, tag_field="kind", tag="cat"):
    lives: Annotated[int, msgspec.Meta(ge=0, le=9)]


class MDog(msgspec.Struct, tag_field="kind", tag="dog"):
    good: bool


class MUnion(msgspec.Struct):
    pet: MCat | MDog


@dataclasses.dataclass(frozen=True)
class Case:
    """One payload shape: its model per backend, payloads both must accept and reject."""

    name: str
    models: dict[str, type]
    accepted: list[Any]
    rejected: list[Any]


CASES = [
    Case(
        "nested",
        {"pydantic": PNested, "msgspec": MNested},
        [{"inner": {"x": 1}}],
        [{"inner": {"x": 1, "y": 2}}, {"inner": {}}, {"inner": {"x": "a"}}, {"inner": {"x": 1}, "extra": 0}, {}],
    ),
    Case(
        "lists",
        {"pydantic": PLists, "msgspec": MLists},
        [{"items": []}, {"items": [{"x": 1}, {"x": 2}], "tags": ["a"]}],
        [{"items": [{"x": 1, "z": 0}]}, {"items": "no"}, {"items": [1]}, {"items": [], "tags": [1]}],
    ),
    Case(
        "dict",
        {"pydantic": PDicts, "msgspec": MDicts},
        [{"counts": {}}, {"counts": {"a": 1}, "byname": {"k": {"x": 1}}}],
        [{"counts": {"a": "x"}}, {"counts": {}, "byname": {"k": {"x": 1, "z": 2}}}, {"counts": []}],
    ),
    Case(
        "optional",
        {"pydantic": POptional, "msgspec": MOptional},
        [{"score": None}, {"score": 1, "note": None}, {"score": 2, "note": "n"}],
        [{}, {"score": "x"}, {"score": 1, "note": 3}],
    ),
    Case(
        "enum",
        {"pydantic": PEnum, "msgspec": MEnum},
        [{"color": "red"}, {"color": "blue"}],
        [{"color": "green"}, {"color": 1}, {"color": "RED"}],
    ),
    Case(
        "literal",
        {"pydantic": PLiteral, "msgspec": MLiteral},
        [{"kind": "a"}, {"kind": "b", "version": 1}],
        [{"kind": "c"}, {"kind": "a", "version": 2}, {"kind": None}],
    ),
    Case(
        "constrained",
        {"pydantic": PConstrained, "msgspec": MConstrained},
        [{"name": "abc", "level": 0, "ratio": 0.5}, {"name": "abcde", "level": 10, "ratio": 0.1, "limit": 1}],
        [
            {"name": "", "level": 0, "ratio": 0.5},
            {"name": "abcdef", "level": 0, "ratio": 0.5},
            {"name": "ABC", "level": 0, "ratio": 0.5},
            {"name": "abc", "level": -1, "ratio": 0.5},
            {"name": "abc", "level": 11, "ratio": 0.5},
            {"name": "abc", "level": 1, "ratio": 0},
            {"name": "abc", "level": 1, "ratio": 1},
            {"name": "abc", "level": 1, "ratio": 0.5, "limit": 0},
            {"name": "abc", "level": 1.5, "ratio": 0.5},
        ],
    ),
    Case(
        "formats",
        {"pydantic": PFormats, "msgspec": MFormats},
        [
            {"at": "2024-01-02T03:04:05Z", "id": "12345678-1234-5678-1234-567812345678"},
            {"at": "2024-01-02T03:04:05.123+02:00", "id": "12345678-1234-5678-1234-567812345678"},
        ],
        [
            {"at": "yesterday", "id": "12345678-1234-5678-1234-567812345678"},
            {"at": "2024-01-02T03:04:05", "id": "12345678-1234-5678-1234-567812345678"},
            {"at": "2024-01-02T03:04:05Z", "id": "not-a-uuid"},
        ],
    ),
    Case(
        "recursive",
        {"pydantic": PNode, "msgspec": MNode},
        [{"name": "root"}, {"name": "r", "children": [{"name": "a", "children": [{"name": "b"}]}]}],
        [{"name": "r", "children": [{"name": "a", "children": [{"name": "b", "x": 1}]}]}, {"children": []}],
    ),
    Case(
        "tuple",
        {"pydantic": PTuple, "msgspec": MTuple},
        [{"pair": [1, "a"]}],
        [{"pair": [1]}, {"pair": [1, "a", 2]}, {"pair": ["a", 1]}],
    ),
    Case(
        "dataclass",
        {"pydantic": PDataclass, "msgspec": MDataclass},
        [{"at": {"x": 1}}, {"at": {"x": 1, "y": 2}}],
        [{"at": {"x": 1, "z": 0}}, {"at": {"y": 2}}],
    ),
    Case(
        "tagged-union",
        {"pydantic": PUnion, "msgspec": MUnion},
        [{"pet": {"kind": "cat", "lives": 9}}, {"pet": {"kind": "dog", "good": True}}],
        [
            {"pet": {"kind": "cow", "good": True}},
            {"pet": {"kind": "cat", "lives": 10}},
            {"pet": {"kind": "dog", "good": True, "lives": 1}},
            {"pet": {"lives": 1}},
        ],
    ),
]
