"""``wskit run --reload``: restart the server when the application's code changes (development only).

A parent process watches; a child process serves. About once a second (:data:`INTERVAL_S`)
the parent reads the modification times of the ``.py`` files under the watched directories
(the application's top-level package, or the directory of a top-level module, plus any
``--reload-dir``); when one is added, removed or changed it sends the child SIGTERM (the
server's graceful shutdown), waits for it to exit (killing it after the shutdown grace plus
:data:`KILL_AFTER_S`) and starts a new one. No dependency, no inotify: polling is bounded by
:data:`MAX_FILES` files per pass, and a change is seen within about a second.

Limits: only ``.py`` files count (not templates or data); hidden directories,
``__pycache__``, ``node_modules`` and virtual environments are not read; every restart
closes every connection (clients reconnect) and forgets in-memory state; with ``--port 0``
each child picks a new port. The child runs in its own process group, so a Ctrl-C in the
terminal reaches the parent alone, which forwards it once; a child whose parent vanished
(killed with SIGKILL) stops itself within about a second.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from wskit.cli.target import project_on_path
from wskit.errors import UsageError

__all__ = ["INTERVAL_S", "KILL_AFTER_S", "MAX_FILES", "PARENT_ENV", "Reloader", "directories_of", "watch_parent"]

#: seconds between two passes over the watched files
INTERVAL_S = 1.0
#: files read per pass at most (a larger tree is watched in part, and the log says so)
MAX_FILES = 10_000
#: seconds a child may take to stop beyond its shutdown grace before it is killed
KILL_AFTER_S = 5.0
#: the environment variable that tells a child which process supervises it
PARENT_ENV = "WSKIT_RELOADER_PID"

_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})


def directories_of(module: str) -> list[Path]:
    """Where the code of ``module`` lives: its top-level package's directory, or the directory
    of a top-level module. Found without importing the application (its parent packages aside)."""
    top = module.split(".")[0]
    project_on_path()
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"cannot import {module}: {exc}") from exc
    if spec is None:
        raise UsageError(
            f"cannot import {module}: No module named {top!r} (run from the project directory or set PYTHONPATH)"
        )
    if spec.submodule_search_locations:
        return [Path(location).resolve() for location in spec.submodule_search_locations]
    if spec.origin is None or not os.path.isfile(spec.origin):
        raise UsageError(f"--reload: {top} is not a module of files that can be watched ({spec.origin})")
    return [Path(spec.origin).resolve().parent]


def watch_parent() -> None:
    """In a child of the reloader: stop (SIGTERM to itself) when the reloader is gone."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(INTERVAL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="wskit-reload-parent", daemon=True).start()


def _python_files(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        # pruned in place: os.walk does not descend into what is removed here
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and not os.path.exists(os.path.join(root, d, "pyvenv.cfg"))
        ]
        for name in files:
            if name.endswith(".py"):
                yield Path(root, name)


class Reloader:
    """Runs ``command`` (the server) and runs it again whenever the watched files change."""

    def __init__(self, command: Sequence[str], directories: Sequence[Path], *, stop_timeout_s: float) -> None:
        self.command = list(command)
        self.directories = list(directories)
        self.stop_timeout_s = stop_timeout_s
        self._child: subprocess.Popen[bytes] | None = None
        self._signalled = False
        self._stopping = False
        self._reported_exit = False
        self._truncated = False

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; returns the exit code (0)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stamps = self._scan()
            where = ", ".join(str(d) for d in self.directories)
            self._say(f"watching {len(stamps)} .py file(s) under {where}")
            self._start()
            while not self._stopping:
                self._sleep(INTERVAL_S)
                if self._stopping:
                    break
                now = self._scan()
                if now != stamps:
                    changed = sorted(set(now.items()) ^ set(stamps.items()))[0][0]
                    stamps = now
                    self._say(f"{changed} changed: restarting")
                    self._stop_child()
                    if not self._stopping:
                        self._start()
                elif self._child is not None and self._child.poll() is not None and not self._reported_exit:
                    self._reported_exit = True
                    self._say(f"the server exited ({self._child.returncode}); waiting for a change to start it again")
        finally:
            self._stop_child()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # each signal is passed on: a second one makes the server close at once, as serve() does
        self._stopping = True
        child = self._child
        if child is not None and child.poll() is None:
            self._signalled = True
            child.send_signal(signal.SIGTERM)

    def _start(self) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        # its own process group: a terminal's Ctrl-C reaches this process only, which passes it on once
        self._child = subprocess.Popen(self.command, env=env, process_group=0)
        self._signalled = False
        self._reported_exit = False

    def _stop_child(self) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            return
        if not self._signalled:
            self._signalled = True
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(self.stop_timeout_s + KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            self._say(f"the server did not stop within {self.stop_timeout_s + KILL_AFTER_S:g} s: killed")
            child.kill()
            child.wait()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _scan(self) -> dict[str, int]:
        stamps: dict[str, int] = {}
        for directory in self.directories:
            for path in _python_files(directory):
                if len(stamps) >= MAX_FILES:
                    if not self._truncated:
                        self._truncated = True
                        self._say(f"more than {MAX_FILES} .py files: only the first {MAX_FILES} are watched")
                    return stamps
                try:
                    stamps[str(path)] = path.stat().st_mtime_ns
                except OSError:
                    continue  # removed between the listing and the stat: the next pass sees it gone
        return stamps

    @staticmethod
    def _say(text: str) -> None:
        print(f"wskit run --reload: {text}", file=sys.stderr, flush=True)
