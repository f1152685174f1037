"""The Redis multi-instance example (examples/redis-multi-instance/run.py), run as a user would.

``run.py`` starts two instances of the example chat against a throwaway ``redis-server``
of this test, drives a conversation between them and must exit 0 having printed every
message as received on the other instance.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.redis_server import RedisServer, free_port, redis_or_skip

RUN = Path(__file__).resolve().parents[2] / "examples" / "redis-multi-instance" / "run.py"


@pytest.fixture
def redis_url() -> Iterator[str]:
    server = redis_or_skip()
    yield server.url if isinstance(server, RedisServer) else server
    if isinstance(server, RedisServer):
        server.stop()


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args], env=env, capture_output=True, text=True, timeout=45, check=False
    )


def test_messages_cross_between_the_two_instances(redis_url: str) -> None:
    """run.py exits 0 after each instance printed the message said on the other, and WHO listed both."""
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = _run(env, "--ports", str(free_port()), str(free_port()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"redis:      {redis_url} (REDIS_URL)" in out
    assert '[B] bob received ROOM_MSG from ada@A: "hello from instance A" (offset 1)' in out
    assert '[A] ada received ROOM_MSG from bob@B: "hi ada, this is instance B" (offset 2)' in out
    assert "[A] ada asks WHO is in 'lobby': ada@A, bob@B" in out
    assert "[B] bob asks WHO is in 'lobby': ada@A, bob@B" in out
    assert '[B] bob received ROOM_MSG from ada@A: "bob missed this one" (offset 4)' in out
    assert out.rstrip().endswith("through Redis.")


def test_without_any_redis_it_says_what_to_install(tmp_path: Path) -> None:
    """With REDIS_URL unreachable and no redis-server on PATH, run.py exits 1 naming what to install."""
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "PATH": str(tmp_path)}
    proc = _run(env)
    assert proc.returncode == 1
    assert "redis-server is not on PATH" in proc.stderr
    assert "apt-get install redis-server" in proc.stderr
