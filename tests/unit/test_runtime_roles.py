"""A third-party broker may play only some roles: the runtime says what it cannot do.

A broker with pub/sub alone: serving works (publish, subscribe), history is refused at start
with a message naming what needs it, presence is not recorded and asking for it is
UNIMPLEMENTED, user controls are UNIMPLEMENTED, and no ban is checked.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, ErrorCode, Router, WsKitError, message
from wskit.config import ConfigError
from wskit.pubsub.broker import BrokerListener, BrokerState, HistoryPolicy, Publication
from wskit.pubsub.memory import MemoryBroker
from wskit.runtime import Runtime
from wskit.testing import TestClient


class PubSubOnly:
    """Carries publications (through a MemoryBroker) and plays no other role."""

    def __init__(self) -> None:
        self._inner = MemoryBroker()

    @property
    def state(self) -> BrokerState:
        return self._inner.state

    async def start(self, listener: BrokerListener) -> None:
        await self._inner.start(listener)

    async def publish(self, publication: Publication, history: HistoryPolicy | None = None) -> None:
        await self._inner.publish(publication, None)

    async def subscribe(self, topic: str, history: HistoryPolicy | None = None) -> None:
        await self._inner.subscribe(topic, None)

    async def unsubscribe(self, topic: str) -> None:
        await self._inner.unsubscribe(topic)

    async def close(self) -> None:
        await self._inner.close()


class Text(BaseModel):
    text: str


Say = message("SAY", Text)


def _router() -> Router[Any]:
    router: Router[Any] = Router()

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        await ctx.subscribe("room")
        await ctx.publish("room", Say, ctx.payload)

    return router


async def test_a_pubsub_only_broker_serves_publications() -> None:
    """Subscribe and publish go through a broker that plays pub/sub alone."""
    router = _router()
    runtime = Runtime(router, broker=PubSubOnly())  # type: ignore[arg-type]
    await runtime.start()
    try:
        async with TestClient(router) as client:
            await client.send(Say, {"text": "hi"})
            assert (await client.receive()).payload == {"text": "hi"}
    finally:
        await runtime.stop()


async def test_history_on_a_broker_without_it_fails_at_start() -> None:
    """enable_history with a broker that keeps none: ConfigError naming the broker and the pattern."""
    router = _router()
    router.enable_history("room:*")
    runtime = Runtime(router, broker=PubSubOnly())  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"broker PubSubOnly keeps no history, but router.enable_history\('room:\*'\)"
    ):
        await runtime.start()


@pytest.mark.parametrize(
    ("verb", "call"),
    [
        ("presence", lambda r: r.presence("room")),
        ("send_to_user", lambda r: r.send_to_user("u1", Say, {"text": "x"})),
        ("disconnect_user", lambda r: r.disconnect_user("u1")),
        ("ban_user", lambda r: r.ban_user("u1")),
        ("unban_user", lambda r: r.unban_user("u1")),
    ],
)
async def test_verbs_of_roles_the_broker_lacks_are_unimplemented(verb: str, call: Any) -> None:
    """presence and the user controls answer UNIMPLEMENTED naming the broker, never a local-only result."""
    router = _router()
    runtime = Runtime(router, broker=PubSubOnly())  # type: ignore[arg-type]
    await runtime.start()
    try:
        with pytest.raises(WsKitError) as refused:
            await call(router)
        assert refused.value.code == ErrorCode.UNIMPLEMENTED
        assert "PubSubOnly" in refused.value.message and verb in refused.value.message
    finally:
        await runtime.stop()
