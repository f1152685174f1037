"""The abuse benchmark (bench/under_abuse.py) runs end to end in its --quick form.

Only that it completes and reports a figure in every table is checked: how fast the others are
served and how much memory a flood costs depend on the machine, so no figure is asserted
(the behaviour behind them is tested in tests/production/test_backpressure.py and
tests/fuzz/test_hostile_frames.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "under_abuse.py"


@pytest.mark.timeout(120)
def test_quick_run_completes_and_reports_numbers(tmp_path: Path) -> None:
    """--quick exits 0, prints a row per scenario with figures, and writes them to --output."""
    output = tmp_path / "result.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert output.read_text() in proc.stdout
    for policy in ("close", "drop-oldest", "drop-new"):
        row = re.search(rf"^\| {policy} \| 5 \| [\d,]+ \| ([\d.]+) \| ([\d.]+) \| [-\d.]+ \(", proc.stdout, re.M)
        assert row is not None, proc.stdout
        assert float(row.group(2)) > 0
    assert re.search(r"^\| 20 x 101, 180 x 429 \| \d+ \|", proc.stdout, re.M), proc.stdout
    hostile = re.search(r"^\| ([\d,]+) \| [\d,]+ \| \d+ \| (\d+) \| [\d.]+ \|", proc.stdout, re.M)
    assert hostile is not None, proc.stdout
    assert int(hostile.group(1).replace(",", "")) > 0 and int(hostile.group(2)) > 0
    assert "- Command: `python bench/under_abuse.py --quick --output" in proc.stdout
