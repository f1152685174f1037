"""The application the tracing tests serve, and helpers to read the spans it left.

Handlers open spans of their own (``app ...``) with a tracer of the global provider, as an
application would, so the tests can see what they nest under.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from tests.support.waiting import eventually

from wskit import Context, ErrorCode, Router, WsKitError, message, rpc
from wskit.runtime import build_runtime
from wskit.testing import TestClient

#: the application's own tracer
APP = trace.get_tracer("tests.tracing")


class Item(BaseModel):
    id: str


Ping = message("PING")
#: an event whose handler opens a span of its own, then sets the gate (releasing WAIT)
Release = message("RELEASE")
#: an event whose handler signs the connection in
Login = message("LOGIN")
#: ``id`` picks the behaviour: "missing" NOT_FOUND, "boom" RuntimeError, "silent" no answer,
#: "code:X" raises WsKitError(X), anything else a reply
Get = rpc("GET", Item, "ITEM", Item)
#: waits for RELEASE (or forever), inside a span of its own, then replies
Wait = rpc("WAIT", Item, "ITEM", Item)


def build() -> tuple[Router[Any], asyncio.Event]:
    """The router and the gate WAIT waits on."""
    router: Router[Any] = Router()
    gate = asyncio.Event()

    @router.on(Ping)
    async def ping(ctx: Context[None]) -> None:
        return None

    @router.on(Release)
    async def release(ctx: Context[None]) -> None:
        with APP.start_as_current_span("app RELEASE"):
            gate.set()

    @router.on(Login)
    async def login(ctx: Context[None]) -> None:
        ctx.assign_data(user_id="u9")

    @router.rpc(Get)
    async def get(ctx: Context[Item]) -> None:
        with APP.start_as_current_span("app GET"):
            wanted = ctx.payload.id
            if wanted == "missing":
                raise WsKitError(ErrorCode.NOT_FOUND, "no such item")
            if wanted.startswith("code:"):
                raise WsKitError(wanted.removeprefix("code:"))
            if wanted == "boom":
                raise RuntimeError("kaput: secret internals")
            if wanted == "silent":
                return
            await ctx.reply({"id": wanted})

    @router.rpc(Wait)
    async def wait(ctx: Context[Item]) -> None:
        with APP.start_as_current_span("app WAIT"):
            await gate.wait()
        await ctx.reply({"id": ctx.payload.id})

    return router, gate


def traced_client(router: Router[Any], *, tracing: bool = True, **options: Any) -> TestClient:
    """An in-memory client of ``router`` served with TRACING on (or off)."""
    router.attach(build_runtime(router, env={}, tracing=tracing))
    return TestClient(router, **options)


async def finished(exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    """The ``count`` spans named ``name`` once they have all ended (a span ends after the
    handler's answer went out, so the client may see the answer first)."""

    def found() -> list[ReadableSpan]:
        return [span for span in exporter.get_finished_spans() if span.name == name]

    await eventually(lambda: len(found()) >= count, what=f"{count} span(s) {name!r}")
    spans = found()
    assert len(spans) == count, [span.name for span in exporter.get_finished_spans()]
    return spans


async def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The one span named ``name`` (once it has ended)."""
    return (await finished(exporter, name))[0]
