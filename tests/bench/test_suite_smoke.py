"""The benchmark suite (bench/run.py) runs end to end in its --smoke form.

Only that it completes and writes a figure for every scenario is checked: performance
depends on the machine, so no figure is asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.ci import in_ci, require_module

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
#: the headline peer (wskit as users write it), the bench's tuned path, and a raw transport
PEERS = ["wskit_default", "wskit_msgspec", "raw_aiohttp"]
SCENARIOS = ["idle_5000", "echo_c1", "echo_c50", "pipelined", "fanout_1000", "fanout_5000", "redis"]


@pytest.mark.timeout(90)
def test_smoke_run_writes_numbers_for_every_scenario(tmp_path: Path) -> None:
    """--smoke exits 0 and writes results.md, results.json and chart.png with a figure per scenario and peer."""
    require_module("picows", reason="the load generator needs it (test extra)")
    scenarios = list(SCENARIOS)
    if shutil.which("redis-server") is None:
        if in_ci():
            pytest.fail("the redis scenario needs redis-server on PATH (make test installs it)")
        scenarios.remove("redis")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--smoke",
            "--peers",
            ",".join(PEERS),
            "--scenarios",
            ",".join(scenarios),
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    for scenario in scenarios:
        peers = ["wskit_default"] if scenario == "redis" else PEERS
        for peer in peers:
            figures = data["summary"][scenario][peer]
            assert figures["rate"] is not None, f"{scenario}/{peer}: {data['samples'][scenario][peer]}"
            if scenario != "idle_5000":
                assert figures["rate"] > 0, f"{scenario}/{peer}: {data['samples'][scenario][peer]}"
    # the serialisation count comes from the server itself (its BENCH_STATS RPC), on picows too
    encodes = data["summary"]["fanout_5000"]["wskit_default"]["encodes_per_publish"]
    assert encodes is not None and 0 < encodes <= 1.0, data["samples"]["fanout_5000"]["wskit_default"]
    text = (tmp_path / "results.md").read_text()
    assert "## Targets" in text
    assert "- Command: `python bench/run.py --smoke --peers wskit_default,wskit_msgspec,raw_aiohttp" in text
    assert ("PASS" in proc.stdout) or ("FAIL" in proc.stdout)
    if (tmp_path / "chart.png").exists():
        assert (tmp_path / "chart.png").stat().st_size > 1000
