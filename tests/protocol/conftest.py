"""Fixtures of the protocol conformance suite (helpers live in :mod:`tests.protocol.wire`).

``wire`` is parametrised by transport, so every test that uses it (directly or through
``peer``/``other``) runs in memory, over real sockets to ``serve()``'s server (aiohttp, and picows), and over real
sockets to ``asgi_app`` under each ASGI host (:data:`tests.protocol.wire.ASGI_WIRES`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from tests.protocol.wire import ASGI_WIRES, App, Endpoint, Peer, Wire, build_app

#: Tests that cannot pass over one wire for a reason inherent to its host: (test, wire) -> why.
#: Also read by ``make_standalone`` (tests/production/conftest.py), whose wires are the
#: transports of serve()'s own server ("aiohttp", "picows").
HOST_LIMITS: dict[tuple[str, str], str] = {
    **{
        (test, "hypercorn"): "hypercorn reports every client close to the app as 1006: the close frame's code "
        "never reaches an ASGI app under it (hypercorn 0.18, ws_stream.py)"
        for test in ("test_on_close_gets_the_client_close_code",)
    },
    **{
        (test, wire): "ASGI has no message to send a ping frame: transport pings are the host's own "
        "(uvicorn --ws-ping-interval), invisible to the app"
        for test in ("test_server_sends_transport_pings", "test_late_pong_closes_the_connection")
        for wire in ASGI_WIRES
    },
    ("test_unmasked_frames_are_caught_in_any_chunking", "picows"): "picows parses the frame after "
    "the current one before handing the current one over, and drops it when the next one is a protocol "
    "error (picows 2.3, WSProtocol._process_new_data): a good frame that arrives in the same read as an "
    "unmasked one is not answered; the connection is still closed 1002",
}

#: The real-socket wires the socket-only tests run over (the FastAPI mount serves under
#: ``/ws/``, while those tests name paths from the root)
SOCKET_WIRES = ["socket", "picows", *(wire for wire in ASGI_WIRES if wire != "fastapi-mount")]


def skip_host_limits(request: pytest.FixtureRequest, wire: str) -> None:
    why = HOST_LIMITS.get((request.node.originalname, wire))
    if why is not None:
        pytest.skip(why)


@pytest.fixture(params=["memory", "socket", "picows", *ASGI_WIRES, "starlette-testclient"])
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[Wire]:
    """The transport under test (each test using it runs once per transport)."""
    skip_host_limits(request, request.param)
    async with contextlib.AsyncExitStack() as stack:
        yield Wire(request.param, stack)


@pytest.fixture(params=SOCKET_WIRES)
async def socket_wire(request: pytest.FixtureRequest) -> AsyncIterator[Wire]:
    """Real sockets only (HTTP-level behaviour the in-memory transport does not have): the
    standalone server and each ASGI host."""
    skip_host_limits(request, request.param)
    async with contextlib.AsyncExitStack() as stack:
        yield Wire(request.param, stack)


@pytest.fixture
def app() -> App:
    return build_app()


@pytest.fixture
async def endpoint(wire: Wire, app: App) -> Endpoint:
    app.loop = asyncio.get_running_loop()
    return await wire.serve(app.router)


@pytest.fixture
async def peer(endpoint: Endpoint) -> Peer:
    """A client of the conformance app."""
    return await endpoint.connect()


@pytest.fixture
async def other(endpoint: Endpoint) -> Peer:
    """A second client of the same server."""
    return await endpoint.connect()
