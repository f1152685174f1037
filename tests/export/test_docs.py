"""docs/contract.md runs as written: its Python blocks, top to bottom in one namespace (the
page tells one story: later blocks use the router of the first). Any other block must be
marked ``<!-- fragment -->``, so an example cannot be added without being run."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.docblocks import read_blocks

DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def test_unmarked_blocks_are_python() -> None:
    """Every block is either Python (run below) or a marked fragment."""
    found = read_blocks(DOC)
    assert found
    assert [b.line for b in found if not b.fragment and b.lang != "python"] == []


def test_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's Python, as written, in a scratch directory."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "contract_doc"}
    python = [b for b in read_blocks(DOC) if b.lang == "python" and not b.fragment]
    assert len(python) >= 3
    for block in python:
        # dont_inherit: the page's code runs without this module's `from __future__` imports
        code = compile("\n".join(block.lines), f"{DOC.name}:{block.line}", "exec", dont_inherit=True)
        exec(code, namespace)
