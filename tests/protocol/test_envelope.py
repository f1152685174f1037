"""PROTOCOL.md, "Frames and envelope" and "Heartbeat": the shape of what goes over the wire."""

from __future__ import annotations

import time

from tests.protocol.wire import ANY_INT, Frame, Peer, assert_usable, invalid, recv, send_json


async def test_event_answer_keys_in_order(peer: Peer) -> None:
    """An event's answer is serialised with its keys in the order type, meta, payload."""
    await send_json(peer, {"type": "PING", "meta": {}, "payload": {"n": 1}})
    got = await recv(peer)
    assert list(got) == ["type", "meta", "payload"]
    assert got == {"type": "PONG", "meta": {}, "payload": {"n": 1}}


async def test_rpc_reply_keys_in_order(peer: Peer) -> None:
    """An RPC reply is serialised type, meta, payload, with meta holding only the correlationId."""
    await send_json(peer, {"type": "ECHO_RPC", "meta": {"correlationId": "k1"}, "payload": {"text": "x"}})
    got = await recv(peer)
    assert list(got) == ["type", "meta", "payload"]
    assert got == {"type": "ECHO_OK", "meta": {"correlationId": "k1"}, "payload": {"text": "x"}}


async def test_error_keys_in_order(peer: Peer) -> None:
    """An error frame is serialised type, meta, payload, and its payload code, message, details, retryAfterMs,
    retryable (the order of PROTOCOL.md's example)."""
    spec = {"code": "UNAVAILABLE", "message": "m", "details": {"a": 1}, "retryAfterMs": 5, "retryable": True}
    await send_json(peer, {"type": "ERR_RPC", "meta": {"correlationId": "k2"}, "payload": spec})
    got = await recv(peer)
    assert list(got) == ["type", "meta", "payload"]
    assert list(got["payload"]) == ["code", "message", "details", "retryAfterMs", "retryable"]


async def test_progress_keys_in_order(peer: Peer) -> None:
    """A progress frame is serialised type, meta, payload."""
    await send_json(peer, {"type": "SLOW_RPC", "meta": {"correlationId": "k3"}, "payload": {"steps": 1}})
    got = await recv(peer)
    assert list(got) == ["type", "meta", "payload"]
    assert got["type"] == "$ws:rpc-progress"


async def test_message_without_payload_has_no_payload_key(peer: Peer) -> None:
    """A message declared without payload goes out as {"type","meta"} only, and is accepted without payload."""
    await send_json(peer, {"type": "NUDGE", "meta": {}})
    got = await recv(peer)
    assert list(got) == ["type", "meta"]
    assert got == {"type": "NUDGED", "meta": {}}


async def test_message_without_payload_accepts_empty_payload(peer: Peer) -> None:
    """A message declared without payload is also accepted with an empty payload object."""
    await send_json(peer, {"type": "NUDGE", "meta": {}, "payload": {}})
    assert await recv(peer) == {"type": "NUDGED", "meta": {}}


async def test_answers_are_text_frames(peer: Peer) -> None:
    """The server sends one JSON object per text frame (a binary frame would break WS-Kit clients)."""
    await send_json(peer, {"type": "PING", "meta": {}, "payload": {"n": 2}})
    frame = await peer.recv_frame()
    assert isinstance(frame, Frame)
    assert frame.text
    assert frame.json() == {"type": "PONG", "meta": {}, "payload": {"n": 2}}


async def test_binary_frame_holding_json_is_handled_like_text(peer: Peer) -> None:
    """A binary frame holding UTF-8 JSON is decoded and handled like a text frame."""
    await peer.send_bytes(b'{"type":"PING","meta":{},"payload":{"n":7}}')
    assert await recv(peer) == {"type": "PONG", "meta": {}, "payload": {"n": 7}}


async def test_unknown_root_keys_are_ignored(peer: Peer) -> None:
    """Root keys other than type, meta and payload are ignored, not rejected."""
    await send_json(peer, {"type": "PING", "meta": {}, "payload": {"n": 1}, "extra": True})
    assert await recv(peer) == {"type": "PONG", "meta": {}, "payload": {"n": 1}}


async def test_meta_may_be_omitted(peer: Peer) -> None:
    """An envelope without meta is accepted."""
    await send_json(peer, {"type": "PING", "payload": {"n": 3}})
    assert await recv(peer) == {"type": "PONG", "meta": {}, "payload": {"n": 3}}


async def test_inbound_timestamp_and_timeout_are_accepted(peer: Peer) -> None:
    """meta.timestamp and meta.timeoutMs (numbers) are allowed on any message."""
    await send_json(peer, {"type": "PING", "meta": {"timestamp": 123.5, "timeoutMs": 1000}, "payload": {"n": 4}})
    assert await recv(peer) == {"type": "PONG", "meta": {}, "payload": {"n": 4}}


async def test_correlation_id_on_event_is_not_echoed_by_send(peer: Peer) -> None:
    """The server adds nothing to outbound meta: a plain send answering an event with a correlationId has meta {}."""
    await send_json(peer, {"type": "PING", "meta": {"timestamp": 123, "correlationId": "ev-1"}, "payload": {"n": 5}})
    assert await recv(peer) == {"type": "PONG", "meta": {}, "payload": {"n": 5}}


async def test_schema_declared_meta_key_is_accepted_and_handler_meta_is_sent(peer: Peer) -> None:
    """A meta key the message's schema declares is accepted; meta the handler passes (and the inherited
    correlationId) goes out, nothing else."""
    await send_json(peer, {"type": "TAGGED_PING", "meta": {"tag": "t1", "correlationId": "tc"}, "payload": {"n": 9}})
    assert await recv(peer) == {"type": "PONG", "meta": {"tag": "t1", "correlationId": "tc"}, "payload": {"n": 9}}


async def test_schema_declared_meta_key_is_type_checked(peer: Peer) -> None:
    """A declared meta key of the wrong type is INVALID_ARGUMENT with the meta path."""
    await send_json(peer, {"type": "TAGGED_PING", "meta": {"tag": 5}, "payload": {"n": 9}})
    assert await recv(peer) == invalid(["meta", "tag"])


async def test_heartbeat_is_acknowledged_with_server_time(peer: Peer) -> None:
    """{"type":"__heartbeat"} is answered with {"type":"__heartbeat_ack","meta":{"ts":<server ms>}}."""
    before = time.time_ns() // 1_000_000
    await send_json(peer, {"type": "__heartbeat"})
    got = await recv(peer)
    after = time.time_ns() // 1_000_000
    assert got == {"type": "__heartbeat_ack", "meta": {"ts": ANY_INT}}
    assert list(got) == ["type", "meta"]
    assert before <= got["meta"]["ts"] <= after


async def test_heartbeat_with_meta_is_acknowledged(peer: Peer) -> None:
    """A heartbeat carrying meta of its own is acknowledged the same way (the client's ts is not echoed)."""
    await send_json(peer, {"type": "__heartbeat", "meta": {"ts": 1}})
    got = await recv(peer)
    assert got == {"type": "__heartbeat_ack", "meta": {"ts": ANY_INT}}
    assert got["meta"]["ts"] > 1


async def test_heartbeat_keeps_connection_usable(peer: Peer) -> None:
    """Heartbeats are answered without disturbing the connection."""
    for _ in range(3):
        await send_json(peer, {"type": "__heartbeat"})
    for _ in range(3):
        assert (await recv(peer))["type"] == "__heartbeat_ack"
    await assert_usable(peer)
