"""Nothing lost, nothing twice: a subscribed client across a crash, a graceful restart and a failover.

Real parts: our own ``redis-server``, two wskit server processes (A and B) sharing it
(``RedisBroker``, history on ``seq:*``), a :class:`wskit.client.Client` subscribed to a
history topic on A, and a publisher (another ``Client``, on B) publishing a numbered sequence
at a steady pace. Mid-sequence A goes away (SIGKILL, or SIGTERM and its graceful shutdown, or
A dies and the client's address now leads to B); the client reconnects by itself and
resubscribes from its last position. The received list must equal the published list: no
gap, no duplicate, same order. Numbers published while the client was away prove that the
replay from history was exercised, not only the live stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from tests.recovery.app import Num, Number, Publish
from tests.recovery.processes import Proxy, ServerProcess
from tests.support.redis_server import free_port, redis_url_for_tests
from tests.support.waiting import PATIENCE_S, eventually

from wskit.client import Backoff, Client, ClientError, Message, StateChange

pytestmark = pytest.mark.timeout(90)

TOPIC = "seq:numbers"
#: seconds between two publications (a steady rate of at most 100 per second)
PACE_S = 0.01
#: numbers published before the disruption, and after the client is back
BEFORE, AFTER = 60, 60
#: the publisher stops after this many whatever happens (bounded loop)
MAX_NUMBERS = 3000
#: how soon the shutdown notice tells clients to come back: 300 ms + up to 300 ms of jitter
SHUTDOWN_ENV = {"SHUTDOWN_RETRY_AFTER_MS": "300", "SHUTDOWN_RETRY_JITTER_MS": "300", "SHUTDOWN_GRACE_MS": "1000"}
#: the receiver's reconnect timing: quick, jittered
BACKOFF = Backoff(initial_delay=0.2, max_delay=1.0)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Our own redis-server on a free port (REDIS_URL without one; skipped, or failed under CI, without either)."""
    yield from redis_url_for_tests()


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[Cluster]:
    namespace = f"rec{uuid.uuid4().hex[:8]}"
    a, b = (ServerProcess(free_port(), redis_url=redis_url, namespace=namespace, env=SHUTDOWN_ENV) for _ in "ab")
    try:
        await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
        yield Cluster(a, b)
    finally:
        a.stop()
        b.stop()


@dataclass
class Run:
    """What one scenario published and received, and how the receiver's connection went."""

    published: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    #: numbers published (answered) while the receiver was not open: only a replay can deliver them
    while_away: list[int] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    resets: list[ClientError] = field(default_factory=list)

    @property
    def reconnects(self) -> int:
        return sum(1 for c in self.changes if c.new == "open" and c.old == "reconnecting")


async def run_scenario(
    receiver_url: str, publisher_url: str, disrupt: Callable[[Run], Awaitable[None]], *, name: str
) -> Run:
    """Subscribe a client at ``receiver_url``, publish through ``publisher_url``; after
    :data:`BEFORE` numbers arrived, ``disrupt(run)``; once the client is open again, :data:`AFTER`
    more; then wait for everything to arrive."""
    run = Run()
    receiver = Client(receiver_url, backoff=BACKOFF, on_state=run.changes.append)
    publisher = Client(publisher_url, backoff=BACKOFF)

    def got(msg: Message[Num]) -> None:
        run.received.append(msg.payload.n)

    receiver.on(Number, got)
    back = asyncio.Event()  # the receiver is open again after the disruption
    disrupted = asyncio.Event()

    def watch(change: StateChange) -> None:
        if disrupted.is_set() and change.new == "open":
            back.set()

    receiver.on_state(watch)

    async def publish() -> None:
        after = 0
        for n in range(MAX_NUMBERS):  # bounded; ends AFTER numbers after the receiver is back
            await publisher.request(Publish, {"topic": TOPIC, "n": n}, timeout=PATIENCE_S)
            run.published.append(n)
            if receiver.state != "open":
                run.while_away.append(n)
            if back.is_set():
                after += 1
                if after >= AFTER:
                    return
            await asyncio.sleep(PACE_S)  # the steady rate, not a synchronisation

    try:
        await asyncio.gather(receiver.connect(timeout=PATIENCE_S), publisher.connect(timeout=PATIENCE_S))
        sub = await receiver.subscribe(TOPIC)
        sub.on_reset(run.resets.append)
        publishing = asyncio.create_task(publish())
        await eventually(lambda: len(run.received) >= BEFORE or publishing.done(), what="the first numbers arrive")
        disrupted.set()
        await disrupt(run)
        async with asyncio.timeout(4 * PATIENCE_S):
            await publishing
        with contextlib.suppress(AssertionError):  # a gap never fills: the assertions below say which
            await eventually(lambda: len(run.received) >= len(run.published), what="every number arrives")
    finally:
        await asyncio.gather(receiver.close(), publisher.close())
    print(
        f"\n{name}: published {len(run.published)}, received {len(run.received)}, "
        f"{len(run.while_away)} published while the client was away, reconnects {run.reconnects}"
    )
    return run


