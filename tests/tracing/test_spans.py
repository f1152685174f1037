"""A span per handled message: names, kinds, attributes, outcome and status (in memory)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.support.waiting import consistently
from tests.tracing.app import Get, Login, Ping, Wait, build, finished, only, traced_client

from wskit import Context
from wskit.testing import RpcError
from wskit.tracing import (
    ATTR_CLIENT_ID,
    ATTR_CORRELATION_ID,
    ATTR_OUTCOME,
    ATTR_RPC,
    ATTR_TYPE,
    ATTR_USER_ID,
)


async def test_an_event_gets_a_consumer_span_with_its_attributes(spans: InMemorySpanExporter) -> None:
    """An event: span "wskit PING", kind CONSUMER, a new root, type/client/user/rpc/outcome set."""
    router, _ = build()
    async with traced_client(router, data={"user_id": 7}, client_id="c-1") as client:
        await client.send(Ping)
        span = await only(spans, "wskit PING")
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is None
    assert dict(span.attributes or {}) == {
        ATTR_TYPE: "PING",
        ATTR_CLIENT_ID: "c-1",
        ATTR_USER_ID: "7",
        ATTR_RPC: False,
        ATTR_OUTCOME: "ok",
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_an_rpc_gets_a_server_span_with_its_correlation_id(spans: InMemorySpanExporter) -> None:
    """An RPC: span "wskit GET", kind SERVER, with the request's correlationId; no user when anonymous."""
    router, _ = build()
    async with traced_client(router, client_id="c-2") as client:
        answer = await client.request(Get, {"id": "1"}, correlation_id="req-42")
        span = await only(spans, "wskit GET")
    assert answer.payload.id == "1"
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        ATTR_TYPE: "GET",
        ATTR_CLIENT_ID: "c-2",
        ATTR_RPC: True,
        ATTR_CORRELATION_ID: "req-42",
        ATTR_OUTCOME: "ok",
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_the_user_the_message_signed_in_is_recorded(spans: InMemorySpanExporter) -> None:
    """A message whose handler sets user_id has it on its span (known by the span's end)."""
    router, _ = build()
    async with traced_client(router) as client:
        await client.send(Login)
        span = await only(spans, "wskit LOGIN")
    assert (span.attributes or {})[ATTR_USER_ID] == "u9"


async def test_the_application_span_is_a_child_of_the_wskit_span(spans: InMemorySpanExporter) -> None:
    """A span the handler opens nests under the message's span, in the same trace."""
    router, _ = build()
    async with traced_client(router) as client:
        await client.request(Get, {"id": "1"})
        outer = await only(spans, "wskit GET")
        inner = await only(spans, "app GET")
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert inner.context.trace_id == outer.context.trace_id


async def failed_get(spans: InMemorySpanExporter, item: str) -> tuple[RpcError, ReadableSpan]:
    """The error a GET of ``item`` was answered with, and the span of that GET."""
    router, _ = build()
    async with traced_client(router) as client:
        with pytest.raises(RpcError) as caught:
            await client.request(Get, {"id": item})
        return caught.value, await only(spans, "wskit GET")


@pytest.mark.parametrize(
    ("item", "code", "status"),
    [
        ("missing", "NOT_FOUND", StatusCode.UNSET),
        ("code:ROOM_FULL", "ROOM_FULL", StatusCode.UNSET),
        ("code:PERMISSION_DENIED", "PERMISSION_DENIED", StatusCode.UNSET),
        ("code:INTERNAL", "INTERNAL", StatusCode.ERROR),
        ("code:UNAVAILABLE", "UNAVAILABLE", StatusCode.ERROR),
    ],
)
async def test_a_wskit_error_is_the_outcome_and_only_server_faults_are_errors(
    spans: InMemorySpanExporter, item: str, code: str, status: StatusCode
) -> None:
    """A raised WsKitError: its code is the outcome, the exception is recorded, the client gets
    that code, and the status is ERROR only for codes that mean the server failed."""
    error, span = await failed_get(spans, item)
    assert error.code == code
    assert (span.attributes or {})[ATTR_OUTCOME] == code
    assert span.status.status_code is status
    assert [event.name for event in span.events] == ["exception"]


async def test_a_handler_exception_is_an_error_and_the_client_gets_internal(spans: InMemorySpanExporter) -> None:
    """Any other exception: outcome INTERNAL, status ERROR, the exception recorded with its type;
    the client still gets INTERNAL without the internals."""
    error, span = await failed_get(spans, "boom")
    assert error.code == "INTERNAL"
    assert "secret" not in error.message
    assert (span.attributes or {})[ATTR_OUTCOME] == "INTERNAL"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: kaput: secret internals"
    (event,) = span.events
    assert (event.attributes or {})["exception.type"] == "RuntimeError"


