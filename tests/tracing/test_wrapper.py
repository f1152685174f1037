"""``wskit.tracing.traced`` itself: what it does to the context and to exceptions, and what it
needs installed. Pipelines are called directly here, with a real connection's context."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.tracing.app import APP, build, only, traced_client

from wskit import Context, Router
from wskit.errors import ConfigError
from wskit.runtime import build_runtime
from wskit.tracing import ATTR_OUTCOME, traced, valid_tracestate


@pytest.fixture
async def ctx() -> AsyncIterator[Context[Any]]:
    """A message's context on a real (in-memory) connection."""
    router, _ = build()
    async with traced_client(router) as client:
        yield Context(client.runtime, client.connection, "JOB", None, {}, 0)


async def test_the_ambient_span_is_never_the_parent(spans: InMemorySpanExporter, ctx: Context[Any]) -> None:
    """A span current when the message arrives (a previous message's, say) is not its parent:
    without traceparent the message's span is a root."""

    async def job(ctx: Context[Any]) -> None:
        return None

    with APP.start_as_current_span("ambient"):
        await traced(job, "JOB", rpc=False)(ctx)
    span = await only(spans, "wskit JOB")
    assert span.parent is None


async def test_nothing_of_the_ambient_context_reaches_the_handler(
    spans: InMemorySpanExporter, ctx: Context[Any]
) -> None:
    """The handler runs in the message's own context (its parent's, plus its span): baggage a
    previous message left current does not leak into it."""
    seen: list[object] = []

    async def job(ctx: Context[Any]) -> None:
        seen.append(baggage.get_baggage("left-over"))

    token = otel_context.attach(baggage.set_baggage("left-over", "yes"))
    try:
        await traced(job, "JOB", rpc=False)(ctx)
    finally:
        otel_context.detach(token)
    assert seen == [None]


async def test_the_span_is_current_only_while_the_pipeline_runs(spans: InMemorySpanExporter, ctx: Context[Any]) -> None:
    """Inside the pipeline the message's span is current; after it, what was current before."""
    inside: list[trace.Span] = []

    async def job(ctx: Context[Any]) -> None:
        inside.append(trace.get_current_span())
        await asyncio.sleep(0)
        inside.append(trace.get_current_span())

    with APP.start_as_current_span("ambient") as ambient:
        await traced(job, "JOB", rpc=False)(ctx)
        after = trace.get_current_span()
    span = await only(spans, "wskit JOB")
    assert [s.get_span_context().span_id for s in inside] == [span.context.span_id] * 2
    assert after is ambient


async def test_cancellation_passes_through_and_restores_the_context(
    spans: InMemorySpanExporter, ctx: Context[Any]
) -> None:
    """A pipeline cancelled while it waits: the same CancelledError comes out, the previous
    context is current again in that task, and the span ends CANCELLED, not as an error."""
    started = asyncio.Event()
    seen: list[object] = []

    async def job(ctx: Context[Any]) -> None:
        started.set()
        await asyncio.Event().wait()

    async def task_body() -> None:
        try:
            await traced(job, "JOB", rpc=False)(ctx)
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            seen.append(trace.get_current_span())
            raise

    task = asyncio.ensure_future(task_body())
    await started.wait()
    task.cancel("going away")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [("going away",), trace.INVALID_SPAN]
    span = await only(spans, "wskit JOB")
    assert (span.attributes or {})[ATTR_OUTCOME] == "CANCELLED"
    assert span.status.status_code is StatusCode.UNSET


async def test_an_exception_passes_through_unchanged(spans: InMemorySpanExporter, ctx: Context[Any]) -> None:
    """The very exception the pipeline raised reaches the caller (the dispatcher answers it)."""
    raised = KeyError("x")

    async def job(ctx: Context[Any]) -> None:
        raise raised

    with pytest.raises(KeyError) as caught:
        await traced(job, "JOB", rpc=False)(ctx)
    assert caught.value is raised
    assert (await only(spans, "wskit JOB")).status.status_code is StatusCode.ERROR


async def test_a_stray_cancelled_error_is_a_server_fault(spans: InMemorySpanExporter, ctx: Context[Any]) -> None:
    """A CancelledError raised while nothing cancelled the task is a handler bug (the dispatcher
    answers INTERNAL): the span says INTERNAL and ERROR."""

    async def job(ctx: Context[Any]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await traced(job, "JOB", rpc=False)(ctx)
    span = await only(spans, "wskit JOB")
    assert (span.attributes or {})[ATTR_OUTCOME] == "INTERNAL"
    assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("", True),
        ("a=1", True),
        ("a=1, b=2 ,,c=3", True),
        ("tenant@sys=v", True),
        ("a=" + "x" * 256, True),
        ("a=" + "x" * 257, False),
        ("A=1", False),
        ("a=1,a=2", False),
        ("a=", False),
        ("a=1 ", True),  # trailing blanks around a member are list whitespace
        ("a=x,y", False),
        (",".join(f"k{i}=v" for i in range(32)), True),
        (",".join(f"k{i}=v" for i in range(33)), False),
    ],
)
def test_tracestate_check_follows_w3c(value: str, valid: bool) -> None:
    """The tracestate check accepts W3C's grammar and refuses the rest."""
    assert valid_tracestate(value) is valid


def test_tracing_without_opentelemetry_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRACING on but opentelemetry-api not importable: building the server fails with a
    ConfigError that says what to install."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # what an absent package does to import
    router: Router[Any] = build()[0]
    with pytest.raises(ConfigError, match=r"pip install 'wskit\[otel\]'"):
        build_runtime(router, env={}, tracing=True)
    build_runtime(router, env={})  # tracing off: opentelemetry is not needed


async def test_a_server_with_tracing_and_without_opentelemetry_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve()'s Server builds its dispatcher when it starts: that is where it fails."""
    from wskit import Server

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigError, match=r"TRACING needs opentelemetry-api"):
        async with Server(build()[0], port=0, env={}, tracing=True):
            pass
