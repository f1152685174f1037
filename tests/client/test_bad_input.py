"""A server sending junk: the client reports each bad frame (bounded in the log) and keeps working."""

from __future__ import annotations

import json
import logging

import pytest
from tests.client.app import Echo, Heard
from tests.client.junk_server import junk_server
from tests.support.waiting import PATIENCE_S, eventually

from wskit.client import Backoff, BadFrame, Client

JUNK: list[str | bytes] = [
    "not json at all",
    "[1, 2, 3]",
    '{"meta": {}}',
    b"\xff\xfe binary garbage",
    '{"type": "NO_SUCH_TYPE", "payload": {}}',
    '{"type": "ECHOED", "meta": {"correlationId": "nobody"}, "payload": {"text": "late"}}',
    '{"type": "$ws:rpc-progress", "meta": {"correlationId": "nobody"}, "payload": {}}',
    '{"type": "HEARD", "payload": {"text": 5}}',
    '{"type": "ERROR", "payload": {"code": "INTERNAL", "message": "boom"}}',
]


async def test_junk_is_reported_by_kind_and_the_client_keeps_working() -> None:
    """Every bad frame reaches on_error as a BadFrame of the right kind (an ERROR frame as a
    ClientError); afterwards a request on the same connection is answered."""
    reports: list[Exception] = []
    async with junk_server(JUNK) as server:
        client = Client(server.url, on_error=reports.append)
        client.on(Heard, lambda msg: None)
        await client.connect()
        await eventually(lambda: len(reports) == 9)
        assert (await client.request(Echo, {"text": "still here"})).payload.text == "still here"
        assert server.connections == 1
        await client.close()
    kinds = [r.kind if isinstance(r, BadFrame) else type(r).__name__ for r in reports]
    assert kinds == [
        "not-json",
        "not-json",
        "not-json",
        "not-json",
        "unknown-type",
        "unknown-correlation-id",  # ECHOED that no request waits for
        "unknown-correlation-id",  # progress for no request
        "invalid-payload",
        "ClientError",  # ERROR to no request: the server's error, passed on
    ]
    assert client.problems["not-json"] == 4 and client.problems["invalid-payload"] == 1


async def test_a_10_mib_frame_within_the_limit_is_reported_and_the_connection_stays() -> None:
    """max_message_bytes=16 MiB: a 10 MiB frame of an unknown type is reported, the connection stays."""
    big = '{"type": "HUGE", "payload": {"blob": "' + "x" * (10 * 1024 * 1024) + '"}}'
    reports: list[Exception] = []
    async with junk_server([big]) as server:
        client = Client(server.url, max_message_bytes=16 * 1024 * 1024, on_error=reports.append)
        await client.connect()
        await eventually(lambda: len(reports) == 1)
        assert isinstance(reports[0], BadFrame) and reports[0].kind == "unknown-type"
        assert len(reports[0].head) <= 80  # the report quotes the start, not 10 MiB
        assert (await client.request(Echo, {"text": "ok"})).payload.text == "ok"
        assert server.connections == 1
        await client.close()


async def test_a_frame_over_max_message_bytes_drops_the_connection_and_the_client_reconnects() -> None:
    """A 10 MiB frame over the 4 MiB default: the client closes that connection (1009), says
    so, and reconnects by itself (the server, not this client, broke the limit)."""
    big = '{"type": "HUGE", "payload": {"blob": "' + "x" * (10 * 1024 * 1024) + '"}}'
    async with junk_server([big], first_only=True) as server:
        client = Client(server.url, backoff=Backoff(initial_delay=0.02, max_delay=0.05))
        await client.connect()
        await eventually(lambda: server.connections == 2 and client.state == "open")
        assert client.problems.get("too-big") == 1
        assert (await client.request(Echo, {"text": "back"}, timeout=PATIENCE_S)).payload.text == "back"
        await client.close()


async def test_the_log_is_bounded_under_a_flood_of_junk(caplog: pytest.LogCaptureFixture) -> None:
    """200 junk frames: every one reaches on_error, but the log gets at most 10 lines (plus none
    for the rest within the window)."""
    reports: list[Exception] = []
    async with junk_server(["junk"] * 200) as server:
        with caplog.at_level(logging.WARNING, logger="wskit.client"):
            client = Client(server.url, on_error=reports.append)
            await client.connect()
            await eventually(lambda: len(reports) == 200)
            await client.close()
    lines = [r for r in caplog.records if "skipped a frame" in r.getMessage()]
    assert 1 <= len(lines) <= 10


async def test_positions_of_a_hostile_server_stay_bounded() -> None:
    """Deliveries on 1,100 topics the client never subscribed to, and one with a 200-character
    topic: 1,000 are tracked, the rest are passed on untracked and reported."""
    topics = [f"t{n}" for n in range(1100)] + ["x" * 200]
    frames: list[str | bytes] = [
        json.dumps({"type": "HEARD", "meta": {"topic": t, "offset": 1, "epoch": "e"}, "payload": {"text": t}})
        for t in topics
    ]
    got: list[str] = []
    async with junk_server(frames) as server:
        client = Client(server.url)
        client.on(Heard, lambda msg: got.append(msg.payload.text))
        await client.connect()
        await eventually(lambda: len(got) == len(topics))
        assert len(client.positions) == 1000 and "x" * 200 not in client.positions
        assert client.problems["untracked-topic"] == 101
        await client.close()


async def test_an_on_error_that_always_raises_is_logged_within_the_burst(caplog: pytest.LogCaptureFixture) -> None:
    """50 junk frames and an on_error that raises on each: its traceback is logged under the
    same burst limit as the reports (10 lines a window), not once per frame."""
    calls: list[Exception] = []

    def broken(exc: Exception) -> None:
        calls.append(exc)
        raise RuntimeError("the application's callback is broken")

    async with junk_server(["junk"] * 50) as server:
        client = Client(server.url, on_error=broken)
        with caplog.at_level(logging.WARNING, logger="wskit.client"):
            await client.connect()
            await eventually(lambda: len(calls) == 50)
        await client.close()
    raised = [r for r in caplog.records if r.getMessage() == "on_error callback raised"]
    assert 0 < len(raised) <= 10