async def test_an_rpc_that_returns_without_an_answer_is_internal(spans: InMemorySpanExporter) -> None:
    """A handler that neither replied nor failed: the dispatcher answers INTERNAL, the span says so."""
    error, span = await failed_get(spans, "silent")
    assert error.code == "INTERNAL"
    assert (span.attributes or {})[ATTR_OUTCOME] == "INTERNAL"
    assert span.status.status_code is StatusCode.ERROR


async def test_a_client_cancel_is_cancelled_and_not_an_error(spans: InMemorySpanExporter, tick: float) -> None:
    """$ws:rpc-cancel: outcome CANCELLED, status unset (the client changed its mind)."""
    router, _ = build()
    async with traced_client(router) as client:
        call = asyncio.ensure_future(client.request(Wait, {"id": "w"}, correlation_id="w-1"))
        await asyncio.sleep(tick)
        await client.cancel("w-1")
        with pytest.raises(RpcError) as caught:
            await call
        span = await only(spans, "wskit WAIT")
    assert caught.value.code == "CANCELLED"
    assert (span.attributes or {})[ATTR_OUTCOME] == "CANCELLED"
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


async def test_a_passed_deadline_is_an_error(spans: InMemorySpanExporter) -> None:
    """meta.timeoutMs ran out: outcome DEADLINE_EXCEEDED, status ERROR (the server was too slow)."""
    router, _ = build()
    async with traced_client(router) as client:
        with pytest.raises(RpcError) as caught:
            await client.request(Wait, {"id": "w"}, meta={"timeoutMs": 20})
        span = await only(spans, "wskit WAIT")
    assert caught.value.code == "DEADLINE_EXCEEDED"
    assert (span.attributes or {})[ATTR_OUTCOME] == "DEADLINE_EXCEEDED"
    assert span.status.status_code is StatusCode.ERROR


async def test_the_previous_context_is_current_again_after_a_handler_raised(spans: InMemorySpanExporter) -> None:
    """Once the pipeline raised, the message's span is no longer current: on_error (which the
    dispatcher runs after it, in the same task) sees no span."""
    router, _ = build()
    seen: list[trace.Span] = []

    @router.on_error
    def remember(ctx: Context[Any], exc: BaseException) -> None:
        seen.append(trace.get_current_span())

    async with traced_client(router) as client:
        with pytest.raises(RpcError):
            await client.request(Get, {"id": "boom"})
        await only(spans, "wskit GET")
    assert seen == [trace.INVALID_SPAN]


async def test_tracing_off_makes_no_spans(spans: InMemorySpanExporter) -> None:
    """TRACING off (the default): messages are handled and no span is made."""
    router, _ = build()
    async with traced_client(router, tracing=False) as client:
        await client.send(Ping)
        await client.request(Get, {"id": "1"})
        await consistently(lambda: not [s for s in spans.get_finished_spans() if s.name.startswith("wskit ")])


async def test_tracing_is_turned_on_by_the_environment(spans: InMemorySpanExporter) -> None:
    """TRACING=1 in the environment is the same as tracing=True."""
    from wskit.runtime import build_runtime
    from wskit.testing import TestClient

    router, _ = build()
    router.attach(build_runtime(router, env={"TRACING": "1"}))
    async with TestClient(router) as client:
        await client.send(Ping)
        await client.send(Ping)
        await finished(spans, "wskit PING", count=2)


async def test_a_tracer_provider_given_to_the_server_gets_the_spans_and_ctx_error_sets_the_outcome() -> None:
    """``Server(tracer_provider=...)``: spans go to that provider, not the global one (an
    application that keeps several providers); a handler answering with ``ctx.error()``
    instead of raising gets that code as its outcome."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from tests.production.conftest import request, ws_client

    from wskit import Router, Server, rpc
    from wskit.errors import ErrorCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    router: Router[Any] = Router()

    @router.rpc(rpc("LOOKUP", None, "FOUND", None))
    async def lookup(ctx: Context[None]) -> None:
        await ctx.error(ErrorCode.NOT_FOUND, "nothing here")

    server = Server(router, port=0, tracing=True, tracer_provider=provider)
    await server.start()
    try:
        async with ws_client(server.url) as ws:
            answer = await request(ws, "LOOKUP", {})
            assert answer["payload"]["code"] == "NOT_FOUND"
    finally:
        await server.stop()
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "wskit LOOKUP"]
    assert span.attributes is not None and span.attributes["wskit.outcome"] == "NOT_FOUND"
    assert span.status.status_code.name == "UNSET"  # the client's problem, not a server fault
