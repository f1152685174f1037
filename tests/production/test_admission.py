"""Refusals at upgrade: origin allow-list, connection caps, trusted proxies, bans, slowloris."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.production.conftest import build_router, http_status, request, ws_client
from tests.support.waiting import QUIET_S, eventually

from wskit import Server


async def test_foreign_origin_is_refused_with_403(make_server: Any) -> None:
    """With ALLOWED_ORIGINS set, an upgrade from another origin gets HTTP 403."""
    server: Server = await make_server(allowed_origins="https://app.example.com")
    assert (await http_status(server, headers={"Origin": "https://evil.example.net"}))[0] == 403
    assert (await http_status(server))[0] == 403, "no Origin at all is refused too"
    assert (await http_status(server, headers={"Origin": "https://app.example.com"}))[0] == 101


async def test_cors_origin_alias_and_wildcard(make_server: Any) -> None:
    """CORS_ORIGIN works as an alias of ALLOWED_ORIGINS; * allows any origin."""
    server = Server(build_router(), port=0, env={"CORS_ORIGIN": "http://a.test, http://b.test"})
    assert server.settings.allowed_origins == ("http://a.test", "http://b.test")
    open_server: Server = await make_server(allowed_origins="*")
    assert (await http_status(open_server, headers={"Origin": "http://anything.test"}))[0] == 101


async def test_global_connection_cap_answers_503(make_server: Any) -> None:
    """MAX_CONNECTIONS reached: the next upgrade gets 503 until one closes."""
    server: Server = await make_server(max_connections=2)
    async with ws_client(server.url), ws_client(server.url):
        assert (await http_status(server))[0] == 503
    await eventually(lambda: server.connection_count == 0, what="the server saw both clients go")
    async with ws_client(server.url) as ws:
        assert (await request(ws, "ECHO", {"text": "again"}))["type"] == "ECHO_OK"


async def test_per_ip_cap_answers_429_and_is_released(make_server: Any) -> None:
    """MAX_CONNECTIONS_PER_IP: a flood from one IP is capped; closing frees a slot."""
    server: Server = await make_server(max_connections_per_ip=3)
    async with ws_client(server.url), ws_client(server.url), ws_client(server.url):
        statuses = await asyncio.gather(*[http_status(server) for _ in range(20)])
        assert {status for status, _ in statuses} == {429}
        assert server.admission.per_ip == {"127.0.0.1": 3}
    await eventually(lambda: server.admission.per_ip == {}, what="the three slots released")
    async with ws_client(server.url) as ws:
        assert (await request(ws, "ECHO", {"text": "ok"}))["type"] == "ECHO_OK"


async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(make_server: Any) -> None:
    """Behind a trusted proxy each forwarded client has its own cap; otherwise the header is ignored."""
    trusting: Server = await make_server(max_connections_per_ip=1, trusted_proxies="127.0.0.1")
    async with ws_client(trusting.url, additional_headers={"X-Forwarded-For": "203.0.113.5"}):
        # another client behind the same proxy is someone else
        status, _ = await http_status(trusting, headers={"X-Forwarded-For": "203.0.113.6"})
        assert status == 101
        status, _ = await http_status(trusting, headers={"X-Forwarded-For": "203.0.113.5"})
        assert status == 429
    plain: Server = await make_server(max_connections_per_ip=1)
    async with ws_client(plain.url, additional_headers={"X-Forwarded-For": "203.0.113.5"}):
        status, _ = await http_status(plain, headers={"X-Forwarded-For": "203.0.113.6"})
        assert status == 429, "an untrusted peer's X-Forwarded-For must not dodge the cap"


async def test_spoofed_forwarded_chain_uses_the_rightmost_untrusted_hop(make_server: Any) -> None:
    """A client cannot pick its IP by prepending to X-Forwarded-For through the proxy."""
    from wskit.admission import client_ip
    from wskit.config import load_settings

    trusted = load_settings({"trusted_proxies": "10.0.0.0/8"}, {}).trusted_proxies
    assert client_ip("10.1.2.3", {"X-Forwarded-For": "1.1.1.1, 198.51.100.7"}, trusted) == "198.51.100.7"
    assert client_ip("10.1.2.3", {"X-Forwarded-For": "198.51.100.7, 10.9.9.9"}, trusted) == "198.51.100.7"
    assert client_ip("192.0.2.1", {"X-Forwarded-For": "1.1.1.1"}, trusted) == "192.0.2.1"


def _recording_ips(seen: list[str | None]) -> Any:
    def authenticate(request: Any) -> dict[str, str]:
        seen.append(request.client_ip)
        return {}

    return authenticate


async def test_forwarded_for_lines_are_joined_so_a_second_proxy_line_wins(make_server: Any) -> None:
    """A proxy that appends its own X-Forwarded-For line (HAProxy) leaves the client's invented
    line first: every line counts, walked from the right, so the proxy's word is believed."""
    seen: list[str | None] = []
    server: Server = await make_server(trusted_proxies="127.0.0.1", authenticate=_recording_ips(seen))
    spoofed = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7")]
    assert (await http_status(server, headers=spoofed))[0] == 101
    combined = [("X-Forwarded-For", "203.0.113.9, 10.0.0.1"), ("x-forwarded-for", "198.51.100.8, 127.0.0.1")]
    assert (await http_status(server, headers=combined))[0] == 101
    assert seen == ["198.51.100.7", "198.51.100.8"]


async def test_forwarded_for_lines_share_one_per_ip_cap(make_server: Any) -> None:
    """The spoofed first line cannot buy a second slot under MAX_CONNECTIONS_PER_IP."""
    server: Server = await make_server(trusted_proxies="127.0.0.1", max_connections_per_ip=1)
    first = [("X-Forwarded-For", "203.0.113.1"), ("X-Forwarded-For", "198.51.100.7")]
    async with ws_client(server.url, additional_headers=first):
        again = [("X-Forwarded-For", "203.0.113.2"), ("X-Forwarded-For", "198.51.100.7")]
        assert (await http_status(server, headers=again))[0] == 429


