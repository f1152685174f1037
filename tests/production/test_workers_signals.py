"""Ctrl-C in a terminal running ``serve(workers=N)``: the terminal signals every process of
its group (the parent and the workers), and the parent forwards the signal to the workers
once more. Each worker must take that as one stop request and drain, not as a second signal
that closes every connection at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.production.conftest import reap
from tests.support.redis_server import free_port
from tests.support.waiting import PATIENCE_S


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


def test_ctrl_c_to_the_process_group_drains_each_worker_once(redis_url: str) -> None:
    port = free_port()
    code = f"from wskit import Router, serve; serve(Router(), port={port}, workers=2, redis_url={redis_url!r})"
    # a session of its own: its process group is what a terminal's Ctrl-C reaches
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + PATIENCE_S
        while not _listening(port) and time.monotonic() < deadline:  # bounded: PATIENCE_S
            time.sleep(0.05)
        time.sleep(0.5)  # both workers have their handlers
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(PATIENCE_S) == 0
        assert proc.stdout is not None
        output = proc.stdout.read().decode()
        assert output.count("shutting down (grace") == 2, output
        assert "second signal" not in output, output
    finally:
        reap(proc)
