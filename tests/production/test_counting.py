"""Review 17: counters that count what did not go out, or miss what did (in memory)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from wskit import Context, ErrorCode, Router, message
from wskit.runtime import build_runtime
from wskit.testing import TestClient


class Text(BaseModel):
    text: str


Ping = message("PING", Text)
Pong = message("PONG", Text)
Notice = message("NOTICE", Text)


async def _drain(client: TestClient) -> list[Any]:
    frames = []
    while True:
        try:
            async with asyncio.timeout(0.1):
                frames.append(await client.receive())
        except TimeoutError:
            return frames


async def test_a_rate_limited_junk_frame_counts_one_error() -> None:
    """MESSAGE_RATE_LIMIT=1: two junk frames get two answers (INVALID_ARGUMENT, then
    RESOURCE_EXHAUSTED); wskit_errors_total and wskit_messages_sent_total move by two, not
    three (the refusal was once counted before the frame guard replaced it with its own
    answer, which was counted again)."""
    router: Router[Any] = Router()

    @router.on(Ping)
    async def ping(ctx: Context[Text]) -> None:
        pass

    runtime = build_runtime(router, env={}, message_rate_limit=1)
    router.attach(runtime)
    async with TestClient(router) as client:
        await client.send_raw(b"junk{")
        await client.send_raw(b"junk{")
        answers = [frame.payload["code"] for frame in await _drain(client)]
    assert answers == ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"]
    telemetry = runtime.telemetry
    assert sum(telemetry.errors.values()) == len(answers), {k: v for k, v in telemetry.errors.items() if v}
    assert telemetry.sent["ERROR"] == len(answers)


async def test_answers_to_a_closing_connection_are_not_counted() -> None:
    """A handler's ctx.send and ctx.error after its connection began closing return False
    (nothing is queued); the counters must not say they went out."""
    router: Router[Any] = Router()
    outcomes: list[bool] = []

    @router.on(Ping)
    async def ping(ctx: Context[Text]) -> None:
        ctx.connection.close_soon(4000, "bye")
        outcomes.append(await ctx.send(Pong, {"text": "x"}))
        outcomes.append(await ctx.error(ErrorCode.NOT_FOUND, "gone"))

    async with TestClient(router) as client:
        await client.send(Ping, {"text": "a"})
        await asyncio.sleep(0.05)
    assert outcomes == [False, False]
    telemetry = router.runtime.telemetry
    assert telemetry.errors["NOT_FOUND"] == 0
    assert telemetry.sent.get("PONG", 0) == 0 and telemetry.sent["ERROR"] == 0


async def test_send_to_user_is_counted_as_sent() -> None:
    """router.send_to_user delivers a NOTICE frame to the user's connection: it is a message
    sent, and wskit_messages_sent_total{type="NOTICE"} must say so."""
    router: Router[Any] = Router()
    router.emits(Notice)

    @router.on(Ping)
    async def ping(ctx: Context[Text]) -> None:
        pass

    async with TestClient(router, data={"user_id": "u1"}) as client:
        await router.send_to_user("u1", Notice, {"text": "hello"})
        (frame,) = await _drain(client)
        assert frame.type == "NOTICE"
        families = {f.name: f for f in router.runtime.telemetry.families()}
    assert families["wskit_messages_sent_total"].samples[("NOTICE",)] == 1


async def test_an_application_error_code_is_counted() -> None:
    """ctx.error() takes application codes besides the 13 wire codes (errors.error_payload).
    Such an answer goes out and is counted as an ERROR sent, but Telemetry.error drops any
    code outside its table: wskit_errors_total never sees it (no "other" series)."""
    router: Router[Any] = Router()

    @router.on(Ping)
    async def ping(ctx: Context[Text]) -> None:
        await ctx.error("QUOTA_EXCEEDED", "over quota")

    async with TestClient(router) as client:
        await client.send(Ping, {"text": "a"})
        (frame,) = await _drain(client)
    assert frame.payload["code"] == "QUOTA_EXCEEDED"
    telemetry = router.runtime.telemetry
    assert telemetry.sent["ERROR"] == 1
    assert sum(telemetry.errors.values()) == 1


async def test_the_frameworks_own_frames_are_counted_under_their_types() -> None:
    """Heartbeat acks and subscription confirmations are sent frames too, under their types."""
    router: Router[Any] = Router()
    router.allow_subscribe("feed:*")
    runtime = build_runtime(router, env={})
    router.attach(runtime)
    async with TestClient(router) as client:
        await client.send_raw(b'{"type":"__heartbeat"}')
        await client.send_raw(b'{"type":"$ws:subscribe","meta":{"correlationId":"s1"},"payload":{"topic":"feed:a"}}')
        await client.send_raw(b'{"type":"$ws:unsubscribe","meta":{"correlationId":"s2"},"payload":{"topic":"feed:a"}}')
        types = [frame.type for frame in await _drain(client)]
    assert types == ["__heartbeat_ack", "$ws:subscribed", "$ws:unsubscribed"]
    sent = runtime.telemetry.sent
    assert (sent["__heartbeat_ack"], sent["$ws:subscribed"], sent["$ws:unsubscribed"]) == (1, 1, 1)
    assert runtime.telemetry.routes["__heartbeat"].received == 1
