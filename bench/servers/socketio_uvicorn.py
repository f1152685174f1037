"""python-socketio (ASGI) on uvicorn (uvloop): the bench messages as socket.io events.

ECHO is an event with an acknowledgement (socket.io's request/response: ``421["ECHO",{...}]``
→ ``431[{...}]``); PING → PONG event; SUB (acknowledged) joins a room; PUB emits TICK to it.
Engine.IO pings are pushed far out so that they do not take part in the measurement.
"""

from __future__ import annotations

from typing import Any

import socketio
import uvicorn
from _common import HOST, parse_port, raise_fd_limit

sio = socketio.AsyncServer(
    async_mode="asgi", ping_interval=600, ping_timeout=600, transports=["websocket"], cors_allowed_origins="*"
)


@sio.on("ECHO")
async def echo(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    return data


@sio.on("PING")
async def ping(sid: str, data: dict[str, Any]) -> None:
    await sio.emit("PONG", data, to=sid)


@sio.on("SUB")
async def sub(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    await sio.enter_room(sid, data["topic"])
    return data


@sio.on("PUB")
async def pub(sid: str, data: dict[str, Any]) -> None:
    await sio.emit("TICK", data, room=data["topic"])


app = socketio.ASGIApp(sio)

if __name__ == "__main__":
    raise_fd_limit()
    uvicorn.run(
        app, host=HOST, port=parse_port(), loop="uvloop", ws_ping_interval=None, log_level="warning", backlog=1024
    )
