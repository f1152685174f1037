"""wskit.js itself in real headless Chromium (Debian's, under Playwright), against ``serve()``
in this process: a request and its progress, a server error's fields, a subscription that
recovers what was published while the page was disconnected, and a refused upgrade (which a
browser cannot see) stopping the client after ``maxRefusals``.

The page is the server's own origin (``/healthz``); each test imports ``/wskit.js`` there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel
from tests.examples.test_chat_browser import chromium

from wskit import Context, ErrorCode, Router, Server, message, rpc
from wskit.errors import WsKitError

pytestmark = pytest.mark.timeout(60)


class UserReq(BaseModel):
    id: str


class User(BaseModel):
    id: str
    name: str


class TickPayload(BaseModel):
    n: int


GetUser = rpc("GET_USER", UserReq, "USER", User)
Tick = message("TICK", TickPayload)
Drop = message("DROP")
Publish = message("PUBLISH", TickPayload)


def build_router() -> Router[Any]:
    router: Router[Any] = Router()
    router.allow_subscribe("feed:*")
    router.enable_history("feed:*")

    @router.rpc(GetUser)
    async def get_user(ctx: Context[UserReq]) -> None:
        if ctx.payload.id != "1":
            await ctx.error(ErrorCode.NOT_FOUND, "no such user", details={"id": ctx.payload.id})
            return
        await ctx.progress({"stage": "loading"})
        await ctx.reply({"id": "1", "name": "Ada"})

    @router.on(Publish)
    async def publish(ctx: Context[TickPayload]) -> None:
        await router.publish("feed:news", Tick, ctx.payload)

    @router.on(Drop)
    async def drop(ctx: Context[None]) -> None:
        # the server drops this page (1012: come back), then publishes while it is away
        await ctx.close(1012, "restart")
        for n in (4, 5):
            await router.publish("feed:news", Tick, {"n": n})

    return router


@pytest.fixture
async def page() -> AsyncIterator[tuple[Any, Server]]:
    async with chromium() as browser, Server(build_router(), host="127.0.0.1", port=0, transport="aiohttp") as server:
        tab = await browser.new_page()
        await tab.goto(f"http://127.0.0.1:{server.port}/healthz")
        yield tab, server


async def test_request_progress_and_error_fields(page: tuple[Any, Server]) -> None:
    """request() resolves with {type, meta, payload} after its progress; a server error rejects
    with .code, .details, .retryable and .retryAfterMs."""
    tab, _ = page
    result = await tab.evaluate(
        """async () => {
          const { Client, ClientError } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`);
          await client.connect();
          const progress = [];
          const res = await client.request('GET_USER', { id: '1' }, { onProgress: (p) => progress.push(p) });
          let error;
          try { await client.request('GET_USER', { id: '2' }); } catch (err) { error = err; }
          await client.close();
          return { type: res.type, payload: res.payload, progress, state: client.state,
                   isError: error instanceof ClientError && error instanceof Error, code: error.code,
                   details: error.details, retryable: error.retryable, retryAfterMs: error.retryAfterMs };
        }"""
    )
    assert result == {
        "type": "USER",
        "payload": {"id": "1", "name": "Ada"},
        "progress": [{"stage": "loading"}],
        "state": "closed",
        "isError": True,
        "code": "NOT_FOUND",
        "details": {"id": "2"},
        "retryable": False,
        "retryAfterMs": None,
    }


async def test_subscription_recovers_what_was_published_while_away(page: tuple[Any, Server]) -> None:
    """A subscription survives a dropped connection: after the reconnect it is made again from
    its last position, so messages published while the page was away arrive, each once, in order."""
    tab, _ = page
    result = await tab.evaluate(
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`, { backoff: { initialDelay: 200 } });
          const seen = [], states = [];
          client.on('TICK', (msg) => seen.push(msg.payload.n));
          client.onState((c) => states.push(c.state));
          await client.connect();
          const sub = await client.subscribe('feed:news');
          for (const n of [1, 2, 3]) client.send('PUBLISH', { n });
          const pause = (ms) => new Promise((r) => setTimeout(r, ms));
          const until = async (cond) => { for (let i = 0; i < 200 && !cond(); i++) await pause(50); };
          await until(() => seen.length === 3);
          client.send('DROP');
          await until(() => seen.length === 5 && client.state === 'open');
          client.send('PUBLISH', { n: 6 });
          await until(() => seen.length === 6);
          await pause(200); // a duplicate would arrive here
          const position = sub.position;
          await client.close();
          return { seen, states, offset: position && position.offset };
        }"""
    )
    assert result["seen"] == [1, 2, 3, 4, 5, 6]
    assert "reconnecting" in result["states"]
    assert result["offset"] == 6


async def test_refused_upgrade_stops_after_max_refusals() -> None:
    """A server that answers the upgrade 401 (the page sees only a close before open, but the
    probe of /readyz answers) is retried with a fresh token each time, then the client stops."""

    async with (
        chromium() as browser,
        Server(
            build_router(), host="127.0.0.1", port=0, transport="aiohttp", authenticate=lambda request: None
        ) as server,
    ):
        tab = await browser.new_page()
        await tab.goto(f"http://127.0.0.1:{server.port}/healthz")
        result = await tab.evaluate(
            """async () => {
              const { Client } = await import('/wskit.js');
              let asked = 0;
              const client = new Client(`ws://${location.host}/`, {
                token: async () => `t${++asked}`, maxRefusals: 3, backoff: { initialDelay: 50 } });
              let error;
              try { await client.connect(); } catch (err) { error = err; }
              return { asked, state: client.state, code: error && error.code, details: error && error.details };
            }"""
        )
    assert result == {
        "asked": 3,
        "state": "closed",
        "code": "UNAUTHENTICATED",
        "details": {"reason": "refused", "refusals": 3},
    }


async def _run_page(router: Router[Any], script: str) -> Any:
    """Run ``script`` (an async function's source) in a page of a server of ``router``."""
    async with (
        chromium() as browser,
        Server(router, host="127.0.0.1", port=0, transport="aiohttp") as server,
    ):
        tab = await browser.new_page()
        await tab.goto(f"http://127.0.0.1:{server.port}/healthz")
        return await tab.evaluate(script)


async def test_resubscribe_refused_for_now_reconnects_and_tries_again() -> None:
    """A resubscribe answered UNAVAILABLE (retryAfterMs) is not left half made: the client gives
    up that connection, reconnects no sooner than retryAfterMs, subscribes again from its
    position and gets what was published meanwhile and what follows."""
    router = build_router()
    subscribes: list[str] = []

    @router.use
    async def busy_once(ctx: Any, call_next: Any) -> None:
        if ctx.type == "$ws:subscribe":
            subscribes.append(ctx.type)
            if len(subscribes) == 2:  # the first resubscribe, after DROP
                raise WsKitError(ErrorCode.UNAVAILABLE, "broker busy", retry_after_ms=300)
        await call_next()

    result = await _run_page(
        router,
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`, { backoff: { initialDelay: 50 } });
          const seen = [], changes = [];
          client.on('TICK', (msg) => seen.push(msg.payload.n));
          client.onState((c) => changes.push({ state: c.state, retryIn: c.retryIn, code: c.error && c.error.code }));
          await client.connect();
          await client.subscribe('feed:news');
          client.send('PUBLISH', { n: 1 });
          const pause = (ms) => new Promise((r) => setTimeout(r, ms));
          const until = async (cond) => { for (let i = 0; i < 200 && !cond(); i++) await pause(25); };
          await until(() => seen.length === 1);
          client.send('DROP');
          await until(() => changes.filter((c) => c.state === 'open').length >= 2 && seen.length === 3);
          client.send('PUBLISH', { n: 6 });
          await until(() => seen.length === 4);
          const subscribed = client._subs.has('feed:news');
          await client.close();
          return { seen, changes, subscribed };
        }""",
    )
    assert result["seen"] == [1, 4, 5, 6]
    assert result["subscribed"] is True
    assert len(subscribes) == 3
    retries = [c for c in result["changes"] if c["state"] == "reconnecting" and c["retryIn"] is not None]
    assert len(retries) == 2 and retries[1]["retryIn"] >= 300, result["changes"]


async def test_send_during_the_resubscribe_does_not_overtake_the_queue() -> None:
    """A send made while the subscriptions are being made again (after one queued while
    disconnected) goes out after it: only onConnect hooks write ahead of the queue."""
    import asyncio

    router = build_router()
    notes: list[int] = []
    subscribes: list[str] = []

    @router.on(Note)
    async def note(ctx: Context[TickPayload]) -> None:
        notes.append(ctx.payload.n)

    @router.use
    async def slow_resubscribe(ctx: Any, call_next: Any) -> None:
        if ctx.type == "$ws:subscribe":
            subscribes.append(ctx.type)
            if len(subscribes) == 2:
                await asyncio.sleep(0.4)  # the resubscribe's round trip, long enough to send in
        await call_next()

    result = await _run_page(
        router,
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`, { backoff: { initialDelay: 200 } });
          client.onConnect((c) => { if (c._hooked) c.send('NOTE', { n: 0 }); c._hooked = true; });
          await client.connect();
          await client.subscribe('feed:news');
          const pause = (ms) => new Promise((r) => setTimeout(r, ms));
          const until = async (cond) => { for (let i = 0; i < 400 && !cond(); i++) await pause(5); };
          client.send('DROP');
          await until(() => client.state === 'reconnecting' && !client._ws);
          client.send('NOTE', { n: 1 });            // queued: disconnected
          await until(() => client._resuming);
          client.send('NOTE', { n: 2 });            // during the resubscribe
          await until(() => client.state === 'open');
          client.send('NOTE', { n: 3 });
          client.send('NOTE', { n: 4 });
          await pause(300);
          await client.close();
          return client.state;
        }""",
    )
    assert result == "closed"
    assert notes == [0, 1, 2, 3, 4]


async def test_a_server_that_closes_at_once_is_redialled_under_a_growing_backoff() -> None:
    """A server that accepts, then closes 1013 at once, does not reset the backoff: the waits
    grow and maxAttempts ends it (the counter restarts only after backoff.resetAfter open)."""
    router = build_router()

    @router.on_open
    async def busy(ctx: Any) -> None:
        await ctx.close(1013, "try again later")

    result = await _run_page(
        router,
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`, {
            backoff: { initialDelay: 100, maxAttempts: 4 }, probeUrl: false });
          const opens = [], waits = [];
          client.onState((c) => {
            if (c.state === 'open') opens.push(c.state);
            if (c.retryIn !== null) waits.push(c.retryIn);
          });
          client.connect().catch(() => {});
          const pause = (ms) => new Promise((r) => setTimeout(r, ms));
          for (let i = 0; i < 100 && client.state !== 'closed'; i++) await pause(50);
          const state = client.state, error = client.closeError;
          await client.close();
          return { state, code: error && error.code, message: error && error.message, opens: opens.length, waits };
        }""",
    )
    assert result["state"] == "closed", result
    assert result["code"] == "UNAVAILABLE" and "gave up after 4 attempts" in result["message"]
    assert result["opens"] >= 1 and len(result["waits"]) == 4


