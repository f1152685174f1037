"""The certificate reloader in this process: under the stock asyncio loop (``serve()`` runs
uvloop, see test_reload.py), on each of ``serve()``'s hosts, and on its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.production.conftest import Echo, build_router
from tests.tls.certs import Issuer, Pair, client_context, served_certificate

from wskit import Server
from wskit.client import Client
from wskit.config import ConfigError
from wskit.tls import CertificateReloader


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_a_reload_reaches_new_handshakes_on_the_stock_loop(tmp_path: Path, transport: str) -> None:
    """Server.tls.reload() on asyncio's own loop: new handshakes get B, a connection made under A goes on."""
    assert type(asyncio.get_running_loop()).__module__.startswith("asyncio")
    a, b, pair = Issuer(), Issuer(), Pair(tmp_path)
    a.install(pair)
    options: dict[str, Any] = {"tls_cert_file": str(pair.cert), "tls_key_file": str(pair.key)}
    async with (
        Server(build_router(), port=0, env={}, transport=transport, tls_reload_interval_s=0, **options) as server,
        Client(server.url, ssl=client_context(a)) as client,
    ):
        assert server.tls is not None
        b.install(pair)
        assert await served_certificate(server.port, client_context(a, b)) == a.der
        assert server.tls.reload("test") is True
        assert await served_certificate(server.port, client_context(a, b)) == b.der
        assert (await client.request(Echo, {"text": "under A"})).payload.text == "under A"
        assert server.tls.reloads == 1


def test_check_reloads_only_after_a_change(tmp_path: Path) -> None:
    """check(): None while the files stay as they are; after a replacement, a reload (True)."""
    a, pair = Issuer(), Pair(tmp_path)
    a.install(pair)
    reloader = CertificateReloader(str(pair.cert), str(pair.key))
    assert reloader.check() is None
    a.install(pair)
    assert reloader.check() is True
    assert reloader.check() is None
    assert (reloader.reloads, reloader.failures) == (1, 0)
    assert reloader.not_after is not None and reloader.not_after.endswith("Z")


def test_a_pair_that_does_not_load_fails_the_start_naming_both_files(tmp_path: Path) -> None:
    """At start a key that is not the certificate's is a ConfigError naming both settings and files."""
    a, pair = Issuer(), Pair(tmp_path)
    a.install(pair)
    _, other_key = a.leaf_files()
    pair.key.write_bytes(other_key)
    with pytest.raises(ConfigError) as refused:
        CertificateReloader(str(pair.cert), str(pair.key))
    for part in ("TLS_CERT_FILE", "TLS_KEY_FILE", str(pair.cert), str(pair.key)):
        assert part in str(refused.value)


async def test_a_server_with_a_bad_pair_does_not_start(tmp_path: Path) -> None:
    """Server.start() with garbage for a certificate raises ConfigError naming the setting."""
    a, pair = Issuer(), Pair(tmp_path)
    a.install(pair)
    pair.cert.write_bytes(b"garbage\n")
    server = Server(build_router(), port=0, env={}, tls_cert_file=str(pair.cert), tls_key_file=str(pair.key))
    with pytest.raises(ConfigError, match="TLS_CERT_FILE"):
        await server.start()
    await server.stop()
