"""What a reload that fails leaves behind: the pair that served before, never a context
without a key; and a key that asks for a passphrase, refused instead of asked about on the
terminal (at start, in a process that has one; on reload, with the old pair kept)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.production.conftest import build_router
from tests.tls.certs import Issuer, Pair, client_context, served_certificate
from tests.tls.processes import ROOT, START_S

from wskit import Server
from wskit.tls import CertificateReloader

#: a process with a controlling terminal (the pty on its stdin) that loads the pair it is
#: given, as serve() does at start, and says how that went
_ON_A_TERMINAL = """
import fcntl, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
from wskit.config import ConfigError
from wskit.tls import CertificateReloader
try:
    CertificateReloader(sys.argv[1], sys.argv[2])
except ConfigError as exc:
    print("refused:", exc, flush=True)
    sys.exit(3)
print("loaded", flush=True)
"""


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "wskit.server" and record.levelname == "ERROR"
    ]


@dataclass
class Serving:
    """A server of certificate A (issuer ``a``) with polling off; ``b`` issues the renewals."""

    server: Server
    tls: CertificateReloader
    pair: Pair
    a: Issuer
    b: Issuer

    async def presented(self) -> bytes:
        """The certificate a new handshake gets now."""
        return await served_certificate(self.server.port, client_context(self.a, self.b))


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[Serving]:
    a, pair = Issuer(), Pair(tmp_path)
    a.install(pair)
    options: dict[str, Any] = {"tls_cert_file": str(pair.cert), "tls_key_file": str(pair.key)}
    async with Server(build_router(), port=0, env={}, tls_reload_interval_s=0, **options) as server:
        assert server.tls is not None
        yield Serving(server, server.tls, pair, a, Issuer())


async def test_a_pair_that_half_loads_into_the_live_context_is_undone(
    serving: Serving, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """B is proven, then loading it into the live context fails after its certificate went in
    (as when OpenSSL cannot open the key: no file descriptors left). A is put back, so new
    handshakes still work and get A; the error is logged; the next look at the files tries B again."""
    run = serving
    live = run.tls.context
    load = live.load_cert_chain
    calls: list[str] = []

    def key_not_opened(certfile: str, keyfile: str | None = None, password: Any = None) -> None:
        calls.append(certfile)
        if len(calls) == 1:  # the first load fails in OpenSSL itself, its certificate already in
            keyfile = str(tmp_path / "no-descriptor-left")
        load(certfile, keyfile, password)

    monkeypatch.setattr(live, "load_cert_chain", key_not_opened)
    run.b.install(run.pair)
    assert run.tls.reload("test") is False
    assert await run.presented() == run.a.der
    assert (run.tls.reloads, run.tls.failures) == (0, 1)
    [message] = _messages(caplog)
    assert "put back" in message and str(run.pair.cert) in message and "No such file" in message
    assert run.tls.check() is True, "the files did not change, but the next look loads them"
    assert await run.presented() == run.b.der


async def test_a_reload_to_an_encrypted_key_keeps_the_old_pair(
    serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal whose key asks for a passphrase: reload() refuses it with an error that says
    so and names the file, without asking anyone; A is still served."""
    run = serving
    run.b.install(run.pair, passphrase=b"renewed")
    assert run.tls.reload("SIGHUP") is False
    assert await run.presented() == run.a.der
    [message] = _messages(caplog)
    assert f"encrypted private keys are not supported: TLS_KEY_FILE {run.pair.key}" in message


def test_an_encrypted_key_fails_the_start_without_asking_for_a_passphrase(tmp_path: Path) -> None:
    """In a process with a terminal (where OpenSSL, left to itself, prints "Enter PEM pass
    phrase:" and waits for an answer) the first load refuses the key: ConfigError, naming it."""
    a, pair = Issuer(), Pair(tmp_path)
    a.install(pair, passphrase=b"secret")
    output, code = _run_on_a_terminal([sys.executable, "-c", _ON_A_TERMINAL, str(pair.cert), str(pair.key)])
    assert code == 3, output
    assert f"refused: encrypted private keys are not supported: TLS_KEY_FILE {pair.key}" in output
    assert "pass phrase" not in output.lower()


def _run_on_a_terminal(args: list[str]) -> tuple[str, int | None]:
    """Run ``args`` on a new pseudo-terminal; what it wrote and its exit code (None: it was
    still running after :data:`START_S`, and was killed)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, cwd=ROOT)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + START_S
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([master], [], [], left)[0]:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every end of the terminal's other side is closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        code = proc.wait(10)
        os.close(master)
    return output.decode(errors="replace"), None if code == -9 else code