Note = message("NOTE", TickPayload)
EchoCid = rpc("ECHO_CID", UserReq, "USER", User)
ShutMe = message("SHUT_ME")
CountMe = rpc("COUNT_ME", UserReq, "USER", User)


def contract_router(calls: list[str]) -> Router[Any]:
    """build_router, plus an RPC that sends a TICK carrying the request's correlationId before
    its answer, and a message after which the server sends this page SERVER_SHUTDOWN."""
    router = build_router()

    @router.rpc(EchoCid)
    async def echo_cid(ctx: Context[UserReq]) -> None:
        calls.append(ctx.type)
        await ctx.send(Tick, {"n": 9}, meta={"correlationId": ctx.correlation_id})
        await ctx.reply({"id": ctx.payload.id, "name": "Ada"})

    @router.rpc(CountMe)
    async def count_me(ctx: Context[UserReq]) -> None:
        calls.append(ctx.type)
        await ctx.reply({"id": "1", "name": "Ada"})

    @router.on(Note)
    async def note(ctx: Context[TickPayload]) -> None:
        calls.append(ctx.type)

    @router.on(ShutMe)
    async def shut_me(ctx: Context[None]) -> None:
        notice = b'{"type":"SERVER_SHUTDOWN","meta":{},"payload":{"reason":"test","retryAfterMs":60000}}'
        ctx.connection.send_nowait(notice)

    return router


