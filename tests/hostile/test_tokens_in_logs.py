"""Tokens never reach the server's log, whichever way a client offers them.

The attack (issue 13): a JWT offered as the ``bearer.<token>`` subprotocol, alone, was
written in full by aiohttp's warning "Client protocols [...] don't overlap server-known
ones", since no offered subprotocol was chosen. Replayed against server processes logging
at DEBUG (every logger, aiohttp's too): subprotocol offers with and without another
protocol, unknown protocols, the ``access_token`` query parameter, valid and invalid JWTs;
the token must appear nowhere in everything the process wrote.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import time

import jwt
from tests.production.conftest import reap, start_server_process

SECRET = "s3cr3t-for-the-hostile-token-test-0123456789"
#: looks like a JWT, is none: what a server without JWT_SECRET lets through untouched
FAKE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdXBlci1zZWNyZXQtdXNlciJ9.ZmFrZS1zaWduYXR1cmUtZG8tbm90LWxvZw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _upgrade(port: int, path: str = "/", protocols: str | None = None) -> tuple[int, str | None]:
    """One raw upgrade: the status and the ``Sec-WebSocket-Protocol`` the server chose."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if protocols is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    async with asyncio.timeout(5):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        chosen = None
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-protocol":
                chosen = value.strip()
        if status == 101:
            writer.write(b"\x88\x82" + b"\x00\x00\x00\x00" + b"\x03\xe8")  # close 1000 (zero mask)
            await reader.read()  # the server's close frame, then EOF
    writer.close()
    return status, chosen


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """Stop the server gracefully and return everything it wrote."""
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    assert proc.stdout is not None
    out = proc.stdout.read().decode("utf-8", "replace")
    reap(proc)
    return out


async def test_subprotocol_and_query_tokens_never_reach_the_log() -> None:
    """Without JWT_SECRET: bearer.<token> alone (101, no subprotocol echoed), with another
    protocol (that one echoed), after it, unknown protocols, access_token in the query; the
    token is nowhere in the DEBUG log."""
    port = _free_port()
    proc = start_server_process(["-m", "tests.hostile.app", str(port)], port, {"LOG_LEVEL": "DEBUG"})
    try:
        assert await _upgrade(port, protocols=f"bearer.{FAKE}") == (101, None)
        assert await _upgrade(port, protocols=f"bearer.{FAKE}, chat") == (101, "chat")
        assert await _upgrade(port, protocols=f"chat, bearer.{FAKE}") == (101, "chat")
        assert await _upgrade(port, protocols="x-unknown") == (101, "x-unknown")
        assert await _upgrade(port, protocols=f" , bearer.{FAKE} ,") == (101, None)
        assert (await _upgrade(port, path=f"/?access_token={FAKE}"))[0] == 101
        time.sleep(0.2)  # noqa: ASYNC251 - let the server finish logging the closes
    finally:
        out = _stop(proc)
    assert "wskit listening" in out  # the log was captured at all
    for secret in (FAKE, FAKE.split(".")[2]):
        assert secret not in out, f"token in the server log:\n{out}"


async def test_jwt_tokens_accepted_or_refused_never_reach_the_log() -> None:
    """With JWT_SECRET: a valid token as bearer.<token> (accepted), invalid ones by subprotocol
    and query (refused 401 with a reason): no token, nor its signature, in the DEBUG log."""
    port = _free_port()
    env = {"LOG_LEVEL": "DEBUG", "JWT_SECRET": SECRET}
    proc = start_server_process(["-m", "tests.hostile.app", str(port)], port, env)
    valid = jwt.encode({"sub": "ada", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    wrong = jwt.encode({"sub": "ada", "exp": int(time.time()) + 600}, SECRET + "-wrong", algorithm="HS256")
    try:
        assert await _upgrade(port, protocols=f"bearer.{valid}") == (101, None)
        assert (await _upgrade(port, protocols=f"bearer.{wrong}"))[0] == 401
        assert (await _upgrade(port, protocols=f"bearer.{FAKE}"))[0] == 401
        assert (await _upgrade(port, path=f"/?access_token={wrong}"))[0] == 401
        time.sleep(0.2)  # noqa: ASYNC251 - let the server finish logging the closes
    finally:
        out = _stop(proc)
    assert "refused" in out  # the refusals were logged, with their reason
    for token in (valid, wrong, FAKE):
        for secret in (token, token.split(".")[2]):
            assert secret not in out, f"token in the server log:\n{out}"
