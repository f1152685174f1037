"""Typing tests: mypy --strict infers handler payload types and rejects mismatched handlers.

The checked files live in ``tests/typing/`` (not collected by pytest). ``reveal_handlers.py``
marks each ``reveal_type`` line with ``# reveal: <type>``; ``mismatched_handler.py`` marks the
lines where mypy must report an error with ``# error``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]
TYPING = ROOT / "tests" / "typing"
REVEAL = TYPING / "reveal_handlers.py"
MISMATCH = TYPING / "mismatched_handler.py"

_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)$")


def _marked(path: Path, marker: str) -> dict[int, str]:
    """Line number -> text after a trailing ``# <marker>`` comment, for every marked code line of ``path``."""
    pattern = re.compile(rf"^\s*[^\s\"'`].*\s# {marker}(?::\s*(?P<text>.*\S))?\s*$")
    out: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = pattern.match(line)
        if match and not line.lstrip().startswith("#"):
            out[number] = match["text"] or ""
    return out


@pytest.fixture(scope="module")
def mypy_output() -> list[tuple[str, int, str, str]]:
    """(file name, line, kind, text) of every mypy message for both files, from one --strict run."""
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
            str(REVEAL),
            str(MISMATCH),
        ]
    )
    assert not stderr, stderr
    messages = []
    for line in stdout.splitlines():
        match = _LINE.match(line)
        assert match, f"unexpected mypy output: {line}"
        messages.append((Path(match["file"]).name, int(match["line"]), match["kind"], match["text"]))
    return messages


def _of(messages: list[tuple[str, int, str, str]], file: Path, kind: str) -> Iterator[tuple[int, str]]:
    return ((line, text) for name, line, k, text in messages if name == file.name and k == kind)


def test_reveal_file_has_expectations() -> None:
    """The reveal file marks its reveal_type lines (guards against testing nothing)."""
    assert len(_marked(REVEAL, "reveal")) >= 8


def test_reveal_file_type_checks_cleanly(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """reveal_handlers.py has no mypy --strict error."""
    assert list(_of(mypy_output, REVEAL, "error")) == []


def test_revealed_types_match(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """Every reveal_type gives the expected type: ctx.payload is the declared model, and so on."""
    revealed = {line: text for line, text in _of(mypy_output, REVEAL, "note") if text.startswith("Revealed type")}
    expected = {line: f'Revealed type is "{want}"' for line, want in _marked(REVEAL, "reveal").items()}
    assert revealed == expected


def test_handler_payload_is_the_declared_model(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """In a handler registered with @router.on(Join) and annotated Context[JoinPayload], ctx.payload is JoinPayload."""
    revealed = [text for _, text in _of(mypy_output, REVEAL, "note")]
    assert 'Revealed type is "reveal_handlers.JoinPayload"' in revealed
    assert 'Revealed type is "reveal_handlers.UserReq"' in revealed


def test_mismatched_handlers_are_errors(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """mypy reports an arg-type error on each mismatched registration line, and nowhere else."""
    errors = list(_of(mypy_output, MISMATCH, "error"))
    assert sorted({line for line, _ in errors}) == sorted(_marked(MISMATCH, "error"))
    assert all("[arg-type]" in text for _, text in errors)


def test_mismatch_error_names_both_payload_types(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """The error for @router.on(Join) on a Context[SayPayload] handler names both payload types."""
    first = min(_marked(MISMATCH, "error"))
    texts = [text for line, text in _of(mypy_output, MISMATCH, "error") if line == first]
    assert texts and "Context[SayPayload" in texts[0] and "Context[JoinPayload" in texts[0]
