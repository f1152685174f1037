"""The pure parts: the reconnect table, backoff with full jitter, token placement, error fields."""

from __future__ import annotations

import random

import pytest
from yarl import URL

from wskit.client import Backoff, ClientError
from wskit.client.auth import TokenSource
from wskit.client.verdicts import Verdict, after_close, after_refusal
from wskit.errors import ConfigError

STOPS = {1002, 1003, 1007, 1008, 1009, 1010, 1015, 3000, 4000, 4999}
RECONNECTS = {1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 2000}


@pytest.mark.parametrize("code", sorted(STOPS | RECONNECTS))
def test_close_codes(code: int) -> None:
    """Each close code of PROTOCOL.md (and the application range) gets docs/client.md's verdict."""
    expected = Verdict.STOP if code in STOPS else Verdict.RECONNECT
    assert after_close(code).verdict is expected


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (400, Verdict.STOP),
        (401, Verdict.STOP_UNLESS_NEW_TOKEN),
        (403, Verdict.STOP_UNLESS_NEW_TOKEN),
        (404, Verdict.STOP),
        (408, Verdict.RECONNECT),
        (410, Verdict.STOP),
        (429, Verdict.RECONNECT),
        (500, Verdict.RECONNECT),
        (502, Verdict.RECONNECT),
        (503, Verdict.RECONNECT),
    ],
)
def test_http_answers(status: int, verdict: Verdict) -> None:
    """HTTP answers to the upgrade: 4xx stop (401/403 unless a new token), 408/429/5xx retry."""
    assert after_refusal(status).verdict is verdict


def test_backoff_is_full_jitter_under_a_growing_capped_ceiling() -> None:
    """Delays are uniform in [0, ceiling]; the ceiling doubles from initial_delay up to max_delay."""
    backoff = Backoff(initial_delay=0.5, max_delay=4.0, rng=random.Random(7))
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    delays = [backoff.delay(3) for _ in range(2000)]
    assert 0.0 <= min(delays) < 0.2 and 3.8 < max(delays) <= 4.0  # spread over the whole window
    assert backoff.delay(0, floor=2.5) >= 2.5
    assert backoff.ceiling(10_000) == 4.0  # no overflow after days of retrying


def test_backoff_attempts_and_bad_settings() -> None:
    """max_attempts bounds failures in a row; nonsense settings fail at construction."""
    assert Backoff(max_attempts=3).exhausted(3) and not Backoff(max_attempts=3).exhausted(2)
    assert not Backoff().exhausted(10**6)
    with pytest.raises(ConfigError):
        Backoff(initial_delay=2, max_delay=1)


async def test_tokens_travel_where_asked() -> None:
    """query -> access_token=, header -> Authorization: Bearer, subprotocol -> bearer.<token>."""
    url = URL("ws://127.0.0.1:1/")
    query = TokenSource("t", "query").handshake(url, "t", headers={}, protocols=())
    header = TokenSource("t", "header").handshake(url, "t", headers={}, protocols=("chat",))
    proto = TokenSource("t", "subprotocol").handshake(url, "t", headers={}, protocols=("chat",))
    assert query.url.query["access_token"] == "t"
    assert header.headers == {"Authorization": "Bearer t"} and header.protocols == ("chat",)
    assert proto.protocols == ("bearer.t", "chat") and "access_token" not in proto.url.query


async def test_async_and_sync_providers_are_asked_each_time() -> None:
    """A provider is called on every get(), awaited when async."""
    calls: list[int] = []

    async def provider() -> str:
        calls.append(1)
        return f"t{len(calls)}"

    source = TokenSource(provider)
    assert [await source.get(), await source.get()] == ["t1", "t2"] and source.renewable
    assert await TokenSource(lambda: "s").get() == "s"
    assert not TokenSource("fixed").renewable


def test_client_error_from_a_wire_payload() -> None:
    """RPC_ERROR payload -> ClientError fields; the catalogue fills retryable when absent."""
    error = ClientError.from_payload({"code": "UNAVAILABLE", "message": "busy", "retryAfterMs": 100})
    assert (error.code, error.message, error.retryable, error.retry_after_ms) == ("UNAVAILABLE", "busy", True, 100)
    app = ClientError.from_payload({"code": "ROOM_FULL", "message": "full", "details": {"max": 2}, "retryable": True})
    assert (app.code, app.details, app.retryable) == ("ROOM_FULL", {"max": 2}, True)
    assert ClientError.from_payload("junk").code == "INTERNAL"
