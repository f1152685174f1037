"""Running mypy --strict over checked files and reading what they expect of it.

The typing suites (tests/unit/test_typing.py, tests/client/test_typing.py) check files in
``tests/typing/`` whose lines carry their expectation as a trailing comment: ``# reveal: <type>``
on a ``reveal_type`` line, ``# error`` where mypy must report an error.
"""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

__all__ = ["ROOT", "marked", "mypy_messages"]

ROOT = Path(__file__).resolve().parents[2]

_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)$")


def mypy_messages(*files: Path) -> list[tuple[str, int, str, str]]:
    """(file name, line, kind, text) of every mypy --strict message for ``files``, from one run
    with the project's configuration."""
    stdout, stderr, _ = api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
            "--no-pretty",
            *(str(file) for file in files),
        ]
    )
    assert not stderr, stderr
    messages = []
    for line in stdout.splitlines():
        match = _LINE.match(line)
        assert match, f"unexpected mypy output: {line}"
        messages.append((Path(match["file"]).name, int(match["line"]), match["kind"], match["text"]))
    return messages


def marked(path: Path, marker: str) -> dict[int, str]:
    """Line number -> text after a trailing ``# <marker>`` comment, for every marked code line of ``path``."""
    pattern = re.compile(rf"^\s*[^\s\"'`].*\s# {marker}(?::\s*(?P<text>.*\S))?\s*$")
    out: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = pattern.match(line)
        if match and not line.lstrip().startswith("#"):
            out[number] = match["text"] or ""
    return out
