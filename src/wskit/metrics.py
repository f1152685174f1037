"""What one scrape of ``/metrics`` adds up: this process's counters, or those of every
process that shares ``METRICS_DIR``.

``serve(workers=N)`` forks N processes behind one port, and the kernel hands a scrape to any
of them; each keeps its own counters in memory. So each process also writes them to the
shared directory, as ``<pid>-<token>.json`` (written to a temporary name, then renamed, so a
reader never sees half a file), about once a second and once more when it stops. The
process a scrape reaches writes its own file afresh, reads the others' (in a thread: the
event loop never waits on the disk) and answers their sum:

- counters and histograms of **every** file, those of processes that have exited included,
  so a total never goes backwards when a worker stops or is replaced;
- gauges (open connections, readiness) only of processes still running: the file says it
  was not the last one written at stop, and its pid is alive and is the same process (its
  start time, read from ``/proc``, guards against a reused pid).

The figures of other processes are up to :data:`WRITE_INTERVAL_S` old. One directory serves
one server: ``serve()`` makes a fresh private one when none is given and removes it at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wskit.config import Settings
from wskit.logs import LogBudget
from wskit.prometheus import INSTALL_HINT, available
from wskit.telemetry import Family, Telemetry

__all__ = ["MAX_FILES", "WRITE_INTERVAL_S", "MetricsFile", "add_up", "clear_directory", "read_directory", "start"]

log = logging.getLogger("wskit.metrics")

#: seconds between two writes of a process's file (the others' figures are this old at most)
WRITE_INTERVAL_S = 1.0
#: files read by one scrape at most (a directory reused across many restarts stops growing the scrape)
MAX_FILES = 4096
_SUFFIX = ".json"
_TEMPORARY = ".tmp"
_FORMAT = 1


def start(settings: Settings, telemetry: Telemetry) -> MetricsFile | None:
    """At a runtime's start: say once when ``/metrics`` cannot be served (prometheus-client
    missing), and with ``METRICS_DIR`` start writing this process's file (None otherwise)."""
    if not settings.metrics:
        return None
    if not available():
        log.info("%s; /metrics answers 501 until then (METRICS=0 turns it off)", INSTALL_HINT)
    if settings.metrics_dir is None:
        return None
    shared = MetricsFile(settings.metrics_dir, telemetry)
    shared.start()
    return shared


