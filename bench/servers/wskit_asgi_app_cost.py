"""What an ASGI app costs per message, without a host: wskit's ``asgi_app`` (pydantic and
msgspec) against Starlette's own WebSocket route, each fed N echo RPCs through in-memory ASGI
``receive``/``send`` (no sockets). Under a real host, add the host's own cost per message
(the same for both): that is why the ratio under uvicorn is what it is (docs/asgi.md).

    python bench/servers/wskit_asgi_app_cost.py     # a few seconds; prints us per message
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import orjson
from _wskit_app import build
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from wskit.asgi import asgi_app

N = 50000
MSG = '{"type":"ECHO","meta":{"correlationId":"c1"},"payload":{"text":"hello"}}'


async def drive(app: Any, path: str = "/") -> float:
    """Microseconds per echo round through ``app`` (one connection, N messages)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    count = 0

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(m: dict[str, Any]) -> None:
        nonlocal count
        t = m["type"]
        if t == "websocket.accept":
            return
        if t == "websocket.send":
            count += 1
            if count < N:
                inbox.put_nowait({"type": "websocket.receive", "text": MSG})
            else:
                inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    scope = {
        "type": "websocket",
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "asgi": {"version": "3.0"},
    }
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": MSG})
    t = time.perf_counter()
    await app(scope, receive, send)
    return (time.perf_counter() - t) / N * 1e6


class T(BaseModel):
    text: str


class To(BaseModel):
    topic: str


class Ti(BaseModel):
    topic: str
    seq: int
    t: int


class FT(msgspec.Struct):
    text: str


class FTo(msgspec.Struct):
    topic: str


class FTi(msgspec.Struct):
    topic: str
    seq: int
    t: int


async def endpoint(ws: WebSocket) -> None:
    await ws.accept()
    while True:
        m = await ws.receive()
        if m["type"] == "websocket.disconnect":
            return
        data = orjson.loads(m.get("text") or m.get("bytes"))
        reply = {
            "type": "ECHO_OK",
            "meta": {"correlationId": data["meta"]["correlationId"]},
            "payload": data["payload"],
        }
        await ws.send_text(orjson.dumps(reply).decode())


async def main() -> None:
    star = Starlette(routes=[WebSocketRoute("/", endpoint)])
    for name, classes in (("pydantic", (T, To, Ti)), ("msgspec", (FT, FTo, FTi))):
        router, _ = build(*classes)
        app = asgi_app(router, env={})
        async with app.lifespan():
            for _ in range(2):
                us = await drive(app)
        print(f"wskit asgi {name}: {us:.2f} us/msg")
    for _ in range(2):
        us = await drive(star)
    print(f"starlette route: {us:.2f} us/msg")


if __name__ == "__main__":
    asyncio.run(main())
