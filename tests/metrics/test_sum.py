"""METRICS_DIR without sockets: each process's file, the sum a scrape answers, and the
files of exited processes folded into one.

Real files in a temporary directory and real processes (a child that has exited, one that
still runs); no server.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.waiting import eventually

from wskit import metrics, prometheus
from wskit.config import Settings
from wskit.metrics import RETIRED, MetricsFile, add_up, compact_directory, process_identity, read_directory
from wskit.telemetry import Family, Histogram, Telemetry
from wskit.workers import _metrics_dir


def _families(received: int, open_now: float, durations: list[float]) -> list[Family]:
    histogram = Histogram((0.1, 1.0))
    for value in durations:
        histogram.observe(value)
    return [
        Family("wskit_messages_received_total", "counter", "Received.", ("type",), {("A",): received}),
        Family("wskit_connections", "gauge", "Open.", (), {(): open_now}),
        Family("wskit_handler_duration_seconds", "histogram", "Time.", ("type",), {("A",): histogram.snapshot()}),
    ]


def _received_in(path: Path) -> int | None:
    """What the file at ``path`` says was received of type A (None before it exists)."""
    if not path.exists():
        return None
    ((families, _live),) = read_directory(path.parent)
    return int(_by_name(families)["wskit_messages_received_total"].samples[("A",)])


def _total_received(directory: Path) -> int:
    """What a scrape of another process adds up of type A received, from ``directory``."""
    total = _by_name(add_up(read_directory(directory)))
    return int(total["wskit_messages_received_total"].samples[("A",)])


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _by_name(families: list[Family]) -> dict[str, Family]:
    return {family.name: family for family in families}


def _write(directory: Path, name: str, pid: int, identity: str | None, live: bool, families: list[Family]) -> None:
    record = {
        "format": 1,
        "pid": pid,
        "identity": identity,
        "live": live,
        "families": [
            {
                "name": f.name,
                "kind": f.kind,
                "help": f.help,
                "labels": list(f.labels),
                "samples": [[list(k), v] for k, v in f.samples.items()],
            }
            for f in families
        ],
    }
    (directory / name).write_text(json.dumps(record))


@pytest.fixture
def gone_pid() -> int:
    """The pid of a child that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


@pytest.fixture
def running_child() -> Iterator[subprocess.Popen[bytes]]:
    """A child process that runs until the test ends (at most 60 s)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield child
    finally:
        child.kill()
        child.wait(10)


def test_counters_and_histograms_add_up_and_gauges_only_of_live_parts() -> None:
    """Counters and every histogram bucket add across parts; a gauge of a part not live is left out."""
    total = _by_name(
        add_up([(_families(3, 2, [0.05]), True), (_families(4, 5, [0.5, 5.0]), True), (_families(10, 7, []), False)])
    )
    assert total["wskit_messages_received_total"].samples == {("A",): 17}
    assert total["wskit_connections"].samples == {(): 7}
    histogram = total["wskit_handler_duration_seconds"].samples[("A",)]
    assert histogram["counts"] == [1, 1, 1] and histogram["count"] == 3
    assert histogram["sum"] == pytest.approx(5.55)


def test_a_family_of_another_shape_is_not_mixed_in() -> None:
    """Histograms with other buckets (another wskit version) stay out of the sum."""
    other = Histogram((0.5,))
    other.observe(0.1)
    odd = Family("wskit_handler_duration_seconds", "histogram", "Time.", ("type",), {("A",): other.snapshot()})
    total = _by_name(add_up([(_families(1, 1, [0.05]), True), ([odd], True)]))
    assert total["wskit_handler_duration_seconds"].samples[("A",)]["count"] == 1


def test_files_of_exited_and_reused_pids_keep_their_counters_but_not_their_gauges(
    tmp_path: Path, gone_pid: int, running_child: subprocess.Popen[bytes]
) -> None:
    """A file of a process that exited, one whose pid now belongs to another process (the
    start time differs), and one written as the process stopped: their counters count,
    their gauges do not. A live process's do."""
    _write(tmp_path, "1.json", gone_pid, None, True, _families(1, 100, []))
    _write(tmp_path, "2.json", os.getpid(), "not-my-start-time", True, _families(10, 1000, []))
    _write(tmp_path, "3.json", os.getpid(), process_identity(os.getpid()), False, _families(100, 10000, []))
    _write(tmp_path, "4.json", running_child.pid, process_identity(running_child.pid), True, _families(1000, 5, []))
    (tmp_path / "5.json").write_text('{"format": 1, "pid":')  # torn: never written so, and left out
    total = _by_name(add_up(read_directory(tmp_path)))
    assert total["wskit_messages_received_total"].samples == {("A",): 1111}
    assert total["wskit_connections"].samples == {(): 5}


