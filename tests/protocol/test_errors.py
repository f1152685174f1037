"""PROTOCOL.md, "Errors": how failures look on the wire (the catalog, ERROR vs RPC_ERROR, leaks)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.protocol.wire import (
    SECRET,
    App,
    Frame,
    Peer,
    assert_usable,
    error,
    recv,
    send_json,
)

from wskit.errors import CATALOG, ErrorCode
from wskit.schema.validator import OutboundValidationError

#: WS-Kit 0.10's retryAfterMs defaults (PROTOCOL.md); every other standard code has none.
RETRY_AFTER_DEFAULTS = {"UNAVAILABLE": 100, "RESOURCE_EXHAUSTED": 100, "DEADLINE_EXCEEDED": 50, "ABORTED": 50}
#: Descriptions observed on the wire from WS-Kit 0.10 (reference capture).
WSKIT_DESCRIPTIONS = {
    "INVALID_ARGUMENT": "Input validation or semantic violation",
    "UNAVAILABLE": "Transient infrastructure error",
    "RESOURCE_EXHAUSTED": "Rate limit, quota, or buffer overflow",
}
STANDARD_CODES = [code.value for code in ErrorCode]


def _default_payload(code: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"code": code, "message": CATALOG[ErrorCode(code)].description}
    if code in RETRY_AFTER_DEFAULTS:
        payload["retryAfterMs"] = RETRY_AFTER_DEFAULTS[code]
    payload["retryable"] = code in RETRY_AFTER_DEFAULTS
    return payload


def test_catalog_has_the_13_standard_codes() -> None:
    """The standard code set is exactly the 13 codes PROTOCOL.md lists."""
    assert sorted(STANDARD_CODES) == sorted(
        [
            "UNAUTHENTICATED",
            "PERMISSION_DENIED",
            "INVALID_ARGUMENT",
            "FAILED_PRECONDITION",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "UNIMPLEMENTED",
            "CANCELLED",
            "DEADLINE_EXCEEDED",
            "RESOURCE_EXHAUSTED",
            "UNAVAILABLE",
            "ABORTED",
            "INTERNAL",
        ]
    )


@pytest.mark.parametrize("code", STANDARD_CODES)
async def test_rpc_error_defaults(peer: Peer, code: str) -> None:
    """ctx.error(code) in an RPC answers RPC_ERROR with the catalog's message, retryAfterMs and retryable."""
    await send_json(peer, {"type": "ERR_RPC", "meta": {"correlationId": "d1"}, "payload": {"code": code}})
    assert await recv(peer) == {"type": "RPC_ERROR", "meta": {"correlationId": "d1"}, "payload": _default_payload(code)}


@pytest.mark.parametrize("code", sorted(WSKIT_DESCRIPTIONS))
async def test_default_messages_match_wskit(peer: Peer, code: str) -> None:
    """Where WS-Kit's default message is known from the capture, ours is the same string."""
    await send_json(peer, {"type": "EVENT_ERR", "payload": {"code": code}})
    got = await recv(peer)
    assert got["payload"]["message"] == WSKIT_DESCRIPTIONS[code]


@pytest.mark.parametrize("code", ["UNAVAILABLE", "ABORTED", "NOT_FOUND"])
async def test_event_error_defaults(peer: Peer, code: str) -> None:
    """ctx.error(code) in an event without correlationId answers ERROR with meta {} and the catalog defaults."""
    await send_json(peer, {"type": "EVENT_ERR", "meta": {}, "payload": {"code": code}})
    assert await recv(peer) == {"type": "ERROR", "meta": {}, "payload": _default_payload(code)}


async def test_event_error_with_correlation_id_is_rpc_error(peer: Peer) -> None:
    """An error answering an event that carried a correlationId is RPC_ERROR with that correlationId."""
    await send_json(peer, {"type": "EVENT_ERR", "meta": {"correlationId": "evt-corr"}, "payload": {"code": "ABORTED"}})
    assert await recv(peer) == {
        "type": "RPC_ERROR",
        "meta": {"correlationId": "evt-corr"},
        "payload": _default_payload("ABORTED"),
    }


