"""The offline queue and requests in flight across a lost connection."""

from __future__ import annotations

import asyncio
import random

import pytest
from tests.client.app import Close, Echo, Heard, Say, Seen, Slow, build_router, serving
from tests.client.process import server_process
from tests.support.redis_server import free_port
from tests.support.waiting import PATIENCE_S, eventually

from wskit.client import Backoff, Client, ClientError, Dropped, OfflineLimits
from wskit.client.offline import OfflineQueue, Queued


class _Ceiling(random.Random):
    """Full jitter drawing its ceiling every time: a known wait (a draw near 0 would reconnect
    before a test sees ``reconnecting``)."""

    def uniform(self, a: float, b: float) -> float:
        return b


#: away 0.3 s after each loss, exactly
AWAY = Backoff(initial_delay=0.3, max_delay=0.3, rng=_Ceiling())

FAST = Backoff(initial_delay=0.02, max_delay=0.1)


def _item(n: int, size: int = 10) -> Queued:
    return Queued(b"x" * size, f"T{n}")


async def test_drop_oldest_makes_room_and_reports_the_dropped_frame() -> None:
    """drop-oldest at the count bound: the oldest frame goes, on_drop hears of it."""
    drops: list[Dropped] = []
    queue = OfflineQueue(OfflineLimits(max_count=2, policy="drop-oldest"), on_drop=drops.append)
    for n in range(3):
        await queue.put(_item(n))
    assert [item.type for item in queue.take_all()] == ["T1", "T2"]
    assert [d.type for d in drops] == ["T0"] and "drop-oldest" in drops[0].reason


async def test_drop_new_keeps_the_queue_and_reports_the_new_frame() -> None:
    """drop-new at the byte bound: the new frame is dropped and reported, the queue unchanged."""
    drops: list[Dropped] = []
    queue = OfflineQueue(OfflineLimits(max_bytes=25, policy="drop-new"), on_drop=drops.append)
    for n in range(3):
        await queue.put(_item(n))
    assert [item.type for item in queue.take_all()] == ["T0", "T1"]
    assert [(d.type, d.size) for d in drops] == [("T2", 10)]


