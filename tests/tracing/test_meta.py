"""``meta.traceparent`` and ``meta.tracestate``: accepted on every message by both schema
backends, whether or not the server traces, and bounded in length (W3C Trace Context)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from wskit import Context, Router, UsageError, message
from wskit.schema.msgspec_backend import MsgspecValidator
from wskit.schema.pydantic_backend import PydanticValidator
from wskit.schema.validator import MAX_TRACEPARENT_LENGTH, MAX_TRACESTATE_LENGTH, DecodeFailure, Decoder, Validator
from wskit.testing import TestClient

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
BACKENDS: dict[str, type[PydanticValidator] | type[MsgspecValidator]] = {
    "pydantic": PydanticValidator,
    "msgspec": MsgspecValidator,
}


@dataclasses.dataclass
class Say:
    text: str


SayMsg = message("SAY", Say)
Ping = message("PING")


@pytest.fixture(params=list(BACKENDS))
def validator(request: pytest.FixtureRequest) -> Validator:
    return BACKENDS[request.param]()


@pytest.fixture
def decoder(validator: Validator) -> Decoder:
    return validator.decoder([SayMsg, Ping], internal=["$ws:subscribe"])


def frame(meta: dict[str, Any], type_name: str = "SAY") -> bytes:
    body: dict[str, Any] = {"type": type_name, "meta": meta}
    if type_name == "SAY":
        body["payload"] = {"text": "hi"}
    return json.dumps(body).encode()


@pytest.mark.parametrize("type_name", ["SAY", "PING"])
@pytest.mark.parametrize(
    "meta",
    [
        {"traceparent": TRACEPARENT},
        {"tracestate": "vendor=abc"},
        {"traceparent": TRACEPARENT, "tracestate": "vendor=abc", "correlationId": "c1", "timestamp": 1},
        {"traceparent": "t" * MAX_TRACEPARENT_LENGTH, "tracestate": "s" * MAX_TRACESTATE_LENGTH},
        {"traceparent": "not W3C at all"},  # the format is the tracer's business: no refusal
    ],
    ids=["traceparent", "tracestate", "with-the-others", "longest", "malformed"],
)
def test_trace_context_keys_are_accepted_and_kept(decoder: Decoder, meta: dict[str, Any], type_name: str) -> None:
    """Both keys decode on any message and reach the handler's meta unchanged."""
    assert decoder.decode(frame(meta, type_name))[1] == meta


@pytest.mark.parametrize(
    ("meta", "key"),
    [
        ({"traceparent": "t" * (MAX_TRACEPARENT_LENGTH + 1)}, "traceparent"),
        ({"tracestate": "s" * (MAX_TRACESTATE_LENGTH + 1)}, "tracestate"),
        ({"traceparent": 5}, "traceparent"),
        ({"tracestate": ["a=b"]}, "tracestate"),
        ({"traceparent": None}, "traceparent"),
    ],
    ids=["traceparent-too-long", "tracestate-too-long", "number", "list", "null"],
)
def test_trace_context_keys_out_of_bounds_are_invalid(decoder: Decoder, meta: dict[str, Any], key: str) -> None:
    """Longer than W3C's lengths, or not a string: INVALID_ARGUMENT naming the key."""
    with pytest.raises(DecodeFailure) as caught:
        decoder.decode(frame(meta))
    assert caught.value.error.code == "INVALID_ARGUMENT"
    assert [issue["path"] for issue in caught.value.error.details["issues"]] == [["meta", key]]


def test_other_unknown_meta_keys_are_still_rejected(decoder: Decoder) -> None:
    """Meta stays strict: a key beside them that nobody declared is refused."""
    with pytest.raises(DecodeFailure):
        decoder.decode(frame({"traceparent": TRACEPARENT, "baggage": "a=b"}))


@pytest.mark.parametrize("key", ["traceparent", "tracestate"])
def test_a_message_may_not_redeclare_them(key: str) -> None:
    """They belong to the protocol: message(meta=...) cannot give them another type."""
    with pytest.raises(UsageError, match="reserved by the protocol"):
        message("TAGGED", meta={key: int})


async def test_a_client_may_send_them_to_a_server_that_does_not_trace(validator: Validator) -> None:
    """TRACING off: a message carrying trace context is handled like any other."""
    router: Router[Any] = Router(validator=validator)
    seen: list[dict[str, Any]] = []

    @router.on(SayMsg)
    async def say(ctx: Context[Say]) -> None:
        seen.append(dict(ctx.meta))

    async with TestClient(router) as client:
        await client.send(SayMsg, Say("hi"), meta={"traceparent": TRACEPARENT, "tracestate": "v=1"})
        assert await client.receive_pending() is None  # no error came back
    assert seen == [{"traceparent": TRACEPARENT, "tracestate": "v=1"}]


async def test_subscription_frames_accept_them_too() -> None:
    """$ws:subscribe checks its meta keys itself: the trace context keys pass there as well."""
    router: Router[Any] = Router()
    router.allow_subscribe("feed:*")
    async with TestClient(router) as client:
        meta = {"correlationId": "c1", "traceparent": TRACEPARENT, "tracestate": "v=1"}
        await client.send_raw(json.dumps({"type": "$ws:subscribe", "meta": meta, "payload": {"topic": "feed:a"}}))
        answer = await client.receive()
    assert answer.type == "$ws:subscribed", answer
