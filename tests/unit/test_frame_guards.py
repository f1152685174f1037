"""Frames refused before routing (junk, unknown types, invalid payloads) pay the frame guards
(rate limits) like messages do, so a flood of junk cannot cost the server unlimited answers."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from wskit import Context, Router, message
from wskit.connection import Connection
from wskit.dispatch import REFUSED_TYPE, Dispatcher
from wskit.guards.ratelimit import MemoryRateLimiter, by_connection, rate_limit
from wskit.runtime import Runtime


class N(BaseModel):
    n: int


Ping = message("PING", N)
Pong = message("PONG", N)


class Recorder:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send_frame(self, data: bytes) -> None:
        self.frames.append(json.loads(data))

    async def close(self, code: int, reason: str) -> None:
        pass


def build() -> Router[Any]:
    router: Router[Any] = Router()

    @router.on(Ping)
    async def ping(ctx: Context[N]) -> None:
        await ctx.send(Pong, ctx.payload)

    return router


async def _feed(dispatcher: Dispatcher, conn: Connection, frames: list[str]) -> None:
    for frame in frames:
        pending = dispatcher.receive(conn, frame.encode())
        if pending is not None:
            await pending


async def test_junk_frames_are_charged_to_the_same_bucket_as_messages() -> None:
    """Budget 3: two junk frames and one PING are answered as usual; the rest get RESOURCE_EXHAUSTED."""
    guard = rate_limit(MemoryRateLimiter(3, 0.001), key=by_connection)
    dispatcher = Runtime(build(), guards=[guard], frame_guards=[guard]).dispatcher
    sock = Recorder()
    conn = Connection("c1", sock)
    frames = [
        "not json",
        '{"type":"NOPE","meta":{"correlationId":"u"}}',
        '{"type":"PING","payload":{"n":1}}',
        "still not json",
        '{"type":"NOPE2","meta":{"correlationId":"v"}}',
        '{"type":"PING","payload":{"n":2}}',
    ]
    await _feed(dispatcher, conn, frames)
    answers = [(f["type"], f["payload"].get("code"), f.get("meta", {}).get("correlationId")) for f in sock.frames]
    assert answers == [
        ("ERROR", "INVALID_ARGUMENT", None),
        ("RPC_ERROR", "UNIMPLEMENTED", "u"),
        ("PONG", None, None),
        ("ERROR", "RESOURCE_EXHAUSTED", None),
        ("RPC_ERROR", "RESOURCE_EXHAUSTED", "v"),
        ("ERROR", "RESOURCE_EXHAUSTED", None),
    ]
    assert all(f["payload"]["retryAfterMs"] > 0 for f in sock.frames[3:])


async def test_frame_guards_see_the_refused_type() -> None:
    """A frame guard sees ctx.type == REFUSED_TYPE, and its own WsKitError becomes the answer."""
    seen: list[str] = []

    async def spy(ctx: Context[Any], call_next: Any) -> None:
        seen.append(ctx.type)
        await call_next()

    dispatcher = Runtime(build(), frame_guards=[spy]).dispatcher
    sock = Recorder()
    await _feed(dispatcher, Connection("c1", sock), ["[]", '{"type":"PING","payload":{"n":1}}'])
    assert seen == [REFUSED_TYPE]  # the routed PING does not pass the frame guards
    assert [f["type"] for f in sock.frames] == ["ERROR", "PONG"]


async def test_without_frame_guards_refusals_are_answered_at_once() -> None:
    """No frame guards: a refused frame is answered synchronously (no awaitable for the read loop)."""
    dispatcher = Runtime(build()).dispatcher
    sock = Recorder()
    assert dispatcher.receive(Connection("c1", sock), b"junk") is None
    assert sock.frames[0]["payload"]["code"] == "INVALID_ARGUMENT"
