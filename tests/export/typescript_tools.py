"""The JavaScript tools the TypeScript export is checked with: ``tsc`` (typescript from npm),
Bun, and the npm packages the generated zod module imports (zod, @ws-kit/zod).

``scripts/npm-deps.sh`` installs the packages into ``.npm-deps/`` and ``make unit`` installs
Bun into ``bench/.scratch`` (``bench/setup_peers.sh --bun-only``). Without them a test is
skipped, or failed under ``CI=true`` (tests.support.ci).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.ci import unavailable

ROOT = Path(__file__).resolve().parents[2]
NPM_DEPS = ROOT / ".npm-deps" / "node_modules"
FIXTURES = Path(__file__).with_name("ts")
_BUN = ROOT / "bench" / ".scratch" / "node_modules" / ".bin" / "bun"
#: `file.ts(12,5): error TS2322: ...`
_DIAGNOSTIC = re.compile(r"^(?P<file>[^()\s]+)\((?P<line>\d+),\d+\): error (?P<code>TS\d+): (?P<text>.*)$")


def project(folder: Path, files: Mapping[str, str], *, fixtures: tuple[str, ...] = ()) -> Path:
    """``folder`` holding ``files`` (name -> text) and copies of ``fixtures`` (from tests/export/ts),
    where ``import ... from "zod"`` and ``"@ws-kit/zod"`` resolve to the pinned packages."""
    for package in ("typescript", "zod", "@ws-kit/zod"):
        if not (NPM_DEPS / package).is_dir():
            unavailable(f"{package} is not installed: run scripts/npm-deps.sh (make test does)")
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(NPM_DEPS, target_is_directory=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    for name in fixtures:
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def node() -> str:
    """The ``node`` executable (tsc runs on it)."""
    found = shutil.which("node")
    if found is None:
        unavailable("node is not installed: tsc runs on it")
    return found


def bun() -> str:
    """The Bun executable ``make unit`` installs (or one on PATH)."""
    if _BUN.is_file():
        return str(_BUN)
    found = shutil.which("bun")
    if found is None:
        unavailable("bun is not installed: run bench/setup_peers.sh --bun-only (make unit does)")
    return found


def tsc(folder: Path, files: list[str]) -> dict[str, list[str]]:
    """Compile ``files`` of ``folder`` together with ``tsc --strict --noEmit``: the errors of
    each file as ``line: TSxxxx text`` (an empty list for a file that compiles)."""
    compiler = NPM_DEPS / "typescript" / "bin" / "tsc"
    options = ["--strict", "--noEmit", "--target", "es2022", "--module", "esnext"]
    options += ["--moduleResolution", "bundler", "--lib", "es2022,dom", "--skipLibCheck", "--pretty", "false"]
    done = subprocess.run(
        [node(), str(compiler), *options, *files],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    errors: dict[str, list[str]] = {name: [] for name in files}
    for line in done.stdout.splitlines():
        match = _DIAGNOSTIC.match(line)
        if match:
            errors.setdefault(match["file"], []).append(f"{match['line']}: {match['code']} {match['text']}")
        elif line.startswith(" "):
            continue  # the rest of a multi-line message
        else:
            errors.setdefault("(tsc)", []).append(line)
    assert done.returncode in (0, 1, 2), done.stderr
    return errors


def run_bun(folder: Path, script: str, *args: str, timeout: float = 30) -> Any:
    """Run ``script`` of ``folder`` under Bun; its stdout, one JSON document."""
    done = subprocess.run(
        [bun(), script, *args], cwd=folder, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])
