"""The error catalog (PROTOCOL.md, "Errors" and "Close codes")."""

from __future__ import annotations

import json

import pytest

from wskit import CloseCode, ErrorCode, UsageError, WsKitError
from wskit.context import error_frame
from wskit.errors import CATALOG, error_payload

STANDARD_CODES = [
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

#: WS-Kit's retryable codes and their default retryAfterMs (PROTOCOL.md).
RETRYABLE = {"UNAVAILABLE": 100, "RESOURCE_EXHAUSTED": 100, "DEADLINE_EXCEEDED": 50, "ABORTED": 50}


def test_error_code_has_exactly_the_13_standard_codes() -> None:
    """ErrorCode holds the 13 standard codes, each valued as its name."""
    assert sorted(code.value for code in ErrorCode) == sorted(STANDARD_CODES)
    assert all(ErrorCode[name].value == name for name in STANDARD_CODES)


def test_catalog_covers_every_code() -> None:
    """Every code has a catalog entry with a non-empty description."""
    assert set(CATALOG) == set(ErrorCode)
    assert all(spec.description for spec in CATALOG.values())


@pytest.mark.parametrize("code", STANDARD_CODES)
def test_default_retryable_and_retry_after(code: str) -> None:
    """retryable/retryAfterMs defaults: the four retryable codes carry their delay, the others neither."""
    payload = error_payload(code)
    if code in RETRYABLE:
        assert payload["retryable"] is True
        assert payload["retryAfterMs"] == RETRYABLE[code]
    else:
        assert payload["retryable"] is False
        assert "retryAfterMs" not in payload


def test_payload_key_order_matches_ws_kit() -> None:
    """Keys are serialised as code, message, details, retryAfterMs, retryable."""
    payload = error_payload(ErrorCode.UNAVAILABLE, "down", details={"a": 1}, retry_after_ms=5, retryable=True)
    assert list(payload) == ["code", "message", "details", "retryAfterMs", "retryable"]
    assert json.dumps(payload, separators=(",", ":")) == (
        '{"code":"UNAVAILABLE","message":"down","details":{"a":1},"retryAfterMs":5,"retryable":true}'
    )


def test_message_defaults_to_catalog_description() -> None:
    """Without a message the catalog's description is sent."""
    assert error_payload(ErrorCode.NOT_FOUND)["message"] == CATALOG[ErrorCode.NOT_FOUND].description


def test_empty_details_are_left_out() -> None:
    """details is present only when non-empty."""
    assert "details" not in error_payload(ErrorCode.NOT_FOUND, details={})
    assert "details" not in error_payload(ErrorCode.NOT_FOUND, details=None)
    assert error_payload(ErrorCode.NOT_FOUND, details={"id": "1"})["details"] == {"id": "1"}


def test_explicit_retry_after_none_serialises_as_null() -> None:
    """retry_after_ms=None given explicitly is sent as ``"retryAfterMs": null``."""
    payload = error_payload(ErrorCode.UNAVAILABLE, retry_after_ms=None)
    assert '"retryAfterMs":null' in json.dumps(payload, separators=(",", ":"))


def test_explicit_retry_after_on_non_retryable_code_is_kept() -> None:
    """An explicit retryAfterMs is sent even for a code without a default."""
    assert error_payload(ErrorCode.INTERNAL, retry_after_ms=10)["retryAfterMs"] == 10


def test_explicit_retryable_overrides_default() -> None:
    """An explicit retryable overrides the code's default."""
    assert error_payload(ErrorCode.INTERNAL, retryable=True)["retryable"] is True
    assert error_payload(ErrorCode.UNAVAILABLE, retryable=False)["retryable"] is False


def test_standard_code_given_as_string_gets_catalog_defaults() -> None:
    """A standard code given as a plain string is recognised (defaults apply)."""
    assert error_payload("UNAVAILABLE") == error_payload(ErrorCode.UNAVAILABLE)


def test_application_code_passes_through_without_defaults() -> None:
    """An application code is sent unchanged with no retryable or retryAfterMs default."""
    payload = error_payload("ROOM_FULL", "the room is full")
    assert payload == {"code": "ROOM_FULL", "message": "the room is full"}


def test_application_code_keeps_explicit_fields() -> None:
    """An application code carries the retryable/retryAfterMs/details it is given."""
    payload = error_payload("ROOM_FULL", "full", details={"room": "a"}, retry_after_ms=1000, retryable=True)
    assert payload == {
        "code": "ROOM_FULL",
        "message": "full",
        "details": {"room": "a"},
        "retryAfterMs": 1000,
        "retryable": True,
    }


def test_application_code_without_message_has_a_message() -> None:
    """An application code without a message still sends a non-empty message string."""
    message = error_payload("ROOM_FULL")["message"]
    assert isinstance(message, str) and message


def test_wskit_error_to_payload_matches_error_payload() -> None:
    """WsKitError(...).to_payload() is the same payload error_payload builds."""
    error = WsKitError(ErrorCode.RESOURCE_EXHAUSTED, "slow down", details={"limit": 10})
    assert error.to_payload() == error_payload(ErrorCode.RESOURCE_EXHAUSTED, "slow down", details={"limit": 10})


def test_wskit_error_normalises_standard_code_strings() -> None:
    """WsKitError("NOT_FOUND") has code ErrorCode.NOT_FOUND; application codes stay strings."""
    assert WsKitError("NOT_FOUND").code is ErrorCode.NOT_FOUND
    assert WsKitError("ROOM_FULL").code == "ROOM_FULL"


def test_wskit_error_explicit_retry_after_none() -> None:
    """WsKitError(retry_after_ms=None) sends retryAfterMs null, not the default."""
    assert WsKitError(ErrorCode.UNAVAILABLE, retry_after_ms=None).to_payload()["retryAfterMs"] is None


def test_wskit_error_str_names_code_and_message() -> None:
    """str(WsKitError) shows the code and the message."""
    text = str(WsKitError(ErrorCode.NOT_FOUND, "no such user"))
    assert "NOT_FOUND" in text and "no such user" in text


def test_usage_error_is_a_type_error() -> None:
    """UsageError (API misuse) is a TypeError, not a WsKitError."""
    assert issubclass(UsageError, TypeError)
    assert not issubclass(UsageError, WsKitError)


def test_error_frame_is_rpc_error_with_correlation_id() -> None:
    """An error answering a message with a correlationId is RPC_ERROR carrying that id."""
    frame = json.loads(error_frame(error_payload(ErrorCode.NOT_FOUND), "c-1"))
    assert list(frame) == ["type", "meta", "payload"]
    assert frame["type"] == "RPC_ERROR"
    assert frame["meta"] == {"correlationId": "c-1"}


def test_error_frame_is_error_without_correlation_id() -> None:
    """An error answering a message without a correlationId is ERROR with empty meta."""
    frame = json.loads(error_frame(error_payload(ErrorCode.NOT_FOUND), None))
    assert (frame["type"], frame["meta"]) == ("ERROR", {})


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("NORMAL", 1000),
        ("GOING_AWAY", 1001),
        ("POLICY_VIOLATION", 1008),
        ("MESSAGE_TOO_BIG", 1009),
        ("INTERNAL_ERROR", 1011),
        ("SERVICE_RESTART", 1012),
        ("TRY_AGAIN_LATER", 1013),
        ("APPLICATION_MIN", 4000),
        ("APPLICATION_MAX", 4999),
    ],
)
def test_close_code_values(member: str, value: int) -> None:
    """CloseCode members have the RFC 6455 / PROTOCOL.md values."""
    assert CloseCode[member] == value


def test_every_exception_of_wskit_has_one_root() -> None:
    """Every exception class defined anywhere in wskit derives from WsKitException and is
    drawn in errors.py's tree."""
    import importlib
    import pkgutil

    import wskit
    import wskit.errors
    from wskit import WsKitException

    found = []
    for info in pkgutil.walk_packages(wskit.__path__, "wskit."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == info.name:
                found.append(value)
    assert len(found) >= 8, found  # the walk sees them (guards against checking nothing)
    for cls in found:
        assert issubclass(cls, WsKitException), f"{cls.__module__}.{cls.__name__} is outside the tree"
        assert cls.__name__ in (wskit.errors.__doc__ or ""), f"{cls.__name__} is missing from the tree in errors.py"


def test_the_standard_bases_users_catch_are_kept() -> None:
    """ConfigError is still a ValueError and a TypeError; ConnectionClosed a ConnectionError."""
    from wskit.config import ConfigError
    from wskit.testing.client import ConnectionClosed

    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, TypeError)
    assert issubclass(ConnectionClosed, ConnectionError)
