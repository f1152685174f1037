"""Which span a message's span is a child of: the client's ``meta.traceparent``, else none.

Over real sockets (serve()'s aiohttp and picows hosts) for the cases that depend on how a
host reads a connection: the RPC hand-off, where a handler that waits keeps the reading task
while a new task reads the next messages.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tests.support.serving import serving
from tests.tracing.app import APP, Get, Item, Ping, Wait, build, finished, only, traced_client
from websockets.asyncio.client import connect

from wskit.client import Client

#: serve()'s own hosts (the hand-off is theirs: ASGI hosts share the lifecycle code)
WAYS = ["serve", "picows"]

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


@pytest.mark.parametrize("way", WAYS)
async def test_the_span_continues_the_clients_trace_over_a_socket(spans: InMemorySpanExporter, way: str) -> None:
    """The Python client passes its span's context in meta (injected by OpenTelemetry's W3C
    propagator): the server's span has the same trace id, the client span as parent, and the
    handler's own span nests under the server's."""
    router, _ = build()
    async with serving(router, way, tracing=True) as server, Client(server.url) as client:
        with APP.start_as_current_span("client call", kind=SpanKind.CLIENT) as caller:
            meta: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(meta)
            answer = await client.request(Get, Item(id="1"), meta=meta)
        assert answer.payload.id == "1"
        served = await only(spans, "wskit GET")
        inner = await only(spans, "app GET")
    assert served.context.trace_id == caller.get_span_context().trace_id
    assert served.parent is not None and served.parent.is_remote
    assert served.parent.span_id == caller.get_span_context().span_id
    assert inner.parent is not None and inner.parent.span_id == served.context.span_id
    assert inner.context.trace_id == served.context.trace_id


async def test_traceparent_and_tracestate_are_taken_from_meta(spans: InMemorySpanExporter) -> None:
    """A traceparent written by hand, with a tracestate: trace and parent ids as given, and the
    vendor's tracestate carried into the server's span."""
    router, _ = build()
    async with traced_client(router) as client:
        await client.send(Ping, meta={"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other@sys=x y"})
        span = await only(spans, "wskit PING")
    assert format_trace_id(span.context.trace_id) == TRACE_ID
    assert span.parent is not None and format_span_id(span.parent.span_id) == SPAN_ID
    assert dict(span.context.trace_state) == {"vendor": "abc", "other@sys": "x y"}


@pytest.mark.parametrize(
    "traceparent",
    [
        "hello",
        "",
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",  # W3C ids are lowercase
        f"00-{'0' * 32}-{SPAN_ID}-01",  # the all-zero trace id is invalid
        f"00-{TRACE_ID}-{'0' * 16}-01",  # so is the all-zero parent id
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is forbidden
        f"00-{TRACE_ID}-{SPAN_ID}",  # no flags
    ],
)
async def test_a_malformed_traceparent_starts_a_new_trace(spans: InMemorySpanExporter, traceparent: str) -> None:
    """A traceparent that is a string of the allowed length but not W3C's: ignored (a new
    root, not the given trace), and the message is handled and answered as usual."""
    router, _ = build()
    async with traced_client(router) as client:
        answer = await client.request(Get, {"id": "1"}, meta={"traceparent": traceparent})
        span = await only(spans, "wskit GET")
    assert answer.payload.id == "1"
    assert span.parent is None
    assert format_trace_id(span.context.trace_id) != TRACE_ID


async def test_a_malformed_tracestate_is_dropped_quietly(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad tracestate is dropped but the traceparent kept, and nothing is logged for it (a
    client must not be able to make the server write a line per message)."""
    router, _ = build()
    bad = ["UPPER=case", "a=b,a=c", ",".join(f"k{i}=v" for i in range(33)), "novalue=", "a=b=c"]
    with caplog.at_level(logging.DEBUG, logger="opentelemetry"):
        async with traced_client(router) as client:
            for tracestate in bad:
                await client.send(Ping, meta={"traceparent": TRACEPARENT, "tracestate": tracestate})
            sent = await finished(spans, "wskit PING", count=len(bad))
    assert all(format_trace_id(span.context.trace_id) == TRACE_ID for span in sent)
    assert all(dict(span.context.trace_state) == {} for span in sent)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")] == []


async def test_a_message_without_traceparent_is_not_a_child_of_the_one_before(spans: InMemorySpanExporter) -> None:
    """Two events in a row on one connection, the first with a traceparent: the second starts
    a trace of its own (the first one's span is over and was never its parent)."""
    router, _ = build()
    async with traced_client(router) as client:
        await client.send(Ping, meta={"traceparent": TRACEPARENT})
        await client.send(Ping)
        first, second = await finished(spans, "wskit PING", count=2)
    assert first.parent is not None
    assert second.parent is None
    assert second.context.trace_id != first.context.trace_id


@pytest.mark.parametrize("way", WAYS)
async def test_an_event_read_while_an_rpc_waits_is_not_its_child(spans: InMemorySpanExporter, way: str) -> None:
    """An RPC whose handler waits (its span current in the task that was reading) and an event
    sent meanwhile without traceparent, read by the task the hand-off started: the event's span
    is a root of its own trace, and the event handler's own span nests under the event's."""
    router, _ = build()
    async with serving(router, way, tracing=True) as server, connect(server.url) as ws:
        await ws.send(
            json.dumps(
                {"type": "WAIT", "meta": {"correlationId": "w", "traceparent": TRACEPARENT}, "payload": {"id": "w"}}
            )
        )
        await ws.send(json.dumps({"type": "RELEASE"}))
        async with asyncio.timeout(5):
            reply = json.loads(await ws.recv())
        assert reply["type"] == "ITEM" and reply["meta"] == {"correlationId": "w"}
        waited = await only(spans, "wskit WAIT")
        released = await only(spans, "wskit RELEASE")
        inner = await only(spans, "app RELEASE")
    assert format_trace_id(waited.context.trace_id) == TRACE_ID
    assert released.parent is None
    assert released.context.trace_id != waited.context.trace_id
    assert inner.parent is not None and inner.parent.span_id == released.context.span_id
    # the event was handled while the RPC's span was still open
    assert released.end_time is not None and waited.end_time is not None
    assert released.end_time <= waited.end_time


async def test_an_rpc_read_while_another_waits_is_not_its_child(spans: InMemorySpanExporter) -> None:
    """The same for a second RPC read while the first waits (in memory): each its own root."""
    router, gate = build()
    async with traced_client(router) as client:
        waiting = asyncio.ensure_future(client.request(Wait, {"id": "w"}, meta={"traceparent": TRACEPARENT}))
        answer = await client.request(Get, {"id": "2"})
        gate.set()
        await waiting
        waited = await only(spans, "wskit WAIT")
        got = await only(spans, "wskit GET")
    assert answer.payload.id == "2"
    assert got.parent is None
    assert got.context.trace_id != waited.context.trace_id
