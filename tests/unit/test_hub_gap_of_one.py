"""A gap of exactly one offset is a gap: the hub, ctx.subscribe's recovery splice and the
memory broker's recover each report it (``FAILED_PRECONDITION`` ``{reason: "recovery"}``).

The other gap tests skip two or more offsets, so an off-by-one in any of the three checks
(``> 1`` read as ``> 2``, ``>`` as ``>=``) would deliver a stream with one message missing
and no error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, Router, message, rpc
from wskit.connection import Connection
from wskit.hub import Hub
from wskit.protocol import Position
from wskit.pubsub.broker import HistoryPolicy, Publication, RecoveryError
from wskit.pubsub.memory import MemoryBroker
from wskit.runtime import Runtime
from wskit.testing import TestClient

HISTORY = HistoryPolicy("h:*", max_len=10, ttl_s=60)


class FrameSocket:
    """A socket that keeps every frame, never pushes back."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send_frame(self, data: bytes) -> None:
        self.frames.append(data)

    async def close(self, code: int, reason: str) -> None:
        return None

    def summary(self) -> list[object]:
        """Each frame as its offset, or ``"lost"`` for the recovery error."""
        out: list[object] = []
        for raw in self.frames:
            msg = json.loads(raw)
            if msg["type"] == "ERROR":
                assert msg["payload"]["code"] == "FAILED_PRECONDITION"
                assert msg["payload"]["details"]["reason"] == "recovery"
                out.append("lost")
            else:
                out.append(msg["meta"]["offset"])
        return out


def _at(offset: int, epoch: str = "e1") -> Publication:
    return Publication("h:room", b'{"type":"MSG"', b',"payload":{"n":%d}}' % offset).with_position(offset, epoch)


async def _member_at(hub: Hub, offset: int) -> tuple[Connection, FrameSocket]:
    socket = FrameSocket()
    conn = Connection("c1", socket)
    hub.add(conn)
    await hub.subscribe(conn, "h:room", HISTORY)
    conn.positions["h:room"] = Position(offset, "e1")
    return conn, socket


# -- the hub -----------------------------------------------------------------------------


async def test_hub_announces_a_single_skipped_offset() -> None:
    """Position 1, then offset 3 arrives (offset 2 lost): the recovery error comes before 3."""
    hub = Hub()
    conn, socket = await _member_at(hub, 1)
    hub.deliver(_at(3))
    assert socket.summary() == ["lost", 3]
    assert conn.positions["h:room"] == Position(3, "e1")


async def test_hub_next_offset_is_not_a_gap() -> None:
    """Position 1, then offset 2: delivered with no error (the boundary on the other side)."""
    hub = Hub()
    _, socket = await _member_at(hub, 1)
    hub.deliver(_at(2))
    assert socket.summary() == [2]


# -- ctx.subscribe's recovery splice --------------------------------------------------------


class Topic(BaseModel):
    topic: str
    offset: int | None = None
    epoch: str | None = None


class Pos(BaseModel):
    offset: int
    epoch: str


class Num(BaseModel):
    n: int


Sub = rpc("SUB", Topic, "SUBBED", Pos)
Note = message("NOTE", Num)


class SkippingBroker(MemoryBroker):
    """A memory broker whose history lost one publication (``missing``), and where ``live``
    publications arrive while a recovery is being fetched (they land in the splice's buffer)."""

    def __init__(self) -> None:
        super().__init__()
        self.missing: set[int] = set()
        self.live: list[Publication] = []
        self.hub: Any = None

    async def start(self, listener: Any) -> None:
        self.hub = listener
        await super().start(listener)

    async def recover(self, topic: str, offset: int, epoch: str, history: HistoryPolicy) -> list[Publication]:
        found = await super().recover(topic, offset, epoch, history)
        for pub in self.live:
            self.hub.deliver(pub)
        return [pub for pub in found if pub.offset not in self.missing]


