"""PROTOCOL.md, "RPC": replies, progress, exactly one terminal answer, deadlines and cancellation."""

from __future__ import annotations

import asyncio

from tests.protocol.wire import WAIT, App, Peer, assert_usable, error, recv, send_json


async def test_reply_carries_the_correlation_id(peer: Peer) -> None:
    """The reply is the declared response type with meta {"correlationId": <same>}."""
    await send_json(peer, {"type": "ECHO_RPC", "meta": {"correlationId": "my-corr-1"}, "payload": {"text": "c"}})
    assert await recv(peer) == {"type": "ECHO_OK", "meta": {"correlationId": "my-corr-1"}, "payload": {"text": "c"}}


async def test_rpc_without_correlation_id_still_replies_with_empty_meta(peer: Peer) -> None:
    """An RPC sent without correlationId is still answered, with meta {} (as WS-Kit does)."""
    await send_json(peer, {"type": "ECHO_RPC", "meta": {}, "payload": {"text": "no-correlation"}})
    assert await recv(peer) == {"type": "ECHO_OK", "meta": {}, "payload": {"text": "no-correlation"}}


async def test_concurrent_rpcs_are_answered_to_their_own_ids(peer: Peer) -> None:
    """Several RPCs in flight each get their own answer, matched by correlationId."""
    for i in range(5):
        await send_json(peer, {"type": "ECHO_RPC", "meta": {"correlationId": f"c{i}"}, "payload": {"text": str(i)}})
    got = [await recv(peer) for _ in range(5)]
    assert sorted((m["meta"]["correlationId"], m["payload"]["text"]) for m in got) == [
        (f"c{i}", str(i)) for i in range(5)
    ]


async def test_progress_frames_come_in_order_before_the_reply(peer: Peer) -> None:
    """Progress frames ($ws:rpc-progress, with the correlationId) arrive in order, then the terminal reply."""
    await send_json(peer, {"type": "SLOW_RPC", "meta": {"correlationId": "s1"}, "payload": {"steps": 3}})
    got = [await recv(peer) for _ in range(4)]
    progress = {"type": "$ws:rpc-progress", "meta": {"correlationId": "s1"}}
    assert got == [
        {**progress, "payload": {"step": 1}},
        {**progress, "payload": {"step": 2}},
        {**progress, "payload": {"step": 3}},
        {"type": "SLOW_DONE", "meta": {"correlationId": "s1"}, "payload": {"steps": 3}},
    ]
    await assert_usable(peer)


async def test_zero_progress_frames_is_fine(peer: Peer) -> None:
    """An RPC may answer without any progress frame."""
    await send_json(peer, {"type": "SLOW_RPC", "meta": {"correlationId": "s0"}, "payload": {"steps": 0}})
    assert await recv(peer) == {"type": "SLOW_DONE", "meta": {"correlationId": "s0"}, "payload": {"steps": 0}}


async def test_only_the_first_terminal_answer_goes_out(peer: Peer) -> None:
    """A handler that replies twice and then errors: only the first reply is sent."""
    await send_json(peer, {"type": "DOUBLE_RPC", "meta": {"correlationId": "d1"}, "payload": {}})
    assert await recv(peer) == {"type": "DOUBLE_OK", "meta": {"correlationId": "d1"}, "payload": {"text": "first"}}
    await assert_usable(peer)


async def test_handler_returning_without_answer_is_internal(peer: Peer) -> None:
    """An RPC handler that returns without reply() or error() makes the caller get RPC_ERROR INTERNAL."""
    await send_json(peer, {"type": "NOREPLY_RPC", "meta": {"correlationId": "nr"}, "payload": {}})
    assert await recv(peer) == error("INTERNAL", cid="nr")
    await assert_usable(peer)


async def test_timeout_ms_gives_deadline_exceeded(peer: Peer) -> None:
    """meta.timeoutMs elapsing before an answer makes the caller get DEADLINE_EXCEEDED with its defaults."""
    await send_json(peer, {"type": "HANG_RPC", "meta": {"correlationId": "t1", "timeoutMs": 50}, "payload": {}})
    assert await recv(peer) == error("DEADLINE_EXCEEDED", cid="t1", retryAfterMs=50, retryable=True)


async def test_timeout_ms_cancels_the_handler(peer: Peer, app: App) -> None:
    """When meta.timeoutMs elapses, the handler is cancelled (it does not run on to its reply)."""
    await send_json(peer, {"type": "HANG_RPC", "meta": {"correlationId": "t2", "timeoutMs": 50}, "payload": {}})
    await recv(peer)
    async with asyncio.timeout(WAIT):
        await app.hang_cancelled.wait()
    assert not app.hang_finished_normally
    await assert_usable(peer)


async def test_cancel_gives_cancelled(peer: Peer, app: App) -> None:
    """$ws:rpc-cancel for a request in flight answers it with RPC_ERROR CANCELLED."""
    await send_json(peer, {"type": "HANG_RPC", "meta": {"correlationId": "x1"}, "payload": {}})
    async with asyncio.timeout(WAIT):
        await app.hang_started.wait()
    await send_json(peer, {"type": "$ws:rpc-cancel", "meta": {"correlationId": "x1"}})
    assert await recv(peer) == error("CANCELLED", cid="x1")


async def test_cancel_cancels_the_handler(peer: Peer, app: App) -> None:
    """$ws:rpc-cancel cancels the handler's task."""
    await send_json(peer, {"type": "HANG_RPC", "meta": {"correlationId": "x2"}, "payload": {}})
    async with asyncio.timeout(WAIT):
        await app.hang_started.wait()
    await send_json(peer, {"type": "$ws:rpc-cancel", "meta": {"correlationId": "x2"}})
    await recv(peer)
    async with asyncio.timeout(WAIT):
        await app.hang_cancelled.wait()
    await assert_usable(peer)


async def test_cancel_of_unknown_request_is_silent(peer: Peer) -> None:
    """$ws:rpc-cancel for a correlationId with nothing in flight is ignored (no answer, connection fine)."""
    await send_json(peer, {"type": "$ws:rpc-cancel", "meta": {"correlationId": "nothing"}})
    await assert_usable(peer)


async def test_cancel_after_answer_changes_nothing(peer: Peer) -> None:
    """Cancelling an RPC that already answered sends no second terminal answer."""
    await send_json(peer, {"type": "ECHO_RPC", "meta": {"correlationId": "done"}, "payload": {"text": "t"}})
    assert (await recv(peer))["type"] == "ECHO_OK"
    await send_json(peer, {"type": "$ws:rpc-cancel", "meta": {"correlationId": "done"}})
    await assert_usable(peer)


async def test_disconnect_cancels_rpcs_in_flight(peer: Peer, app: App) -> None:
    """Closing the connection cancels the RPC handlers still running for it."""
    await send_json(peer, {"type": "HANG_RPC", "meta": {"correlationId": "gone"}, "payload": {}})
    async with asyncio.timeout(WAIT):
        await app.hang_started.wait()
    await peer.close()
    async with asyncio.timeout(WAIT):
        await app.hang_cancelled.wait()
