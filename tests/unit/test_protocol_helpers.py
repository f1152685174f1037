"""The wire helpers of wskit.protocol: compact JSON (UTF-8, escaped only when it cannot be),
type-name rules, and the wall clock in whole milliseconds."""

from __future__ import annotations

import json

import pytest

from wskit.protocol import dumps, heartbeat_ack, now_ms, valid_type_name


def test_dumps_is_compact() -> None:
    """No spaces after separators: the bytes WS-Kit peers expect."""
    assert dumps({"a": [1, 2], "b": {"c": None}}) == b'{"a":[1,2],"b":{"c":null}}'


def test_dumps_writes_non_ascii_as_utf8() -> None:
    """Non-ASCII text is written as UTF-8, not as escapes."""
    assert dumps({"name": "Zoë"}) == '{"name":"Zoë"}'.encode()


def test_dumps_escapes_when_a_lone_surrogate_cannot_be_utf8() -> None:
    """A lone surrogate (smuggled in as \\udc00): every non-ASCII character is escaped, still
    compact, and the result is valid JSON that decodes back to the same text."""
    data = dumps({"t": "\udc00é", "n": [1, 2]})
    assert data == b'{"t":"\\udc00\\u00e9","n":[1,2]}'
    assert json.loads(data) == {"t": "\udc00é", "n": [1, 2]}


@pytest.mark.parametrize("name", ["CHAT", "chat.message", "a:b/c-d_e", "x" * 128])
def test_valid_type_names(name: str) -> None:
    """Letters, digits and ``_.:/-``, 1 to 128 characters."""
    assert valid_type_name(name)


@pytest.mark.parametrize("name", ["", "x" * 129, "has space", "lobby\n", "$ws:ping", "__heartbeat", "é"])
def test_invalid_type_names(name: str) -> None:
    """Empty, too long, other characters, or reserved (``$``, ``__``): not an application type."""
    assert not valid_type_name(name)


def test_now_ms_is_whole_milliseconds() -> None:
    """An int (JSON integer on the wire), not a float."""
    assert isinstance(now_ms(), int)


def test_heartbeat_ack_carries_the_time_as_an_integer() -> None:
    """``{"type":"__heartbeat_ack","meta":{"ts":<int ms>}}``."""
    ack = json.loads(heartbeat_ack())
    assert ack["type"] == "__heartbeat_ack" and isinstance(ack["meta"]["ts"], int)
