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


#: file descriptors the 50,000-connection scenarios need on each side (sockets, and some spare)
WANTED_FDS = 120_000


def raise_fd_limit(wanted: int = WANTED_FDS) -> None:
    """RLIMIT_NOFILE up to ``wanted`` (the idle and fan-out scenarios hold up to 50,000
    sockets): the hard limit too where this process may raise it (root), else the soft
    limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard == resource.RLIM_INFINITY else max(soft, hard), hard))


def install_uvloop() -> None:
    """uvloop for every asyncio loop created from now on (the references all run on it)."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
