"""Structured events (issue 17): with LOG_FORMAT=json, one JSON object per line whose facts are
fields (client_id, user_id, ip, code, duration, counts...), not prose to parse; events a
client can cause at will are rate-limited with a count of what was left out; and the
counters behind /metrics move with them. Over real sockets, on serve()'s default host."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from pydantic import BaseModel
from tests.production.conftest import http_status, request, ws_client
from tests.support.waiting import eventually

from wskit import Context, Router, Server, message, rpc
from wskit.errors import ErrorCode, WsKitError
from wskit.logs import JsonFormatter
from wskit.protocol import CANCEL_TYPE, HEARTBEAT_TYPE, SUBSCRIBE_TYPE, UNSUBSCRIBE_TYPE


class Text(BaseModel):
    text: str


Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Boom = message("BOOM", Text)
Refuse = rpc("REFUSE", Text, "NEVER", Text)


def _router() -> Router[Any]:
    router: Router[Any] = Router()

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.on(Boom)
    async def boom(ctx: Context[Text]) -> None:
        raise RuntimeError(f"handler bug: {ctx.payload.text}")

    @router.rpc(Refuse)
    async def refuse(ctx: Context[Text]) -> None:
        raise WsKitError(ErrorCode.NOT_FOUND, "no such thing")

    return router


async def _authenticate(request: Any) -> dict[str, Any]:
    return {"user_id": request.query_params.get("user", "anon")}


@contextmanager
def json_log() -> Iterator[list[dict[str, Any]]]:
    """Every line the wskit loggers write meanwhile, formatted as LOG_FORMAT=json does, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("wskit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[Server]:
    server = Server(_router(), port=0, authenticate=_authenticate, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _of(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == event]


async def test_connect_and_disconnect_events_carry_who_how_long_and_how_much() -> None:
    with json_log() as lines:
        async with serving() as server:
            async with ws_client(server.url + "?user=alice") as ws:
                for i in range(3):
                    await request(ws, "ECHO", {"text": str(i)}, cid=f"c{i}")
                await asyncio.sleep(0.05)
            await eventually(lambda: server.runtime is not None and not server.runtime.connections)
    (connect,) = _of(lines, "connect")
    assert connect["user_id"] == "alice" and connect["ip"] == "127.0.0.1" and connect["level"] == "INFO"
    (disconnect,) = _of(lines, "disconnect")
    assert disconnect["client_id"] == connect["client_id"] and disconnect["user_id"] == "alice"
    assert disconnect["code"] == 1000
    assert disconnect["messages_in"] == 3 and disconnect["messages_out"] == 3
    assert 0.05 <= disconnect["duration_s"] < 30


async def test_handler_error_event_has_type_code_and_traceback_and_counts_internal() -> None:
    with json_log() as lines:
        async with serving() as server:
            async with ws_client(server.url) as ws:
                await ws.send(json.dumps({"type": "BOOM", "meta": {}, "payload": {"text": "x1"}}))
                answer = json.loads(await ws.recv())
                assert answer["type"] == "ERROR" and answer["payload"]["code"] == "INTERNAL"
                refused = await request(ws, "REFUSE", {"text": "y"})
                assert refused["payload"]["code"] == "NOT_FOUND"
            assert server.runtime is not None
            telemetry = server.runtime.telemetry
            assert telemetry.errors["INTERNAL"] == 1 and telemetry.errors["NOT_FOUND"] == 1
            assert telemetry.routes["BOOM"].received == 1 and telemetry.routes["BOOM"].duration.count == 1
            assert telemetry.sent["ERROR"] == 1 and telemetry.sent["RPC_ERROR"] == 1
    (error,) = _of(lines, "handler_error")
    assert error["type"] == "BOOM" and error["code"] == "INTERNAL" and error["level"] == "ERROR"
    assert "RuntimeError: handler bug: x1" in error["exc"]
    # an application's WsKitError is an answer, not a server fault: no handler_error for it
    assert not [e for e in _of(lines, "handler_error") if e["type"] == "REFUSE"]


async def test_refused_upgrades_are_counted_by_reason_and_their_lines_budgeted() -> None:
    """40 refused upgrades from a foreign origin: each counted under "origin", but the log
    gets the budget's ten lines, and the next line after the window says how many it left out."""
    with json_log() as lines:
        async with serving(allowed_origins="https://app.example") as server:
            for _ in range(40):
                status, _body = await http_status(server.port, "/", {"Origin": "https://evil.example"})
                assert status == 403
            assert server.runtime is not None
            assert server.runtime.telemetry.refused["origin"] == 40
            budget = server.runtime.telemetry._refusal_budget
            budget._window_start -= budget.interval_s  # the window ends: the next line is written
            assert (await http_status(server.port, "/", {"Origin": "https://evil.example"}))[0] == 403
    refused = _of(lines, "upgrade_refused")
    assert len(refused) == 11
    assert all(r["reason"] == "origin" and r["status"] == 403 and r["ip"] == "127.0.0.1" for r in refused)
    assert refused[-1]["suppressed"] == 30 and "30 more not logged" in refused[-1]["msg"]


async def test_unknown_types_and_junk_count_as_other_without_new_series() -> None:
    async with serving() as server:
        async with ws_client(server.url) as ws:
            for i in range(50):
                await ws.send(json.dumps({"type": f"NOPE_{i}", "meta": {}, "payload": {}}))
                assert json.loads(await ws.recv())["payload"]["code"] == "UNIMPLEMENTED"
            await ws.send("{not json")
            assert json.loads(await ws.recv())["payload"]["code"] == "INVALID_ARGUMENT"
        assert server.runtime is not None
        telemetry = server.runtime.telemetry
        assert telemetry.received_other == 51
        assert telemetry.errors["UNIMPLEMENTED"] == 50 and telemetry.errors["INVALID_ARGUMENT"] == 1
        assert set(telemetry.routes) == {"ECHO", "BOOM", "REFUSE", *_FRAMEWORK}


_FRAMEWORK = {HEARTBEAT_TYPE, CANCEL_TYPE, SUBSCRIBE_TYPE, UNSUBSCRIBE_TYPE}


async def test_metrics_off_counts_nothing_on_the_hot_path() -> None:
    async with serving(metrics=False) as server:
        async with ws_client(server.url) as ws:
            await request(ws, "ECHO", {"text": "x"})
        assert server.runtime is not None
        telemetry = server.runtime.telemetry
        assert telemetry.routes["ECHO"].received == 0 and telemetry.sent["ECHO_OK"] == 0


async def test_a_log_handler_that_raises_costs_the_line_not_the_connection() -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise OSError("log pipe gone")

        def handleError(self, record: logging.LogRecord) -> None:
            raise OSError("and its error handling too")

    broken = Broken()
    logger = logging.getLogger("wskit")
    logger.addHandler(broken)
    try:
        async with serving() as server, ws_client(server.url) as ws:
            await ws.send(json.dumps({"type": "BOOM", "meta": {}, "payload": {"text": "x"}}))
            assert json.loads(await ws.recv())["payload"]["code"] == "INTERNAL"
            assert (await request(ws, "ECHO", {"text": "still here"}))["payload"] == {"text": "still here"}
    finally:
        logger.removeHandler(broken)


async def test_rate_limited_messages_are_counted_and_logged_with_who() -> None:
    with json_log() as lines:
        async with serving(message_rate_limit=2) as server:
            async with ws_client(server.url + "?user=bob") as ws:
                codes = [(await request(ws, "ECHO", {"text": "x"}, cid=f"r{i}"))["type"] for i in range(5)]
            assert codes == ["ECHO_OK", "ECHO_OK", "RPC_ERROR", "RPC_ERROR", "RPC_ERROR"]
            assert server.runtime is not None
            assert server.runtime.telemetry.rate_limited == 3
            assert server.runtime.telemetry.errors["RESOURCE_EXHAUSTED"] == 3
    limited = _of(lines, "rate_limited")
    assert len(limited) == 3 and {(e["user_id"], e["type"]) for e in limited} == {("bob", "ECHO")}
