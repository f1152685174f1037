"""Certificate reload without a restart, in a ``serve()`` process (uvloop, the default host).

The server starts with certificate A (issued by CA A); a client connects. The files are then
replaced by certificate B (another CA, another key), and a reload is triggered by SIGHUP or
by the change itself (``TLS_RELOAD_INTERVAL_S``). New handshakes must present B while the
client connected under A carries on, on the same connection. A pair that does not load is
logged once, naming the files, and A stays.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.production.conftest import Echo
from tests.support.redis_server import free_port
from tests.support.waiting import consistently, eventually
from tests.tls.certs import Issuer, Pair, client_context, served_certificate
from tests.tls.processes import Instance

from wskit.client import Client, StateChange

#: how often the polling tests look at the files
POLL_S = 0.1


@dataclass
class Running:
    server: Instance
    pair: Pair
    a: Issuer
    b: Issuer
    #: the client connected under certificate A, and every state change it went through
    client: Client
    changes: list[StateChange]

    async def presented(self) -> bytes:
        """The certificate a new handshake gets now."""
        return await served_certificate(self.server.port, client_context(self.a, self.b))

    async def client_still_works(self) -> None:
        """The client connected under A answers on the connection it opened then."""
        answer = await self.client.request(Echo, {"text": "still here"})
        assert answer.payload.text == "still here"
        assert [change.new for change in self.changes] == ["connecting", "open"], "the client reconnected"


async def _running(tmp_path: Path, interval_s: float) -> AsyncIterator[Running]:
    a, b, pair = Issuer(), Issuer(), Pair(tmp_path)
    a.install(pair)
    env = {**pair.env(), "TLS_RELOAD_INTERVAL_S": str(interval_s)}
    server = Instance(
        ["-m", "tests.tls.app"], free_port(), tmp_path / "server.log", env=env, context=client_context(a), name="wss"
    )
    await server.start()
    changes: list[StateChange] = []
    client = Client(f"wss://127.0.0.1:{server.port}/", ssl=client_context(a), on_state=changes.append)
    try:
        await client.connect(timeout=10)
        running = Running(server, pair, a, b, client, changes)
        assert await running.presented() == a.der
        yield running
    finally:
        await client.close()
        server.kill()


@pytest.fixture
async def on_signal(tmp_path: Path) -> AsyncIterator[Running]:
    """Serving A with polling off (``TLS_RELOAD_INTERVAL_S=0``: SIGHUP only)."""
    async for running in _running(tmp_path, 0):
        yield running


@pytest.fixture
async def polling(tmp_path: Path) -> AsyncIterator[Running]:
    """Serving A, looking at the files every :data:`POLL_S`."""
    async for running in _running(tmp_path, POLL_S):
        yield running


async def test_sighup_loads_the_new_certificate(on_signal: Running) -> None:
    """Files replaced, nothing happens until SIGHUP; then new handshakes get B, the open client goes on."""
    run = on_signal
    run.b.install(run.pair)
    await consistently(lambda: _presents(run, run.a.der), what="A is served until SIGHUP")
    run.server.signal(signal.SIGHUP)
    await eventually(lambda: _presents(run, run.b.der), what="B is served after SIGHUP")
    await run.client_still_works()
    [line] = run.server.events("tls_reload")
    assert line["trigger"] == "SIGHUP" and line["level"] == "INFO"
    assert line["logger"] == "wskit.server"
    assert line["cert_file"] == str(run.pair.cert)
    assert line["not_after"], "the new certificate's expiry is logged"


async def test_changed_files_are_loaded_without_a_signal(polling: Running) -> None:
    """With TLS_RELOAD_INTERVAL_S, replaced files alone bring B to new handshakes; the open client goes on."""
    run = polling
    run.b.install(run.pair)
    await eventually(lambda: _presents(run, run.b.der), what="B is served after the files changed")
    await run.client_still_works()
    assert [line["trigger"] for line in run.server.events("tls_reload")] == ["file change"]


@pytest.mark.parametrize("damage", ["key of another certificate", "garbage", "half written"])
async def test_a_bad_pair_keeps_the_old_certificate(polling: Running, damage: str) -> None:
    """A pair that does not load: one error naming both files, A still served (handshakes work),
    and the next change to a good pair is loaded."""
    run = polling
    chain, _ = run.b.leaf_files()
    _, other_key = run.b.leaf_files()
    if damage == "key of another certificate":
        run.pair.cert.write_bytes(chain)
        run.pair.key.write_bytes(other_key)
    elif damage == "garbage":
        run.pair.cert.write_bytes(b"this is not a certificate\n")
    else:
        run.pair.cert.write_bytes(chain[: len(chain) // 2])
    await eventually(lambda: _failures(run), what="the failure is logged")
    await consistently(lambda: _presents(run, run.a.der), what="A is served after a bad pair")
    # one error per change seen (two files written one after the other may be seen apart),
    # none per look at files that stay as they are
    failures = _failures(run)
    assert len(failures) <= 2
    await consistently(lambda: len(_failures(run)) == len(failures), window=10 * POLL_S)
    line = failures[-1]
    assert line["logger"] == "wskit.server" and line["error"]
    assert line["cert_file"] == str(run.pair.cert) and line["key_file"] == str(run.pair.key)
    assert str(run.pair.cert) in line["msg"] and str(run.pair.key) in line["msg"]
    await run.client_still_works()
    run.b.install(run.pair)
    await eventually(lambda: _presents(run, run.b.der), what="B is served once the pair is good")


def _failures(run: Running) -> list[dict[str, Any]]:
    return [line for line in run.server.events("tls_reload") if line["level"] == "ERROR"]


async def _presents(run: Running, der: bytes) -> bool:
    return await run.presented() == der


async def test_sighup_without_tls_does_not_stop_the_server(tmp_path: Path) -> None:
    """SIGHUP to a plain ws:// server is logged and ignored: it goes on serving (no default kill)."""
    server = Instance(["-m", "tests.tls.app"], free_port(), tmp_path / "server.log", name="ws")
    await server.start()
    try:
        server.signal(signal.SIGHUP)
        await eventually(lambda: "no TLS certificate to reload" in server.tail(), what="SIGHUP logged")
        assert server.alive
        assert await server.terminate() == 0
    finally:
        server.kill()
