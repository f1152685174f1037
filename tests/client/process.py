"""The client tests' server in a process of its own, for what only a process allows:
SIGKILL (a crash: no close frame, no error answer) and SIGSTOP (a server that stops answering)."""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests.production.conftest import reap, start_server_process

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.client.app import Seen, build_router
    from wskit import serve
    serve(build_router(Seen()), host="127.0.0.1", port={port}, transport="aiohttp")
    """
)


@contextlib.contextmanager
def server_process(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The test app served by ``serve()`` in a child process on ``port``; killed on exit."""
    proc = start_server_process(["-c", APP.format(root=str(ROOT), port=port)], port)
    try:
        yield proc
    finally:
        reap(proc)
