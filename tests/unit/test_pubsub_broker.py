"""Publication frames with a history position, and the unprompted recovery error frame."""

from __future__ import annotations

import json

import pytest

from wskit.pubsub.broker import Publication, lost_frame


def _pub(meta: bytes | None) -> Publication:
    return Publication("h:room", b'{"type":"MSG"', b',"payload":{"n":1}}', meta)


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (b'{"a":1,"b":"x"}', {"a": 1, "b": "x", "offset": 3, "epoch": "e1"}),
        (b"{}", {"offset": 3, "epoch": "e1"}),
        (None, {"offset": 3, "epoch": "e1"}),
    ],
    ids=["publisher-meta", "empty-meta", "no-meta"],
)
def test_a_positioned_frame_keeps_the_publisher_meta_and_adds_the_position(
    meta: bytes | None, expected: dict[str, object]
) -> None:
    """with_position(3, "e1"): the frame's meta is the publisher's meta plus offset and epoch
    (valid JSON whether that meta had keys, was empty or absent); type and payload unchanged."""
    frame = json.loads(_pub(meta).with_position(3, "e1").frame())
    assert frame == {"type": "MSG", "meta": expected, "payload": {"n": 1}}


def test_with_position_is_a_copy_carrying_everything_else() -> None:
    """The copy keeps topic, meta, exclude and overflow; the original has no position."""
    original = Publication("h:room", b'{"type":"MSG"', b"}", b'{"a":1}', exclude="c1")
    original.overflow = "drop-new"
    copy = original.with_position(7, "e2")
    assert (copy.topic, copy.meta, copy.exclude, copy.overflow) == ("h:room", b'{"a":1}', "c1", "drop-new")
    assert (copy.offset, copy.epoch) == (7, "e2")
    assert (original.offset, original.epoch) == (None, None)


def test_the_frame_is_built_once() -> None:
    """frame() returns the very same bytes object each time: fan-out serialises once."""
    pub = _pub(b'{"a":1}').with_position(1, "e")
    assert pub.frame() is pub.frame()


def test_lost_frame_is_a_recovery_error_that_says_messages_were_lost() -> None:
    """lost_frame(topic): ERROR FAILED_PRECONDITION {reason: recovery, topic}, not retryable, with
    a message saying publications were lost (not the re-subscribe default)."""
    frame = json.loads(lost_frame("h:room"))
    assert frame["type"] == "ERROR" and frame["meta"] == {}
    payload = frame["payload"]
    assert payload["code"] == "FAILED_PRECONDITION"
    assert payload["details"] == {"reason": "recovery", "topic": "h:room"}
    assert payload["retryable"] is False
    assert "lost" in payload["message"].lower()
