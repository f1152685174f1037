"""Starlette's WebSocket route on uvicorn (uvloop), orjson for the messages."""

from __future__ import annotations

import orjson
import uvicorn
from _common import HOST, parse_port, raise_fd_limit
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

topics: dict[str, set[WebSocket]] = {}


async def endpoint(ws: WebSocket) -> None:
    await ws.accept()
    joined: list[str] = []
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes")
            if raw is None:
                continue
            data = orjson.loads(raw)
            kind = data["type"]
            if kind == "ECHO":
                reply = {"type": "ECHO_OK", "meta": {"correlationId": data["meta"]["correlationId"]}}
                reply["payload"] = data["payload"]
                await ws.send_text(orjson.dumps(reply).decode())
            elif kind == "PING":
                await ws.send_text(orjson.dumps({"type": "PONG", "payload": data["payload"]}).decode())
            elif kind == "SUB":
                topic = data["payload"]["topic"]
                topics.setdefault(topic, set()).add(ws)
                joined.append(topic)
                reply = {"type": "SUBBED", "meta": {"correlationId": data["meta"]["correlationId"]}}
                reply["payload"] = data["payload"]
                await ws.send_text(orjson.dumps(reply).decode())
            elif kind == "PUB":
                frame = orjson.dumps({"type": "TICK", "payload": data["payload"]}).decode()
                for sub in list(topics.get(data["payload"]["topic"], ())):
                    try:
                        await sub.send_text(frame)
                    except (WebSocketDisconnect, RuntimeError):
                        topics.get(data["payload"]["topic"], set()).discard(sub)
    except WebSocketDisconnect:
        return
    finally:
        for topic in joined:
            topics.get(topic, set()).discard(ws)


app = Starlette(routes=[WebSocketRoute("/", endpoint)])

if __name__ == "__main__":
    raise_fd_limit()
    uvicorn.run(
        app, host=HOST, port=parse_port(), loop="uvloop", ws_ping_interval=None, log_level="warning", backlog=1024
    )