async def test_client_contract() -> None:
    """A new client is "closed" (no closeError); a subscribe made before connect() settles with
    the server's answer (a refusal rejects); a request settles only on its declared answer."""
    calls: list[str] = []
    result = await _run_page(
        contract_router(calls),
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`);
          const initial = { state: client.state, closeError: client.closeError };
          const ticks = [];
          client.on('TICK', (msg) => ticks.push(msg.meta.correlationId ? 'with-cid' : 'plain'));
          const refused = client.subscribe('private:x').then(() => 'resolved', (err) => err.code);
          const accepted = client.subscribe('feed:news').then((sub) => sub.active, (err) => err.code);
          let early = 'pending';
          refused.then(() => { early = 'settled'; });
          await new Promise((r) => setTimeout(r, 100));
          const before = early;
          await client.connect();
          const res = await client.request('ECHO_CID', { id: '7' }, { response: 'USER' });
          await client.close();
          return { initial, before, refused: await refused, accepted: await accepted,
                   type: res.type, name: res.payload.name, ticks };
        }""",
    )
    assert result == {
        "initial": {"state": "closed", "closeError": None},
        "before": "pending",
        "refused": "PERMISSION_DENIED",
        "accepted": True,
        "type": "USER",
        "name": "Ada",
        "ticks": ["with-cid"],
    }


async def test_request_that_gave_up_waiting_for_room_is_not_written() -> None:
    """Under the "queue" policy, a request that times out while waiting for room in a full
    offline queue is never written later (and nothing throws when the room comes)."""
    calls: list[str] = []
    result = await _run_page(
        contract_router(calls),
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`, { offline: { maxCount: 1 } });
          const errors = [];
          client.addEventListener('error', (e) => errors.push(String(e.detail && e.detail.message)));
          window.addEventListener('unhandledrejection', (e) => errors.push(String(e.reason)));
          client.send('NOTE', { n: 1 });
          const late = client.request('COUNT_ME', { id: '1' }, { timeout: 50 }).then(() => 'ok', (e) => e.code);
          const code = await late;
          await client.connect();
          await new Promise((r) => setTimeout(r, 300));
          await client.close();
          return { code, errors };
        }""",
    )
    assert result == {"code": "DEADLINE_EXCEEDED", "errors": []}
    assert calls == ["NOTE"]


async def test_no_heartbeat_after_server_shutdown() -> None:
    """After SERVER_SHUTDOWN nothing more is written on that connection, the heartbeat included."""
    calls: list[str] = []
    result = await _run_page(
        contract_router(calls),
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`, { heartbeat: { interval: 100, timeout: 5000 } });
          const written = [];
          const send = WebSocket.prototype.send;
          WebSocket.prototype.send = function (data) {
            written.push(JSON.parse(data).type);
            return send.call(this, data);
          };
          await client.connect();
          client.send('SHUT_ME');
          for (let i = 0; i < 100 && client.state !== 'reconnecting'; i++) await new Promise((r) => setTimeout(r, 10));
          const at = written.length;
          await new Promise((r) => setTimeout(r, 600));
          const after = written.slice(at);
          await client.close();
          return { state: written.includes('SHUT_ME'), after };
        }""",
    )
    assert result == {"state": True, "after": []}


