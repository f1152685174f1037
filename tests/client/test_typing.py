"""mypy --strict infers the client's types: ``request()`` returns the declared response message
with its payload class, ``on()`` handlers take the declared message, mismatches are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api
from tests.unit.test_typing import _LINE, _marked

ROOT = Path(__file__).resolve().parents[2]
REVEAL = ROOT / "tests" / "typing" / "reveal_client.py"


@pytest.fixture(scope="module")
def messages() -> list[tuple[int, str, str]]:
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
        ]
    )
    assert not stderr, stderr
    found = []
    for line in stdout.splitlines():
        match = _LINE.match(line)
        assert match, f"unexpected mypy output: {line}"
        found.append((int(match["line"]), match["kind"], match["text"]))
    return found


def test_the_reveal_file_has_expectations() -> None:
    """The file marks its reveal_type lines (guards against checking nothing)."""
    assert len(_marked(REVEAL, "reveal")) >= 10


def test_revealed_types_match(messages: list[tuple[int, str, str]]) -> None:
    """Every reveal_type gives the expected type: request() results carry the response model."""
    revealed = {line: text for line, kind, text in messages if kind == "note" and text.startswith("Revealed type")}
    assert revealed == {line: f'Revealed type is "{want}"' for line, want in _marked(REVEAL, "reveal").items()}


def test_errors_only_where_marked(messages: list[tuple[int, str, str]]) -> None:
    """A handler of another payload type registered with on() is an arg-type error; nothing else errs."""
    errors = {line: text for line, kind, text in messages if kind == "error"}
    assert set(errors) == set(_marked(REVEAL, "error")), errors
    assert all("[arg-type]" in text for text in errors.values())