async def test_rpc_error_without_correlation_id_is_error(peer: Peer) -> None:
    """An error answering an RPC sent without correlationId is ERROR with meta {} (WS-Kit says RPC_ERROR)."""
    await send_json(peer, {"type": "FIND_RPC", "meta": {}, "payload": {"id": "nocorr"}})
    assert await recv(peer) == error(
        "NOT_FOUND", message="No item with id nocorr", details={"id": "nocorr"}, retryable=False
    )


async def test_given_message_details_and_retry_options_pass_through(peer: Peer) -> None:
    """A given message, details, retryAfterMs and retryable are sent as given."""
    spec = {"code": "UNAVAILABLE", "message": "try later", "details": {"hint": "h"}, "retryAfterMs": 250}
    await send_json(peer, {"type": "ERR_RPC", "meta": {"correlationId": "g1"}, "payload": {**spec, "retryable": False}})
    assert await recv(peer) == error(
        "UNAVAILABLE", cid="g1", message="try later", details={"hint": "h"}, retryAfterMs=250, retryable=False
    )


async def test_retry_after_null_is_sent_as_null(peer: Peer) -> None:
    """retryAfterMs given as None is sent as null (not replaced by the default, not dropped)."""
    spec = {"code": "RESOURCE_EXHAUSTED", "message": "never", "retryAfterMs": None}
    await send_json(peer, {"type": "ERR_RPC", "meta": {"correlationId": "n1"}, "payload": spec})
    got = await recv(peer)
    assert got == error("RESOURCE_EXHAUSTED", cid="n1", message="never", retryAfterMs=None, retryable=True)
    assert "retryAfterMs" in got["payload"]


async def test_empty_details_are_left_out(peer: Peer) -> None:
    """details is sent only when non-empty."""
    await send_json(
        peer, {"type": "ERR_RPC", "meta": {"correlationId": "e1"}, "payload": {"code": "ABORTED", "details": {}}}
    )
    got = await recv(peer)
    assert "details" not in got["payload"]


async def test_application_code_passes_through(peer: Peer) -> None:
    """An application code is sent unchanged, with its message and no catalog defaults."""
    spec = {"code": "ROOM_FULL", "message": "custom code", "details": {"hint": "from handler"}}
    await send_json(peer, {"type": "EVENT_ERR", "meta": {}, "payload": spec})
    assert await recv(peer) == error(
        "ROOM_FULL", message="custom code", details={"hint": "from handler"}, retryable=None
    )


async def test_application_code_with_retryable(peer: Peer) -> None:
    """An application code keeps an explicitly given retryable."""
    spec = {"code": "ROOM_FULL", "message": "full", "retryable": False}
    await send_json(peer, {"type": "ERR_RPC", "meta": {"correlationId": "a1"}, "payload": spec})
    assert await recv(peer) == error("ROOM_FULL", cid="a1", message="full", retryable=False)


async def test_application_code_without_message_uses_the_code(peer: Peer) -> None:
    """An application code without message still carries a non-empty message."""
    await send_json(peer, {"type": "EVENT_ERR", "meta": {}, "payload": {"code": "ROOM_FULL"}})
    assert await recv(peer) == error("ROOM_FULL", retryable=None)


async def test_raised_wskit_error_in_event_is_answered(peer: Peer) -> None:
    """A WsKitError raised by an event handler is answered as that error."""
    spec = {"code": "PERMISSION_DENIED", "mode": "raise", "message": "no", "details": {"why": "x"}}
    await send_json(peer, {"type": "EVENT_ERR", "meta": {}, "payload": spec})
    assert await recv(peer) == error("PERMISSION_DENIED", message="no", details={"why": "x"})


async def test_raised_wskit_error_in_rpc_is_answered(peer: Peer) -> None:
    """A WsKitError raised by an RPC handler is answered as that error, to the request's correlationId."""
    spec = {"code": "UNAVAILABLE", "mode": "raise", "retryAfterMs": 7}
    await send_json(peer, {"type": "ERR_RPC", "meta": {"correlationId": "r1"}, "payload": spec})
    assert await recv(peer) == error(
        "UNAVAILABLE", cid="r1", message="Transient infrastructure error", retryAfterMs=7, retryable=True
    )