async def test_ipv4_mapped_peer_matches_an_ipv4_trusted_proxy(make_server: Any) -> None:
    """On an IPv6 socket an IPv4 proxy appears as ::ffff:127.0.0.1; it still matches
    TRUSTED_PROXIES=127.0.0.1, and untrusted peers are reported in their IPv4 form."""
    seen: list[str | None] = []
    trusting: Server = await make_server(
        host="::ffff:127.0.0.1", trusted_proxies="127.0.0.1", authenticate=_recording_ips(seen)
    )
    assert (await http_status(trusting, headers={"X-Forwarded-For": "198.51.100.7"}))[0] == 101
    plain: Server = await make_server(host="::ffff:127.0.0.1", authenticate=_recording_ips(seen))
    assert (await http_status(plain, headers={"X-Forwarded-For": "198.51.100.7"}))[0] == 101
    assert seen == ["198.51.100.7", "127.0.0.1"]


def test_client_ip_unit_cases() -> None:
    """Mapped addresses unmapped on both sides; junk hops stop at the last trusted proxy."""
    from multidict import CIMultiDict

    from wskit.admission import client_ip
    from wskit.config import load_settings

    trusted = load_settings({"trusted_proxies": "10.0.0.0/8"}, {}).trusted_proxies
    two_lines = CIMultiDict([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "198.51.100.7, 10.0.0.2")])
    assert client_ip("10.1.2.3", two_lines, trusted) == "198.51.100.7"
    assert client_ip("::ffff:10.0.0.5", {"X-Forwarded-For": "::ffff:198.51.100.7"}, trusted) == "198.51.100.7"
    assert client_ip("::ffff:192.0.2.1", {"X-Forwarded-For": "1.1.1.1"}, trusted) == "192.0.2.1"
    assert client_ip("10.0.0.5", {"X-Forwarded-For": "1.1.1.1, not-an-ip"}, trusted) == "10.0.0.5"
    assert client_ip("10.0.0.5", {}, trusted) == "10.0.0.5"


async def test_banned_user_is_refused_with_403(make_server: Any) -> None:
    """A user on the ban list gets HTTP 403 at upgrade; others connect."""

    def authenticate(request: Any) -> dict[str, str]:
        return {"user_id": request.query_params.get("user", "anon")}

    server: Server = await make_server(authenticate=authenticate)
    await server.router.ban_user("mallory")
    assert (await http_status(server, "/?user=mallory"))[0] == 403
    assert (await http_status(server, "/?user=alice"))[0] == 101


async def test_slow_handshake_is_closed(make_standalone: Any) -> None:
    """Slowloris: a client that never finishes its request headers is disconnected."""
    server: Server = await make_standalone(handshake_timeout_ms=300)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    async with asyncio.timeout(3):
        assert await reader.read() == b"", "the server should close the socket"
    writer.close()
    assert server.transport is not None and server.transport.guard is not None
    assert server.transport.guard.expired == 1


async def test_a_complete_handshake_is_not_cut_by_the_guard(make_standalone: Any) -> None:
    """The handshake timer stops once the request arrived: the connection lives on."""
    server: Server = await make_standalone(handshake_timeout_ms=200)
    async with ws_client(server.url) as ws:
        await asyncio.sleep(0.2 + QUIET_S)  # past the handshake timeout: the guard would have cut by now
        assert (await request(ws, "ECHO", {"text": "still here"}))["payload"] == {"text": "still here"}


@pytest.mark.parametrize("name", ["allowed_origins", "trusted_proxies"])
async def test_bad_values_fail_at_start(name: str) -> None:
    """A malformed origin or proxy list is refused when the server is built, naming the setting."""
    from wskit.config import ConfigError

    with pytest.raises(ConfigError, match=name):
        Server(build_router(), **{name: "not valid!"})


async def test_a_second_request_trickled_on_a_keep_alive_socket_is_cut(make_standalone: Any) -> None:
    """Slowloris after a first request: a complete GET /healthz cancels the handshake timer, but
    a second request trickled on the same keep-alive socket is still cut within about
    HANDSHAKE_TIMEOUT_MS (not aiohttp's hour-long keep-alive default)."""
    server: Server = await make_standalone(handshake_timeout_ms=500)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(3):
            head = await reader.readuntil(b"\r\n\r\n")
            assert b" 200 " in head
            assert await reader.readexactly(2) == b"ok"
        answered = asyncio.get_running_loop().time()
        closed_after: float | None = None
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:  # bounded: ~6 s at most
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed_after = asyncio.get_running_loop().time() - answered
                break
            try:
                async with asyncio.timeout(0.1):
                    if await reader.read(1) == b"":
                        closed_after = asyncio.get_running_loop().time() - answered
                        break
            except TimeoutError:
                pass
        assert closed_after is not None, "the trickling socket was never closed"
        assert closed_after < 2.0, f"closed only after {closed_after:.2f} s"
    finally:
        writer.close()


async def test_a_request_head_trickled_a_byte_at_a_time_is_upgraded(make_standalone: Any) -> None:
    """The blank line ending the head may straddle reads: each byte its own segment still
    makes a complete request (well within HANDSHAKE_TIMEOUT_MS)."""
    server: Server = await make_standalone()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        for byte in head:  # bounded: ~150 bytes
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.002)  # lets the server read each byte on its own
        async with asyncio.timeout(5):
            answer = await reader.readuntil(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 101"), answer
    finally:
        writer.close()
