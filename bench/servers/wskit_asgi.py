"""wskit as an ASGI app (``wskit.asgi.asgi_app``) on uvicorn (uvloop), run exactly as the
``starlette`` peer runs Starlette's WebSocket route: same host, same options, uvicorn's
default WebSocket implementation. ``--host hypercorn`` runs it on hypercorn instead;
``--schema msgspec`` uses msgspec Structs (the fast path) instead of pydantic models."""

from __future__ import annotations

import argparse
import asyncio

import msgspec
from _common import HOST, raise_fd_limit
from _wskit_app import build
from pydantic import BaseModel

from wskit.asgi import asgi_app


class Text(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str


class Tick(BaseModel):
    topic: str
    seq: int
    t: int


class FastText(msgspec.Struct):
    text: str


class FastTopic(msgspec.Struct):
    topic: str


class FastTick(msgspec.Struct):
    topic: str
    seq: int
    t: int


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", choices=("uvicorn", "hypercorn"), default="uvicorn")
    parser.add_argument("--schema", choices=("pydantic", "msgspec"), default="pydantic")
    args = parser.parse_args()
    raise_fd_limit()
    classes = (FastText, FastTopic, FastTick) if args.schema == "msgspec" else (Text, Topic, Tick)
    router, _counts = build(*classes)
    # the production guards out of the way, as the serve() peers have them
    app = asgi_app(router, max_connections=0, handshake_timeout_ms=0, log_level="WARNING")
    if args.host == "hypercorn":
        import uvloop
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"{HOST}:{args.port}"]
        config.loglevel = "WARNING"
        config.backlog = 1024
        uvloop.install()
        asyncio.run(serve(app, config))  # type: ignore[arg-type]
        return
    import uvicorn

    uvicorn.run(app, host=HOST, port=args.port, loop="uvloop", ws_ping_interval=None, log_level="warning", backlog=1024)


if __name__ == "__main__":
    main()
