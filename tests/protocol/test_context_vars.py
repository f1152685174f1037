"""Context variables a middleware sets around a handler: one Context for the whole handler,
before and after its awaits, and nothing left behind for the connection's next message.

The request-id pattern (``token = var.set(x); try: await call_next() finally: var.reset(token)``)
must work on every host; on a host that dispatches from a transport callback (picows) the
handler's first step and the rest of it once it waited must share one Context.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from tests.protocol.wire import Wire, recv, send_json

from wskit import Context, Router, rpc


class Text(BaseModel):
    text: str


class Seen(BaseModel):
    before: str
    after: str
    leftover: str


Probe = rpc("PROBE", Text, "PROBED", Seen)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def _router() -> Router[Any]:
    router: Router[Any] = Router()
    leftovers: list[str] = []

    async def tag(ctx: Context[Any], call_next: Callable[[], Awaitable[None]]) -> None:
        leftovers.append(request_id.get())  # what an earlier message left behind
        token = request_id.set(ctx.payload.text)
        try:
            await call_next()
        finally:
            request_id.reset(token)  # raises when set and reset ran in different Contexts

    @router.rpc(Probe, middleware=[tag])
    async def probe(ctx: Context[Text]) -> None:
        before = request_id.get()
        await asyncio.sleep(0)  # the rest runs after a wait: in the reader's task on every host
        await ctx.reply({"before": before, "after": request_id.get(), "leftover": leftovers[-1]})

    return router


async def test_a_middleware_context_variable_spans_the_handler_and_does_not_leak(wire: Wire) -> None:
    endpoint = await wire.serve(_router())
    peer = await endpoint.connect()
    for n, text in enumerate(["req-1", "req-2"]):
        await send_json(peer, {"type": "PROBE", "meta": {"correlationId": f"c{n}"}, "payload": {"text": text}})
        answer = await recv(peer)
        assert answer["type"] == "PROBED", answer
        assert answer["payload"] == {"before": text, "after": text, "leftover": "-"}
