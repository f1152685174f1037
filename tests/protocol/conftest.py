"""Fixtures of the protocol conformance suite (helpers live in :mod:`tests.protocol.wire`).

``wire`` is parametrised by transport, so every test that uses it (directly or through
``peer``/``other``) runs once in memory and once over real sockets.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from tests.protocol.wire import App, Endpoint, Peer, Wire, build_app


@pytest.fixture(params=["memory", "socket"])
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[Wire]:
    """The transport under test (each test using it runs once per transport)."""
    async with contextlib.AsyncExitStack() as stack:
        yield Wire(request.param, stack)


@pytest.fixture
async def socket_wire() -> AsyncIterator[Wire]:
    """Real sockets only (HTTP-level behaviour the in-memory transport does not have)."""
    async with contextlib.AsyncExitStack() as stack:
        yield Wire("socket", stack)


@pytest.fixture
def app() -> App:
    return build_app()


@pytest.fixture
async def endpoint(wire: Wire, app: App) -> Endpoint:
    return await wire.serve(app.router)


@pytest.fixture
async def peer(endpoint: Endpoint) -> Peer:
    """A client of the conformance app."""
    return await endpoint.connect()


@pytest.fixture
async def other(endpoint: Endpoint) -> Peer:
    """A second client of the same server."""
    return await endpoint.connect()
