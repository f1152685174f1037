"""Admission without sockets: each upgrade check, its HTTP answer, and the connection counts
(taken before ``authenticate`` runs, given back on every refusal and on release).

The real-socket tests (``tests/production/test_admission.py``) show the answers reach the
client; these pin the decisions and the bookkeeping exactly, fast enough for mutation runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import pytest
from multidict import CIMultiDict

from wskit.admission import Admission, Refusal, client_ip
from wskit.errors import ErrorCode, WsKitError
from wskit.transports.base import HandshakeRequest

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


def _request(ip: str | None = "192.0.2.1", **headers: str) -> HandshakeRequest:
    return HandshakeRequest(path="/ws", headers=headers, client_ip=ip)


class Bans:
    """A broker stand-in answering ``is_banned`` (or failing, like Redis down)."""

    def __init__(self, *banned: str, fail: bool = False) -> None:
        self.banned = set(banned)
        self.fail = fail
        self.asked: list[str] = []

    async def is_banned(self, user_id: str) -> bool:
        self.asked.append(user_id)
        if self.fail:
            raise ConnectionError("redis down")
        return user_id in self.banned


def _status(result: Mapping[str, Any] | Refusal) -> int:
    """101 when admitted, else the refusal's status (whose body must be its standard phrase)."""
    if not isinstance(result, Refusal):
        return 101
    assert result.text == HTTPStatus(result.status).phrase
    return result.status


# -- closed and origin ---------------------------------------------------------------------------


async def test_a_draining_server_refuses_with_503() -> None:
    """``closed`` (graceful shutdown): 503, nothing counted."""
    admission = Admission()
    admission.closed = True
    assert _status(await admission.admit(_request())) == 503
    assert admission.total == 0 and admission.refused == {503: 1}


async def test_origins_are_matched_without_case_or_trailing_slash() -> None:
    """Allowed ``https://app.test``: the same origin in capitals or with a slash is admitted;
    another origin, or none, gets 403."""
    admission = Admission(allowed_origins=["https://app.test"])
    assert _status(await admission.admit(_request(Origin="https://APP.test/"))) == 101
    assert _status(await admission.admit(_request(Origin="https://evil.test"))) == 403
    assert _status(await admission.admit(_request())) == 403
    assert admission.refused == {403: 2}


async def test_a_wildcard_origin_admits_any_origin_and_none() -> None:
    """``*`` in the allow-list: any Origin, and no Origin at all, are admitted."""
    admission = Admission(allowed_origins=["*"])
    assert _status(await admission.admit(_request(Origin="https://anything.test"))) == 101
    assert _status(await admission.admit(_request())) == 101


async def test_without_an_allow_list_any_origin_is_admitted() -> None:
    """No ``allowed_origins``: the Origin is not checked."""
    assert _status(await Admission().admit(_request(Origin="https://evil.test"))) == 101


# -- connection caps -------------------------------------------------------------------------------


async def test_the_global_cap_admits_exactly_max_connections() -> None:
    """max_connections=2: two admitted, the third gets 503; after one release, one more fits."""
    admission = Admission(max_connections=2)
    assert [_status(await admission.admit(_request(f"192.0.2.{i}"))) for i in range(3)] == [101, 101, 503]
    admission.release("192.0.2.0")
    assert admission.total == 1
    assert _status(await admission.admit(_request("192.0.2.9"))) == 101


async def test_the_per_ip_cap_counts_each_address_apart() -> None:
    """max_connections_per_ip=2: a third from one address gets 429, another address is admitted;
    releasing one frees its place, and an address with nothing left is forgotten."""
    admission = Admission(max_connections_per_ip=2)
    assert [_status(await admission.admit(_request("192.0.2.1"))) for _ in range(3)] == [101, 101, 429]
    assert _status(await admission.admit(_request("192.0.2.2"))) == 101
    assert admission.per_ip == {"192.0.2.1": 2, "192.0.2.2": 1}
    admission.release("192.0.2.2")
    admission.release("192.0.2.1")
    assert admission.per_ip == {"192.0.2.1": 1}
    assert admission.total == 1
    assert admission.refused == {429: 1}


async def test_connections_without_an_address_share_one_count() -> None:
    """No client IP: counted under ``"?"`` (admit and release alike)."""
    admission = Admission(max_connections_per_ip=1)
    assert _status(await admission.admit(_request(None))) == 101
    assert _status(await admission.admit(_request(None))) == 429
    admission.release(None)
    assert admission.per_ip == {} and admission.total == 0


async def test_zero_caps_mean_no_cap() -> None:
    """The defaults (0) admit any number of connections from one address."""
    admission = Admission()
    for _ in range(5):
        assert _status(await admission.admit(_request())) == 101
    assert admission.total == 5 and admission.per_ip == {"192.0.2.1": 5}


