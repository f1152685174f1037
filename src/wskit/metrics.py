"""What one scrape of ``/metrics`` adds up: this process's counters, or those of every
process that shares ``METRICS_DIR``.

``serve(workers=N)`` forks N processes behind one port, and the kernel hands a scrape to any
of them; each keeps its own counters in memory. So each process also writes them to the
shared directory, as ``<pid>-<token>.json`` (written to a temporary name, then renamed, so a
reader never sees half a file), about once a second and once more when it stops. The
process a scrape reaches writes its own file afresh before it answers (so a later scrape of
another process never adds up less), reads the others' (in a thread: the event loop never
waits on the disk) and answers their sum:

- counters and histograms of **every** file, those of processes that have exited included,
  so a total never goes backwards when a worker stops or is replaced;
- gauges (open connections, readiness) only of processes still running: the file says it
  was not the last one written at stop, and its pid is alive and is the same process (its
  start time, read from ``/proc``, guards against a reused pid).

A total that goes backwards is a counter reset to Prometheus (``rate()`` then counts the
whole total again), so a file never does: its writes land one at a time in the order their
figures were read (an older one that comes late is dropped), the one written at stop lands
last, and a set of counters keeps its file for the life of the process (an ASGI app whose
lifespan starts twice writes its one file on). Files are never emptied or pruned either:
when a process starts, those of processes that have exited are folded into
:data:`RETIRED` (their counters and histograms added to it) and removed, under a lock, so
the directory holds about one file per running process however often they restart, and
the totals go on across restarts. The figures of other processes are up to
:data:`WRITE_INTERVAL_S` old.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wskit.config import Settings
from wskit.logs import LogBudget
from wskit.prometheus import INSTALL_HINT, available
from wskit.telemetry import Family, Telemetry

__all__ = [
    "MAX_FILES",
    "RETIRED",
    "WRITE_INTERVAL_S",
    "MetricsFile",
    "add_up",
    "compact_directory",
    "read_directory",
    "start",
]

log = logging.getLogger("wskit.metrics")

#: seconds between two writes of a process's file (the others' figures are this old at most)
WRITE_INTERVAL_S = 1.0
#: process files read by one scrape at most: those of running processes first, then the
#: most recently written (files of exited processes are folded into :data:`RETIRED` anyway)
MAX_FILES = 4096
#: the file that holds the counters of the processes that have exited, added up
RETIRED = "retired.json"
_SUFFIX = ".json"
_TEMPORARY = ".tmp"
_LOCK = ".lock"
_FORMAT = 1
#: reads of a directory that a compaction changed under them, before the last is used
_READ_ATTEMPTS = 3
_cap_budget = LogBudget()
_retired_budget = LogBudget()


@dataclass(slots=True)
class _Slot:
    """One set of counters' file in this process, and the order its writes land in."""

    path: Path
    #: held by the thread writing, across the write and the rename
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the number of the last figures read (on the loop) to be written
    taken: int = 0
    #: the number of the last write that landed (read and set under ``lock``)
    landed: int = 0