async def test_queue_policy_waits_for_room() -> None:
    """policy queue: put() at the bound waits until the queue is emptied, then goes in."""
    queue = OfflineQueue(OfflineLimits(max_count=1))
    await queue.put(_item(0))
    waiting = asyncio.create_task(queue.put(_item(1)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert [item.type for item in queue.take_all()] == ["T0"]
    await asyncio.wait_for(waiting, PATIENCE_S)
    assert [item.type for item in queue.take_all()] == ["T1"]


async def test_a_frame_bigger_than_the_queue_is_refused() -> None:
    """A frame over max_bytes can never be queued: RESOURCE_EXHAUSTED, under every policy."""
    queue = OfflineQueue(OfflineLimits(max_bytes=5, policy="drop-oldest"))
    with pytest.raises(ClientError) as caught:
        await queue.put(_item(0, size=6))
    assert caught.value.code == "RESOURCE_EXHAUSTED"


async def test_sends_while_disconnected_arrive_in_order_after_the_reconnect() -> None:
    """Messages sent while the server is down wait, then arrive in order on the next server;
    with drop-oldest at 2 frames, the first of three is dropped and reported."""
    port = free_port()
    drops: list[Dropped] = []
    client = Client(
        f"ws://127.0.0.1:{port}/",
        backoff=FAST,
        offline=OfflineLimits(max_count=2, policy="drop-oldest"),
        on_drop=drops.append,
    )
    async with serving(build_router(Seen()), port) as server:
        await client.connect()
        await server.stop()
        await eventually(lambda: client.state == "reconnecting")
    for text in ("one", "two", "three"):
        await client.send(Say, {"text": text})
    assert client.queued == 2 and [d.type for d in drops] == ["SAY"]
    later = Seen()
    async with serving(build_router(later), port):
        await eventually(lambda: later.said == ["two", "three"])
        await client.close()


async def test_a_request_in_flight_fails_at_once_when_the_connection_is_lost() -> None:
    """The connection drops while a request waits: it fails with UNAVAILABLE (retryable) long
    before its timeout."""
    seen = Seen()
    async with serving(build_router(seen)) as server:
        client = Client(server.url, backoff=FAST)
        await client.connect()
        task = asyncio.create_task(client.request(Slow, {"key": "k"}, timeout=60))
        await asyncio.wait_for(seen.event(seen.started, "k").wait(), PATIENCE_S)
        await server.stop()
        with pytest.raises(ClientError) as caught:
            await asyncio.wait_for(task, PATIENCE_S)
        assert caught.value.code == "UNAVAILABLE" and caught.value.retryable
        await client.close()


async def test_an_idempotent_request_is_sent_again_after_the_reconnect() -> None:
    """idempotent=True: the request lost with its server (SIGKILL: no answer, no close frame)
    is sent to the next server and answered from there."""
    port = free_port()
    second = Seen()
    second.event(second.release, "k").set()
    client = Client(f"ws://127.0.0.1:{port}/", backoff=FAST)
    with server_process(port) as proc:
        await client.connect()
        task = asyncio.create_task(client.request(Slow, {"key": "k"}, timeout=PATIENCE_S, idempotent=True))
        await client.request(Echo, {"text": "the server has read the request"})
        proc.kill()
        await eventually(lambda: client.state == "reconnecting")
    async with serving(build_router(second), port):
        answer = await asyncio.wait_for(task, PATIENCE_S)
        assert answer.payload.text == "k" and second.slow_calls == ["k"]
    await client.close()


async def test_a_request_made_while_disconnected_waits_for_the_connection() -> None:
    """A request made while reconnecting is queued and answered once the server is back."""
    port = free_port()
    client = Client(f"ws://127.0.0.1:{port}/", backoff=FAST)
    async with serving(build_router(Seen()), port) as server:
        await client.connect()
        await server.stop()
        await eventually(lambda: client.state == "reconnecting")
    task = asyncio.create_task(client.request(Echo, {"text": "queued"}, timeout=PATIENCE_S))
    await eventually(lambda: client.queued == 1)
    async with serving(build_router(Seen()), port):
        assert (await asyncio.wait_for(task, PATIENCE_S)).payload.text == "queued"
    await client.close()


async def test_close_fails_pending_requests_and_refuses_new_sends() -> None:
    """close(): a waiting request fails with ClientStopped (CANCELLED); later sends raise it too."""
    from wskit.client import ClientStopped

    seen = Seen()
    async with serving(build_router(seen)) as server:
        client = Client(server.url)
        await client.connect()
        task = asyncio.create_task(client.request(Slow, {"key": "c"}, timeout=PATIENCE_S))
        await asyncio.wait_for(seen.event(seen.started, "c").wait(), PATIENCE_S)
        await client.close()
        with pytest.raises(ClientStopped) as caught:
            await task
        assert caught.value.code == "CANCELLED" and client.state == "closed"
        with pytest.raises(ClientStopped):
            await client.send(Say, {"text": "late"})


async def test_frames_sent_while_the_queue_is_flushed_are_not_stranded() -> None:
    """Frames the application sends while the offline queue is being flushed (big frames: the
    flush yields) go out on the same connection, after the queued ones, in order."""
    seen = Seen()
    async with serving(build_router(seen)) as server:
        client = Client(server.url, backoff=AWAY)
        client.on(Heard, lambda msg: None)
        await client.connect()
        await client.send(Close, {"code": 1012})
        await eventually(lambda: client.state == "reconnecting")
        queued = [f"q{n}:" + "x" * 8000 for n in range(100)]
        for text in queued:
            await client.send(Say, {"text": text})
        live: list[str] = []

        async def keep_sending() -> None:
            n = 0
            while client.state != "open" or n < 300:
                live.append(f"l{n}")
                await client.send(Say, {"text": live[-1]})
                n += 1
                await asyncio.sleep(0.001)

        await asyncio.wait_for(keep_sending(), PATIENCE_S)
        await eventually(lambda: len(seen.said) >= len(queued) + len(live), what="every frame arrived")
        assert seen.said == queued + live
        await client.close()


async def test_sends_waiting_for_room_in_a_full_queue_go_out_after_the_reconnect() -> None:
    """Policy queue, room for 5: 20 sends made while away wait for room; once the connection
    is back every one of them reaches the server, none left behind in the queue."""
    seen = Seen()
    async with serving(build_router(seen)) as server:
        client = Client(server.url, backoff=AWAY, offline=OfflineLimits(max_count=5))
        client.on(Heard, lambda msg: None)
        await client.connect()
        await client.send(Close, {"code": 1012})
        await eventually(lambda: client.state == "reconnecting")
        sends = [asyncio.create_task(client.send(Say, {"text": f"s{n}"})) for n in range(20)]
        await asyncio.wait_for(asyncio.gather(*sends), PATIENCE_S)
        await eventually(lambda: len(seen.said) == 20, what="every send arrived")
        assert sorted(seen.said) == sorted(f"s{n}" for n in range(20)) and client.queued == 0
        await client.close()