Flood = message("FLOOD")


async def test_positions_of_topics_not_subscribed_are_bounded() -> None:
    """client.positions keeps the client's own subscriptions, plus at most 1,000 other topics
    (a server handler's), and none with a name over 128 characters."""
    router = build_router()

    @router.on(Flood)
    async def flood(ctx: Context[None]) -> None:
        names = [f"other:{n}" for n in range(1100)] + ["x" * 129]
        for offset, name in enumerate(names, 1):
            data = json.dumps(
                {"type": "TICK", "meta": {"offset": offset, "epoch": "e", "topic": name}, "payload": {"n": offset}}
            )
            ctx.connection.send_nowait(data.encode())

    result = await _run_page(
        router,
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`);
          let ticks = 0;
          client.on('TICK', () => { ticks += 1; });
          await client.connect();
          client.send('FLOOD');
          for (let i = 0; i < 200 && ticks < 1101; i++) await new Promise((r) => setTimeout(r, 25));
          await client.subscribe('feed:news');
          client.send('PUBLISH', { n: 1 });
          for (let i = 0; i < 200 && ticks < 1102; i++) await new Promise((r) => setTimeout(r, 25));
          const result = { ticks, size: client.positions.size, long: client.positions.has('x'.repeat(129)),
                           mine: client.positions.get('feed:news'), last: client.positions.has('other:1099') };
          await client.close();
          return result;
        }""",
    )
    assert result["ticks"] == 1102
    assert result["size"] == 1001
    assert result["long"] is False and result["last"] is False
    assert result["mine"]["offset"] == 1


async def test_request_meta_carries_a_traceparent_but_not_over_the_clients_own_keys() -> None:
    """request(..., {meta}) adds meta keys (a W3C traceparent for traces); the client's own
    correlationId and timeoutMs win over the caller's."""
    seen: list[dict[str, Any]] = []
    router: Router[Any] = Router()

    @router.rpc(GetUser)
    async def get_user(ctx: Context[UserReq]) -> None:
        seen.append(dict(ctx.meta))
        await ctx.reply({"id": ctx.payload.id, "name": "Ada"})

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    result = await _run_page(
        router,
        """async () => {
          const { Client } = await import('/wskit.js');
          const client = new Client(`ws://${location.host}/`);
          await client.connect();
          const meta = { traceparent: 'PARENT', correlationId: 'mine', timeoutMs: 1 };
          const res = await client.request('GET_USER', { id: '1' }, { meta, timeout: 4000 });
          await client.close();
          return { name: res.payload.name, cid: res.meta.correlationId };
        }""".replace("PARENT", parent),
    )
    assert result["name"] == "Ada" and result["cid"] != "mine"
    (meta,) = seen
    assert meta["traceparent"] == parent and meta["timeoutMs"] == 4000 and meta["correlationId"] == result["cid"]