async def test_an_upgrade_still_authenticating_holds_its_place() -> None:
    """Counted before ``authenticate`` is awaited: with a cap of 1, a second upgrade arriving
    while the first is still authenticating is refused (concurrent upgrades cannot overshoot)."""
    gate = asyncio.Event()

    async def slow(request: HandshakeRequest) -> Mapping[str, Any]:
        await gate.wait()
        return {"user_id": "u1"}

    admission = Admission(authenticate=slow, max_connections_per_ip=1)
    first = asyncio.ensure_future(admission.admit(_request()))
    for _ in range(5):
        await asyncio.sleep(0)
    assert _status(await admission.admit(_request())) == 429
    gate.set()
    assert await first == {"user_id": "u1"}


# -- authenticate and bans ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "status"),
    [(None, 401), (False, 401), ("a string", 500), ({"user_id": "u1"}, 101)],
)
async def test_what_authenticate_returns_decides(returned: Any, status: int) -> None:
    """None or False: 401; not a mapping: 500; a mapping: admitted with it as the data. A refusal
    gives its place back."""
    admission = Admission(authenticate=lambda request: returned, max_connections=1)
    result = await admission.admit(_request())
    assert _status(result) == status
    if status == 101:
        assert result == returned
        assert admission.total == 1
    else:
        assert admission.total == 0 and admission.per_ip == {}


async def test_an_async_authenticate_is_awaited() -> None:
    """An async hook's result is the data."""

    async def hook(request: HandshakeRequest) -> Mapping[str, Any]:
        return {"user_id": request.headers["X-User"]}

    assert await Admission(authenticate=hook).admit(_request(**{"X-User": "ann"})) == {"user_id": "ann"}


async def test_a_crashing_authenticate_is_a_500_and_gives_its_place_back() -> None:
    """authenticate() raising: 500 for this client, the count released, the server unharmed."""

    def hook(request: HandshakeRequest) -> Mapping[str, Any]:
        raise RuntimeError("bug")

    admission = Admission(authenticate=hook)
    assert _status(await admission.admit(_request())) == 500
    assert admission.total == 0 and admission.per_ip == {}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.UNAUTHENTICATED, 401),
        (ErrorCode.PERMISSION_DENIED, 403),
        (ErrorCode.RESOURCE_EXHAUSTED, 429),
        (ErrorCode.UNAVAILABLE, 503),
        (ErrorCode.INVALID_ARGUMENT, 401),
    ],
)
async def test_authenticate_raising_wskit_error_refuses_with_its_status(code: ErrorCode, status: int) -> None:
    """authenticate() raising WsKitError refuses with the status its code maps to (any other code:
    401), counted under that status, its place given back."""

    def hook(request: HandshakeRequest) -> Mapping[str, Any]:
        raise WsKitError(code, "no")

    admission = Admission(authenticate=hook)
    assert _status(await admission.admit(_request())) == status
    assert admission.refused == {status: 1}
    assert admission.total == 0 and admission.per_ip == {}


async def test_a_refusal_logs_one_line_with_who_and_why(caplog: pytest.LogCaptureFixture) -> None:
    """A refused upgrade writes one INFO line with the status, the client's address, the path and
    the reason (here the one authenticate() gave, with its details.reason)."""

    def hook(request: HandshakeRequest) -> Mapping[str, Any]:
        raise WsKitError(ErrorCode.UNAUTHENTICATED, "Token expired", details={"reason": "expired"})

    admission = Admission(authenticate=hook)
    with caplog.at_level(logging.INFO, logger="wskit.admission"):
        await admission.admit(_request("198.51.100.7"))
    lines = [r.getMessage() for r in caplog.records if r.name == "wskit.admission"]
    assert len(lines) == 1
    assert "401" in lines[0] and "198.51.100.7" in lines[0] and "/ws" in lines[0]
    assert "Token expired (expired)" in lines[0]


async def test_refusal_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """Thirty refusals at once: a handful of lines (the log budget), not thirty; all are counted."""
    admission = Admission()
    admission.closed = True
    with caplog.at_level(logging.INFO, logger="wskit.admission"):
        for _ in range(30):
            await admission.admit(_request())
    lines = [r for r in caplog.records if r.name == "wskit.admission"]
    assert 1 <= len(lines) < 30
    assert admission.refused == {503: 30}


async def test_a_cancelled_upgrade_gives_its_place_back() -> None:
    """The upgrade cancelled while authenticating (client gone, shutdown): counts released."""

    async def hook(request: HandshakeRequest) -> Mapping[str, Any]:
        raise asyncio.CancelledError

    admission = Admission(authenticate=hook)
    with pytest.raises(asyncio.CancelledError):
        await admission.admit(_request())
    assert admission.total == 0 and admission.per_ip == {}


