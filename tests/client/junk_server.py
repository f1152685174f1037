"""A hostile server for the client: plain aiohttp, sending whatever a test tells it to.

On each connection it first sends ``junk`` (a list of frames, text or bytes), then answers
every frame carrying a ``correlationId`` with ``ECHOED`` (so the client's ``Echo`` works)
and counts connections, so a test sees both "reported it" and "keeps working".
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web


@dataclass
class Junk:
    frames: list[str | bytes]
    #: send ``frames`` on the first connection only (a reconnect then finds a sane server)
    first_only: bool = False
    url: str = ""
    connections: int = 0
    received: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def junk_server(frames: list[str | bytes], *, first_only: bool = False) -> AsyncIterator[Junk]:
    state = Junk(frames, first_only)

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        state.connections += 1
        for frame in state.frames if state.connections == 1 or not state.first_only else ():
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            state.received.append(msg.data)
            obj = json.loads(msg.data)
            cid = obj.get("meta", {}).get("correlationId")
            if cid and obj.get("type") == "ECHO":
                answer = {"type": "ECHOED", "meta": {"correlationId": cid}, "payload": obj["payload"]}
                await ws.send_str(json.dumps(answer))
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"ws://127.0.0.1:{port}/"
    try:
        yield state
    finally:
        await runner.cleanup()