async def build(broker: MemoryBroker) -> Router[Any]:
    router: Router[Any] = Router()
    router.enable_history("h:*", max_len=100, ttl_s=60)

    @router.rpc(Sub)
    async def sub(ctx: Context[Topic]) -> None:
        p = ctx.payload
        position = await ctx.subscribe(p.topic, p.offset, p.epoch)
        assert position is not None
        await ctx.reply({"offset": position[0], "epoch": position[1]})

    router.attach(Runtime(router, broker=broker))  # the TestClients below are served by it
    return router


async def _offsets_after_resubscribe(broker: SkippingBroker, router: Router[Any], epoch: str) -> list[object]:
    """Re-subscribe from offset 1 with a second client; what it receives, as offsets and "lost"."""
    out: list[object] = []
    async with TestClient(router) as client:
        await client.request(Sub, {"topic": "h:room", "offset": 1, "epoch": epoch})
        while (msg := await client.receive_pending()) is not None:
            out.append("lost" if msg.type == "ERROR" else msg.meta["offset"])
    return out


async def test_recovery_splice_announces_one_offset_missing_from_the_history() -> None:
    """History after offset 1 holds 3 and 4 but not 2: the client gets the error before 3."""
    broker = SkippingBroker()
    router = await build(broker)
    async with TestClient(router) as first:
        epoch = (await first.request(Sub, {"topic": "h:room"})).payload.epoch
        for n in range(1, 5):
            await router.publish("h:room", Note, {"n": n})
    broker.missing = {2}
    assert await _offsets_after_resubscribe(broker, router, epoch) == ["lost", 3, 4]


async def test_recovery_splice_announces_one_offset_between_history_and_live() -> None:
    """Recovered 2 and 3, live 5 buffered meanwhile (4 lost in between): error before 5."""
    broker = SkippingBroker()
    router = await build(broker)
    async with TestClient(router) as first:
        epoch = (await first.request(Sub, {"topic": "h:room"})).payload.epoch
        for n in range(1, 4):
            await router.publish("h:room", Note, {"n": n})
    broker.live = [_at(5, epoch)]
    assert await _offsets_after_resubscribe(broker, router, epoch) == [2, 3, "lost", 5]


async def test_recovery_splice_without_a_gap_sends_no_error() -> None:
    """Recovered 2 and 3, live 4 buffered meanwhile: all three in order, no error."""
    broker = SkippingBroker()
    router = await build(broker)
    async with TestClient(router) as first:
        epoch = (await first.request(Sub, {"topic": "h:room"})).payload.epoch
        for n in range(1, 4):
            await router.publish("h:room", Note, {"n": n})
    broker.live = [_at(4, epoch)]
    assert await _offsets_after_resubscribe(broker, router, epoch) == [2, 3, 4]


# -- the memory broker's recover -------------------------------------------------------------


async def _trimmed_broker() -> tuple[MemoryBroker, HistoryPolicy, str]:
    """Offsets 1..4 published with a history of 2: it holds 3 and 4."""
    broker = MemoryBroker()
    policy = HistoryPolicy("h:*", max_len=2, ttl_s=60)
    for n in range(1, 5):
        await broker.publish(_at(n), policy)
    _, epoch = await broker.position("h:room", policy)
    return broker, policy, epoch


async def test_memory_recover_refuses_when_exactly_one_offset_was_trimmed() -> None:
    """History holds 3 and 4; recovering after 1 needs 2, which is gone: RecoveryError."""
    broker, policy, epoch = await _trimmed_broker()
    with pytest.raises(RecoveryError):
        await broker.recover("h:room", 1, epoch, policy)


async def test_memory_recover_after_the_offset_just_before_the_history() -> None:
    """History holds 3 and 4; recovering after 2 needs nothing trimmed: returns 3 and 4."""
    broker, policy, epoch = await _trimmed_broker()
    found = await broker.recover("h:room", 2, epoch, policy)
    assert [pub.offset for pub in found] == [3, 4]