class MetricsFile:
    """This process's counters in the shared directory, rewritten every ``interval_s``.

    :meth:`start` begins the periodic writes, :meth:`close` ends them with a last write that
    marks the process gone; :meth:`gather` is what a scrape reaching this process adds up.
    """

    def __init__(
        self, directory: str | os.PathLike[str], telemetry: Telemetry, *, interval_s: float = WRITE_INTERVAL_S
    ) -> None:
        self.directory = Path(directory)
        self.telemetry = telemetry
        self.interval_s = interval_s
        self.pid = os.getpid()
        #: one file per runtime: two servers in one process (or one started twice) do not overwrite each other
        self.path = self.directory / f"{self.pid}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        self._identity = process_identity(self.pid)
        self._task: asyncio.Task[None] | None = None
        self._budget = LogBudget()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._every_interval())

    async def close(self) -> None:
        """Stop the periodic writes and write the final figures (gauges no longer count)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.write(live=False)

    async def write(self, *, live: bool = True) -> None:
        """Write the current figures (read here, on the loop; encoded and written in a thread)."""
        families = self.telemetry.families()
        await asyncio.to_thread(self._write, families, live)

    async def gather(self) -> list[Family]:
        """What a scrape answers: this process's figures, written afresh for the others, plus
        every other file in the directory, added up."""
        own = self.telemetry.families()
        return await asyncio.to_thread(self._refresh_and_add, own)

    # -- in a worker thread -------------------------------------------------------------------

    def _refresh_and_add(self, own: list[Family]) -> list[Family]:
        self._write(own, True)
        return add_up([(own, True), *read_directory(self.directory, skip=self.path)])

    def _write(self, families: list[Family], live: bool) -> None:
        record = {
            "format": _FORMAT,
            "pid": self.pid,
            "identity": self._identity,
            "live": live,
            "families": [_encode(f) for f in families],
        }
        # a name of its own per write: a scrape and the periodic write may overlap in two threads
        temporary = self.path.with_name(f"{self.path.stem}.{uuid.uuid4().hex[:8]}{_TEMPORARY}")
        try:
            temporary.write_text(json.dumps(record, separators=(",", ":")))
            os.replace(temporary, self.path)
        except OSError as exc:
            tail = self._budget.take()
            if tail is not None:
                log.warning("cannot write the metrics file %s: %s%s", self.path, exc, tail)

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.write()
            except Exception:  # a gauge reader that raised: the next write may do
                tail = self._budget.take()
                if tail is not None:
                    log.exception("writing the metrics file %s failed%s", self.path, tail)


def read_directory(directory: Path, *, skip: Path | None = None) -> list[tuple[list[Family], bool]]:
    """Every process file in ``directory`` (at most :data:`MAX_FILES`): its families, and
    whether its gauges still count (the process runs). Files that cannot be read are left out."""
    out: list[tuple[list[Family], bool]] = []
    try:
        paths = sorted(directory.glob("*" + _SUFFIX))
    except OSError as exc:
        log.warning("cannot list the metrics directory %s: %s", directory, exc)
        return out
    if len(paths) > MAX_FILES:
        log.warning(
            "%d files in the metrics directory %s: only %d read (empty it when the server restarts)",
            len(paths),
            directory,
            MAX_FILES,
        )
        paths = paths[:MAX_FILES]
    for path in paths:
        if path == skip:
            continue
        try:
            record = json.loads(path.read_text())
            families = [_decode(item) for item in record["families"]]
            live = bool(record["live"]) and is_running(int(record["pid"]), record.get("identity"))
        except FileNotFoundError:
            continue  # replaced or removed between the listing and the read
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("metrics file %s left out: %r", path, exc)
            continue
        out.append((families, live))
    return out


def add_up(parts: Iterable[tuple[list[Family], bool]]) -> list[Family]:
    """The sum of several processes' families, sample by sample; gauges only of the parts
    marked live. A family whose kind, labels or histogram buckets differ from the first seen
    (another version of wskit) is left out of the sum rather than mixed in."""
    totals: dict[str, Family] = {}
    for families, live in parts:
        for family in families:
            if family.kind == "gauge" and not live:
                continue
            total = totals.get(family.name)
            if total is None:
                total = totals[family.name] = Family(family.name, family.kind, family.help, family.labels, {})
            elif (total.kind, total.labels) != (family.kind, family.labels):
                continue
            samples = total.samples
            for key, value in family.samples.items():
                if family.kind != "histogram":
                    samples[key] = samples.get(key, 0) + value
                elif key not in samples:
                    samples[key] = {**value, "counts": list(value["counts"])}
                else:
                    _add_histogram(samples[key], value)
    return list(totals.values())


def _add_histogram(total: dict[str, Any], more: dict[str, Any]) -> None:
    if list(total["bounds"]) != list(more["bounds"]):
        return
    total["counts"] = [a + b for a, b in zip(total["counts"], more["counts"], strict=True)]
    total["sum"] += more["sum"]
    total["count"] += more["count"]


def clear_directory(directory: str | os.PathLike[str]) -> int:
    """Remove the process files (and temporary files of interrupted writes) a previous run
    left in ``directory``; how many. For the process that starts a server's workers, before
    they start."""
    removed = 0
    for pattern in ("*" + _SUFFIX, "*" + _TEMPORARY):
        for path in Path(directory).glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def process_identity(pid: int) -> str | None:
    """What tells process ``pid`` from a later one given the same pid: its start time (in
    clock ticks since boot, from ``/proc``); None where ``/proc`` is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count after it
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def is_running(pid: int, identity: str | None) -> bool:
    """Process ``pid`` runs and is the one that wrote ``identity`` (when it wrote one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return identity is None or process_identity(pid) == identity


def _encode(family: Family) -> dict[str, Any]:
    return {
        "name": family.name,
        "kind": family.kind,
        "help": family.help,
        "labels": list(family.labels),
        "samples": [[list(key), value] for key, value in family.samples.items()],
    }


def _decode(item: dict[str, Any]) -> Family:
    labels = tuple(str(label) for label in item["labels"])
    samples: dict[tuple[str, ...], Any] = {}
    for key, value in item["samples"]:
        values = tuple(str(v) for v in key)
        if len(values) != len(labels):
            raise ValueError(f"{item['name']}: {len(values)} label values for {len(labels)} labels")
        samples[values] = value
    return Family(str(item["name"]), str(item["kind"]), str(item["help"]), labels, samples)
