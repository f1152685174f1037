"""Guards switched on by settings alone: MESSAGE_RATE_LIMIT, JWT_SECRET, TLS, LOG_FORMAT, bad values."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from tests.production.conftest import build_router, request, ws_client
from tests.support.redis_server import free_port
from tests.support.serving import SERVING, serving
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wskit import Context, Router, Server, message
from wskit.config import ConfigError
from wskit.guards import require_auth

SECRET = "s" * 40


def token(user: str, *, exp_in: float = 60.0) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + exp_in)}, SECRET, algorithm="HS256")


async def test_message_rate_limit_answers_resource_exhausted_and_skips_the_handler(make_server: Any) -> None:
    """MESSAGE_RATE_LIMIT=3: the 4th message in the minute gets RESOURCE_EXHAUSTED with retryAfterMs."""
    server: Server = await make_server(message_rate_limit=3)
    async with ws_client(server.url) as ws:
        answers = [await request(ws, "ECHO", {"text": str(i)}, cid=f"c{i}") for i in range(5)]
    assert [a["type"] for a in answers[:3]] == ["ECHO_OK"] * 3
    for limited in answers[3:]:
        assert limited["type"] == "RPC_ERROR"
        assert limited["payload"]["code"] == "RESOURCE_EXHAUSTED"
        # 3 per minute refill one token every 20 s
        assert 15_000 < limited["payload"]["retryAfterMs"] <= 20_000


async def test_rate_limit_is_per_connection_when_anonymous(make_server: Any) -> None:
    """Two anonymous connections have separate budgets."""
    server: Server = await make_server(message_rate_limit=2)
    async with ws_client(server.url) as a, ws_client(server.url) as b:
        for i in range(2):
            assert (await request(a, "ECHO", {"text": "a"}, cid=f"a{i}"))["type"] == "ECHO_OK"
        assert (await request(a, "ECHO", {"text": "a"}, cid="a9"))["type"] == "RPC_ERROR"
        assert (await request(b, "ECHO", {"text": "b"}, cid="b0"))["type"] == "ECHO_OK"


async def test_message_rate_limit_charges_junk_frames_too(make_server: Any) -> None:
    """MESSAGE_RATE_LIMIT=3: junk and unknown types spend the budget; past it they get RESOURCE_EXHAUSTED."""
    server: Server = await make_server(message_rate_limit=3)
    async with ws_client(server.url) as ws:
        for frame in ["not json", '{"type":"NOPE"}', "[]", "still junk", '{"type":"NOPE"}']:
            await ws.send(frame)
        answers = [json.loads(await asyncio.wait_for(ws.recv(), 3)) for _ in range(5)]
        codes = [a["payload"]["code"] for a in answers]
        assert codes == ["INVALID_ARGUMENT", "UNIMPLEMENTED", "INVALID_ARGUMENT"] + ["RESOURCE_EXHAUSTED"] * 2
        # and the budget they spent is the one messages use
        assert (await request(ws, "ECHO", {"text": "x"}, cid="e"))["payload"]["code"] == "RESOURCE_EXHAUSTED"


def _jwt_router() -> Any:
    router = build_router()
    secret_msg = message("SECRET")

    @router.on(secret_msg, middleware=[require_auth])
    async def secret(ctx: Context[None]) -> None:
        await ctx.send(secret_msg)

    return router


async def test_jwt_secret_authenticates_at_upgrade(make_server: Any) -> None:
    """JWT_SECRET: a valid token in the query authenticates; a bad one is refused with 401."""
    server: Server = await make_server(router=_jwt_router(), jwt_secret=SECRET)
    async with ws_client(server.url + f"?access_token={token('ada')}") as ws:
        await ws.send(json.dumps({"type": "SECRET"}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv())["type"] == "SECRET"
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(server.url + "?access_token=not.a.token"):
            pass
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        async with ws_client(server.url + f"?access_token={token('ada', exp_in=-120)}"):
            pass


async def test_browser_flow_auth_message_then_protected_route(make_server: Any) -> None:
    """Without a token the connection is anonymous: protected routes answer UNAUTHENTICATED until
    an AUTH message with a valid token; the Bearer header works at upgrade too."""
    server: Server = await make_server(router=_jwt_router(), jwt_secret=SECRET)
    async with ws_client(server.url) as ws:
        await ws.send(json.dumps({"type": "SECRET"}))
        async with asyncio.timeout(3):
            refused = json.loads(await ws.recv())
        assert refused["payload"]["code"] == "UNAUTHENTICATED"
        ok = await request(ws, "AUTH", {"token": token("ada")})
        assert ok["type"] == "AUTH_OK" and ok["payload"]["user_id"] == "ada"
        await ws.send(json.dumps({"type": "SECRET"}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv())["type"] == "SECRET"
    headers = {"Authorization": f"Bearer {token('bob')}"}
    async with ws_client(server.url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "SECRET"}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv())["type"] == "SECRET"


async def test_auth_timeout_closes_connections_that_never_send_auth(make_server: Any) -> None:
    """JWT_SECRET + AUTH_TIMEOUT_MS: an anonymous connection that never authenticates is closed 1008."""
    server: Server = await make_server(router=_jwt_router(), jwt_secret=SECRET, auth_timeout_ms=300)
    async with ws_client(server.url) as lazy, ws_client(server.url) as quick:
        assert (await request(quick, "AUTH", {"token": token("ada")}))["type"] == "AUTH_OK"
        async with asyncio.timeout(3):
            with pytest.raises(ConnectionClosed):
                while True:
                    await lazy.recv()
        assert lazy.close_code == 1008
        await asyncio.sleep(0.2)
        assert (await request(quick, "ECHO", {"text": "alive"}))["type"] == "ECHO_OK"


async def test_bearer_subprotocol_is_not_echoed(make_server: Any) -> None:
    """A token in the bearer.<token> subprotocol authenticates; only the other subprotocol is echoed."""
    server: Server = await make_server(router=_jwt_router(), jwt_secret=SECRET)
    async with ws_client(server.url, subprotocols=[f"bearer.{token('cy')}", "wskit"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "wskit"
        await ws.send(json.dumps({"type": "SECRET"}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv())["type"] == "SECRET"


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_tls_serves_wss(make_standalone: Any, tmp_path: Path) -> None:
    """TLS_CERT_FILE + TLS_KEY_FILE: the server speaks wss:// with that certificate."""
    cert, key = _self_signed(tmp_path)
    server: Server = await make_standalone(tls_cert_file=str(cert), tls_key_file=str(key))
    assert server.url.startswith("wss://")
    context = ssl.create_default_context(cafile=str(cert))
    async with ws_client(server.url, ssl=context) as ws:
        assert (await request(ws, "ECHO", {"text": "secure"}))["payload"] == {"text": "secure"}


