"""``AsgiSocket``: ASGI ``send`` as a :class:`~wskit.transports.base.Socket`, against in-memory
``send`` callables that behave as hosts do (finish at once, hold a send back, fail, or return
a plain awaitable instead of a coroutine)."""

from __future__ import annotations

import asyncio
from typing import Any

from wskit.connection import Connection
from wskit.transports.asgi import AsgiSocket, Message

WAIT = 2.0


class Host:
    """Records what was sent; holds sends back while ``gate`` is clear."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: BaseException | None = None

    async def send(self, message: Message) -> None:
        if self.fail is not None:
            raise self.fail
        await self.gate.wait()
        self.sent.append(message)

    def texts(self) -> list[Any]:
        return [m.get("text", m["type"]) for m in self.sent]


async def test_sends_that_finish_at_once_need_no_task() -> None:
    """While the host keeps up, a frame is sent within ``send_frame`` (nothing to await)."""
    host = Host()
    sock = AsgiSocket(host.send)
    assert sock.send_frame(b'{"n":1}') is None
    assert host.sent == [{"type": "websocket.send", "text": '{"n":1}'}]


async def test_a_held_back_send_keeps_order_through_the_backlog() -> None:
    """A send the host holds back is returned to wait on; the connection queues later frames
    behind it and they leave in order once the host takes more."""
    host = Host()
    host.gate.clear()
    conn = Connection("c", AsgiSocket(host.send))
    for n in range(3):
        assert conn.send_nowait(b"%d" % n)
    assert conn.backlog == 2 and host.sent == []
    host.gate.set()
    await conn.flush(timeout=WAIT)
    assert host.texts() == ["0", "1", "2"]


async def test_close_waits_for_the_held_back_send() -> None:
    """The close goes after a frame the host was still holding."""
    host = Host()
    host.gate.clear()
    sock = AsgiSocket(host.send)
    assert sock.send_frame(b"last") is not None
    closing = asyncio.ensure_future(sock.close(4000, "bye"))
    await asyncio.sleep(0.01)
    host.gate.set()
    async with asyncio.timeout(WAIT):
        await closing
    assert host.texts() == ["last", "websocket.close"]
    assert host.sent[1] == {"type": "websocket.close", "code": 4000, "reason": "bye"}


async def test_a_gone_peer_is_a_connection_error() -> None:
    """A host whose send raises OSError (uvicorn's ClientDisconnected): the frame is not
    queued, later sends fail fast, and close sends nothing."""
    host = Host()
    host.fail = OSError("client disconnected")
    sock = AsgiSocket(host.send)
    conn = Connection("c", sock)
    assert conn.send_nowait(b"x") is False
    assert sock.disconnected
    await sock.close(1000, "")
    assert host.sent == []


async def test_plain_awaitables_from_send_are_accepted() -> None:
    """ASGI allows ``send`` to return any awaitable (granian returns a future-like object)."""
    sent: list[Message] = []

    def send(message: Message) -> asyncio.Future[None]:
        sent.append(message)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    sock = AsgiSocket(send)
    pending = sock.send_frame(b"hi")
    if pending is not None:
        async with asyncio.timeout(WAIT):
            await pending
    assert sent == [{"type": "websocket.send", "text": "hi"}]
