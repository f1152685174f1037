"""The guards' optional dependencies are imported only when a guard needs them."""

from __future__ import annotations

import subprocess
import sys


def test_guards_import_neither_pyjwt_nor_redis() -> None:
    """Importing wskit.guards (and its setup) loads neither PyJWT nor redis-py: both are optional extras."""
    code = "import sys, wskit.guards, wskit.guards.setup; print('jwt' in sys.modules, 'redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.split() == ["False", "False"]
