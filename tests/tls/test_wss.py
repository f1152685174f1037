"""wss:// end to end, in server processes of their own, with certificates made by trustme.

``serve()`` with ``TLS_CERT_FILE``/``TLS_KEY_FILE`` on each of its hosts (picows, aiohttp),
and ``asgi_app`` under uvicorn given the same files by ``--ssl-certfile``/``--ssl-keyfile``:
the Python client connects with ``ssl=`` trusting the test's CA, makes a request, hears a
publish, and a client that does not trust the CA is stopped instead of let in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.production.conftest import Echo, Heard, Say
from tests.support.redis_server import free_port
from tests.support.waiting import eventually
from tests.tls.certs import Issuer, Pair, client_context
from tests.tls.processes import Instance

from wskit.client import Client, ClientStopped, Message

HOSTS = {
    "picows": (["-m", "tests.tls.app"], {"WSKIT_TRANSPORT": "picows"}),
    "aiohttp": (["-m", "tests.tls.app"], {"WSKIT_TRANSPORT": "aiohttp"}),
    "uvicorn": (["-m", "uvicorn", "tests.tls.app:make_asgi", "--factory", "--host", "127.0.0.1"], {}),
}


@pytest.fixture(params=list(HOSTS))
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Instance, Issuer]]:
    """The test app on wss:// in a process, hosted the way named by the parameter."""
    issuer, pair = Issuer(), Pair(tmp_path)
    issuer.install(pair)
    args, env = HOSTS[request.param]
    port = free_port()
    if request.param == "uvicorn":
        args = [*args, "--port", str(port), "--ssl-certfile", str(pair.cert), "--ssl-keyfile", str(pair.key)]
    else:
        env = {**env, **pair.env()}
    server = Instance(args, port, tmp_path / "server.log", env=env, context=client_context(issuer), name=request.param)
    await server.start()
    try:
        yield server, issuer
    finally:
        server.kill()


async def test_client_talks_to_the_server_over_wss(served: tuple[Instance, Issuer]) -> None:
    """Client(wss://..., ssl=trusting the CA): a request is answered and a publish is heard."""
    server, issuer = served
    heard: list[Message[Any]] = []
    async with Client(f"wss://127.0.0.1:{server.port}/", ssl=client_context(issuer)) as client:
        client.on(Heard, heard.append)
        answer = await client.request(Echo, {"text": "over tls"})
        assert answer.payload.text == "over tls"
        await client.send(Say, {"text": "hello"})
        await eventually(lambda: heard, what="HEARD over wss")
        assert heard[0].payload.text == "hello"


async def test_a_client_that_does_not_trust_the_certificate_stops(served: tuple[Instance, Issuer]) -> None:
    """A client whose trust store lacks the server's CA stops (UNAVAILABLE) instead of connecting."""
    server, _ = served
    client = Client(f"wss://127.0.0.1:{server.port}/", ssl=client_context(Issuer()))
    with pytest.raises(ClientStopped) as stopped:
        await client.connect(timeout=10)
    assert "not trusted" in str(stopped.value)
    await client.close()