async def test_raised_application_code_is_answered(peer: Peer) -> None:
    """A WsKitError with an application code raised in a handler passes the code through."""
    spec = {"code": "ROOM_FULL", "mode": "raise", "message": "full"}
    await send_json(peer, {"type": "ERR_RPC", "meta": {"correlationId": "r2"}, "payload": spec})
    assert await recv(peer) == error("ROOM_FULL", cid="r2", message="full", retryable=None)


async def test_middleware_wskit_error_is_answered(peer: Peer) -> None:
    """A WsKitError raised by route middleware is answered as that error and the handler does not run."""
    await send_json(peer, {"type": "SECRET", "meta": {}, "payload": {}})
    assert await recv(peer) == error("UNAUTHENTICATED", message="Login required")
    await assert_usable(peer)


def _assert_no_leak(frame: Frame) -> None:
    text = frame.data if isinstance(frame.data, str) else frame.data.decode()
    for leak in (SECRET, "Traceback", "RuntimeError", "ValueError", "database password", ".py"):
        assert leak not in text, f"answer leaks {leak!r}: {text}"


async def test_event_handler_exception_is_generic_internal(peer: Peer) -> None:
    """A handler raising a non-WsKitError answers ERROR INTERNAL with a generic message: nothing leaks."""
    await send_json(peer, {"type": "BOOM", "meta": {}, "payload": {}})
    frame = await peer.recv_frame()
    assert isinstance(frame, Frame)
    _assert_no_leak(frame)
    assert frame.json() == error("INTERNAL")


async def test_rpc_handler_exception_is_generic_internal(peer: Peer) -> None:
    """An RPC handler raising a non-WsKitError answers RPC_ERROR INTERNAL with a generic message."""
    await send_json(peer, {"type": "BOOM_RPC", "meta": {"correlationId": "b1"}, "payload": {}})
    frame = await peer.recv_frame()
    assert isinstance(frame, Frame)
    _assert_no_leak(frame)
    assert frame.json() == error("INTERNAL", cid="b1")


async def test_handler_exception_goes_to_on_error(peer: Peer, app: App) -> None:
    """The full exception a handler raised is given to on_error."""
    await send_json(peer, {"type": "BOOM", "meta": {}, "payload": {}})
    await recv(peer)
    assert len(app.errors) == 1
    assert isinstance(app.errors[0], RuntimeError)
    assert SECRET in str(app.errors[0])


async def test_rpc_handler_exception_goes_to_on_error(peer: Peer, app: App) -> None:
    """The full exception an RPC handler raised is given to on_error."""
    await send_json(peer, {"type": "BOOM_RPC", "meta": {"correlationId": "b2"}, "payload": {}})
    await recv(peer)
    assert [type(exc) for exc in app.errors] == [ValueError]


async def test_wskit_error_is_not_reported_to_on_error(peer: Peer, app: App) -> None:
    """A WsKitError is an answer, not a failure: on_error is not called for it."""
    await send_json(peer, {"type": "EVENT_ERR", "meta": {}, "payload": {"code": "NOT_FOUND", "mode": "raise"}})
    await recv(peer)
    assert app.errors == []


async def test_outbound_schema_failure_in_event_sends_nothing(peer: Peer) -> None:
    """An event handler sending a payload that fails its schema sends nothing to the peer."""
    await send_json(peer, {"type": "BAD_OUT", "meta": {}, "payload": {}})
    await assert_usable(peer)


async def test_outbound_schema_failure_goes_to_on_error(peer: Peer, app: App) -> None:
    """An outbound schema failure is reported to on_error."""
    await send_json(peer, {"type": "BAD_OUT", "meta": {}, "payload": {}})
    await assert_usable(peer)
    assert [type(exc) for exc in app.errors] == [OutboundValidationError]


async def test_outbound_schema_failure_in_rpc_reply_is_internal(peer: Peer) -> None:
    """An RPC reply that fails the response schema is not sent; the caller gets RPC_ERROR INTERNAL."""
    await send_json(peer, {"type": "BAD_REPLY_RPC", "meta": {"correlationId": "o1"}, "payload": {}})
    assert await recv(peer) == error("INTERNAL", cid="o1")
    await assert_usable(peer)
