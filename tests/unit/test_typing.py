"""Typing tests: mypy --strict infers handler payload types and rejects mismatched handlers.

The checked files live in ``tests/typing/`` (not collected by pytest). ``reveal_handlers.py``
marks each ``reveal_type`` line with ``# reveal: <type>``; ``mismatched_handler.py`` marks the
lines where mypy must report an error with ``# error``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.mypy_check import ROOT, marked, mypy_messages

TYPING = ROOT / "tests" / "typing"
REVEAL = TYPING / "reveal_handlers.py"
MISMATCH = TYPING / "mismatched_handler.py"


@pytest.fixture(scope="module")
def mypy_output() -> list[tuple[str, int, str, str]]:
    """(file name, line, kind, text) of every mypy message for both files, from one --strict run."""
    return mypy_messages(REVEAL, MISMATCH)


def _of(messages: list[tuple[str, int, str, str]], file: Path, kind: str) -> Iterator[tuple[int, str]]:
    return ((line, text) for name, line, k, text in messages if name == file.name and k == kind)


def test_reveal_file_has_expectations() -> None:
    """The reveal file marks its reveal_type lines (guards against testing nothing)."""
    assert len(marked(REVEAL, "reveal")) >= 8


def test_reveal_file_type_checks_cleanly(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """reveal_handlers.py has no mypy --strict error."""
    assert list(_of(mypy_output, REVEAL, "error")) == []


def test_revealed_types_match(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """Every reveal_type gives the expected type: ctx.payload is the declared model, and so on."""
    revealed = {line: text for line, text in _of(mypy_output, REVEAL, "note") if text.startswith("Revealed type")}
    expected = {line: f'Revealed type is "{want}"' for line, want in marked(REVEAL, "reveal").items()}
    assert revealed == expected


def test_handler_payload_is_the_declared_model(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """In a handler registered with @router.on(Join) and annotated Context[JoinPayload], ctx.payload is JoinPayload."""
    revealed = [text for _, text in _of(mypy_output, REVEAL, "note")]
    assert 'Revealed type is "reveal_handlers.JoinPayload"' in revealed
    assert 'Revealed type is "reveal_handlers.UserReq"' in revealed


def test_mismatched_handlers_are_errors(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """mypy reports an arg-type error on each mismatched registration line, and nowhere else."""
    errors = list(_of(mypy_output, MISMATCH, "error"))
    assert sorted({line for line, _ in errors}) == sorted(marked(MISMATCH, "error"))
    assert all("[arg-type]" in text for _, text in errors)


def test_mismatch_error_names_both_payload_types(mypy_output: list[tuple[str, int, str, str]]) -> None:
    """The error for @router.on(Join) on a Context[SayPayload] handler names both payload types."""
    first = min(marked(MISMATCH, "error"))
    texts = [text for line, text in _of(mypy_output, MISMATCH, "error") if line == first]
    assert texts and "Context[SayPayload" in texts[0] and "Context[JoinPayload" in texts[0]
