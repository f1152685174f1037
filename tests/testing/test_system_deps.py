"""``scripts/system-deps.sh`` (what ``make test`` runs first) is best effort: it never fails the run.

The script is driven with a fake ``PATH`` holding only stand-ins for ``id``, ``sudo`` and
``apt-get``, so nothing is installed and the real system is not consulted.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"


def fake_bin(tmp_path: Path, **programs: str) -> Path:
    """A directory of shell stand-ins: program name -> script body."""
    for name, body in programs.items():
        path = tmp_path / name.replace("_", "-")
        path.write_text(f"#!{BASH}\n{body}\n")
        path.chmod(0o755)
    return tmp_path


def run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT)], env={"PATH": str(path)}, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    "programs",
    [
        {"id": "echo 1000", "sudo": "exit 1", "apt_get": "exit 100"},
        {"id": "echo 1000", "apt_get": "exit 100"},
        {"id": "echo 0", "apt_get": "exit 100"},
        {"id": "echo 0"},
    ],
    ids=["sudo-needs-password", "no-sudo", "apt-fails", "no-apt"],
)
def test_failing_install_warns_and_exits_zero(tmp_path: Path, programs: dict[str, str]) -> None:
    """Without root, sudo, apt or network, the script names what is missing on stderr and exits 0."""
    result = run(fake_bin(tmp_path, **programs))
    assert result.returncode == 0, result.stderr
    assert "redis-server" in result.stderr


def test_nothing_missing_is_silent(tmp_path: Path) -> None:
    """When the programs are there, the script says nothing and exits 0."""
    result = run(fake_bin(tmp_path, redis_server="exit 0", chromium="exit 0"))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