def assert_exactly_once_in_order(run: Run) -> None:
    assert run.published == list(range(len(run.published)))
    missing = sorted(set(run.published) - set(run.received))
    dupes = len(run.received) - len(set(run.received))
    assert run.received == run.published, f"missing {missing[:10]}, {dupes} duplicates"
    assert run.reconnects >= 1, "the client never reconnected: the disruption did not happen"
    assert run.while_away, "nothing was published while the client was away: the replay was not exercised"
    assert run.while_away[-1] < run.published[-1], "the sequence ended before the client came back"
    assert not run.resets, f"recovery was refused: {run.resets}"


async def test_sigkill_and_restart_loses_nothing(cluster: Cluster) -> None:
    """A is killed (SIGKILL) mid-sequence and restarted on its port: every number arrives once, in order."""

    async def crash(run: Run) -> None:
        cluster.a.kill()
        await asyncio.to_thread(cluster.a.start)

    run = await run_scenario(cluster.a.url, cluster.b.url, crash, name="SIGKILL + restart")
    assert_exactly_once_in_order(run)
    assert cluster.a.exits == [-9]


async def test_graceful_restart_loses_nothing(cluster: Cluster) -> None:
    """A stops gracefully (SIGTERM: SERVER_SHUTDOWN with retryAfterMs, drain, exit) and starts
    again: the client waits at least the hint, comes back, and every number arrives once, in order."""

    async def restart(run: Run) -> None:
        await asyncio.to_thread(cluster.a.terminate)
        await asyncio.to_thread(cluster.a.start)

    run = await run_scenario(cluster.a.url, cluster.b.url, restart, name="SIGTERM + restart")
    assert_exactly_once_in_order(run)
    assert cluster.a.exits == [0]
    hinted = [c.retry_in for c in run.changes if c.new == "reconnecting" and c.retry_in is not None]
    assert hinted and hinted[0] >= 0.3, f"the first wait ignored retryAfterMs (>= 300 ms): {hinted}"


async def test_failover_to_the_other_instance_loses_nothing(cluster: Cluster) -> None:
    """The client's address leads to A; A dies (SIGKILL) and the address now leads to B (a
    proxy switches backend): the client resubscribes on B and every number arrives once, in order."""
    proxy = Proxy(cluster.a.port)
    await proxy.start()

    async def failover(run: Run) -> None:
        proxy.switch(None)  # A's connections cut, new ones refused: the balancer has not noticed yet
        cluster.a.kill()
        await eventually(lambda: len(run.while_away) >= 10, what="10 numbers published while the client is away")
        proxy.switch(cluster.b.port)

    try:
        run = await run_scenario(proxy.url, cluster.b.url, failover, name="failover A -> B")
    finally:
        await proxy.close()
    assert_exactly_once_in_order(run)
    assert proxy.forwarded[cluster.a.port] == 1
    assert proxy.forwarded[cluster.b.port] >= 1
