"""One conformance suite for every schema backend (DESIGN.md, "Validation").

Each backend is run with its own model set of the same shape: pydantic models for the pydantic
backend, msgspec Structs for the msgspec backend, and dataclasses (which both accept) for both.
The tests go through the :class:`~wskit.schema.validator.Validator` interface (decoder and
encoder) and end to end through a ``Router(validator=...)`` driven by ``TestClient``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from wskit import Context, ErrorCode, OutboundValidationError, Router, UsageError, message, rpc
from wskit.schema.declarations import MessageSchema
from wskit.schema.msgspec_backend import MsgspecValidator
from wskit.schema.pydantic_backend import PydanticValidator
from wskit.schema.validator import DecodeFailure, Decoder, Validator, payload_json
from wskit.testing import Message, RpcError, TestClient

# -- model sets of one shape ---------------------------------------------------------------


class PydJoin(BaseModel):
    room: str
    count: int = 0
    tags: list[str] = Field(default_factory=list)


class PydUser(BaseModel):
    id: str
    name: str


class PydUserTwin(BaseModel):
    id: str
    name: str


class PydUserReq(BaseModel):
    id: str


class StructJoin(msgspec.Struct):
    room: str
    count: int = 0
    tags: list[str] = msgspec.field(default_factory=list)


class StructUser(msgspec.Struct):
    id: str
    name: str


class StructUserTwin(msgspec.Struct):
    id: str
    name: str


class StructUserReq(msgspec.Struct):
    id: str


@dataclasses.dataclass
class DcJoin:
    room: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DcUser:
    id: str
    name: str


@dataclasses.dataclass
class DcUserTwin:
    id: str
    name: str


@dataclasses.dataclass
class DcUserReq:
    id: str


# nested models: a profile holds addresses directly, in a list, a dict, an Optional and a
# Union; a node holds nodes (a recursive model)


class PydAddr(BaseModel):
    city: str


class PydProfile(BaseModel):
    addr: PydAddr
    past: list[PydAddr] = Field(default_factory=list)
    by_name: dict[str, PydAddr] = Field(default_factory=dict)
    alt: PydAddr | None = None
    either: PydAddr | int = 0


class PydNode(BaseModel):
    value: int
    children: list[PydNode] = Field(default_factory=list)


class StructAddr(msgspec.Struct):
    city: str


class StructProfile(msgspec.Struct):
    addr: StructAddr
    past: list[StructAddr] = msgspec.field(default_factory=list)
    by_name: dict[str, StructAddr] = msgspec.field(default_factory=dict)
    alt: StructAddr | None = None
    either: StructAddr | int = 0


class StructNode(msgspec.Struct):
    value: int
    children: list[StructNode] = msgspec.field(default_factory=list)


@dataclasses.dataclass
class DcAddr:
    city: str


@dataclasses.dataclass
class DcProfile:
    addr: DcAddr
    past: list[DcAddr] = dataclasses.field(default_factory=list)
    by_name: dict[str, DcAddr] = dataclasses.field(default_factory=dict)
    alt: DcAddr | None = None
    either: DcAddr | int = 0


@dataclasses.dataclass
class DcNode:
    value: int
    children: list[DcNode] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Backend:
    """A backend and the model set it is tested with."""

    id: str
    make: Callable[[], Validator]
    join: type[Any]
    user: type[Any]
    user_twin: type[Any]
    user_req: type[Any]
    #: an instance of ``user`` whose ``id`` is an int (built without validation)
    bad_user: Callable[[], Any]
    addr: type[Any]
    profile: type[Any]
    node: type[Any]


BACKENDS = [
    Backend(
        "pydantic-model",
        PydanticValidator,
        PydJoin,
        PydUser,
        PydUserTwin,
        PydUserReq,
        lambda: PydUser.model_construct(id=1, name="Ada"),
        PydAddr,
        PydProfile,
        PydNode,
    ),
    Backend(
        "pydantic-dataclass",
        PydanticValidator,
        DcJoin,
        DcUser,
        DcUserTwin,
        DcUserReq,
        lambda: DcUser(1, "Ada"),  # type: ignore[arg-type]
        DcAddr,
        DcProfile,
        DcNode,
    ),
    Backend(
        "msgspec-struct",
        MsgspecValidator,
        StructJoin,
        StructUser,
        StructUserTwin,
        StructUserReq,
        lambda: StructUser(id=1, name="Ada"),  # type: ignore[arg-type]
        StructAddr,
        StructProfile,
        StructNode,
    ),
    Backend(
        "msgspec-dataclass",
        MsgspecValidator,
        DcJoin,
        DcUser,
        DcUserTwin,
        DcUserReq,
        lambda: DcUser(1, "Ada"),  # type: ignore[arg-type]
        DcAddr,
        DcProfile,
        DcNode,
    ),
]


@pytest.fixture(params=BACKENDS, ids=[b.id for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


INTERNAL = ("__heartbeat", "$ws:rpc-cancel")


def join_schema(b: Backend) -> MessageSchema[Any]:
    return message("JOIN", b.join, meta={"room": str})


@pytest.fixture
def decoder(backend: Backend) -> Decoder:
    """JOIN (payload, extra meta key ``room``), PING (no payload), and the internal types."""
    return backend.make().decoder([join_schema(backend), message("PING")], internal=INTERNAL)


def env(type_name: Any = "JOIN", payload: Any = ..., meta: Any = ...) -> bytes:
    obj: dict[str, Any] = {"type": type_name}
    if meta is not ...:
        obj["meta"] = meta
    if payload is not ...:
        obj["payload"] = payload
    return json.dumps(obj).encode()


def failure(decoder: Decoder, data: bytes | str) -> DecodeFailure:
    with pytest.raises(DecodeFailure) as info:
        decoder.decode(data)
    return info.value


def issue_paths(fail: DecodeFailure) -> list[list[Any]]:
    return [issue["path"] for issue in fail.error.details["issues"]]


# -- decoding: valid input -----------------------------------------------------------------


def test_valid_decode_gives_the_declared_class(backend: Backend, decoder: Decoder) -> None:
    """A valid frame decodes to (type, meta, payload) with an instance of the user's own class."""
    type_name, meta, payload = decoder.decode(env(payload={"room": "lobby", "count": 3, "tags": ["a"]}))
    assert type_name == "JOIN"
    assert meta == {}
    assert isinstance(payload, backend.join)
    assert (payload.room, payload.count, payload.tags) == ("lobby", 3, ["a"])