def test_tls_needs_both_files(tmp_path: Path) -> None:
    """A certificate without its key fails at start, naming both variables."""
    cert, _ = _self_signed(tmp_path)
    with pytest.raises(ConfigError, match="TLS_KEY_FILE"):
        Server(build_router(), env={"TLS_CERT_FILE": str(cert)})


def test_missing_required_secret_fails_at_start() -> None:
    """require=("jwt_secret",) without JWT_SECRET: the server refuses to start, naming the variable."""
    with pytest.raises(ConfigError, match="JWT_SECRET is required"):
        Server(build_router(), env={}, require=("jwt_secret",))


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "eighty"), ("MAX_CONNECTIONS_PER_IP", "-1"), ("JWT_SECRET", "short"), ("ALLOWED_ORIGINS", "nope")],
)
def test_bad_environment_value_stops_serve_naming_the_variable(variable: str, value: str) -> None:
    """serve() with a bad environment variable exits non-zero with a message naming it."""
    code = "from wskit import Router, serve; serve(Router())"
    env = {**os.environ, variable: value}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode != 0
    assert variable in proc.stderr
    if variable == "JWT_SECRET":
        assert value not in proc.stderr, "a secret must not be echoed into logs"


def test_json_log_format(tmp_path: Path) -> None:
    """LOG_FORMAT=json: every log line of serve() is one JSON object with level, logger and msg."""
    port = free_port()
    code = f"from wskit import Router, serve; serve(Router(), port={port})"
    env = {**os.environ, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 15
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "serve() logged nothing"
    records = [json.loads(line) for line in lines]
    assert any("listening" in r["msg"] and r["logger"] == "wskit.server" for r in records)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


async def test_token_from_auth_message_expires_while_connected(make_server: Any) -> None:
    """A token given by AUTH (not at the upgrade) is watched too: at its expiry the connection
    closes 1008 unless re-authenticated."""
    server: Server = await make_server(router=_jwt_router(), jwt_secret=SECRET)
    server.watchdog.token_leeway_s = 0.0
    async with ws_client(server.url) as ws:
        assert (await request(ws, "AUTH", {"token": token("ada", exp_in=1.0)}))["type"] == "AUTH_OK"
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
        assert ws.close_code == 1008
        assert "token expired" in (ws.close_reason or "")


def _all_guarded_router() -> Router[Any]:
    router = build_router()
    router.use(require_auth)
    return router


async def test_require_auth_everywhere_without_any_way_in_fails_at_start() -> None:
    """require_auth on every route, no JWT_SECRET, no authenticate, no AUTH route: start() fails
    with a message naming JWT_SECRET instead of serving a server that refuses everything."""
    server = Server(_all_guarded_router(), port=0, env={})
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        await server.start()
    await server.stop()


async def test_require_auth_with_a_way_in_starts(make_server: Any) -> None:
    """With JWT_SECRET (which adds AUTH), authenticate=, or an on_open hook the same app starts."""
    with_jwt: Server = await make_server(router=_all_guarded_router(), jwt_secret=SECRET)
    async with ws_client(with_jwt.url) as ws:
        assert (await request(ws, "ECHO", {"text": "x"}))["payload"]["code"] == "UNAUTHENTICATED"
    await make_server(router=_all_guarded_router(), authenticate=lambda request: {"user_id": "ada"})
    hooked = _all_guarded_router()

    @hooked.on_open
    def sign_in(ctx: Context[None]) -> None:
        ctx.assign_data(user_id="ada")

    await make_server(router=hooked)


async def test_jwt_leeway_setting_reaches_the_verifier_and_the_watchdog(make_server: Any) -> None:
    """JWT_LEEWAY_S=0: a token expired 5 s ago is refused at upgrade (the default 30 s would take
    it), and a connected token is closed 1008 right at its exp, with no manual tweak."""
    lenient: Server = await make_server(router=_jwt_router(), jwt_secret=SECRET)
    async with ws_client(lenient.url + f"?access_token={token('ada', exp_in=-5)}"):
        pass
    strict: Server = await make_server(router=_jwt_router(), jwt_secret=SECRET, jwt_leeway_s=0)
    assert strict.watchdog.token_leeway_s == 0.0
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(strict.url + f"?access_token={token('ada', exp_in=-5)}"):
            pass
    assert refused.value.response.status_code == 401
    async with ws_client(strict.url) as ws:
        assert (await request(ws, "AUTH", {"token": token("ada", exp_in=1.0)}))["type"] == "AUTH_OK"
        started = time.monotonic()
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
        assert ws.close_code == 1008
        assert time.monotonic() - started < 3.0


async def test_require_auth_follows_the_servers_leeway(make_server: Any) -> None:
    """require_auth refuses an expired token with the server's JWT_LEEWAY_S, not a fixed 30 s."""

    def authenticate(request: Any) -> dict[str, Any]:
        return {"user_id": "ada", "token_exp": time.time() - 10}

    server: Server = await make_server(router=_jwt_router(), authenticate=authenticate, jwt_leeway_s=60)
    async with ws_client(server.url) as ws:
        await ws.send(json.dumps({"type": "SECRET"}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv())["type"] == "SECRET", "10 s past exp is within 60 s"


@pytest.mark.parametrize("way", SERVING)
async def test_ws_path_setting_narrows_upgrades(way: str) -> None:
    """WS_PATH=/ws: upgrades elsewhere get 404; the keyword path= wins over the variable."""
    from tests.production.conftest import http_status

    async with serving(build_router(), way, env={"WS_PATH": "/ws"}) as server:
        assert (await http_status(server, "/"))[0] == 404
        assert (await http_status(server, "/ws"))[0] == 101
    async with serving(build_router(), way, path="/live", env={"WS_PATH": "/ws"}) as server:
        assert (await http_status(server, "/ws"))[0] == 404
        assert (await http_status(server, "/live"))[0] == 101


@pytest.mark.parametrize("code", [1001, 1012])
async def test_shutdown_close_code_setting(make_server: Any, code: int) -> None:
    """SHUTDOWN_CLOSE_CODE: a graceful shutdown closes every client with 1001 or 1012."""
    server: Server = await make_server(shutdown_close_code=code, shutdown_grace_ms=100)
    async with ws_client(server.url) as ws:
        await server.shutdown()
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
    assert ws.close_code == code
