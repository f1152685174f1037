"""Presence through Redis outages: what an instance removed while Redis could not hear it does not linger."""

from __future__ import annotations

import pytest
from tests.brokers.redis_helpers import Pair, wait_state

from wskit.errors import WsKitError
from wskit.pubsub.broker import BrokerState, Member

__all__: list[str] = []


async def test_member_removed_during_a_link_outage_is_gone_after_reconnect(pair: Pair) -> None:
    """presence_remove() while the link is down fails (UNAVAILABLE) but is not forgotten: once the
    link is back, the entry is deleted from Redis and no instance lists a ghost."""
    await pair.a.presence_add("room", Member("stays", "u1"))
    await pair.a.presence_add("room", Member("leaves", "u2"))
    await pair.cut_link()
    with pytest.raises(WsKitError):
        await pair.a.presence_remove("room", "leaves")
    assert pair.a.state is BrokerState.DOWN
    await wait_state(pair.a, BrokerState.READY)
    for broker in (pair.a, pair.b):
        assert [m.client_id for m in await broker.presence("room")] == ["stays"]


async def test_last_member_removed_during_an_outage_leaves_no_entry(pair: Pair) -> None:
    """The same when the removed member was this instance's last one in the topic."""
    await pair.a.presence_add("room", Member("only"))
    await pair.b.presence_add("room", Member("other"))
    await pair.cut_link()
    with pytest.raises(WsKitError):
        await pair.a.presence_remove("room", "only")
    await wait_state(pair.a, BrokerState.READY)
    assert [m.client_id for m in await pair.b.presence("room")] == ["other"]


async def test_member_back_before_the_link_is_kept(pair: Pair) -> None:
    """A member removed and added again during the outage is listed after it (the late delete spares it)."""
    await pair.a.presence_add("room", Member("c1", "u1"))
    await pair.cut_link()
    with pytest.raises(WsKitError):
        await pair.a.presence_remove("room", "c1")
    with pytest.raises(WsKitError):
        await pair.a.presence_add("room", Member("c1", "u1"))
    await wait_state(pair.a, BrokerState.READY)
    assert [m.client_id for m in await pair.b.presence("room")] == ["c1"]
