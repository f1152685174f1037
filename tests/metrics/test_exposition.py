"""``GET /metrics`` over real sockets on every host: the contract's families, what they
count, and the answers when metrics are off or prometheus-client is missing."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest
from tests.metrics.scraping import WAYS, http_get, rpc_call, scrape, served
from tests.support.serving import Served, prefix_of
from tests.support.waiting import eventually
from websockets.asyncio.client import connect

from wskit.telemetry import Telemetry

#: the families API.md names, and their types
CONTRACT = {
    "wskit_connections": "gauge",
    "wskit_messages_received_total": "counter",
    "wskit_messages_sent_total": "counter",
    "wskit_errors_total": "counter",
    "wskit_handler_duration_seconds": "histogram",
}


@pytest.mark.parametrize("way", WAYS)
async def test_every_contract_family_is_exposed_with_its_type_and_help(way: str) -> None:
    """The five families of API.md are there under their exact names, with the right TYPE and
    the telemetry's HELP; so is every other family the runtime keeps, and the answering
    process's process_* metrics (one process)."""
    async with served(way) as server:
        assert server.runtime is not None
        expected = {f.name: f for f in server.runtime.telemetry.families()}
        exposed = await scrape(server)
    for name, kind in CONTRACT.items():
        assert exposed.types.get(name) == kind, (name, exposed.types.get(name))
    for name, family in expected.items():
        assert exposed.types.get(name) == family.kind, name
        assert exposed.helps.get(name) == family.help, name
    assert all(name.startswith(("wskit_", "process_")) for name in exposed.types)
    assert "process_resident_memory_bytes" in exposed.types


@pytest.mark.parametrize("way", WAYS)
async def test_errors_are_counted_by_their_wire_code(way: str) -> None:
    """An unknown type counts UNIMPLEMENTED, a frame that is not JSON INVALID_ARGUMENT, a
    handler raising WsKitError(NOT_FOUND) NOT_FOUND: each once, and nothing else moves."""
    async with served(way) as server:
        before = await scrape(server)
        async with connect(server.url, open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "NOPE", "meta": {}, "payload": {}}))
            assert json.loads(await ws.recv())["payload"]["code"] == "UNIMPLEMENTED"
            await ws.send("{not json")
            assert json.loads(await ws.recv())["payload"]["code"] == "INVALID_ARGUMENT"
            assert (await rpc_call(ws, "FAIL", "x", "f1"))["payload"]["code"] == "NOT_FOUND"
        after = await scrape(server)
    moved = {
        code: after.value("wskit_errors_total", code=code) - before.value("wskit_errors_total", code=code)
        for code in ("UNIMPLEMENTED", "INVALID_ARGUMENT", "NOT_FOUND", "INTERNAL", "PERMISSION_DENIED")
    }
    assert moved == {"UNIMPLEMENTED": 1, "INVALID_ARGUMENT": 1, "NOT_FOUND": 1, "INTERNAL": 0, "PERMISSION_DENIED": 0}
    assert after.value("wskit_messages_received_total", type="other") == 2


@pytest.mark.parametrize("way", WAYS)
async def test_handler_duration_counts_every_handled_message(way: str) -> None:
    """25 ECHO requests: the ECHO histogram's count and its +Inf bucket both grow by 25, as do
    received ECHO and sent ECHO_OK; PING events are timed under their own type."""
    async with served(way) as server:
        async with connect(server.url, open_timeout=5) as ws:
            for i in range(25):
                assert (await rpc_call(ws, "ECHO", str(i), f"e{i}"))["type"] == "ECHO_OK"
            for i in range(3):
                await ws.send(json.dumps({"type": "PING", "meta": {}, "payload": {"text": str(i)}}))
                assert json.loads(await ws.recv())["type"] == "PONG"
        exposed = await scrape(server)
    assert exposed.value("wskit_handler_duration_seconds_count", type="ECHO") == 25
    assert exposed.value("wskit_handler_duration_seconds_bucket", type="ECHO", le="+Inf") == 25
    assert exposed.value("wskit_handler_duration_seconds_sum", type="ECHO") > 0
    assert exposed.value("wskit_handler_duration_seconds_count", type="PING") == 3
    assert exposed.value("wskit_messages_received_total", type="ECHO") == 25
    assert exposed.value("wskit_messages_sent_total", type="ECHO_OK") == 25


@pytest.mark.parametrize("way", WAYS)
async def test_connections_gauge_follows_opens_and_closes(way: str) -> None:
    """Three clients open: 3; one closes: 2; all closed: 0 (and 3 opened in total)."""
    async with served(way) as server:
        assert await _open_count(server) == 0
        clients = [await connect(server.url, open_timeout=5) for _ in range(3)]
        try:
            await eventually(lambda: _has_open(server, 3), what="3 open")
            await clients[0].close()
            await eventually(lambda: _has_open(server, 2), what="2 open")
        finally:
            for ws in clients:
                await ws.close()
        await eventually(lambda: _has_open(server, 0), what="none open")
        assert (await scrape(server)).value("wskit_connections_opened_total") == 3


