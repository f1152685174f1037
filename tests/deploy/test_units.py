"""deploy/wskit.service and deploy/Dockerfile: what can be checked without systemd running or
an image built.

The unit passes ``systemd-analyze verify`` (its ExecStart pointed at this interpreter) and
keeps its stop timeout above the graceful shutdown it configures. The Dockerfile's
HEALTHCHECK command is run as written against a real server: it succeeds while the server
is ready and fails once the server is gone.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.redis_server import free_port
from tests.tls.processes import ROOT, Instance

UNIT = ROOT / "deploy" / "wskit.service"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _unit_settings() -> dict[str, str]:
    """``Key=value`` lines of the unit, the Environment= ones as their own keys."""
    found: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        if key == "Environment":
            key, _, value = value.partition("=")
        found[key] = value
    return found


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (systemd's own tool)")
def test_the_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify finds nothing wrong with the unit (run as this interpreter)."""
    assert SYSTEMD_ANALYZE is not None
    unit = tmp_path / "wskit.service"
    unit.write_text(UNIT.read_text().replace("/opt/wskit/venv/bin/python", sys.executable))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (systemd's own tool)")
def test_the_unit_is_hardened(tmp_path: Path) -> None:
    """systemd-analyze security rates the unit's exposure OK (below 3 of 10) on this systemd."""
    assert SYSTEMD_ANALYZE is not None
    unit = tmp_path / "wskit.service"
    unit.write_text(UNIT.read_text().replace("/opt/wskit/venv/bin/python", sys.executable))
    command = [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "offline" in done.stderr:
        pytest.skip(f"this systemd-analyze cannot rate a unit file offline: {done.stderr.strip()[:200]}")
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) < 3.0, done.stdout[-2000:]


def test_the_unit_waits_longer_than_the_graceful_shutdown() -> None:
    """TimeoutStopSec is above SHUTDOWN_GRACE_MS, and SIGTERM is what stops the service."""
    settings = _unit_settings()
    assert settings["KillSignal"] == "SIGTERM"
    grace_s = int(settings["SHUTDOWN_GRACE_MS"]) / 1000
    assert float(settings["TimeoutStopSec"].removesuffix("s")) >= grace_s + 5


async def test_the_image_healthcheck_follows_readiness(tmp_path: Path) -> None:
    """The Dockerfile's HEALTHCHECK command, run as written, exits 0 while the server is
    ready and non-zero once it is gone."""
    found = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", DOCKERFILE.read_text())
    assert found, "HEALTHCHECK ... CMD [...] in deploy/Dockerfile"
    command = json.loads(found.group(1))
    assert command[0] == "python" and "/readyz" in command[-1]
    port = free_port()
    server = Instance(["-m", "tests.tls.app"], port, tmp_path / "server.log", name="health")
    await server.start()
    check = [sys.executable, *command[1:]]
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    try:
        assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0  # noqa: ASYNC221
        assert await server.terminate() == 0
        assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode != 0  # noqa: ASYNC221
    finally:
        server.kill()
