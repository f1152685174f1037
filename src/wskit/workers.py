"""``serve(..., workers=N)``: N server processes on one port, joined by the broker.

Each worker is a forked process running its own event loop and its own :class:`Server`,
bound with ``SO_REUSEPORT`` so the kernel spreads new connections over them. They share
nothing in memory: topics, presence and user controls cross through the broker (Redis),
which is why more than one worker without ``REDIS_URL`` is refused at start.

Their counters meet in a directory (``METRICS_DIR``, else a private one made here and
removed at exit), so that ``/metrics`` on any worker answers the sum of all of them (and of
the processes that used it before: see :mod:`wskit.metrics`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from wskit.config import ConfigError, Settings, load_settings
from wskit.pubsub.memory import MemoryBroker
from wskit.router import Router

__all__ = ["run_workers"]

log = logging.getLogger("wskit.workers")

ServeOne = Callable[..., None]


def _reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (without listening) to learn the port for ``port=0``; keeps it ours meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock, sock.getsockname()[1]


def _metrics_dir(settings: Settings) -> tuple[str | None, bool]:
    """Where the workers' counters meet, so that a scrape of any one answers for all (see
    :mod:`wskit.metrics`); and whether it was made here (then removed at exit).

    A directory given by ``METRICS_DIR`` is used as it is: other processes may share it, and
    a previous run's counters are part of the totals (emptying it would take them back, a
    counter reset to Prometheus). The workers fold those of exited processes as they start."""
    if not settings.metrics:
        return None, False
    if settings.metrics_dir is not None:
        os.makedirs(settings.metrics_dir, exist_ok=True)
        return settings.metrics_dir, False
    return tempfile.mkdtemp(prefix="wskit-metrics-"), True


def run_workers(router: Router[Any], count: int, options: Mapping[str, Any], serve_one: ServeOne) -> None:
    """Fork ``count`` workers serving ``router``; forward SIGINT/SIGTERM/SIGHUP; exit with them.

    SIGHUP reaches every worker, so ``systemctl reload`` (or ``kill -HUP``) reloads each
    worker's TLS certificate instead of killing the parent.

    A signal that comes while the workers start is held, not lost and not fatal: the parent
    blocks the three while it forks, until its forwarder is in place, and the workers start
    with them blocked; ``serve_one`` unblocks them once its event loop handles them (then
    what came meanwhile is handled). Without this a ``systemctl reload`` during a start
    killed the parent or a worker (SIGHUP's default action)."""
    settings = load_settings({k: options.get(k) for k in ("host", "port", "redis_url", "metrics", "metrics_dir")})
    broker = options.get("broker")
    if (broker is None and not settings.redis_url) or isinstance(broker, MemoryBroker):
        raise ConfigError(
            f"workers={count} needs a broker shared by the processes: set REDIS_URL "
            "(or pass broker=RedisBroker(...)); the in-memory broker only reaches one process"
        )
    if sys.platform == "win32":  # pragma: no cover
        raise ConfigError("workers > 1 needs fork and SO_REUSEPORT (Linux, macOS)")
    reserved, port = _reserve_port(settings.host, settings.port)
    metrics_dir, made_dir = _metrics_dir(settings)
    child_options = {**options, "port": port, "metrics_dir": metrics_dir}
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=serve_one, args=(router, child_options), kwargs={"reuse_port": True}, name=f"wskit-{i}")
        for i in range(count)
    ]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
    try:
        for proc in procs:
            proc.start()
        previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal held meanwhile is forwarded now
    reserved.close()
    log.info("wskit: %d workers on %s:%d (pids %s)", count, settings.host, port, [p.pid for p in procs])
    try:
        for proc in procs:
            proc.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if made_dir and metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    failed = [p for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise SystemExit(f"wskit: {len(failed)} worker(s) exited with an error: {[p.exitcode for p in failed]}")
