"""The Redis scale-out benchmark (bench/redis_scaleout.py) runs end to end in its --quick form.

Only that it completes and reports numbers is checked: performance depends on the machine,
so no figure is asserted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.ci import unavailable

BENCH = Path(__file__).resolve().parents[2] / "bench" / "redis_scaleout.py"


def test_quick_run_completes_and_reports_numbers(tmp_path: Path) -> None:
    """--quick exits 0, prints both Markdown tables with figures, and writes them to --output."""
    if shutil.which("redis-server") is None:
        unavailable("the benchmark starts its own redis-server, which is not on PATH")
    output = tmp_path / "result.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert output.read_text() in proc.stdout
    cross = re.search(
        r"^\| A → Redis → B \(cross-instance\) \| [\d,]+ \| [\d,]+ \| ([\d.]+) \| ([\d.]+) \|", proc.stdout, re.M
    )
    assert cross is not None, proc.stdout
    assert float(cross.group(1)) > 0
    fanout = re.search(r"^\| 1 \| ([\d,]+) / ([\d,]+) \| [\d,]+ \| ([\d,]+) \|", proc.stdout, re.M)
    assert fanout is not None, proc.stdout
    assert fanout.group(1) == fanout.group(2)
    assert int(fanout.group(3).replace(",", "")) > 0
    assert "- Command: `python bench/redis_scaleout.py --quick --output" in proc.stdout
