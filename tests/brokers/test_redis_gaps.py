"""History topics through outages longer than the history: the lost publications are reported, not skipped."""

from __future__ import annotations

from tests.brokers.redis_helpers import Pair, pub, wait_state
from tests.support.waiting import consistently

from wskit.pubsub.broker import BrokerState, HistoryPolicy

__all__: list[str] = []

SHORT = HistoryPolicy("h:*", max_len=3, ttl_s=60)


async def test_outage_longer_than_the_history_is_reported_as_lost(pair: Pair) -> None:
    """max_len=3, the link down while 10 are published: on reconnect the listener is told the topic
    lost publications before it is handed the 3 still kept, and nothing else is skipped silently."""
    a, listener, b = pair.a, pair.listener, pair.b
    seen_at_loss: list[int] = []
    record = listener.lost

    def lost(topic: str) -> None:
        seen_at_loss.append(len(listener.on(topic)))
        record(topic)

    listener.lost = lost  # type: ignore[method-assign]
    await a.subscribe("h:room", SHORT)
    for n in range(1, 3):
        await b.publish(pub("h:room", n), SHORT)
    await listener.wait_for("h:room", 2)
    await pair.cut_link()
    for n in range(3, 13):
        await b.publish(pub("h:room", n), SHORT)
    assert a.state is BrokerState.DOWN
    await wait_state(a, BrokerState.READY)
    got = await listener.wait_for("h:room", 5)
    assert listener.losses == ["h:room"]
    assert seen_at_loss == [2]  # announced before the first publication after the gap
    assert [p.offset for p in got] == [1, 2, 10, 11, 12]
    await b.publish(pub("h:room", 13), SHORT)
    await listener.wait_for("h:room", 6)
    await consistently(lambda: listener.losses == ["h:room"], what="no second loss reported")


async def test_outage_within_the_history_reports_nothing(pair: Pair) -> None:
    """An outage the history covers is caught up without any loss reported."""
    a, listener, b = pair.a, pair.listener, pair.b
    await a.subscribe("h:room", SHORT)
    await b.publish(pub("h:room", 1), SHORT)
    await listener.wait_for("h:room", 1)
    await pair.cut_link()
    for n in range(2, 5):
        await b.publish(pub("h:room", n), SHORT)
    await wait_state(a, BrokerState.READY)
    got = await listener.wait_for("h:room", 4)
    assert [p.offset for p in got] == [1, 2, 3, 4]
    assert listener.losses == []