#: the file of each set of counters in this process: a runtime started again (an ASGI app's
#: second lifespan) writes its old file on, since its counters went on from where they were
_SLOTS: weakref.WeakKeyDictionary[Telemetry, _Slot] = weakref.WeakKeyDictionary()


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

    :meth:`start` folds the files of exited processes into :data:`RETIRED` and begins the
    periodic writes, :meth:`close` ends them with a last write that marks the process gone;
    :meth:`gather` is what a scrape reaching this process adds up. Every ``MetricsFile`` of
    the same ``telemetry`` in a process writes the same file, in one order.
    """

    def __init__(
        self, directory: str | os.PathLike[str], telemetry: Telemetry, *, interval_s: float = WRITE_INTERVAL_S
    ) -> None:
        self.directory = Path(directory)
        self.telemetry = telemetry
        self.interval_s = interval_s
        self.pid = os.getpid()
        self._slot = _slot_for(self.directory, telemetry, self.pid)
        self.path = self._slot.path
        self._identity = process_identity(self.pid)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._budget = LogBudget()

    def start(self) -> None:
        """Begin: fold exited processes' files into :data:`RETIRED`, then write every interval."""
        self._closed = False
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._every_interval())

    async def close(self) -> None:
        """Stop the periodic writes and write the final figures (gauges no longer count),
        after a write still under way in its thread: the final one lands last."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.write(live=False)

    async def write(self, *, live: bool = True) -> None:
        """Write the current figures (read here, on the loop; encoded and written in a thread)."""
        number, families = self._take()
        await asyncio.to_thread(self._write, number, families, live)

    async def gather(self) -> list[Family]:
        """What a scrape answers: this process's figures, written afresh for the others (not
        after :meth:`close`), plus every other file in the directory, added up."""
        number, own = self._take()
        return await asyncio.to_thread(self._refresh_and_add, number, own, not self._closed)

    def _take(self) -> tuple[int, list[Family]]:
        """The figures now, numbered in the order they are read: a write of a lower number
        that reaches the disk after this one is dropped (its figures are older)."""
        slot = self._slot
        slot.taken += 1
        return slot.taken, self.telemetry.families()

    # -- in a worker thread -------------------------------------------------------------------

    def _refresh_and_add(self, number: int, own: list[Family], write: bool) -> list[Family]:
        if write:
            self._write(number, own, True)
        return add_up([(own, True), *read_directory(self.directory, skip=self.path)])

    def _write(self, number: int, families: list[Family], live: bool) -> None:
        record = {
            "format": _FORMAT,
            "pid": self.pid,
            "identity": self._identity,
            "live": live,
            "families": [_encode(f) for f in families],
        }
        text = json.dumps(record, separators=(",", ":"))
        # one writer at a time: the thread of a write cancelled on the loop (close() ends the
        # periodic task, not its thread) still finishes before the next write starts
        slot = self._slot
        with slot.lock:
            if number <= slot.landed:
                return  # figures read before those of a write that got here first
            temporary = self.path.with_name(f"{self.path.stem}.{uuid.uuid4().hex[:8]}{_TEMPORARY}")
            try:
                temporary.write_text(text)
                os.replace(temporary, self.path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    temporary.unlink()  # a full disk: one more file per attempt would not help
                tail = self._budget.take()
                if tail is not None:
                    log.warning("cannot write the metrics file %s: %s%s", self.path, exc, tail)
                return
            slot.landed = number

    async def _every_interval(self) -> None:
        try:
            await asyncio.to_thread(compact_directory, self.directory)
        except (OSError, ValueError) as exc:
            log.warning("cannot fold exited processes' files in %s: %s", self.directory, exc)
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.write()
            except Exception:  # a gauge reader that raised: the next write may do
                tail = self._budget.take()
                if tail is not None:
                    log.exception("writing the metrics file %s failed%s", self.path, tail)


def _slot_for(directory: Path, telemetry: Telemetry, pid: int) -> _Slot:
    slot = _SLOTS.get(telemetry)
    if slot is None or slot.path.parent != directory or _pid_of(slot.path.name) != pid:
        # one file per set of counters: two servers in one process do not overwrite each other
        slot = _SLOTS[telemetry] = _Slot(directory / f"{pid}-{uuid.uuid4().hex[:12]}{_SUFFIX}")
    return slot


@dataclass(frozen=True, slots=True)
class _Retired:
    """What :data:`RETIRED` holds: the sum of the files it absorbed (named, until they are
    removed, so that a reader never counts one twice), and a number each change increments."""

    generation: int = 0
    absorbed: frozenset[str] = frozenset()
    families: list[Family] = field(default_factory=list)


def read_directory(directory: Path, *, skip: Path | None = None) -> list[tuple[list[Family], bool]]:
    """Every process file in ``directory`` but ``skip`` (at most :data:`MAX_FILES`), and
    :data:`RETIRED`: its families, and whether its gauges still count (the process runs).
    Files that cannot be read are left out."""
    parts: list[tuple[list[Family], bool]] = []
    retired = _Retired()
    for _ in range(_READ_ATTEMPTS):
        retired = _retired_or_nothing(directory)
        parts = _read_processes(directory, skip, retired.absorbed)
        # a compaction between the two reads may have folded a file into RETIRED after it
        # was read here, or removed one before: then read again
        if _retired_or_nothing(directory).generation == retired.generation:
            break
    if retired.families:
        parts.insert(0, (retired.families, False))
    return parts


def _retired_or_nothing(directory: Path) -> _Retired:
    try:
        return _read_retired(directory)
    except ValueError as exc:
        tail = _retired_budget.take()
        if tail is not None:
            log.warning("%s left out of the sums: %s%s", directory / RETIRED, exc, tail)
        return _Retired(generation=-1)


def _read_processes(directory: Path, skip: Path | None, absorbed: frozenset[str]) -> list[tuple[list[Family], bool]]:
    out: list[tuple[list[Family], bool]] = []
    try:
        left_out = {RETIRED, *absorbed, skip.name if skip is not None else ""}
        paths = [p for p in directory.glob("*" + _SUFFIX) if p.name not in left_out]
    except OSError as exc:
        log.warning("cannot list the metrics directory %s: %s", directory, exc)
        return out
    if len(paths) > MAX_FILES:
        paths = _within_cap(directory, paths)
    for path in paths:
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


def _within_cap(directory: Path, paths: list[Path]) -> list[Path]:
    """The :data:`MAX_FILES` files a scrape reads: those of running processes (whose gauges
    count) first, then the most recently written."""

    def rank(path: Path) -> tuple[bool, float]:
        pid = _pid_of(path.name)
        try:
            written = path.stat().st_mtime
        except OSError:
            written = 0.0
        return (pid is None or not is_running(pid, None), -written)

    kept = sorted(paths, key=rank)[:MAX_FILES]
    tail = _cap_budget.take()
    if tail is not None:
        log.warning(
            "%d process files in the metrics directory %s: %d left out of the sums, those of running "
            "processes read first (exited ones are folded into %s when a process starts)%s",
            len(paths),
            directory,
            len(paths) - MAX_FILES,
            RETIRED,
            tail,
        )
    return kept


def compact_directory(directory: str | os.PathLike[str]) -> int:
    """Fold the files of processes that have exited into :data:`RETIRED` and remove them,
    with the temporary files of writes they left unfinished; how many were folded. Files of
    running processes are never touched (one may write again, as an ASGI app's second
    lifespan does). Under an exclusive lock on the directory's ``.lock``: processes that
    start together fold each file once. Without ``fcntl`` (Windows) nothing is folded.

    Raises ``OSError`` when the directory cannot be read or written, ``ValueError`` when
    :data:`RETIRED` is corrupt (then it is left as it is, and nothing is folded)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return 0
    directory = Path(directory)
    with open(directory / _LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or its process dies
        retired = _read_retired(directory)
        names = {path.name for path in directory.glob("*" + _SUFFIX)} - {RETIRED}
        absorbed = retired.absorbed & names  # those removed are forgotten
        gone: dict[str, list[Family]] = {}
        for name in sorted(names - absorbed):
            try:
                record = json.loads((directory / name).read_text())
                if is_running(int(record["pid"]), record.get("identity")):
                    continue
                gone[name] = [_decode(item) for item in record["families"]]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable: read_directory leaves it out too
        if gone or absorbed != retired.absorbed:
            families = add_up([(retired.families, False), *((f, False) for f in gone.values())])
            record = {
                "format": _FORMAT,
                "generation": retired.generation + 1,
                "absorbed": sorted(absorbed | gone.keys()),
                "families": [_encode(f) for f in families],
            }
            temporary = directory / f"{RETIRED}.{uuid.uuid4().hex[:8]}{_TEMPORARY}"
            try:
                temporary.write_text(json.dumps(record, separators=(",", ":")))
                os.replace(temporary, directory / RETIRED)
            except OSError:
                with contextlib.suppress(OSError):
                    temporary.unlink()
                raise
        # named in RETIRED now: removed only after it was written (a reader skips them)
        for name in absorbed | gone.keys():
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        for path in directory.glob("*" + _TEMPORARY):
            pid = _pid_of(path.name)
            if path.name.startswith(RETIRED) or (pid is not None and not is_running(pid, None)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # a write cut short: the lock holder writes the only RETIRED ones
    return len(gone)


def _read_retired(directory: Path) -> _Retired:
    """:data:`RETIRED` of ``directory`` (empty when there is none). Raises ``ValueError``
    when it is corrupt."""
    try:
        record = json.loads((directory / RETIRED).read_text())
    except FileNotFoundError:
        return _Retired()
    except OSError as exc:
        raise ValueError(f"unreadable: {exc}") from exc
    try:
        return _Retired(
            int(record["generation"]),
            frozenset(str(name) for name in record["absorbed"]),
            [_decode(item) for item in record["families"]],
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a {RETIRED} file: {exc!r}") from exc


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


def _pid_of(name: str) -> int | None:
    """The pid a process file's (or its temporary's) name starts with."""
    head = name.partition("-")[0]
    return int(head) if head.isdigit() else None


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
