"""GC_FREEZE_INTERVAL_S: a running server freezes surviving objects (full collections skip
them) and gives them back when it stops; 0 leaves CPython's collector as it is."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from wskit import Router, Server
from wskit.gcpolicy import GcFreezer


async def test_a_running_server_freezes_and_gives_back_on_stop() -> None:
    """After one interval objects are frozen; after stop nothing is."""
    gc.unfreeze()
    router: Router[Any] = Router()
    async with Server(router, port=0, env={"GC_FREEZE_INTERVAL_S": "0.1"}):
        await asyncio.sleep(0.35)
        assert gc.get_freeze_count() > 0
        assert GcFreezer.statistics()["users"] == 1
    assert gc.get_freeze_count() == 0
    assert GcFreezer.statistics()["users"] == 0


async def test_two_servers_share_one_timer() -> None:
    """The policy is process-wide: the second server joins the first one's timer; both must stop."""
    gc.unfreeze()
    async with Server(Router(), port=0, gc_freeze_interval_s=0.1, env={}):
        async with Server(Router(), port=0, gc_freeze_interval_s=0.1, env={}):
            assert GcFreezer.statistics()["users"] == 2
        assert GcFreezer.statistics()["users"] == 1
        await asyncio.sleep(0.25)
        assert gc.get_freeze_count() > 0
    assert GcFreezer.statistics()["users"] == 0


async def test_zero_leaves_the_collector_alone() -> None:
    """GC_FREEZE_INTERVAL_S=0: nothing is ever frozen."""
    gc.unfreeze()
    async with Server(Router(), port=0, env={"GC_FREEZE_INTERVAL_S": "0"}):
        await asyncio.sleep(0.3)
        assert gc.get_freeze_count() == 0
        assert GcFreezer.statistics()["users"] == 0


async def test_unfreeze_interval_gives_objects_back_periodically() -> None:
    """With a short unfreeze interval the frozen set is handed back to the collector on schedule,
    and frozen again in between. (Polled, bounded: each unfreeze runs a full collection, whose
    length depends on how many objects the test process holds.)"""
    gc.unfreeze()
    before = GcFreezer.statistics()
    async with Server(Router(), port=0, gc_freeze_interval_s=0.05, gc_unfreeze_interval_s=0.2, env={}):
        async with asyncio.timeout(15):
            while GcFreezer.statistics()["unfreezes"] - before["unfreezes"] < 2:  # noqa: ASYNC110 - a timer's count
                await asyncio.sleep(0.05)
        after = GcFreezer.statistics()
    assert after["freezes"] - before["freezes"] >= 2  # frozen again between the unfreezes


def test_a_loop_that_ended_without_stopping_its_server_does_not_block_the_next() -> None:
    """A share left held when its loop ended is dropped: the next loop's server freezes and stops cleanly."""

    async def leave_running() -> None:
        assert GcFreezer.acquire(0.05, 600.0)  # what a server that is never stopped holds

    async def next_one() -> int:
        async with Server(Router(), port=0, gc_freeze_interval_s=0.05, env={}):
            await asyncio.sleep(0.3)
            return GcFreezer.statistics()["users"]

    asyncio.run(leave_running())
    assert asyncio.run(next_one()) == 1
    assert GcFreezer.statistics()["users"] == 0 and gc.get_freeze_count() == 0


async def test_unfreeze_frees_a_cycle_dropped_after_it_was_frozen() -> None:
    """Application cycles frozen while alive and dropped later are freed at the next unfreeze."""
    import weakref

    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.unfreeze()
    async with Server(Router(), port=0, gc_freeze_interval_s=0.05, gc_unfreeze_interval_s=0.5, env={}):
        node = Node()
        alive = weakref.ref(node)
        await asyncio.sleep(0.15)  # frozen while alive
        del node
        await asyncio.sleep(0.1)
        assert alive() is not None  # frozen: the collector does not see it
        async with asyncio.timeout(10):  # the next unfreeze (with its full pass) frees it
            while alive() is not None:  # noqa: ASYNC110 - waiting on the collector, not an event
                await asyncio.sleep(0.05)
