"""Raw aiohttp (wskit's default transport's ceiling) on uvloop with orjson."""

from __future__ import annotations

import orjson
from _common import HOST, install_uvloop, parse_port, raise_fd_limit
from aiohttp import WSMsgType, web

topics: dict[str, set[web.WebSocketResponse]] = {}


async def handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True, heartbeat=None, compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    joined: list[str] = []
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            data = orjson.loads(msg.data)
            kind = data["type"]
            if kind == "ECHO":
                reply = {"type": "ECHO_OK", "meta": {"correlationId": data["meta"]["correlationId"]}}
                reply["payload"] = data["payload"]
                await ws.send_frame(orjson.dumps(reply), WSMsgType.TEXT)
            elif kind == "PING":
                await ws.send_frame(orjson.dumps({"type": "PONG", "payload": data["payload"]}), WSMsgType.TEXT)
            elif kind == "SUB":
                topic = data["payload"]["topic"]
                topics.setdefault(topic, set()).add(ws)
                joined.append(topic)
                reply = {"type": "SUBBED", "meta": {"correlationId": data["meta"]["correlationId"]}}
                reply["payload"] = data["payload"]
                await ws.send_frame(orjson.dumps(reply), WSMsgType.TEXT)
            elif kind == "PUB":
                frame = orjson.dumps({"type": "TICK", "payload": data["payload"]})
                for sub in list(topics.get(data["payload"]["topic"], ())):
                    if not sub.closed:
                        await sub.send_frame(frame, WSMsgType.TEXT)
    finally:
        for topic in joined:
            topics.get(topic, set()).discard(ws)
    return ws


def main() -> None:
    raise_fd_limit()
    install_uvloop()
    app = web.Application()
    app.router.add_get("/", handler)
    web.run_app(app, host=HOST, port=parse_port(), access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