async def test_a_process_file_is_written_periodically_and_marked_gone_at_close(tmp_path: Path) -> None:
    """MetricsFile writes the telemetry's families every interval; close() writes the last
    figures with live=false; no temporary file stays behind."""
    telemetry = Telemetry(types=["A"])
    telemetry.gauges["wskit_connections"] = ("Open.", lambda: 3.0)
    shared = MetricsFile(tmp_path, telemetry, interval_s=0.01)
    shared.start()
    telemetry.routes["A"].received = 5
    await eventually(lambda: _received_in(shared.path) == 5, what="the file says 5")
    telemetry.routes["A"].received = 6
    await shared.close()
    record = json.loads(shared.path.read_text())
    assert record["live"] is False and record["pid"] == os.getpid()
    ((families, live),) = read_directory(tmp_path)
    assert not live
    assert _by_name(families)["wskit_messages_received_total"].samples[("A",)] == 6
    assert _names(tmp_path) == [".lock", shared.path.name]


async def test_gather_answers_for_this_process_and_the_others(
    tmp_path: Path, running_child: subprocess.Popen[bytes]
) -> None:
    """What a scrape adds up: this process's live figures (its file written afresh) and
    another live process's file; the sum renders."""
    _write(tmp_path, "other.json", running_child.pid, process_identity(running_child.pid), True, _families(7, 2, []))
    telemetry = Telemetry(types=["A"])
    telemetry.gauges["wskit_connections"] = ("Open.", lambda: 3.0)
    telemetry.routes["A"].received = 5
    shared = MetricsFile(tmp_path, telemetry, interval_s=60)
    total = _by_name(await shared.gather())
    assert total["wskit_messages_received_total"].samples[("A",)] == 12
    assert total["wskit_connections"].samples == {(): 5.0}
    assert shared.path.exists()
    text = prometheus.render(total.values()).decode()
    assert 'wskit_messages_received_total{type="A"} 12.0' in text
    assert "process_" not in text


async def test_a_gauge_that_raises_costs_one_write_not_the_writer(tmp_path: Path) -> None:
    """The periodic writer outlives a gauge reader that raised once: a later write lands."""
    telemetry = Telemetry(types=["A"])
    calls = {"n": 0}

    def flaky() -> float:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("broker gone for a moment")
        return 1.0

    telemetry.gauges["wskit_broker_up"] = ("Up.", flaky)
    telemetry.routes["A"].received = 4
    shared = MetricsFile(tmp_path, telemetry, interval_s=0.01)
    shared.start()
    try:
        await eventually(lambda: _received_in(shared.path) == 4, what="a write after the failed one")
    finally:
        await shared.close()
    assert calls["n"] >= 2


def test_files_of_exited_processes_are_folded_into_one_and_the_sums_stay(
    tmp_path: Path, gone_pid: int, running_child: subprocess.Popen[bytes]
) -> None:
    """When a process starts, the files of exited ones (one live at its last write: it was
    killed; one written at its stop) are folded into retired.json and removed; a running
    process's file stays. A scrape adds up the same counters and histograms as before, and
    still no gauge of an exited process."""
    _write(tmp_path, f"{gone_pid}-a.json", gone_pid, None, True, _families(1, 100, [0.05]))
    _write(tmp_path, f"{gone_pid}-b.json", gone_pid, None, False, _families(10, 1000, [0.5]))
    running = f"{running_child.pid}-c.json"
    _write(tmp_path, running, running_child.pid, process_identity(running_child.pid), True, _families(100, 5, []))
    before = _by_name(add_up(read_directory(tmp_path)))
    assert compact_directory(tmp_path) == 2
    assert _names(tmp_path) == sorted([".lock", RETIRED, running])
    after = _by_name(add_up(read_directory(tmp_path)))
    assert after == before
    assert after["wskit_connections"].samples == {(): 5}


def test_a_later_compaction_adds_to_the_retired_sums(tmp_path: Path, gone_pid: int) -> None:
    """Processes that exit after a compaction are added to what it folded, not put in its place."""
    _write(tmp_path, f"{gone_pid}-a.json", gone_pid, None, False, _families(1, 0, []))
    assert compact_directory(tmp_path) == 1
    _write(tmp_path, f"{gone_pid}-b.json", gone_pid, None, False, _families(10, 0, []))
    assert compact_directory(tmp_path) == 1
    assert _total_received(tmp_path) == 11
    assert _names(tmp_path) == [".lock", RETIRED]


