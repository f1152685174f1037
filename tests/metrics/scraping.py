"""Helpers of the /metrics tests: a small app, each way it is served, a scrape and its parse.

``async with served(way) as server`` serves :func:`build_router` the ``way`` named in
:data:`WAYS` (``serve()``'s picows and aiohttp hosts, ``asgi_app`` under uvicorn, and
``asgi_app`` mounted at ``/ws`` in a Starlette app); :func:`scrape` reads its ``/metrics``
over a real socket and parses it with prometheus-client's own parser, so a malformed
exposition fails the test that reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from tests.asgi.hosts import running
from tests.support.serving import UVICORN, AsgiServed, Served, prefix_of, serving

from wskit import Context, ErrorCode, Router, WsKitError, message, rpc
from wskit.asgi import asgi_app


class Text(BaseModel):
    text: str


Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Fail = rpc("FAIL", Text, "FAILED", Text)
Ping = message("PING", Text)
Pong = message("PONG", Text)

#: serve()'s two hosts, asgi_app under uvicorn, and asgi_app mounted in Starlette at /ws
WAYS = ["picows", "aiohttp", "uvicorn", "starlette-mount"]


def build_router() -> Router[Any]:
    """ECHO (an RPC answered with its payload), FAIL (an RPC that raises NOT_FOUND), PING (an
    event answered with PONG)."""
    router: Router[Any] = Router()

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(Fail)
    async def fail(ctx: Context[Text]) -> None:
        raise WsKitError(ErrorCode.NOT_FOUND, "no such thing")

    @router.on(Ping)
    async def ping(ctx: Context[Text]) -> None:
        await ctx.send(Pong, ctx.payload)

    return router


@contextlib.asynccontextmanager
async def served(way: str, router: Router[Any] | None = None, **options: Any) -> AsyncIterator[Served]:
    """Serve ``router`` (default :func:`build_router`) the ``way`` named, with ``serve()``'s
    keyword options (no environment: ``env={}``)."""
    router = router or build_router()
    options.setdefault("env", {})
    if way == "starlette-mount":
        from starlette.applications import Starlette
        from starlette.routing import Mount

        app = asgi_app(router, **options)
        parent = Starlette(routes=[Mount("/ws", app=app)], lifespan=app.lifespan)
        async with running(parent, UVICORN, proxy_headers=False) as host:
            yield AsgiServed(app, router, host.port, "/ws")
        return
    way = {"aiohttp": "serve"}.get(way, way)
    async with serving(router, way, **options) as server:
        yield server


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


async def http_get(port: int, path: str, *, method: str = "GET", upgrade: bool = False) -> Response:
    """One raw HTTP/1.1 request on 127.0.0.1 (``upgrade``: a WebSocket upgrade request)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if upgrade:
        lines[2:] = [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            headers: dict[str, str] = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length and method != "HEAD" and status != 101 else b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Response(status, headers, body)


@dataclass
class Exposition:
    """A parsed ``/metrics`` answer: HELP and TYPE per family name, value per sample."""

    text: str
    helps: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name{labels}`` (0 when absent: a histogram not yet observed)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self) -> set[str]:
        """Every sample line without its value: what the number of series is counted on."""
        return {line.rsplit(" ", 1)[0] for line in self.text.splitlines() if line and not line.startswith("#")}


def parse(text: str) -> Exposition:
    from prometheus_client.parser import text_string_to_metric_families

    out = Exposition(text)
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            _, kind, name, rest = line.split(" ", 3)
            (out.helps if kind == "HELP" else out.types)[name] = rest
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


async def scrape(server: Served) -> Exposition:
    """``GET /metrics`` of ``server`` (below its mount), which must answer 200 in the text format."""
    response = await http_get(server.port, prefix_of(server) + "/metrics")
    assert response.status == 200, (response.status, response.body[:300])
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.body.decode())


async def rpc_call(ws: Any, type_: str, text: str, cid: str) -> dict[str, Any]:
    """Send an RPC and read frames until its answer (bounded by the 5 s timeout)."""
    await ws.send(json.dumps({"type": type_, "meta": {"correlationId": cid}, "payload": {"text": text}}))
    async with asyncio.timeout(5):
        while True:
            msg: dict[str, Any] = json.loads(await ws.recv())
            if (msg.get("meta") or {}).get("correlationId") == cid:
                return msg
