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
        (b'{"a":1,"b":"x"}', {"a": 1, "b": "x", "offset": 3, "epoch": "e1", "topic": "h:room"}),
        (b"{}", {"offset": 3, "epoch": "e1", "topic": "h:room"}),
        (None, {"offset": 3, "epoch": "e1", "topic": "h:room"}),
    ],
    ids=["publisher-meta", "empty-meta", "no-meta"],
)
def test_a_positioned_frame_keeps_the_publisher_meta_and_adds_the_position(
    meta: bytes | None, expected: dict[str, object]
) -> None:
    """with_position(3, "e1"): the frame's meta is the publisher's meta plus offset, epoch and
    topic (valid JSON whether that meta had keys, was empty or absent); type and payload unchanged."""
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


@pytest.mark.parametrize(
    ("meta", "expected"),
    [(b'{"a":1}', {"a": 1, "topic": "h:room"}), (b"{}", {"topic": "h:room"}), (None, {"topic": "h:room"})],
    ids=["publisher-meta", "empty-meta", "no-meta"],
)
def test_a_tagged_frame_names_the_topic_and_the_plain_one_stays_bare(
    meta: bytes | None, expected: dict[str, object]
) -> None:
    """Without history, tagged_frame() adds meta.topic (for $ws:subscribe members) while frame()
    keeps WS-Kit's delivery: the publisher's meta only."""
    pub = _pub(meta)
    assert json.loads(pub.tagged_frame()) == {"type": "MSG", "meta": expected, "payload": {"n": 1}}
    plain = json.loads(pub.frame())
    assert plain.get("meta") == (json.loads(meta) if meta is not None else None)