def test_a_running_process_file_is_never_folded_even_marked_stopped(tmp_path: Path) -> None:
    """A file of a process still running stays where it is though it says it was written at
    stop: an ASGI app's second lifespan writes it on (folding it would count it twice)."""
    mine = f"{os.getpid()}-a.json"
    _write(tmp_path, mine, os.getpid(), process_identity(os.getpid()), False, _families(3, 0, []))
    assert compact_directory(tmp_path) == 0
    assert mine in _names(tmp_path)
    assert _total_received(tmp_path) == 3


def test_files_folded_but_not_yet_removed_are_not_counted_twice(
    tmp_path: Path, gone_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compaction cut short after it wrote retired.json leaves the files it folded: a scrape
    counts them once (retired.json names them), and the next compaction removes them."""
    folded = f"{gone_pid}-a.json"
    _write(tmp_path, folded, gone_pid, None, False, _families(7, 0, []))
    with monkeypatch.context() as patch:
        patch.setattr(Path, "unlink", lambda path, missing_ok=False: None)  # cut short before removing
        assert compact_directory(tmp_path) == 1
    assert folded in _names(tmp_path)
    assert _total_received(tmp_path) == 7
    compact_directory(tmp_path)
    assert _names(tmp_path) == [".lock", RETIRED]
    assert _total_received(tmp_path) == 7


def test_a_scrape_read_across_a_compaction_reads_again(
    tmp_path: Path, gone_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process folds and removes a file after a scrape read retired.json and before
    it listed the process files: the scrape sees retired.json changed and reads again, so
    that file's counts are not missed (a drop in the sum)."""
    _write(tmp_path, f"{gone_pid}-a.json", gone_pid, None, False, _families(7, 0, []))
    real = metrics._read_processes
    reads: list[int] = []

    def compacting_first(*args: Any) -> Any:
        if not reads:
            compact_directory(tmp_path)
        reads.append(1)
        return real(*args)

    monkeypatch.setattr(metrics, "_read_processes", compacting_first)
    assert _total_received(tmp_path) == 7
    assert len(reads) == 2


def test_temporary_files_of_exited_processes_are_removed(tmp_path: Path, gone_pid: int) -> None:
    """A write an exited process left unfinished is removed when the others are folded; a
    running process's write under way and files that are not the server's stay."""
    (tmp_path / f"{gone_pid}-a.1234.tmp").write_text("{")
    (tmp_path / f"{RETIRED}.5678.tmp").write_text("{")
    under_way = f"{os.getpid()}-b.9abc.tmp"
    (tmp_path / under_way).write_text("{")
    (tmp_path / "keep.txt").write_text("mine")
    compact_directory(tmp_path)
    assert _names(tmp_path) == sorted([".lock", under_way, "keep.txt"])


def test_a_corrupt_retired_file_is_never_replaced(tmp_path: Path, gone_pid: int) -> None:
    """retired.json that cannot be read is left as it is, and nothing is folded into a new
    one in its place (the totals it held would be gone for good); scrapes add up the rest."""
    (tmp_path / RETIRED).write_text('{"generation":')
    _write(tmp_path, f"{gone_pid}-a.json", gone_pid, None, False, _families(7, 0, []))
    with pytest.raises(ValueError):
        compact_directory(tmp_path)
    assert (tmp_path / RETIRED).read_text() == '{"generation":'
    assert _total_received(tmp_path) == 7


def test_past_max_files_running_processes_are_read_first_then_the_newest(
    tmp_path: Path,
    gone_pid: int,
    running_child: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """More process files than a scrape reads: the running process's (written longest ago)
    is read, then the newest of the exited ones; the scrape says how many it left out."""
    monkeypatch.setattr(metrics, "MAX_FILES", 2)
    old, new, running = f"{gone_pid}-old.json", f"{gone_pid}-new.json", f"{running_child.pid}-live.json"
    _write(tmp_path, old, gone_pid, None, False, _families(1, 0, []))
    _write(tmp_path, new, gone_pid, None, False, _families(10, 0, []))
    _write(tmp_path, running, running_child.pid, process_identity(running_child.pid), True, _families(100, 0, []))
    os.utime(tmp_path / running, (1, 1))
    os.utime(tmp_path / old, (2, 2))
    with caplog.at_level(logging.WARNING, logger="wskit.metrics"):
        assert _total_received(tmp_path) == 110
    assert any("1 left out of the sums" in record.getMessage() for record in caplog.records)


def test_serve_with_workers_leaves_a_given_metrics_dir_as_it_is(tmp_path: Path, gone_pid: int) -> None:
    """serve(workers=N) with METRICS_DIR does not empty it: other processes may share it, and
    the counters of those that exited are part of the totals."""
    exited = f"{gone_pid}-a.json"
    _write(tmp_path, exited, gone_pid, None, False, _families(7, 0, []))
    assert _metrics_dir(Settings(metrics_dir=str(tmp_path))) == (str(tmp_path), False)
    assert _names(tmp_path) == [exited]
