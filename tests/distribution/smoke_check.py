"""What tests/distribution asks of an installed wheel, run by the fresh virtualenv's Python.

Each command prints one JSON document on stdout for the test to judge; the judging stays in
the test, where a failure shows what differed. Like :mod:`smoke_app`, this imports nothing
from the checkout or the test suite: only what the wheel and its base dependencies installed.

    python smoke_check.py installed     where wskit was imported from, its version and files
    python smoke_check.py raw URL       one RPC and one invalid request over a raw aiohttp socket
    python smoke_check.py client URL    one RPC through wskit.client
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from importlib import resources
from typing import Any

#: the modules the extras bring (msgspec, fast, redis, jwt, metrics, otel, asgi) and websockets
OPTIONAL = (
    "msgspec",
    "picows",
    "uvloop",
    "redis",
    "jwt",
    "prometheus_client",
    "opentelemetry",
    "starlette",
    "uvicorn",
    "websockets",
)
#: how long a socket exchange may take before the check gives up
TIMEOUT_S = 10.0


def installed() -> dict[str, Any]:
    import wskit

    package = resources.files("wskit")
    return {
        "version": wskit.__version__,
        "file": wskit.__file__,
        "py_typed": package.joinpath("py.typed").is_file(),
        "static": sorted(entry.name for entry in package.joinpath("static").iterdir()),
        "optional_present": [name for name in OPTIONAL if importlib.util.find_spec(name) is not None],
    }


async def raw(url: str) -> list[Any]:
    import aiohttp

    frames = [
        {"type": "GREET", "meta": {"correlationId": "good"}, "payload": {"name": "Ada"}},
        {"type": "GREET", "meta": {"correlationId": "bad"}, "payload": {"name": ""}},
    ]
    answers = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for frame in frames:
            await ws.send_str(json.dumps(frame))
            answers.append(await asyncio.wait_for(ws.receive_json(), TIMEOUT_S))
    return answers


async def client(url: str) -> dict[str, Any]:
    from smoke_app import Greet

    from wskit.client import Client

    wskit_client = Client(url)
    await wskit_client.connect()
    try:
        reply = await wskit_client.request(Greet, {"name": "Ada"}, timeout=TIMEOUT_S)
    finally:
        await wskit_client.close()
    return {"type": reply.type, "payload": reply.payload.model_dump()}


def main(argv: list[str]) -> None:
    command, *rest = argv
    if command == "installed":
        result: Any = installed()
    elif command == "raw":
        result = asyncio.run(raw(rest[0]))
    elif command == "client":
        result = asyncio.run(client(rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}: installed, raw URL or client URL")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
