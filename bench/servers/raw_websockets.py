"""Raw ``websockets`` (asyncio implementation) on uvloop with orjson."""

from __future__ import annotations

import asyncio

import orjson
import uvloop
from _common import HOST, parse_port, raise_fd_limit
from websockets.asyncio.server import ServerConnection, broadcast, serve

topics: dict[str, set[ServerConnection]] = {}


async def handler(ws: ServerConnection) -> None:
    joined: list[str] = []
    try:
        async for raw in ws:
            data = orjson.loads(raw)
            kind = data["type"]
            if kind == "ECHO":
                reply = {"type": "ECHO_OK", "meta": {"correlationId": data["meta"]["correlationId"]}}
                reply["payload"] = data["payload"]
                await ws.send(orjson.dumps(reply), text=True)
            elif kind == "PING":
                await ws.send(orjson.dumps({"type": "PONG", "payload": data["payload"]}), text=True)
            elif kind == "SUB":
                topic = data["payload"]["topic"]
                topics.setdefault(topic, set()).add(ws)
                joined.append(topic)
                reply = {"type": "SUBBED", "meta": {"correlationId": data["meta"]["correlationId"]}}
                reply["payload"] = data["payload"]
                await ws.send(orjson.dumps(reply), text=True)
            elif kind == "PUB":
                # broadcast() sends str as text frames: one decode per publish
                frame = orjson.dumps({"type": "TICK", "payload": data["payload"]}).decode()
                broadcast(topics.get(data["payload"]["topic"], ()), frame)
    finally:
        for topic in joined:
            topics.get(topic, set()).discard(ws)


async def main() -> None:
    async with serve(
        handler, HOST, parse_port(), ping_interval=None, compression=None, max_queue=None, backlog=1024
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    raise_fd_limit()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    uvloop.run(main())