async def _open_count(server: Served) -> float:
    return (await scrape(server)).value("wskit_connections")


async def _has_open(server: Served, count: int) -> bool:
    return await _open_count(server) == count


@pytest.mark.parametrize("way", WAYS)
async def test_metrics_off_answers_404(way: str) -> None:
    """METRICS=0: /metrics is not one of the server's paths any more (404); /healthz still is."""
    async with served(way, env={"METRICS": "0"}) as server:
        assert (await http_get(server.port, prefix_of(server) + "/metrics")).status == 404
        assert (await http_get(server.port, prefix_of(server) + "/healthz")).status == 200


@pytest.mark.parametrize("way", WAYS)
async def test_without_prometheus_client_metrics_answers_501_and_says_what_to_install(
    way: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """prometheus-client not importable: one INFO line at start names the extra, and /metrics
    answers 501 with the same hint, every time; the WebSocket side is unaffected."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import now raises ImportError
    caplog.set_level(logging.INFO, logger="wskit.metrics")
    async with served(way) as server:
        for _ in range(2):
            answer = await http_get(server.port, prefix_of(server) + "/metrics")
            assert answer.status == 501
            assert b"pip install 'wskit[metrics]'" in answer.body
        async with connect(server.url, open_timeout=5) as ws:
            assert (await rpc_call(ws, "ECHO", "x", "e1"))["type"] == "ECHO_OK"
    hints = [r for r in caplog.records if r.name == "wskit.metrics" and "wskit[metrics]" in r.getMessage()]
    assert len(hints) == 1 and hints[0].levelno == logging.INFO


@pytest.mark.parametrize("way", WAYS)
async def test_only_get_and_head_are_answered(way: str) -> None:
    """POST /metrics is 405 with Allow; HEAD /healthz is 200 (its body left out)."""
    async with served(way) as server:
        posted = await http_get(server.port, prefix_of(server) + "/metrics", method="POST")
        assert posted.status == 405 and posted.headers["allow"] == "GET, HEAD"
        assert (await http_get(server.port, prefix_of(server) + "/healthz", method="HEAD")).status == 200


async def _head(port: int, path: str, *, upgrade: bool = False) -> tuple[int, bytes]:
    """``HEAD path`` on a connection read to its end: the status, and every byte after the
    headers (none may come: a client that keeps the connection would read them as the start
    of its next answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = (
        "Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        if upgrade
        else "Connection: close\r\n"
    )
    writer.write(f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
    try:
        async with asyncio.timeout(5):
            answer = await reader.read()  # to EOF: each host closes after this answer
    finally:
        writer.close()
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


@pytest.mark.parametrize("way", ["picows", "aiohttp"])
async def test_head_answers_carry_no_body_on_any_path(way: str) -> None:
    """HEAD is answered with headers only, whatever the answer: one of the server's own
    paths (200), a path it does not serve (404), the WebSocket path without an upgrade
    (400), an upgrade by HEAD (405)."""
    async with served(way, path="/live") as server:
        answers = [
            await _head(server.port, "/healthz"),
            await _head(server.port, "/nowhere"),
            await _head(server.port, "/live"),
            await _head(server.port, "/live", upgrade=True),
        ]
    assert [status for status, _ in answers][:2] == [200, 404]
    assert all(400 <= status < 500 for status, _ in answers[2:]), answers
    assert [rest for _, rest in answers] == [b""] * 4


@pytest.mark.parametrize("way", WAYS)
async def test_upgrades_on_another_path_are_counted_as_refused(way: str) -> None:
    """With path= set, an upgrade elsewhere is refused 404 and counted under reason="path"."""
    async with served(way, path="/live") as server:
        for i in range(3):
            refused = await http_get(server.port, prefix_of(server) + f"/elsewhere/{i}", upgrade=True)
            assert refused.status in (403, 404)  # 403: an ASGI host without the HTTP-answer extension
        exposed = await scrape(server)
    assert exposed.value("wskit_upgrades_refused_total", reason="path") == 3


@pytest.mark.parametrize("way", ["picows", "aiohttp"])
async def test_malformed_upgrades_are_counted_as_bad_requests(way: str) -> None:
    """serve()'s hosts refuse an upgrade RFC 6455 does not allow (here: version 8) and count it
    under reason="bad_request" (ASGI hosts refuse those before the app hears of them)."""
    async with served(way) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 426")
        writer.close()
        exposed = await scrape(server)
    assert exposed.value("wskit_upgrades_refused_total", reason="bad_request") == 1


def test_counters_are_named_with_their_total_suffix() -> None:
    """prometheus-client writes every counter as <name>_total: a counter named without it
    would be exposed under another name than the one documented."""
    counters = [f.name for f in Telemetry(types=["A"]).families() if f.kind == "counter"]
    assert counters and all(name.endswith("_total") for name in counters)
