"""METRICS_DIR: a process's file under stalled, reordered and failing writes, and across an
ASGI app's lives. Each file must only ever go forwards: another worker's scrape reads it,
and a sum that drops is a counter reset to Prometheus (``rate()`` then counts the whole
total again). Real files in a temporary directory; a disk that stalls or fills up is a
patched ``Path.write_text``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.support.waiting import consistently

from wskit.metrics import MetricsFile, read_directory
from wskit.telemetry import Family, Telemetry


def _opened(families: list[Family]) -> Any:
    (family,) = [f for f in families if f.name == "wskit_connections_opened_total"]
    return family.samples[()]


class _SlowFirstWrite:
    """The first ``Path.write_text`` waits for :attr:`gate` (a disk that stalls once); the
    ``os.replace`` that publishes that first write sets :attr:`done`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.done = threading.Event()
        self.first: Path | None = None
        real_write_text, real_replace = Path.write_text, os.replace
        lock = threading.Lock()

        def write_text(path: Path, data: str, *args: Any, **kwargs: Any) -> int:
            with lock:
                slow = self.first is None
                if slow:
                    self.first = path
            if slow:
                self.started.set()
                self.gate.wait(10)
            return real_write_text(path, data, *args, **kwargs)

        def replace(src: Any, dst: Any) -> None:
            real_replace(src, dst)
            if Path(src) == self.first:
                self.done.set()

        monkeypatch.setattr(Path, "write_text", write_text)
        monkeypatch.setattr("wskit.metrics.os.replace", replace)


class _Reversing(ThreadPoolExecutor):
    """A pool that starts the first two calls handed to it in the other order (a pool starts
    its threads as it likes); the calls run inline, one after the other."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.held: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.held.append((future, fn, args))
        if len(self.held) == 2:
            for held, call, arguments in reversed(self.held):
                held.set_result(call(*arguments))
        return future


async def test_a_scrape_during_a_stalled_write_answers_after_it_and_its_figures_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic write (opened=1) stalls in its thread while a scrape on this worker reads
    opened=2. The scrape waits for the stalled write (what it answers must be on disk before
    the answer leaves: another worker's next scrape reads this file), then writes 2 and
    answers 2; the stalled write does not take the file back to 1 when it lands."""
    disk = _SlowFirstWrite(monkeypatch)
    telemetry = Telemetry()
    shared = MetricsFile(tmp_path, telemetry)
    telemetry.opened = 1
    periodic = asyncio.ensure_future(shared.write())
    assert await asyncio.to_thread(disk.started.wait, 5)
    telemetry.opened = 2
    scrape = asyncio.ensure_future(shared.gather())
    await consistently(lambda: not scrape.done(), what="the scrape waits for the write under way")
    disk.gate.set()
    assert _opened(await scrape) == 2
    await periodic
    assert disk.done.is_set()  # the stalled write landed, before the scrape's
    ((families, _live),) = read_directory(tmp_path)  # what another worker's scrape adds up
    assert _opened(families) == 2


async def test_figures_read_first_never_replace_figures_read_later(tmp_path: Path) -> None:
    """Two writes whose threads start in the other order than their figures were read on
    the loop: the later figures stay in the file."""
    asyncio.get_running_loop().set_default_executor(_Reversing())
    telemetry = Telemetry()
    shared = MetricsFile(tmp_path, telemetry)

    async def later() -> None:
        telemetry.opened = 2
        await shared.write()

    telemetry.opened = 1
    await asyncio.gather(shared.write(), later())
    ((families, _live),) = read_directory(tmp_path)
    assert _opened(families) == 2


async def test_the_final_write_at_close_is_the_last_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """close() cancels the periodic task, but its thread goes on writing: close() waits for
    it, and the file ends with close()'s final figures (live: false, opened=2), not the
    stalled periodic ones."""
    disk = _SlowFirstWrite(monkeypatch)
    telemetry = Telemetry()
    shared = MetricsFile(tmp_path, telemetry, interval_s=0.001)
    telemetry.opened = 1
    shared.start()
    assert await asyncio.to_thread(disk.started.wait, 5)
    telemetry.opened = 2
    closing = asyncio.ensure_future(shared.close())
    await consistently(lambda: not closing.done(), what="close() waits for the write under way")
    disk.gate.set()
    await closing
    assert disk.done.is_set()
    record = json.loads(shared.path.read_text())
    assert record["live"] is False
    ((families, _live),) = read_directory(tmp_path)
    assert _opened(families) == 2


async def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk: each write fails part way. Nothing may be left behind per attempt (one
    a second plus one per scrape, until the disk has room again)."""

    def full_disk(path: Path, data: str, *args: Any, **kwargs: Any) -> int:
        with open(path, "w") as file:
            file.write(data[:16])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    shared = MetricsFile(tmp_path, Telemetry())
    for _ in range(3):
        await shared.write()
    assert sorted(os.listdir(tmp_path)) == []


async def test_an_asgi_app_started_twice_counts_each_connection_once(tmp_path: Path) -> None:
    """asgi_app keeps its Runtime (and so its Telemetry) across lifespans: its second life
    writes the first life's file on, so the first life's counts are not summed twice (the
    old final file and a new one would both hold them)."""
    from tests.production.conftest import Echo, build_router

    from wskit.asgi import asgi_app
    from wskit.testing import TestClient

    router = build_router()
    app = asgi_app(router, env={}, metrics_dir=str(tmp_path))
    async with app.lifespan(), TestClient(router) as client:
        await client.request(Echo, {"text": "x"})
    async with app.lifespan():
        shared = app.runtime.metrics_file
        assert shared is not None
        families = await shared.gather()
    assert _opened(families) == 1
    assert len([name for name in os.listdir(tmp_path) if name.endswith(".json")]) == 1  # one file, written on
