"""mypy --strict infers the client's types: ``request()`` returns the declared response message
with its payload class, ``on()`` handlers take the declared message, mismatches are errors."""

from __future__ import annotations

import pytest
from tests.support.mypy_check import ROOT, marked, mypy_messages

REVEAL = ROOT / "tests" / "typing" / "reveal_client.py"


@pytest.fixture(scope="module")
def messages() -> list[tuple[int, str, str]]:
    return [(line, kind, text) for _, line, kind, text in mypy_messages(REVEAL)]


def test_the_reveal_file_has_expectations() -> None:
    """The file marks its reveal_type lines (guards against checking nothing)."""
    assert len(marked(REVEAL, "reveal")) >= 10


def test_revealed_types_match(messages: list[tuple[int, str, str]]) -> None:
    """Every reveal_type gives the expected type: request() results carry the response model."""
    revealed = {line: text for line, kind, text in messages if kind == "note" and text.startswith("Revealed type")}
    assert revealed == {line: f'Revealed type is "{want}"' for line, want in marked(REVEAL, "reveal").items()}


def test_errors_only_wheremarked(messages: list[tuple[int, str, str]]) -> None:
    """A handler of another payload type registered with on() is an arg-type error; nothing else errs."""
    errors = {line: text for line, kind, text in messages if kind == "error"}
    assert set(errors) == set(marked(REVEAL, "error")), errors
    assert all("[arg-type]" in text for text in errors.values())
