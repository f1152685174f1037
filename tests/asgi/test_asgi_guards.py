"""``serve()``'s guards under ASGI: what is particular to hosting.

The guards themselves run under every host in one suite (``tests/production`` and
``tests/guards`` take their server from :func:`tests.support.serving.serving`). Here: the
environment reaches ``asgi_app`` as it reaches ``serve()``, and the client address a host
hands the app (uvicorn rewrites it from ``X-Forwarded-For`` by default: docs/asgi.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.asgi.hosts import running
from tests.asgi.served import build_router
from tests.production.conftest import http_status
from tests.support.serving import UVICORN
from websockets.asyncio.client import connect

from wskit import Server
from wskit.asgi import asgi_app

#: one value of each kind of guard setting, as an operator would write them
ENV = {
    "MESSAGE_RATE_LIMIT": "3",
    "JWT_SECRET": "s" * 40,
    "AUTH_TIMEOUT_MS": "300",
    "MAX_CONNECTIONS": "50",
    "MAX_CONNECTIONS_PER_IP": "1",
    "ALLOWED_ORIGINS": "https://ok.example",
    "TRUSTED_PROXIES": "10.0.0.0/8",
    "IDLE_TIMEOUT_MS": "9000",
    "MAX_PAYLOAD_BYTES": "4096",
    "SEND_QUEUE_MESSAGES": "64",
    "BACKPRESSURE_POLICY": "drop-oldest",
    "SHUTDOWN_CLOSE_CODE": "1012",
    "SHUTDOWN_GRACE_MS": "1500",
    "WS_PATH": "/live",
}


def test_asgi_app_reads_the_environment_as_serve_does() -> None:
    """The same variables give the same settings and the same runtime parts to both."""
    app = asgi_app(build_router(), env=ENV)
    server = Server(build_router(), env=ENV)
    assert dataclasses.asdict(app.settings) == dataclasses.asdict(server.settings)
    assert app.settings.message_rate_limit == 3 and app.settings.path == "/live"
    assert app.runtime.queue_limits.max_messages == 64
    names = {type(guard).__name__ for guard in app.runtime.frame_guards}
    assert names, "MESSAGE_RATE_LIMIT built no rate guard for the ASGI app"


@pytest.mark.parametrize("proxy_headers", [True, False], ids=["uvicorn-default", "no-proxy-headers"])
async def test_uvicorn_proxy_headers_decide_the_client_address(proxy_headers: bool) -> None:
    """By default uvicorn believes X-Forwarded-For from 127.0.0.1 (its --forwarded-allow-ips)
    and hands the app the forwarded address: two clients forwarded by a local proxy then
    have a per-IP cap each. With --no-proxy-headers the app sees the peer, and only
    TRUSTED_PROXIES decides (here unset: one cap for both)."""
    app = asgi_app(build_router(), env={"MAX_CONNECTIONS_PER_IP": "1"})
    options: dict[str, Any] = {"proxy_headers": proxy_headers}
    forwarded = {"X-Forwarded-For": "203.0.113.5"}
    async with (
        running(app, UVICORN, **options) as host,
        connect(host.url(), additional_headers=forwarded, open_timeout=5),
    ):
        status, _ = await http_status(host.port, headers={"X-Forwarded-For": "203.0.113.6"})
    assert status == (101 if proxy_headers else 429)
