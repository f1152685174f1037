"""Reconnecting, and stopping when the server says not to come back (docs/client.md's table)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from tests.client.app import Close, Echo, Heard, Say, Seen, Slow, build_router, recording_auth, serving
from tests.support.redis_server import free_port
from tests.support.waiting import PATIENCE_S, consistently, eventually

from wskit.client import Backoff, Client, ClientStopped, StateChange

FAST = Backoff(initial_delay=0.02, max_delay=0.1)


async def test_reconnects_after_a_server_restart_asking_the_token_each_time() -> None:
    """The server stops and a new one starts on the same port: the client reconnects by itself,
    with a token asked anew from the provider."""
    port = free_port()
    calls: list[int] = []

    async def provider() -> str:
        calls.append(1)
        return f"t{len(calls)}"

    first, second = Seen(), Seen()
    client = Client(f"ws://127.0.0.1:{port}/", token=provider, backoff=FAST)
    async with serving(build_router(first), port, authenticate=recording_auth(first)) as server:
        await client.connect()
        await client.request(Echo, {"text": "a"})
        await server.stop()
        await eventually(lambda: client.state == "reconnecting")
    async with serving(build_router(second), port, authenticate=recording_auth(second)):
        await eventually(lambda: client.state == "open")
        assert (await client.request(Echo, {"text": "b"})).payload.text == "b"
    await client.close()
    assert first.tokens == ["t1"]
    assert second.tokens[-1] == f"t{len(calls)}" and len(calls) >= 2


async def test_state_changes_reach_callbacks_and_iterators() -> None:
    """connecting -> open -> reconnecting -> open -> closed, seen by on_state and states()."""
    port = free_port()
    via_callback: list[str] = []
    via_iterator: list[str] = []
    client = Client(f"ws://127.0.0.1:{port}/", backoff=FAST, on_state=lambda c: via_callback.append(c.new))

    async def watch() -> None:
        async for change in client.states():
            via_iterator.append(change.new)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)  # the iterator is registered before the first change
    async with serving(build_router(Seen()), port) as server:
        await client.connect()
        await server.stop()
        await eventually(lambda: client.state == "reconnecting")
    async with serving(build_router(Seen()), port):
        await eventually(lambda: client.state == "open")
        await client.close()
    await asyncio.wait_for(watcher, PATIENCE_S)  # the iterator ends when the client closes
    squeezed = [s for i, s in enumerate(via_callback) if i == 0 or s != via_callback[i - 1]]
    assert squeezed == ["connecting", "open", "reconnecting", "open", "closed"], squeezed
    assert [s for i, s in enumerate(via_iterator) if i == 0 or s != via_iterator[i - 1]] == squeezed


@pytest.mark.parametrize(("code", "wire"), [(1008, "PERMISSION_DENIED"), (4000, "ABORTED")])
async def test_stops_on_policy_and_application_close_codes(code: int, wire: str) -> None:
    """Closed 1008 (policy) or with an application code: the client stops, says why, and does
    not dial again; waiters get ClientStopped."""
    seen = Seen()
    stopped: list[StateChange] = []
    async with serving(build_router(seen), authenticate=recording_auth(seen)) as server:
        client = Client(server.url, backoff=FAST, on_state=lambda c: stopped.append(c) if c.new == "closed" else None)
        await client.connect()
        await client.send(Close, {"code": code})
        await eventually(lambda: client.state == "closed")
        error = client.close_error
        assert isinstance(error, ClientStopped)
        assert (error.close_code, error.code) == (code, wire)
        assert f"(close {code}: closed by the test)" in error.message  # the server's reason, as it said it
        assert stopped and stopped[0].error is error
        with pytest.raises(ClientStopped):
            await client.request(Echo, {"text": "x"})
        await consistently(lambda: len(seen.tokens) == 1, what="no second upgrade")
        await client.close()


async def test_reconnect_codes_make_an_application_code_retryable() -> None:
    """reconnect_codes=(4000,): a close with 4000 is followed by a reconnect."""
    seen = Seen()
    async with serving(build_router(seen), authenticate=recording_auth(seen)) as server:
        client = Client(server.url, backoff=FAST, reconnect_codes=(4000,))
        await client.connect()
        await client.send(Close, {"code": 4000})
        await eventually(lambda: len(seen.tokens) == 2 and client.state == "open")
        await client.close()


async def test_a_fixed_token_refused_with_401_stops_at_once() -> None:
    """HTTP 401 to a string token: connect() raises ClientStopped (UNAUTHENTICATED, 401), one attempt only."""
    seen = Seen()
    async with serving(build_router(seen), authenticate=recording_auth(seen, accept={"good"})) as server:
        client = Client(server.url, token="bad", backoff=FAST)
        with pytest.raises(ClientStopped) as caught:
            await client.connect(timeout=PATIENCE_S)
        assert (caught.value.http_status, caught.value.code) == (401, "UNAUTHENTICATED")
        assert client.state == "closed"
        await consistently(lambda: seen.tokens == ["bad"], what="no second upgrade")
        await client.close()


async def test_401_with_a_provider_that_yields_a_new_token_reconnects_with_it() -> None:
    """HTTP 401, and the provider now gives another token: the client dials again with it."""
    seen = Seen()
    tokens = iter(["expired", "fresh", "fresh", "fresh"])
    async with serving(build_router(seen), authenticate=recording_auth(seen, accept={"fresh"})) as server:
        async with Client(server.url, token=lambda: next(tokens), backoff=FAST) as client:
            assert client.state == "open"
        assert seen.tokens == ["expired", "fresh"]


async def test_401_with_a_provider_that_yields_the_same_token_stops() -> None:
    """HTTP 401, and the provider gives the same token again: the client stops."""
    seen = Seen()
    async with serving(build_router(seen), authenticate=recording_auth(seen, accept={"x"})) as server:
        client = Client(server.url, token=lambda: "stale", backoff=FAST)
        with pytest.raises(ClientStopped) as caught:
            await client.connect(timeout=PATIENCE_S)
        assert caught.value.http_status == 401
        assert seen.tokens == ["stale"]
        await client.close()


async def test_403_from_a_foreign_origin_stops() -> None:
    """HTTP 403 (a foreign Origin): the client stops with PERMISSION_DENIED and does not dial again."""
    async with serving(build_router(Seen()), allowed_origins=["http://good.example"]) as server:
        client = Client(server.url, headers={"Origin": "http://evil.example"}, backoff=FAST)
        with pytest.raises(ClientStopped) as caught:
            await client.connect(timeout=PATIENCE_S)
        assert (caught.value.http_status, caught.value.code) == (403, "PERMISSION_DENIED")
        await client.close()


async def test_a_frame_over_the_server_limit_stops_on_1009() -> None:
    """The server closes 1009 (our frame was too big): the client stops (RESOURCE_EXHAUSTED)."""
    async with serving(build_router(Seen()), max_payload_bytes=1024) as server:
        client = Client(server.url, backoff=FAST)
        await client.connect()
        await client.send(Say, {"text": "x" * 4096})
        await eventually(lambda: client.state == "closed")
        assert client.close_error is not None
        assert (client.close_error.close_code, client.close_error.code) == (1009, "RESOURCE_EXHAUSTED")
        await client.close()


async def test_max_attempts_bounds_the_retries() -> None:
    """Nothing listens: after max_attempts failed attempts connect() raises ClientStopped (UNAVAILABLE)."""
    client = Client(
        f"ws://127.0.0.1:{free_port()}/", backoff=Backoff(initial_delay=0.01, max_delay=0.02, max_attempts=3)
    )
    with pytest.raises(ClientStopped) as caught:
        await client.connect(timeout=PATIENCE_S)
    assert caught.value.code == "UNAVAILABLE" and "3 failed" in caught.value.message
    await client.close()


async def test_server_shutdown_notice_is_honoured() -> None:
    """SERVER_SHUTDOWN: what the app sends next is queued, not sent on the old connection, and
    the client reconnects no sooner than retryAfterMs after the notice."""
    port = free_port()
    old, new = Seen(), Seen()
    loop = asyncio.get_running_loop()
    marks: dict[str, float] = {}

    def note(change: StateChange) -> None:
        if change.new == "reconnecting" and "notice" not in marks:
            marks["notice"] = loop.time()
        if change.new == "open" and "notice" in marks:
            marks.setdefault("open", loop.time())

    errors: list[Exception] = []
    client = Client(f"ws://127.0.0.1:{port}/", backoff=FAST, on_state=note, on_error=errors.append)
    client.on(Heard, lambda msg: None)
    server_cm = serving(
        build_router(old), port, shutdown_retry_after_ms=600, shutdown_retry_jitter_ms=0, shutdown_grace_ms=5000
    )
    server = await server_cm.__aenter__()
    try:
        await client.connect()
        release = old.event(old.release, "inflight")
        inflight = asyncio.create_task(client.request(Slow, {"key": "inflight"}, timeout=PATIENCE_S))
        await asyncio.wait_for(old.event(old.started, "inflight").wait(), PATIENCE_S)
        shutdown = asyncio.create_task(server.shutdown())
        await eventually(lambda: client.state == "reconnecting")
        await client.send(Say, {"text": "after the notice"})
        assert client.queued == 1
        release.set()  # the in-flight request is still answered on the old connection
        assert (await inflight).payload.text == "inflight"
        await shutdown
    finally:
        await server_cm.__aexit__(None, None, None)
    async with serving(build_router(new), port):
        await eventually(lambda: new.said == ["after the notice"])
        assert marks["open"] - marks["notice"] >= 0.6
    await client.close()
    assert old.said == [] and errors == []


async def test_a_token_provider_that_raises_is_retried_with_backoff() -> None:
    """The provider raises twice: each is a failed attempt (reported), then the client connects."""
    seen = Seen()
    calls: list[int] = []
    errors: list[Exception] = []

    def provider() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("the identity service is down")
        return "ok"

    async with serving(build_router(seen), authenticate=recording_auth(seen)) as server:
        client = Client(server.url, token=provider, backoff=FAST, on_error=errors.append)
        await client.connect(timeout=PATIENCE_S)
        assert client.state == "open" and seen.tokens == ["ok"]
        assert client.problems["token-provider"] == 2
        assert [str(e) for e in errors] == ["the identity service is down"] * 2
        await client.close()


async def test_a_token_provider_returning_a_non_string_stops_the_client() -> None:
    """The provider returns an int (a ConfigError): connect() raises ClientStopped saying why."""
    seen = Seen()
    async with serving(build_router(seen), authenticate=recording_auth(seen)) as server:
        client = Client(server.url, token=lambda: 42, backoff=FAST)  # type: ignore[arg-type,return-value]
        with pytest.raises(ClientStopped) as caught:
            await client.connect(timeout=PATIENCE_S)
        assert caught.value.code == "INVALID_ARGUMENT" and "int" in caught.value.message
        assert client.state == "closed" and seen.tokens == []
        await client.close()


async def test_a_shutdown_notice_during_setup_is_not_overwritten() -> None:
    """SERVER_SHUTDOWN arrives while the client resubscribes: the connection never reports
    ``open`` (it takes no application frames), and the client comes back on a new server."""
    port = free_port()
    changes: list[str] = []
    client = Client(f"ws://127.0.0.1:{port}/", backoff=FAST, on_state=lambda c: changes.append(c.new))
    router = build_router(Seen())
    notice = [False]
    shutdowns: list[asyncio.Task[None]] = []

    async def shut_down_on_resubscribe(ctx: Any, call_next: Any) -> None:
        if ctx.type == "$ws:subscribe" and notice[0]:
            notice[0] = False
            shutdowns.append(asyncio.create_task(server.shutdown(grace_ms=2000)))
            await asyncio.sleep(0.1)  # the notice goes out before the answer
        await call_next()

    router.use(shut_down_on_resubscribe)
    async with serving(router, port, shutdown_retry_after_ms=0, shutdown_retry_jitter_ms=0) as server:
        await client.connect()
        await client.subscribe("live:s")
        notice[0] = True
        mark = len(changes)
        await client.send(Close, {"code": 1012})
        await eventually(lambda: bool(shutdowns))
        await shutdowns[0]
        assert "open" not in changes[mark:], changes[mark:]
        await client.send(Say, {"text": "held"})
        assert client.queued == 1
    seen = Seen()
    async with serving(build_router(seen), port):
        await eventually(lambda: seen.said == ["held"])
    await client.close()


async def test_a_server_closing_right_after_open_is_redialled_ever_more_slowly() -> None:
    """The server accepts, then closes 1013 at once: each such connection counts as a failed
    attempt, so the waits grow and max_attempts stops the client."""
    router = build_router(Seen())

    @router.on_open
    async def refuse(ctx: Any) -> None:
        await ctx.close(1013, "try again later")

    waits: list[float] = []
    async with serving(router) as server:
        client = Client(
            server.url,
            backoff=Backoff(initial_delay=0.02, max_delay=1.0, max_attempts=6),
            on_state=lambda c: waits.append(c.retry_in) if c.retry_in is not None else None,
        )
        with contextlib.suppress(ClientStopped):
            await client.connect(timeout=PATIENCE_S)
        await eventually(lambda: client.state == "closed", timeout=PATIENCE_S)
        assert client.close_error is not None and "6 failed" in client.close_error.message
        assert len(waits) == 5 and max(waits) > 0.02, waits
        await client.close()
