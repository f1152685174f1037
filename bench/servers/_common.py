"""What every Python bench server shares: ``--port``, the fd limit, uvloop.

Each server in this folder is a script run by ``bench/run.py`` as
``python bench/servers/NAME.py --port P`` and speaks the bench messages of
``bench/README.md`` (ECHO/ECHO_OK, PING/PONG, SUB/SUBBED, PUB/TICK) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import resource

__all__ = ["HOST", "install_uvloop", "parse_port", "raise_fd_limit"]

HOST = "127.0.0.1"


def parse_port() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    return int(parser.parse_args().port)


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (the idle scenario holds thousands of sockets)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_uvloop() -> None:
    """uvloop for every asyncio loop created from now on (the references all run on it)."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
