"""Bad input: for each, the exact answer on the wire, the connection still usable, and a bystander unaffected.

Every case is one frame sent by client ``peer`` while client ``other`` is connected to the same
server. After the answer, ``peer``'s next frame must be the answer to a probe RPC (so nothing
stray was sent), and ``other``'s probe RPC must answer too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from tests.protocol.wire import Peer, assert_usable, error, invalid, recv, wait_closed

BAD_JSON = error("INVALID_ARGUMENT")


@dataclass(frozen=True)
class Case:
    """One bad frame and the exact answer it must get (None: no answer at all)."""

    id: str
    frame: str | bytes
    answer: dict[str, Any] | None


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _reserved(type_name: str, cid: str | None = None) -> dict[str, Any]:
    return error("INVALID_ARGUMENT", cid=cid, details={"type": type_name})


CASES = [
    Case("non-json-text", "not json at all", BAD_JSON),
    Case("truncated-json", '{"type":"PING"', BAD_JSON),
    Case("json-array", "[1,2,3]", BAD_JSON),
    Case("json-number", "42", BAD_JSON),
    Case("json-string", '"PING"', BAD_JSON),
    Case("json-null", "null", BAD_JSON),
    Case("binary-garbage", b"\xff\xfe\x80garbage\xc3\x28", BAD_JSON),
    Case("missing-type", _j({"payload": {"n": 1}}), BAD_JSON),
    Case("non-string-type", _j({"type": 42}), BAD_JSON),
    Case("null-type", _j({"type": None, "meta": {"correlationId": "c"}}), BAD_JSON),
    Case("reserved-dunder", _j({"type": "__x"}), _reserved("__x")),
    Case("reserved-heartbeat-ack", _j({"type": "__heartbeat_ack"}), _reserved("__heartbeat_ack")),
    Case("reserved-ws-open", _j({"type": "$ws:open"}), _reserved("$ws:open")),
    Case("reserved-ws-progress", _j({"type": "$ws:rpc-progress"}), _reserved("$ws:rpc-progress")),
    Case(
        "reserved-with-correlation-id",
        _j({"type": "$ws:rpc-progress", "meta": {"correlationId": "rp"}, "payload": {}}),
        _reserved("$ws:rpc-progress", cid="rp"),
    ),
    Case(
        "unknown-type",
        _j({"type": "NO_SUCH_TYPE", "meta": {"timestamp": 1}, "payload": {"x": 1}}),
        error("UNIMPLEMENTED", details={"type": "NO_SUCH_TYPE"}),
    ),
    Case(
        "unknown-type-with-correlation-id",
        _j({"type": "NO_SUCH_RPC", "meta": {"correlationId": "u1"}, "payload": {}}),
        error("UNIMPLEMENTED", cid="u1", details={"type": "NO_SUCH_RPC"}),
    ),
    Case("wrong-payload-type", _j({"type": "PING", "meta": {}, "payload": {"n": "one"}}), invalid(["payload", "n"])),
    Case(
        "wrong-payload-type-rpc",
        _j({"type": "ECHO_RPC", "meta": {"correlationId": "w1"}, "payload": {"text": 5}}),
        invalid(["payload", "text"], cid="w1"),
    ),
    Case("payload-not-object", _j({"type": "PING", "meta": {}, "payload": [1]}), invalid(["payload"])),
    Case("missing-payload", _j({"type": "PING", "meta": {}}), invalid(["payload"])),
    Case("extra-payload-key", _j({"type": "PING", "meta": {}, "payload": {"n": 6, "x": 1}}), invalid(["payload", "x"])),
    Case(
        "extra-payload-key-on-empty-payload",
        _j({"type": "BOOM_RPC", "meta": {"correlationId": "e1"}, "payload": {"x": 1}}),
        invalid(["payload", "x"], cid="e1"),
    ),
    Case("extra-meta-key", _j({"type": "PING", "meta": {"foo": 1}, "payload": {"n": 2}}), invalid(["meta", "foo"])),
    Case(
        "extra-meta-key-rpc",
        _j({"type": "ECHO_RPC", "meta": {"correlationId": "m1", "foo": 1}, "payload": {"text": "t"}}),
        invalid(["meta", "foo"], cid="m1"),
    ),
    Case("meta-not-object", _j({"type": "PING", "meta": [], "payload": {"n": 1}}), invalid(["meta"])),
    Case(
        "client-sent-client-id",
        _j({"type": "PING", "meta": {"clientId": "spoof"}, "payload": {"n": 4}}),
        invalid(["meta", "clientId"]),
    ),
    Case(
        "client-sent-received-at",
        _j({"type": "PING", "meta": {"receivedAt": 1}, "payload": {"n": 4}}),
        invalid(["meta", "receivedAt"]),
    ),
    Case(
        "client-sent-client-id-and-received-at",
        _j({"type": "PING", "meta": {"clientId": "spoof", "receivedAt": 1}, "payload": {"n": 4}}),
        invalid(["meta", "clientId"], ["meta", "receivedAt"]),
    ),
    Case(
        "non-string-correlation-id",
        _j({"type": "ECHO_RPC", "meta": {"correlationId": 7}, "payload": {"text": "numeric corr"}}),
        invalid(["meta", "correlationId"]),
    ),
    Case(
        "non-number-timestamp",
        _j({"type": "PING", "meta": {"timestamp": "now"}, "payload": {"n": 1}}),
        invalid(["meta", "timestamp"]),
    ),
    Case("event-handler-raises", _j({"type": "BOOM", "meta": {}, "payload": {}}), error("INTERNAL")),
    Case(
        "rpc-handler-raises",
        _j({"type": "BOOM_RPC", "meta": {"correlationId": "h1"}, "payload": {}}),
        error("INTERNAL", cid="h1"),
    ),
    Case(
        "handler-replies-twice",
        _j({"type": "DOUBLE_RPC", "meta": {"correlationId": "d1"}, "payload": {}}),
        {"type": "DOUBLE_OK", "meta": {"correlationId": "d1"}, "payload": {"text": "first"}},
    ),
    Case(
        "rpc-without-correlation-id",
        _j({"type": "ECHO_RPC", "meta": {}, "payload": {"text": "no-correlation"}}),
        {"type": "ECHO_OK", "meta": {}, "payload": {"text": "no-correlation"}},
    ),
    Case(
        "rpc-without-correlation-id-fails",
        _j({"type": "ECHO_RPC", "payload": {"text": 1}}),
        invalid(["payload", "text"]),
    ),
    Case("outbound-schema-failure", _j({"type": "BAD_OUT", "meta": {}, "payload": {}}), None),
    Case("empty-text-frame", "", BAD_JSON),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_bad_input_gets_exact_answer_and_harms_nobody(case: Case, peer: Peer, other: Peer) -> None:
    """The bad frame gets exactly its answer; the sender's connection and a bystander's keep working."""
    if isinstance(case.frame, bytes):
        await peer.send_bytes(case.frame)
    else:
        await peer.send_text(case.frame)
    if case.answer is not None:
        assert await recv(peer) == case.answer
    await assert_usable(peer)
    await assert_usable(other)


async def test_two_mib_frame_closes_1009_and_harms_nobody(peer: Peer, other: Peer) -> None:
    """A 2 MiB frame closes the sender's connection with 1009 and nothing else; a bystander keeps working."""
    await peer.send_text(json.dumps({"type": "PING", "meta": {}, "payload": {"n": 1, "pad": "p" * (2 << 20)}}))
    assert (await wait_closed(peer)).code == 1009
    await assert_usable(other)


async def test_two_mib_binary_frame_closes_1009(peer: Peer, other: Peer) -> None:
    """A 2 MiB binary frame is held to the same limit: close 1009; a bystander keeps working."""
    await peer.send_bytes(b"\x00" * (2 << 20))
    assert (await wait_closed(peer)).code == 1009
    await assert_usable(other)


async def test_burst_of_bad_frames_keeps_connection(peer: Peer, other: Peer) -> None:
    """Many bad frames in a row are each answered, in order, and the connection survives."""
    for case in CASES[:10]:
        if isinstance(case.frame, bytes):
            await peer.send_bytes(case.frame)
        else:
            await peer.send_text(case.frame)
    for case in CASES[:10]:
        assert await recv(peer) == case.answer
    await assert_usable(peer)
    await assert_usable(other)