def test_decoded_payload_is_exactly_the_declared_class(backend: Backend, decoder: Decoder) -> None:
    """The payload's type is the declared class itself, not a hidden subclass of it."""
    _, _, payload = decoder.decode(env(payload={"room": "lobby"}))
    assert type(payload) is backend.join


def test_decoded_payload_equals_one_built_by_hand(backend: Backend, decoder: Decoder) -> None:
    """The payload compares equal to the declared class built with the same values."""
    _, _, payload = decoder.decode(env(payload={"room": "lobby"}))
    assert payload == backend.join(room="lobby")


def test_defaults_of_the_model_apply(backend: Backend, decoder: Decoder) -> None:
    """Fields left out of the payload take the model's defaults."""
    _, _, payload = decoder.decode(env(payload={"room": "lobby"}))
    assert (payload.count, payload.tags) == (0, [])


def test_str_frames_decode_like_bytes(backend: Backend, decoder: Decoder) -> None:
    """The decoder takes the frame as str as well as bytes."""
    type_name, _, payload = decoder.decode(env(payload={"room": "lobby"}).decode())
    assert type_name == "JOIN"
    assert isinstance(payload, backend.join)


# -- decoding: strict payload ---------------------------------------------------------------


def test_unknown_payload_key_is_rejected(decoder: Decoder) -> None:
    """An unknown payload key makes the frame INVALID_ARGUMENT (strict payload)."""
    fail = failure(decoder, env(payload={"room": "lobby", "extra": 1}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    assert fail.error.details["issues"]


def test_unknown_payload_key_is_rejected_even_if_the_model_allows_extras() -> None:
    """A pydantic model configured with extra="allow" is still strict on the wire."""

    class Loose(BaseModel, extra="allow"):
        room: str

    decoder = PydanticValidator().decoder([message("JOIN", Loose)], internal=INTERNAL)
    fail = failure(decoder, env(payload={"room": "lobby", "extra": 1}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_unknown_payload_key_issue_points_at_the_key(decoder: Decoder) -> None:
    """The issue for an unknown payload key has the path ["payload", <key>]."""
    fail = failure(decoder, env(payload={"room": "lobby", "extra": 1}))
    assert issue_paths(fail) == [["payload", "extra"]]


def test_missing_payload_is_rejected(decoder: Decoder) -> None:
    """A message declared with a payload but sent without one is INVALID_ARGUMENT."""
    fail = failure(decoder, env())
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_missing_payload_issue_points_at_payload(decoder: Decoder) -> None:
    """The issue for a missing payload has the path ["payload"]."""
    fail = failure(decoder, env())
    assert issue_paths(fail) == [["payload"]]


def test_missing_required_field_issue_points_at_the_field(decoder: Decoder) -> None:
    """A missing required payload field gives the path ["payload", <field>]."""
    fail = failure(decoder, env(payload={"count": 1}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    assert issue_paths(fail) == [["payload", "room"]]


def test_wrong_type_issue_points_at_the_field(decoder: Decoder) -> None:
    """A field of the wrong type gives the path ["payload", <field>]."""
    fail = failure(decoder, env(payload={"room": 5}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    assert issue_paths(fail) == [["payload", "room"]]


def test_nested_issue_path_has_list_index(decoder: Decoder) -> None:
    """A bad item in a list field gives the path ["payload", <field>, <index>] with an int index."""
    fail = failure(decoder, env(payload={"room": "lobby", "tags": ["ok", 7]}))
    assert issue_paths(fail) == [["payload", "tags", 1]]


def test_issues_have_path_list_and_message_str(decoder: Decoder) -> None:
    """details.issues is a list of {path: list, message: non-empty str} and nothing else."""
    fail = failure(decoder, env(payload={"room": 5}))
    issues = fail.error.details["issues"]
    assert isinstance(issues, list) and issues
    for issue in issues:
        assert set(issue) == {"path", "message"}
        assert isinstance(issue["path"], list)
        assert isinstance(issue["message"], str) and issue["message"]


def test_issue_paths_start_at_the_envelope_with_a_single_schema(backend: Backend) -> None:
    """A decoder of one message type (no internal types) still reports paths from the envelope."""
    decoder = backend.make().decoder([message("JOIN", backend.join)], internal=())
    fail = failure(decoder, env(payload={"room": 5}))
    assert issue_paths(fail) == [["payload", "room"]]


def test_issues_are_json_serialisable(decoder: Decoder) -> None:
    """The error details can be put on the wire as they are."""
    fail = failure(decoder, env(payload={"room": "lobby", "tags": [1], "x": 2}))
    assert json.loads(json.dumps(fail.error.to_payload()))["details"]["issues"]


# -- decoding: strict at every depth -----------------------------------------------------------


@pytest.fixture
def nested(backend: Backend) -> Decoder:
    """PROFILE (addresses nested in every container kind) and NODE (a recursive model)."""
    schemas = [message("PROFILE", backend.profile), message("NODE", backend.node)]
    return backend.make().decoder(schemas, internal=INTERNAL)


PROFILE = {
    "addr": {"city": "Paris"},
    "past": [{"city": "Lyon"}],
    "by_name": {"home": {"city": "Nice"}},
    "alt": {"city": "Metz"},
    "either": {"city": "Brest"},
}


def profile_with(**changes: Any) -> bytes:
    return env("PROFILE", payload={**PROFILE, **changes})


def test_nested_payload_decodes_to_the_declared_classes(backend: Backend, nested: Decoder) -> None:
    """Nested models, in lists, dicts, Optionals and Unions too, are instances of their declared classes."""
    _, _, payload = nested.decode(profile_with())
    assert type(payload) is backend.profile
    addresses = [payload.addr, payload.past[0], payload.by_name["home"], payload.alt, payload.either]
    assert [type(a) for a in addresses] == [backend.addr] * 5
    assert [a.city for a in addresses] == ["Paris", "Lyon", "Nice", "Metz", "Brest"]


def test_nested_payload_equals_one_built_by_hand(backend: Backend, nested: Decoder) -> None:
    """A decoded nested payload compares equal to the same value built from the declared classes."""
    a = backend.addr
    expected = backend.profile(addr=a(city="Paris"), past=[a(city="Lyon")], by_name={"home": a(city="Nice")})
    sent = {"addr": {"city": "Paris"}, "past": PROFILE["past"], "by_name": PROFILE["by_name"]}
    _, _, payload = nested.decode(env("PROFILE", payload=sent))
    assert payload == expected


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"addr": {"city": "Paris", "evil": 1}}, ["payload", "addr", "evil"]),
        ({"past": [{"city": "Lyon"}, {"city": "Caen", "evil": 1}]}, ["payload", "past", 1, "evil"]),
        ({"alt": {"city": "Metz", "evil": 1}}, ["payload", "alt", "evil"]),
    ],
    ids=["model", "in-list", "in-optional"],
)
def test_unknown_key_in_a_nested_model_is_rejected(nested: Decoder, changes: dict[str, Any], path: list[Any]) -> None:
    """An unknown key inside a nested model is INVALID_ARGUMENT with the path down to the key."""
    fail = failure(nested, profile_with(**changes))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    assert issue_paths(fail) == [path]


def test_unknown_key_in_a_model_in_a_dict_is_rejected(nested: Decoder) -> None:
    """An unknown key in a model held as a dict value is INVALID_ARGUMENT, its path through the dict."""
    fail = failure(nested, profile_with(by_name={"home": {"city": "Nice", "evil": 1}}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    (path,) = issue_paths(fail)
    # msgspec does not say which key held the bad value: "..." stands for it
    assert path[:2] == ["payload", "by_name"] and path[2] in ("home", "...") and path[3:] == ["evil"]


def test_unknown_key_in_a_union_member_is_rejected(nested: Decoder) -> None:
    """An unknown key in a model that is one member of a Union is INVALID_ARGUMENT."""
    fail = failure(nested, profile_with(either={"city": "Brest", "evil": 1}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_recursive_payload_decodes_to_the_declared_class(backend: Backend, nested: Decoder) -> None:
    """A recursive model decodes, every level an instance of the declared class."""
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}
    _, _, payload = nested.decode(env("NODE", payload=tree))
    grandchild = payload.children[0].children[0]
    assert [type(n) for n in (payload, payload.children[0], grandchild)] == [backend.node] * 3
    assert grandchild.value == 3


def test_unknown_key_deep_in_a_recursive_model_is_rejected(nested: Decoder) -> None:
    """An unknown key three levels down a recursive model is INVALID_ARGUMENT with its full path."""
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3, "evil": 1}]}]}
    fail = failure(nested, env("NODE", payload=tree))
    assert issue_paths(fail) == [["payload", "children", 0, "children", 0, "evil"]]


class PydStrictOuter(BaseModel, extra="forbid"):
    addr: PydAddr


class StructStrictOuter(msgspec.Struct, forbid_unknown_fields=True):
    addr: StructAddr


@pytest.mark.parametrize(
    ("make", "model"),
    [(PydanticValidator, PydStrictOuter), (MsgspecValidator, StructStrictOuter)],
    ids=["pydantic", "msgspec"],
)
def test_nested_model_is_strict_when_only_the_outer_model_forbids_extras(
    make: Callable[[], Validator], model: type[Any]
) -> None:
    """An outer model that forbids extras itself does not leave its lax nested models lax."""
    decoder = make().decoder([message("OUTER", model)], internal=())
    fail = failure(decoder, env("OUTER", payload={"addr": {"city": "x", "evil": 1}}))
    assert issue_paths(fail) == [["payload", "addr", "evil"]]


def test_typed_dict_payload_is_strict() -> None:
    """A TypedDict payload (pydantic backend) rejects unknown keys too."""

    class Point(TypedDict):
        x: int

    decoder = PydanticValidator().decoder([message("POINT", Point)], internal=())
    assert decoder.decode(env("POINT", payload={"x": 1})) == ("POINT", {}, {"x": 1})
    assert issue_paths(failure(decoder, env("POINT", payload={"x": 1, "evil": 1}))) == [["payload", "evil"]]


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
def test_typed_dict_outbound_payload_encodes(validate: bool) -> None:
    """A TypedDict outbound model (pydantic backend) encodes dicts, checked strictly when validating."""

    class Point(TypedDict):
        x: int

    encode = PydanticValidator().encoder(message("POINT", Point), validate=validate)
    assert encode is not None
    assert encode({"x": 1}) == b'{"x":1}'
    if validate:
        with pytest.raises(OutboundValidationError):
            encode({"x": 1, "evil": 2})


class PydFrozen(BaseModel, frozen=True):
    room: str


class StructFrozen(msgspec.Struct, frozen=True):
    room: str


@pytest.mark.parametrize(
    ("make", "model"), [(PydanticValidator, PydFrozen), (MsgspecValidator, StructFrozen)], ids=["pydantic", "msgspec"]
)
def test_frozen_payload_decodes_to_the_declared_class(make: Callable[[], Validator], model: type[Any]) -> None:
    """A frozen model (whose class a strict stand-in cannot hand over by a swap) still decodes to it."""
    decoder = make().decoder([message("FROZEN", model)], internal=())
    _, _, payload = decoder.decode(env("FROZEN", payload={"room": "r"}))
    assert type(payload) is model and payload == model(room="r")
    assert issue_paths(failure(decoder, env("FROZEN", payload={"room": "r", "evil": 1}))) == [["payload", "evil"]]


# -- decoding: messages without payload -------------------------------------------------------


def test_no_payload_message_without_payload_key(decoder: Decoder) -> None:
    """A message declared without payload decodes when the key is absent; payload is None."""
    assert decoder.decode(env("PING")) == ("PING", {}, None)


def test_no_payload_message_with_empty_object(decoder: Decoder) -> None:
    """A message declared without payload accepts ``"payload": {}``; payload is None."""
    assert decoder.decode(env("PING", payload={})) == ("PING", {}, None)


def test_no_payload_message_with_keys_is_rejected(decoder: Decoder) -> None:
    """A message declared without payload rejects a payload with keys."""
    fail = failure(decoder, env("PING", payload={"a": 1}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_no_payload_message_with_null_payload_is_rejected(decoder: Decoder) -> None:
    """``"payload": null`` is not an object: rejected, as ``"meta": null`` is."""
    fail = failure(decoder, env("PING", payload=None))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


# -- decoding: strict meta -------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [
        {"timestamp": 1_700_000_000_000},
        {"timestamp": 1.5},
        {"correlationId": "c-1"},
        {"timeoutMs": 500},
        {"timestamp": 1, "correlationId": "c-1", "timeoutMs": 2},
    ],
    ids=["timestamp-int", "timestamp-float", "correlationId", "timeoutMs", "all"],
)
def test_standard_meta_keys_are_accepted(decoder: Decoder, meta: dict[str, Any]) -> None:
    """timestamp, correlationId and timeoutMs are accepted and returned as sent."""
    _, decoded, _ = decoder.decode(env(payload={"room": "r"}, meta=meta))
    assert decoded == meta


@pytest.mark.parametrize("key", ["clientId", "receivedAt", "foo"])
def test_other_meta_keys_are_rejected(decoder: Decoder, key: str) -> None:
    """Any other meta key, including the server-only clientId and receivedAt, is INVALID_ARGUMENT."""
    fail = failure(decoder, env(payload={"room": "r"}, meta={key: "x"}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("meta", [{"timestamp": "soon"}, {"correlationId": 5}, {"timeoutMs": "1s"}])
def test_standard_meta_keys_of_wrong_type_are_rejected(decoder: Decoder, meta: dict[str, Any]) -> None:
    """Standard meta keys are typed: a wrong type is INVALID_ARGUMENT, every issue at ["meta", key]."""
    fail = failure(decoder, env(payload={"room": "r"}, meta=meta))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    paths = issue_paths(fail)
    assert paths and all(path == ["meta", next(iter(meta))] for path in paths)


def test_meta_may_be_omitted(decoder: Decoder) -> None:
    """Without a meta key the decoded meta is an empty dict."""
    _, meta, _ = decoder.decode(env(payload={"room": "r"}))
    assert meta == {}


def test_meta_null_is_rejected(decoder: Decoder) -> None:
    """``"meta": null`` is INVALID_ARGUMENT."""
    fail = failure(decoder, env(payload={"room": "r"}, meta=None))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_declared_extra_meta_key_is_accepted(decoder: Decoder) -> None:
    """A meta key the message declares (``meta={"room": str}``) is accepted and returned."""
    _, meta, _ = decoder.decode(env(payload={"room": "r"}, meta={"room": "kitchen", "timestamp": 1}))
    assert meta == {"room": "kitchen", "timestamp": 1}


def test_declared_extra_meta_key_is_typed(decoder: Decoder) -> None:
    """A declared meta key of the wrong type is INVALID_ARGUMENT with the path ["meta", key]."""
    fail = failure(decoder, env(payload={"room": "r"}, meta={"room": 5}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    assert issue_paths(fail) == [["meta", "room"]]


def test_declared_meta_key_is_not_accepted_on_other_types(decoder: Decoder) -> None:
    """A meta key declared by JOIN is still unknown for PING."""
    fail = failure(decoder, env("PING", meta={"room": "kitchen"}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_internal_types_decode_with_any_meta(decoder: Decoder) -> None:
    """Framework types given as ``internal`` decode with any meta and no payload check."""
    type_name, meta, payload = decoder.decode(env("$ws:rpc-cancel", meta={"correlationId": "c", "x": 1}))
    assert (type_name, meta, payload) == ("$ws:rpc-cancel", {"correlationId": "c", "x": 1}, None)


@pytest.mark.parametrize("key", ["timestamp", "timeoutMs"])
def test_integer_meta_numbers_stay_integers(decoder: Decoder, key: str) -> None:
    """An integer timestamp or timeoutMs is handed over as an int, not turned into a float."""
    _, meta, _ = decoder.decode(env(payload={"room": "r"}, meta={key: 1_700_000_000_123}))
    assert meta[key] == 1_700_000_000_123
    assert type(meta[key]) is int


def test_float_meta_numbers_stay_floats(decoder: Decoder) -> None:
    """A fractional timestamp is handed over as the float it was."""
    _, meta, _ = decoder.decode(env(payload={"room": "r"}, meta={"timestamp": 1.5}))
    assert type(meta["timestamp"]) is float and meta["timestamp"] == 1.5


@pytest.mark.parametrize("value", [True, None, [1]], ids=["bool", "null", "list"])
def test_non_number_timestamp_is_rejected(decoder: Decoder, value: Any) -> None:
    """A timestamp that is not a JSON number (true is not 1) is INVALID_ARGUMENT at ["meta", "timestamp"]."""
    fail = failure(decoder, env(payload={"room": "r"}, meta={"timestamp": value}))
    assert issue_paths(fail) == [["meta", "timestamp"]]


@pytest.mark.parametrize("type_name", ["__heartbeat", "$ws:rpc-cancel"])
def test_internal_types_accept_a_null_payload(decoder: Decoder, type_name: str) -> None:
    """The framework's own types take ``"payload": null`` (WS-Kit clients may send it) as no payload."""
    assert decoder.decode(env(type_name, payload=None)) == (type_name, {}, None)


def test_internal_types_reject_a_payload_that_is_not_an_object(decoder: Decoder) -> None:
    """A heartbeat whose payload is a number is INVALID_ARGUMENT."""
    fail = failure(decoder, env("__heartbeat", payload=5))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


# -- decoding: JSON only (no NaN/Infinity) ------------------------------------------------------


def test_text_with_nan_and_infinity_words_is_accepted(decoder: Decoder) -> None:
    """Strings that contain the words NaN and Infinity are ordinary text."""
    _, _, payload = decoder.decode(env(payload={"room": "NaN Infinity war", "tags": ["-Infinity"]}))
    assert (payload.room, payload.tags) == ("NaN Infinity war", ["-Infinity"])


def test_text_with_nan_is_decoded_by_one_parse(decoder: Decoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid frame whose text says NaN/Infinity is not parsed a second time (no json.loads)."""
    calls: list[object] = []
    loads = json.loads

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return loads(*args, **kwargs)

    frame = env(payload={"room": "NaN Infinity"}, meta={"timestamp": 1})
    monkeypatch.setattr(json, "loads", counting)
    _, _, payload = decoder.decode(frame)
    _, _, again = decoder.decode(frame.decode())
    assert payload.room == again.room == "NaN Infinity"
    assert calls == []


@pytest.mark.parametrize(
    "data",
    [
        b'{"type":"JOIN","payload":{"room":"r"},"junk":NaN}',
        b'{"type":"JOIN","payload":{"room":"r"},"junk":[-Infinity]}',
        b'{"type":"__heartbeat","meta":{"x":Infinity}}',
        b'{"type":"JOIN","payload":{"room":"NaN"},"junk":Infinity}',
        b'{"type":"JOIN","payload":{"room":"a\\"NaN"},"junk":NaN}',
        b'{"type":"JOIN","payload":{"room":"a\\\\"},"junk":NaN}',
    ],
    ids=[
        "ignored-key",
        "ignored-list",
        "internal-meta",
        "after-text",
        "after-escaped-quote",
        "after-escaped-backslash",
    ],
)
def test_nan_and_infinity_literals_are_invalid_argument(decoder: Decoder, data: bytes) -> None:
    """NaN/Infinity are not JSON: INVALID_ARGUMENT wherever they stand, even under ignored keys."""
    assert failure(decoder, data).error.code is ErrorCode.INVALID_ARGUMENT
    assert failure(decoder, data.decode()).error.code is ErrorCode.INVALID_ARGUMENT


def test_nan_word_as_an_ignored_key_is_text(decoder: Decoder) -> None:
    """A key spelled NaN is a string like any other (unknown root keys are ignored)."""
    assert decoder.decode(b'{"type":"PING","NaN":1,"Infinity":[2]}') == ("PING", {}, None)


def test_escaped_quote_before_nan_word_stays_text(decoder: Decoder) -> None:
    """An escaped quote does not end a string: a NaN word after it is still text."""
    _, _, payload = decoder.decode(b'{"type":"JOIN","payload":{"room":"a\\" NaN \\\\"}}')
    assert payload.room == 'a" NaN \\'


# -- decoding: envelope and routing failures ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"not json", b'{"type":"JOIN"', b"[1, 2]", b'"JOIN"', b"null", b'{"payload":{}}', b'{"type":5}', b'{"type":null}'],
    ids=["garbage", "truncated", "array", "string", "null", "no-type", "int-type", "null-type"],
)
def test_malformed_envelope_is_invalid_argument(decoder: Decoder, data: bytes) -> None:
    """Not JSON, not an object, or no string ``type``: INVALID_ARGUMENT with no correlationId."""
    fail = failure(decoder, data)
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    assert fail.correlation_id is None


def test_invalid_utf8_is_invalid_argument(decoder: Decoder) -> None:
    """Bytes that are not UTF-8 are INVALID_ARGUMENT, not an exception of the JSON library."""
    fail = failure(decoder, b'{"type":"JOIN","payload":{"room":"\xff"}}')
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_unknown_type_is_unimplemented(decoder: Decoder) -> None:
    """An undeclared type is UNIMPLEMENTED with details {"type": <type>}."""
    fail = failure(decoder, env("NOPE", payload={}))
    assert fail.error.code is ErrorCode.UNIMPLEMENTED
    assert fail.error.details == {"type": "NOPE"}


@pytest.mark.parametrize("type_name", ["$ws:anything", "__secret", "$x"])
def test_reserved_type_is_invalid_argument(decoder: Decoder, type_name: str) -> None:
    """A reserved type a client may not send is INVALID_ARGUMENT (not UNIMPLEMENTED)."""
    fail = failure(decoder, env(type_name))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT


def test_correlation_id_recovered_when_payload_invalid(decoder: Decoder) -> None:
    """The correlationId of a frame with an invalid payload is kept for the RPC_ERROR answer."""
    fail = failure(decoder, env(payload={"room": 5}, meta={"correlationId": "c-42"}))
    assert fail.error.code is ErrorCode.INVALID_ARGUMENT
    assert fail.correlation_id == "c-42"


def test_correlation_id_recovered_when_meta_invalid(decoder: Decoder) -> None:
    """The correlationId is recovered even when another meta key makes the meta invalid."""
    fail = failure(decoder, env(payload={"room": "r"}, meta={"correlationId": "c-43", "clientId": "x"}))
    assert fail.correlation_id == "c-43"


def test_correlation_id_recovered_for_unknown_type(decoder: Decoder) -> None:
    """An unknown type's correlationId is kept, so the caller gets an RPC_ERROR it can match."""
    fail = failure(decoder, env("NOPE", meta={"correlationId": "c-44"}))
    assert fail.correlation_id == "c-44"


def test_non_string_correlation_id_is_not_recovered(decoder: Decoder) -> None:
    """A correlationId that is not a string is not used for framing the error."""
    fail = failure(decoder, env(payload={"room": "r"}, meta={"correlationId": 7}))
    assert fail.correlation_id is None


# -- encoding -------------------------------------------------------------------------------


def user_encoder(backend: Backend, *, validate: bool = True) -> Callable[[Any], bytes]:
    encode = backend.make().encoder(message("USER", backend.user), validate=validate)
    assert encode is not None
    return encode


def test_encoder_encodes_a_dict(backend: Backend) -> None:
    """A valid dict payload encodes to its JSON object."""
    assert json.loads(user_encoder(backend)({"id": "1", "name": "Ada"})) == {"id": "1", "name": "Ada"}


def test_encoder_encodes_a_model_instance(backend: Backend) -> None:
    """An instance of the declared class encodes to its JSON object."""
    data = user_encoder(backend)(backend.user(id="1", name="Ada"))
    assert json.loads(data) == {"id": "1", "name": "Ada"}


def test_encoder_accepts_another_class_of_the_same_shape(backend: Backend) -> None:
    """An instance of a different class with the same fields encodes when validating."""
    data = user_encoder(backend)(backend.user_twin(id="1", name="Ada"))
    assert json.loads(data) == {"id": "1", "name": "Ada"}


def test_encoder_rejects_an_invalid_dict(backend: Backend) -> None:
    """A dict that fails the schema raises OutboundValidationError with an issue at the field."""
    with pytest.raises(OutboundValidationError) as info:
        user_encoder(backend)({"id": 1, "name": "Ada"})
    assert info.value.type_name == "USER"
    assert [issue["path"] for issue in info.value.issues] == [["id"]]


def test_encoder_rejects_a_dict_missing_a_field(backend: Backend) -> None:
    """A dict missing a required field raises OutboundValidationError with the field's path."""
    with pytest.raises(OutboundValidationError) as info:
        user_encoder(backend)({"id": "1"})
    assert [issue["path"] for issue in info.value.issues] == [["name"]]


def test_encoder_rejects_an_invalid_instance_of_the_declared_class(backend: Backend) -> None:
    """An instance of the declared class holding a wrong-typed field raises OutboundValidationError."""
    with pytest.raises(OutboundValidationError) as info:
        user_encoder(backend)(backend.bad_user())
    assert [issue["path"] for issue in info.value.issues] == [["id"]]


def test_outbound_validation_error_is_a_usage_error(backend: Backend) -> None:
    """OutboundValidationError is a UsageError (the application's mistake) naming the type."""
    with pytest.raises(UsageError, match="USER"):
        user_encoder(backend)({"id": 1, "name": "Ada"})


def test_validate_false_skips_validation(backend: Backend) -> None:
    """With validate=False an invalid dict is encoded as given."""
    data = user_encoder(backend, validate=False)({"id": 1, "name": "Ada"})
    assert json.loads(data) == {"id": 1, "name": "Ada"}


def test_validate_false_still_encodes_instances(backend: Backend) -> None:
    """With validate=False a model instance still encodes to its JSON object."""
    data = user_encoder(backend, validate=False)(backend.user(id="1", name="Ada"))
    assert json.loads(data) == {"id": "1", "name": "Ada"}


def test_encoder_of_message_without_payload_is_none(backend: Backend) -> None:
    """A message declared without payload has no payload encoder."""
    assert backend.make().encoder(message("PING"), validate=True) is None


def test_encoder_rejects_an_unknown_key_in_a_nested_dict(backend: Backend) -> None:
    """An outbound dict with an unknown key in a nested model fails its schema, as inbound would."""
    encode = backend.make().encoder(message("PROFILE", backend.profile), validate=True)
    assert encode is not None
    assert json.loads(encode({"addr": {"city": "x"}}))["addr"] == {"city": "x"}
    with pytest.raises(OutboundValidationError) as info:
        encode({"addr": {"city": "x", "evil": 1}})
    assert [issue["path"] for issue in info.value.issues] == [["addr", "evil"]]


def test_payload_json_encodes_any_model_kind(backend: Backend) -> None:
    """payload_json turns an instance of any supported kind into its compact JSON object."""
    assert payload_json(backend.user(id="1", name="Ada")) == b'{"id":"1","name":"Ada"}'


def test_payload_json_encodes_models_inside_plain_data(backend: Backend) -> None:
    """payload_json encodes dicts and lists that hold model instances (a progress payload, say)."""
    data = payload_json({"step": 2, "users": [backend.user(id="1", name="Ada")], "at": backend.addr(city="x")})
    assert json.loads(data) == {"step": 2, "users": [{"id": "1", "name": "Ada"}], "at": {"city": "x"}}


def test_payload_json_refuses_what_is_not_json() -> None:
    """A value that is not JSON-able raises ValueError (nothing half-written)."""
    with pytest.raises(ValueError, match="object"):
        payload_json({"x": object()})


def test_backend_accepts_its_models(backend: Backend) -> None:
    """accepts() is true for every model of the backend's set."""
    validator = backend.make()
    assert all(validator.accepts(m) for m in (backend.join, backend.user, backend.user_req))


def test_msgspec_backend_refuses_pydantic_models() -> None:
    """The msgspec backend does not accept pydantic models."""
    assert not MsgspecValidator().accepts(PydUser)


def test_pydantic_backend_refuses_structs() -> None:
    """The pydantic backend does not accept msgspec Structs."""
    assert not PydanticValidator().accepts(StructUser)


# -- end to end: Router(validator=...) + TestClient -------------------------------------------


async def drain(client: TestClient) -> list[Message[Any]]:
    """Every frame the server sent until it handled all events sent so far (heartbeat round trip)."""
    await client.send_raw(b'{"type":"__heartbeat"}')
    frames: list[Message[Any]] = []
    while True:
        msg = await client.receive()
        if msg.type == "__heartbeat_ack":
            return frames
        frames.append(msg)


def app(backend: Backend, seen: list[Any]) -> tuple[Router[Any], MessageSchema[Any], Any]:
    """A router with JOIN (records ctx) and the GET_USER rpc; returns (router, JOIN, GET_USER)."""
    join = join_schema(backend)
    get_user = rpc("GET_USER", backend.user_req, "USER", backend.user)
    router: Router[Any] = Router(validator=backend.make())

    @router.on(join)
    async def on_join(ctx: Context[Any]) -> None:
        seen.append(ctx)

    @router.rpc(get_user)
    async def on_get_user(ctx: Context[Any]) -> None:
        seen.append(ctx)
        if ctx.payload.id == "bad":
            await ctx.reply({"id": 1, "name": "Ada"})
        elif ctx.payload.id == "instance":
            await ctx.reply(backend.user(id="7", name="Grace"))
        else:
            await ctx.reply({"id": ctx.payload.id, "name": "Ada"})

    return router, join, get_user


async def test_e2e_handler_gets_the_declared_class(backend: Backend) -> None:
    """Through TestClient, the handler's ctx.payload is an instance of the declared class."""
    seen: list[Any] = []
    router, join, _ = app(backend, seen)
    async with TestClient(router) as client:
        await client.send(join, {"room": "lobby", "count": 2})
        assert await drain(client) == []
    assert len(seen) == 1
    assert isinstance(seen[0].payload, backend.join)
    assert (seen[0].payload.room, seen[0].payload.count) == ("lobby", 2)


async def test_e2e_declared_meta_reaches_the_handler(backend: Backend) -> None:
    """A declared extra meta key is in ctx.meta with its value."""
    seen: list[Any] = []
    router, join, _ = app(backend, seen)
    async with TestClient(router) as client:
        await client.send(join, {"room": "lobby"}, meta={"room": "kitchen"})
        assert await drain(client) == []
    assert seen[0].meta["room"] == "kitchen"


async def test_e2e_unknown_payload_key_answers_error(backend: Backend) -> None:
    """An unknown payload key is answered with ERROR INVALID_ARGUMENT and the handler does not run."""
    seen: list[Any] = []
    router, join, _ = app(backend, seen)
    async with TestClient(router) as client:
        await client.send(join, {"room": "lobby", "extra": True})
        (msg,) = await drain(client)
    assert msg.type == "ERROR"
    assert msg.payload["code"] == "INVALID_ARGUMENT"
    assert isinstance(msg.payload["details"]["issues"], list)
    assert seen == []


async def test_e2e_unknown_nested_key_answers_error(backend: Backend) -> None:
    """An unknown key in a nested model is answered with ERROR INVALID_ARGUMENT; the handler does not run."""
    seen: list[Any] = []
    profile = message("PROFILE", backend.profile)
    router: Router[Any] = Router(validator=backend.make())

    @router.on(profile)
    async def on_profile(ctx: Context[Any]) -> None:
        seen.append(ctx.payload)

    async with TestClient(router) as client:
        await client.send(profile, {"addr": {"city": "x", "evil": True}})
        await client.send(profile, {"addr": {"city": "y"}})
        (msg,) = await drain(client)
    assert (msg.type, msg.payload["code"]) == ("ERROR", "INVALID_ARGUMENT")
    assert msg.payload["details"]["issues"][0]["path"] == ["payload", "addr", "evil"]
    assert [type(p.addr) for p in seen] == [backend.addr]


async def test_e2e_heartbeat_with_null_payload_is_acked(backend: Backend) -> None:
    """``{"type":"__heartbeat","payload":null}`` gets its ack under every backend."""
    router, _, _ = app(backend, [])
    async with TestClient(router) as client:
        await client.send_raw(b'{"type":"__heartbeat","payload":null}')
        msg = await client.receive()
    assert msg.type == "__heartbeat_ack"


async def test_e2e_invalid_rpc_payload_answers_rpc_error(backend: Backend) -> None:
    """An RPC request with an invalid payload gets RPC_ERROR INVALID_ARGUMENT with its correlationId."""
    seen: list[Any] = []
    router, _, get_user = app(backend, seen)
    async with TestClient(router) as client:
        with pytest.raises(RpcError) as info:
            await client.request(get_user, {"id": 5}, correlation_id="c-9")
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.meta == {"correlationId": "c-9"}
    assert [issue["path"] for issue in info.value.details["issues"]] == [["payload", "id"]]
    assert seen == []


async def test_e2e_unknown_type_answers_unimplemented(backend: Backend) -> None:
    """An unknown type is answered with ERROR UNIMPLEMENTED and details.type."""
    router, _, _ = app(backend, [])
    async with TestClient(router) as client:
        await client.send_raw(b'{"type":"NOPE","meta":{}}')
        (msg,) = await drain(client)
    assert (msg.type, msg.payload["code"], msg.payload["details"]) == ("ERROR", "UNIMPLEMENTED", {"type": "NOPE"})


async def test_e2e_invalid_utf8_answers_error_and_keeps_the_connection(backend: Backend) -> None:
    """A binary frame that is not UTF-8 is answered with ERROR INVALID_ARGUMENT; later frames still work."""
    seen: list[Any] = []
    router, join, _ = app(backend, seen)
    async with TestClient(router) as client:
        await client.send_raw(b'{"type":"JOIN","payload":{"room":"\xff"}}')
        await client.send(join, {"room": "lobby"})
        frames = await drain(client)
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "INVALID_ARGUMENT")]
    assert len(seen) == 1


async def test_e2e_rpc_reply_with_dict(backend: Backend) -> None:
    """A dict reply is validated and arrives as the declared response type with the correlationId."""
    router, _, get_user = app(backend, [])
    async with TestClient(router) as client:
        res = await client.request(get_user, {"id": "1"}, correlation_id="c-1")
    assert res.type == "USER"
    assert res.meta["correlationId"] == "c-1"
    assert json.loads(res.raw)["payload"] == {"id": "1", "name": "Ada"}


async def test_e2e_rpc_reply_with_instance(backend: Backend) -> None:
    """A model-instance reply is encoded by the backend."""
    router, _, get_user = app(backend, [])
    async with TestClient(router) as client:
        res = await client.request(get_user, {"id": "instance"})
    assert json.loads(res.raw)["payload"] == {"id": "7", "name": "Grace"}


async def test_e2e_invalid_rpc_reply_answers_internal(backend: Backend) -> None:
    """A reply that fails its schema is not sent; the caller gets RPC_ERROR INTERNAL."""
    router, _, get_user = app(backend, [])
    async with TestClient(router) as client:
        with pytest.raises(RpcError) as info:
            await client.request(get_user, {"id": "bad"})
        assert await drain(client) == []
    assert info.value.code is ErrorCode.INTERNAL


async def test_e2e_validator_by_name(backend: Backend) -> None:
    """Router(validator="pydantic"/"msgspec") uses that backend."""
    router: Router[Any] = Router(validator=backend.make().name)
    router.on(join_schema(backend), _noop)
    assert type(router.validator) is type(backend.make())


async def _noop(ctx: Context[Any]) -> None:
    return None


# -- choosing a backend -----------------------------------------------------------------------


def test_router_picks_msgspec_for_structs() -> None:
    """Router() with msgspec Struct models validates with the msgspec backend."""
    router: Router[Any] = Router()
    router.on(message("JOIN", StructJoin), _noop)
    router.rpc(rpc("GET_USER", StructUserReq, "USER", StructUser), _noop)
    assert isinstance(router.validator, MsgspecValidator)


def test_router_picks_pydantic_for_models() -> None:
    """Router() with pydantic models validates with the pydantic backend."""
    router: Router[Any] = Router()
    router.on(message("JOIN", PydJoin), _noop)
    assert isinstance(router.validator, PydanticValidator)


def test_router_picks_pydantic_for_dataclasses() -> None:
    """Router() with only dataclasses (and payload-less messages) uses pydantic, the default."""
    router: Router[Any] = Router()
    router.on(message("JOIN", DcJoin), _noop)
    router.on(message("PING"), _noop)
    assert isinstance(router.validator, PydanticValidator)


def test_router_picks_msgspec_for_structs_with_dataclasses() -> None:
    """Structs mixed with dataclasses (which msgspec accepts) select msgspec."""
    router: Router[Any] = Router()
    router.on(message("JOIN", StructJoin), _noop)
    router.on(message("JOIN_DC", DcJoin), _noop)
    assert isinstance(router.validator, MsgspecValidator)


def test_router_refuses_structs_mixed_with_pydantic_models() -> None:
    """Router() declaring both Structs and pydantic models raises UsageError naming both."""
    router: Router[Any] = Router()
    router.on(message("JOIN", StructJoin), _noop)
    router.on(message("SAY", PydJoin), _noop)
    with pytest.raises(UsageError, match=r"StructJoin.*PydJoin|PydJoin.*StructJoin"):
        _ = router.validator


def test_router_refuses_mixed_models_across_an_rpc() -> None:
    """An RPC whose request is a Struct and response a pydantic model is refused too."""
    router: Router[Any] = Router()
    router.rpc(rpc("GET_USER", StructUserReq, "USER", PydUser), _noop)
    with pytest.raises(UsageError):
        _ = router.validator


def test_explicit_backend_refuses_models_it_cannot_validate() -> None:
    """Router(validator="msgspec") with a pydantic model raises UsageError."""
    router: Router[Any] = Router(validator="msgspec")
    router.on(message("JOIN", PydJoin), _noop)
    with pytest.raises(UsageError, match="PydJoin"):
        _ = router.validator