async def test_a_banned_user_gets_403_and_gives_its_place_back() -> None:
    """A banned user id (checked as a string): 403, not counted; another user is admitted."""
    bans = Bans("7")
    admission = Admission(authenticate=lambda r: {"user_id": int(r.headers["X-User"])}, broker=lambda: bans)  # type: ignore[arg-type,return-value]
    assert _status(await admission.admit(_request(**{"X-User": "7"}))) == 403
    assert bans.asked == ["7"]
    assert admission.total == 0 and admission.per_ip == {} and admission.refused == {403: 1}
    assert _status(await admission.admit(_request(**{"X-User": "8"}))) == 101


async def test_a_failing_ban_check_lets_the_user_in() -> None:
    """The ban list unreachable (Redis down): fail open, admitted."""
    bans = Bans("u1", fail=True)
    admission = Admission(authenticate=lambda r: {"user_id": "u1"}, broker=lambda: bans)  # type: ignore[arg-type,return-value]
    assert _status(await admission.admit(_request())) == 101


async def test_anonymous_connections_skip_the_ban_check() -> None:
    """No user id in the data: the ban list is not consulted."""
    bans = Bans()
    admission = Admission(authenticate=lambda r: {"name": "x"}, broker=lambda: bans)  # type: ignore[arg-type,return-value]
    assert _status(await admission.admit(_request())) == 101
    assert bans.asked == []


# -- client_ip ---------------------------------------------------------------------------------------


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    """A peer outside the trusted proxies: its own address, X-Forwarded-For ignored."""
    assert client_ip("192.0.2.1", {"X-Forwarded-For": "1.1.1.1"}, TRUSTED) == "192.0.2.1"


def test_no_trusted_proxies_means_the_peer() -> None:
    """No trusted proxies configured: always the peer."""
    assert client_ip("10.0.0.1", {"X-Forwarded-For": "1.1.1.1"}, ()) == "10.0.0.1"


def test_the_walk_skips_every_trusted_hop_from_the_right() -> None:
    """Peer 10.0.0.1 (trusted) forwarding ``spoof, 198.51.100.7, 10.0.0.2``: 10.0.0.2 is a proxy
    too, so the client is 198.51.100.7 (not the client-supplied first hop)."""
    headers = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7, 10.0.0.2"}
    assert client_ip("10.0.0.1", headers, TRUSTED) == "198.51.100.7"


def test_only_trusted_hops_leave_the_peer() -> None:
    """Every forwarded hop is a trusted proxy: the peer is reported."""
    assert client_ip("10.0.0.1", {"X-Forwarded-For": "10.0.0.3, 10.0.0.2"}, TRUSTED) == "10.0.0.1"


def test_an_unparseable_peer_is_reported_as_given() -> None:
    """A peer that is not an address (a unix socket path): reported as it is, never trusted."""
    assert client_ip("/run/app.sock", {"X-Forwarded-For": "1.1.1.1"}, TRUSTED) == "/run/app.sock"
    assert client_ip(None, {}, TRUSTED) is None


def test_forwarded_hops_are_trimmed_and_empty_ones_skipped() -> None:
    """Spaces around hops and empty hops (``a,,b``) do not stop the walk."""
    headers = {"X-Forwarded-For": " 198.51.100.7 ,, 10.0.0.2 ,"}
    assert client_ip("10.0.0.1", headers, TRUSTED) == "198.51.100.7"


async def test_resolve_ip_uses_the_admission_trusted_proxies() -> None:
    """``Admission.resolve_ip``: client_ip with the proxies it was given."""
    admission = Admission(trusted_proxies=TRUSTED)
    assert admission.resolve_ip("10.0.0.1", {"X-Forwarded-For": "198.51.100.7"}) == "198.51.100.7"
    assert Admission().resolve_ip("10.0.0.1", {"X-Forwarded-For": "198.51.100.7"}) == "10.0.0.1"


def test_multidict_headers_without_forwarded_for_give_the_peer() -> None:
    """aiohttp's headers (a multidict) from a trusted peer that sent no X-Forwarded-For: the peer."""
    assert client_ip("10.0.0.1", CIMultiDict(), TRUSTED) == "10.0.0.1"


def test_multidict_forwarded_for_lines_are_read_in_any_case() -> None:
    """Two X-Forwarded-For lines in a multidict (the second added by a proxy, spelled in lower
    case): both are read, the second's hop is the client."""
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("X-Forwarded-For", "203.0.113.9")
    headers.add("x-forwarded-for", "198.51.100.7")
    assert client_ip("10.0.0.1", headers, TRUSTED) == "198.51.100.7"
