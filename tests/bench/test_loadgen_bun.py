"""The native load generator (bench/loadgen_bun.ts) drives a wskit server and reports as the
Python one does: replies counted only when they answer what was asked, no errors, the CPU of
both sides. No figure is asserted (performance depends on the machine)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.ci import unavailable

from wskit import Server

ROOT = Path(__file__).resolve().parents[2]
BUN = ROOT / "bench" / ".scratch" / "node_modules" / ".bin" / "bun"
LOADGEN = ROOT / "bench" / "loadgen_bun.ts"

sys.path.insert(0, str(ROOT / "bench" / "servers"))


async def _run(port: int, scenario: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        str(BUN),
        str(LOADGEN),
        "--scenario",
        scenario,
        "--port",
        str(port),
        "--conns",
        "5",
        "--inflight",
        "4",
        "--seconds",
        "0.3",
        "--warmup",
        "0.1",
        "--deadline",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", ["echo", "pipelined"])
async def test_bun_load_generator_drives_the_default_app(scenario: str) -> None:
    if not BUN.exists():
        unavailable("Bun is not installed (make test runs bench/setup_peers.sh --bun-only)")
    from _wskit_app import build
    from wskit_pydantic import Text, Tick, Topic

    router, _ = build(Text, Topic, Tick, style="default")
    async with Server(router, host="127.0.0.1", port=0, env={}) as server:
        result = await _run(server.port, scenario)
    assert result["errors"] == 0
    assert result["rate"] > 0
    assert result["loadgen_cpu"] > 0
    if scenario == "echo":
        assert result["p50_ms"] > 0 and result["p99_ms"] >= result["p50_ms"]
