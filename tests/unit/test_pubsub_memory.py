"""MemoryBroker details beyond the conformance suite, on a clock the test moves by hand:
the exact history and ban boundaries, forgetting idle streams (and only those), the
recovery errors' details, and idempotent removals."""

from __future__ import annotations

import pytest

from wskit.pubsub.broker import BrokerState, HistoryPolicy, Member, Publication, RecoveryError
from wskit.pubsub.memory import MemoryBroker
from wskit.testing.brokers import RecordingListener

POLICY = HistoryPolicy("h:*", max_len=100, ttl_s=60.0)


class Clock:
    """A monotonic clock the test moves by hand (starts far from 0, like a real one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pub(n: int, topic: str = "h:room") -> Publication:
    return Publication(topic, b'{"type":"MSG"', b',"payload":{"n":%d}}' % n)


async def _started(clock: Clock) -> tuple[MemoryBroker, RecordingListener]:
    broker = MemoryBroker(clock=clock)
    listener = RecordingListener()
    await broker.start(listener)
    return broker, listener


async def test_state_goes_connecting_ready_closed() -> None:
    """A new broker is CONNECTING, READY once started, CLOSED once closed."""
    broker = MemoryBroker()
    assert broker.state is BrokerState.CONNECTING
    await broker.start(RecordingListener())
    assert broker.state is BrokerState.READY
    await broker.close()
    assert broker.state is BrokerState.CLOSED


async def test_publishing_after_close_delivers_nothing_and_does_not_fail() -> None:
    """After close() the listener is let go: a late publish is counted and dropped quietly."""
    broker, listener = await _started(Clock())
    await broker.close()
    await broker.publish(_pub(1))
    assert listener.publications == []


async def test_published_counts_every_publish() -> None:
    """``published`` counts publishes, with and without history."""
    broker, _ = await _started(Clock())
    await broker.publish(_pub(1, "plain"))
    await broker.publish(_pub(2), POLICY)
    await broker.publish(_pub(3), POLICY)
    assert broker.published == 3


async def test_an_active_stream_keeps_its_epoch_and_offsets() -> None:
    """Publishing every few seconds (each publish may sweep idle streams): the stream is kept,
    its epoch the same and its offsets consecutive."""
    clock = Clock()
    broker, listener = await _started(clock)
    for _ in range(4):
        await broker.publish(_pub(0), POLICY)
        clock.now += 2.0
    assert [p.offset for p in listener.publications] == [1, 2, 3, 4]
    assert len({p.epoch for p in listener.publications}) == 1


async def test_a_stream_idle_for_exactly_its_ttl_is_kept() -> None:
    """Idle for exactly ttl_s: still there (same epoch, next offset, its entry recoverable)."""
    clock = Clock()
    broker, listener = await _started(clock)
    await broker.publish(_pub(1), POLICY)
    epoch = listener.publications[0].epoch
    clock.now += POLICY.ttl_s
    assert [p.offset for p in await broker.recover("h:room", 0, epoch or "", POLICY)] == [1]
    await broker.publish(_pub(2), POLICY)
    assert (listener.publications[1].offset, listener.publications[1].epoch) == (2, epoch)


async def test_a_stream_idle_past_its_ttl_is_forgotten() -> None:
    """Idle for longer than ttl_s: forgotten at the next sweep (a new epoch starts at offset 1),
    and its old position cannot be recovered."""
    clock = Clock()
    broker, listener = await _started(clock)
    await broker.publish(_pub(1), POLICY)
    old_epoch = listener.publications[0].epoch
    clock.now += POLICY.ttl_s + 1.5
    await broker.publish(_pub(1, "h:other"), POLICY)  # any use of history sweeps
    with pytest.raises(RecoveryError):
        await broker.recover("h:room", 1, old_epoch or "", POLICY)
    await broker.publish(_pub(2), POLICY)
    last = listener.publications[-1]
    assert last.offset == 1 and last.epoch != old_epoch


@pytest.mark.parametrize(
    ("offset", "epoch", "why"),
    [(0, "other-epoch", "epoch"), (5, None, "offset"), (-1, None, "offset")],
)
async def test_recovery_errors_name_the_topic_and_why(offset: int, epoch: str | None, why: str) -> None:
    """Another epoch, an offset past the last or below 0: FAILED_PRECONDITION with details
    ``{reason: recovery, topic}`` and a message saying which."""
    broker, listener = await _started(Clock())
    await broker.publish(_pub(1), POLICY)
    with pytest.raises(RecoveryError) as raised:
        await broker.recover("h:room", offset, epoch or listener.publications[0].epoch or "", POLICY)
    assert raised.value.details == {"reason": "recovery", "topic": "h:room"}
    assert why in raised.value.message.lower()


async def test_recovering_a_topic_without_history_names_it() -> None:
    """A topic never published to: RecoveryError with the topic in its details."""
    broker, _ = await _started(Clock())
    with pytest.raises(RecoveryError) as raised:
        await broker.recover("h:never", 0, "e", POLICY)
    assert raised.value.details == {"reason": "recovery", "topic": "h:never"}
    assert "history" in raised.value.message.lower()


async def test_a_ban_ends_exactly_at_its_ttl() -> None:
    """ban(ttl_s=10): banned up to just before 10 s, not at 10 s."""
    clock = Clock()
    broker, _ = await _started(clock)
    await broker.ban("u1", ttl_s=10)
    clock.now += 9.999
    assert await broker.is_banned("u1")
    clock.now += 0.001
    assert not await broker.is_banned("u1")


async def test_removing_what_is_not_there_is_a_no_op() -> None:
    """presence_remove of an unknown client (in a topic with others) and unban of a user never
    banned: nothing happens, nothing raises."""
    broker, _ = await _started(Clock())
    await broker.presence_add("t", Member("c1"))
    await broker.presence_remove("t", "c2")
    await broker.presence_remove("nowhere", "c1")
    await broker.unban("nobody")
    assert [m.client_id for m in await broker.presence("t")] == ["c1"]
